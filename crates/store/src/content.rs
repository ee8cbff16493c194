//! The content-addressed blob store: <root>/blobs/sha256/<hex>.
//!
//! A blob is written to a temp file in the same directory while its digest is computed from the
//! bytes actually written, fsynced, then renamed to its digest, so a blob file under a digest
//! name is always complete and correct. Digests are never taken from the caller.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::{format_digest, hex_part};
use crate::error::{ctx, Error};
use crate::fsutil::{fsync_dir, remove_file, temp_name, TEMP_PREFIX};

/// Blob directory handle. Public for the registry server, which keeps its blobs in one.
#[derive(Debug)]
pub struct ContentStore {
    dir: PathBuf,
}

impl ContentStore {
    /// Creates <root>/blobs/sha256 if needed.
    pub fn open(root: &Path) -> Result<ContentStore, Error> {
        let dir = root.join("blobs").join("sha256");
        std::fs::create_dir_all(&dir).map_err(|e| ctx(e, dir.display()))?;
        Ok(ContentStore { dir })
    }

    /// File path of a blob; errors on anything that is not a well-formed sha256 digest.
    pub fn path(&self, digest: &str) -> Result<PathBuf, Error> {
        let hex =
            hex_part(digest).ok_or_else(|| Error::Corrupt(format!("bad digest {digest:?}")))?;
        Ok(self.dir.join(hex))
    }

    /// Starts a new blob.
    pub fn writer(&self) -> Result<BlobWriter, Error> {
        let path = self.dir.join(temp_name("blob"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ctx(e, path.display()))?;
        Ok(BlobWriter {
            dir: self.dir.clone(),
            path: Some(path),
            file,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Continues a blob whose first bytes are already in `path` (a registry upload, which
    /// outlives one request and the process): re-hashes them and appends after them. `path`
    /// must be on the store's filesystem, since `commit` renames it into place. Dropping the
    /// writer deletes the file, as for `writer`; `suspend` keeps it for a later `resume`.
    pub fn resume(&self, path: &Path) -> Result<BlobWriter, Error> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| ctx(e, path.display()))?;
        let mut hasher = Sha256::new();
        let size = io::copy(&mut file, &mut hasher).map_err(|e| ctx(e, path.display()))?;
        Ok(BlobWriter {
            dir: self.dir.clone(),
            path: Some(path.to_path_buf()),
            file,
            hasher,
            size,
        })
    }

    /// Writes a small blob (a config) in one go and publishes it.
    pub fn write_all(&self, bytes: &[u8]) -> Result<String, Error> {
        let mut w = self.writer()?;
        w.write_all(bytes).map_err(Error::Io)?;
        let pending = w.finish()?;
        let digest = pending.digest.clone();
        pending.commit()?;
        Ok(digest)
    }

    /// Reads a whole blob; only for small ones (configs).
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, Error> {
        let path = self.path(digest)?;
        let mut buf = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(|e| ctx(e, path.display()))?;
        Ok(buf)
    }

    /// Removes a blob; idempotent.
    pub fn remove(&self, digest: &str) -> Result<(), Error> {
        remove_file(&self.path(digest)?)
    }

    /// Deletes temp files and every blob whose digest `keep` rejects. Run at open, before any
    /// writer exists, so nothing in progress can be mistaken for garbage.
    pub fn gc(&self, keep: impl Fn(&str) -> bool) -> Result<usize, Error> {
        let mut removed = 0;
        let rd = std::fs::read_dir(&self.dir).map_err(|e| ctx(e, self.dir.display()))?;
        for entry in rd {
            let entry = entry.map_err(|e| ctx(e, self.dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let digest = format!("sha256:{name}");
            let is_blob = hex_part(&digest).is_some();
            if name.starts_with(TEMP_PREFIX) || !is_blob || !keep(&digest) {
                remove_file(&entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

/// A blob being written: hashes and counts what goes through it.
#[derive(Debug)]
pub struct BlobWriter {
    dir: PathBuf,
    /// Some until handed on; Drop removes the temp file of an abandoned write.
    path: Option<PathBuf>,
    file: File,
    hasher: Sha256,
    size: u64,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl BlobWriter {
    /// Makes the data durable and fixes the digest; the blob is not visible until `commit`.
    pub fn finish(mut self) -> Result<PendingBlob, Error> {
        let path = self
            .path
            .take()
            .ok_or_else(|| Error::Corrupt("blob finished twice".into()))?;
        let pending = PendingBlob {
            dir: self.dir.clone(),
            path: Some(path),
            digest: format_digest(self.hasher.clone().finalize().as_slice()),
            size: self.size,
        };
        self.file.sync_all().map_err(|e| ctx(e, "fsync blob"))?;
        Ok(pending)
    }
}

impl BlobWriter {
    /// Bytes written so far (including those `resume` found).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Digest of the bytes so far, without finishing the blob.
    pub fn digest(&self) -> String {
        format_digest(self.hasher.clone().finalize().as_slice())
    }

    /// Closes the writer but keeps its file, for a later `resume`.
    pub fn suspend(mut self) {
        self.path = None;
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A complete, fsynced blob under its temp name.
#[derive(Debug)]
pub struct PendingBlob {
    dir: PathBuf,
    path: Option<PathBuf>,
    /// Digest of the bytes written.
    pub digest: String,
    /// Number of bytes written.
    pub size: u64,
}

impl PendingBlob {
    /// Where the blob is until `commit` (none once published).
    pub(crate) fn temp_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Publishes the blob under its digest. Replacing an existing copy is harmless: same bytes.
    pub fn commit(mut self) -> Result<(), Error> {
        let Some(from) = self.path.take() else {
            return Ok(());
        };
        let hex = hex_part(&self.digest)
            .ok_or_else(|| Error::Corrupt(format!("bad digest {}", self.digest)))?;
        let to = self.dir.join(hex);
        if let Err(e) = std::fs::rename(&from, &to) {
            let _ = std::fs::remove_file(&from);
            return Err(ctx(e, to.display()));
        }
        fsync_dir(&self.dir)
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_named_by_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let d = cs.write_all(b"hello").unwrap();
        assert_eq!(d, crate::digest::sha256_of(b"hello"));
        assert_eq!(cs.read(&d).unwrap(), b"hello");
        // An abandoned writer leaves nothing behind.
        let mut w = cs.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .collect();
        assert_eq!(names.len(), 1);
        // gc keeps what it is told to and drops the rest, temp files included.
        std::fs::write(dir.path().join("blobs/sha256/.tmp-x"), b"junk").unwrap();
        let other = cs.write_all(b"other").unwrap();
        assert_eq!(cs.gc(|x| x == d).unwrap(), 2);
        assert!(cs.path(&d).unwrap().exists());
        assert!(!cs.path(&other).unwrap().exists());
        cs.remove(&d).unwrap();
        cs.remove(&d).unwrap();
    }

    #[test]
    fn resumed_blobs_hash_what_was_there_before() {
        let dir = tempfile::tempdir().unwrap();
        let cs = ContentStore::open(dir.path()).unwrap();
        let upload = dir.path().join("upload-data");
        let mut w = cs.resume(&upload).unwrap();
        w.write_all(b"hel").unwrap();
        w.suspend();
        assert_eq!(std::fs::read(&upload).unwrap(), b"hel", "suspend keeps the file");
        let mut w = cs.resume(&upload).unwrap();
        assert_eq!(w.size(), 3);
        w.write_all(b"lo").unwrap();
        assert_eq!(w.digest(), crate::digest::sha256_of(b"hello"));
        let pending = w.finish().unwrap();
        assert_eq!(pending.digest, crate::digest::sha256_of(b"hello"));
        pending.commit().unwrap();
        assert!(!upload.exists(), "published by rename");
        assert_eq!(cs.read(&crate::digest::sha256_of(b"hello")).unwrap(), b"hello");
        // Dropping a resumed writer deletes its file, as for a new one.
        let w = cs.resume(&upload).unwrap();
        drop(w);
        assert!(!upload.exists());
    }
}
