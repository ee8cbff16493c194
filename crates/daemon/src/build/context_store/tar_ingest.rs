//! The docker CLI's context tar into the store. Docker unpacks it into a chroot, so names are
//! taken as inside one: a leading `/` and `..` stop at the context root. Nothing is written by
//! name: files become content-addressed blobs and everything else is manifest metadata, so no
//! entry can reach outside the store. Device nodes and FIFOs are dropped (a context file
//! store holds files, directories and symlinks); a hard link is a file sharing its target's
//! content and naming it (`linkname`); a link to nothing, or an entry under a file, fails as
//! Docker's untar does.

use super::lease::Lease;
use super::publish::{copy_hashing, set_metadata, temp_file, Publisher};
use super::{clean_rooted, now_ns, ContextStore, Result};
use crate::build::compression::decompress;
use crate::engine::Error;
use berth_context::tarsum::{header_hasher, TarsumHeader};
use berth_context::{Entry, EntryKind, Manifest};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read};

/// More entries than any real context has; refused rather than held in memory.
pub(crate) const MAX_ENTRIES: usize = 1 << 20;
/// Linux's PATH_MAX.
const MAX_NAME: usize = 4096;

/// A failure of the tar stream itself, in Docker's words where it has them.
fn tar_error(e: io::Error) -> Error {
    let msg = e.to_string();
    // The tar crate's words for a stream cut short ("unexpected EOF during skip", "failed to
    // read entire block") and for a block that is no tar header, as Go's reader says them.
    if msg == berth_store::tar_cap::FIELD_TOO_LONG {
        // A long name or PAX header past Go's 1 MiB (`CappedTar`), as dockerd 20.10 says it.
        untar_error("unexpected EOF".into())
    } else if e.kind() == io::ErrorKind::UnexpectedEof
        || msg.starts_with("unexpected EOF")
        || msg.starts_with("failed to read entire block")
    {
        Error::Internal("unexpected EOF".into())
    } else if msg.contains("checksum mismatch") || msg.starts_with("numeric field") {
        Error::Internal("archive/tar: invalid tar header".into())
    } else {
        Error::Internal(format!("Error processing tar file(exit status 1): {msg}"))
    }
}

fn untar_error(msg: String) -> Error {
    Error::Internal(format!("Error processing tar file(exit status 1): {msg}"))
}

/// Reads the whole tar into the store; returns its manifest (tarsums filled in) and a
/// lease on its files.
pub(super) fn ingest(store: &ContextStore, body: &mut dyn Read) -> Result<(Manifest, Lease)> {
    let result = read_tar(store, &mut *body);
    if result.is_err() {
        // A tar refused before its end (a 1 MiB long name, too many entries): the rest is
        // read and dropped (no memory), as the API does for a bad option, so that the client,
        // still sending, gets the error rather than a broken pipe (dockerd answers so too).
        let _ = io::copy(body, &mut io::sink());
    }
    result
}

fn read_tar(store: &ContextStore, body: &mut dyn Read) -> Result<(Manifest, Lease)> {
    let reader = decompress(body).map_err(tar_error)?;
    let mut archive = tar::Archive::new(berth_store::CappedTar::new(reader));
    let mut state = Ingest {
        store,
        entries: BTreeMap::new(),
        lease: Lease::new(store.pins.clone()),
        publisher: Publisher::new(&store.blobs_dir()),
        memo: Vec::new(),
        now: now_ns(),
        names: 0,
    };
    let mut count = 0usize;
    for item in archive.entries().map_err(tar_error)? {
        let mut item = item.map_err(tar_error)?;
        count += 1;
        if count > store.max_entries {
            return Err(Error::InvalidParameter(format!(
                "build context has more than {} entries",
                store.max_entries
            )));
        }
        state.add(&mut item)?;
    }
    let Ingest {
        entries,
        lease,
        publisher,
        memo,
        ..
    } = state;
    publisher.finish()?;
    store.memo.put_many(&memo)?;
    Ok((
        Manifest {
            entries: entries.into_values().collect(),
        },
        lease,
    ))
}

struct Ingest<'s> {
    store: &'s ContextStore,
    /// What the context holds so far, by cleaned path (byte order = manifest order).
    entries: BTreeMap<String, Entry>,
    lease: Lease,
    publisher: Publisher,
    memo: Vec<(super::memo::Key, String)>,
    /// Time given to directories the tar implies but does not list.
    now: i64,
    /// Bytes of all names held, bounded with the entry count.
    names: usize,
}

/// What a tar entry becomes.
enum Kind {
    File,
    Dir,
    Symlink(String),
    HardLink(String),
}

impl Ingest<'_> {
    fn add<R: Read>(&mut self, item: &mut tar::Entry<'_, R>) -> Result<()> {
        let header = item.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(link_name(item)?),
            tar::EntryType::Link => Kind::HardLink(link_name(item)?),
            // Devices, FIFOs, global headers and whatever else: not context content.
            other => {
                tracing::debug!("build context: dropping tar entry of type {other:?}");
                return Ok(());
            }
        };
        let raw_name = String::from_utf8(item.path_bytes().into_owned())
            .map_err(|_| untar_error("a file name is not valid UTF-8".into()))?;
        if raw_name.len() > MAX_NAME {
            return Err(untar_error(format!(
                "file name too long: {}…",
                &raw_name[..64]
            )));
        }
        let path = clean_rooted(&raw_name);
        if path.is_empty() {
            return Ok(()); // the context root itself ("./")
        }
        self.names += path.len();
        if self.names > MAX_ENTRIES * 128 {
            return Err(Error::InvalidParameter(
                "build context file names are too long in total".into(),
            ));
        }
        self.make_parents(&path)?;

        let header = item.header();
        let num = |r: io::Result<u64>| r.map_err(|e| untar_error(format!("{path}: {e}")));
        let raw_mode = num(header.mode().map(u64::from))? as u32;
        let uid = num(header.uid())? as u32;
        let gid = num(header.gid())? as u32;
        let header_mtime = num(header.mtime())?;
        // Go's reader turns the old '\0' regular-file flag into '0'.
        let typeflag = match header.as_bytes()[156] {
            0 => b'0',
            t => t,
        };
        let mtime_ns = mtime_ns(item, header_mtime);
        let xattrs = xattrs(item)?;
        let perm = raw_mode & 0o7777;
        let mut entry = Entry {
            path: path.clone(),
            kind: EntryKind::Dir,
            mode: perm | 0o040000,
            size: 0,
            mtime_ns,
            uid,
            gid,
            linkname: String::new(),
            xattrs,
            digest: None,
            tarsum: None,
            implied: false,
        };
        // Docker's tarsum is over the header as sent (name, mode with or without type bits).
        let sum_header = |size: u64, linkname: &str, xattrs: &[(String, Vec<u8>)]| {
            header_hasher(&TarsumHeader {
                name: &raw_name,
                mode: raw_mode,
                uid,
                gid,
                size,
                typeflag,
                linkname,
                xattrs,
            })
        };
        match kind {
            Kind::Dir => {
                entry.tarsum = Some(hex::encode(sum_header(0, "", &entry.xattrs).finalize()));
            }
            Kind::Symlink(target) => {
                if target.is_empty() {
                    return Err(untar_error(format!(
                        "symlink  /{path}: no such file or directory"
                    )));
                }
                entry.tarsum = Some(hex::encode(
                    sum_header(0, &target, &entry.xattrs).finalize(),
                ));
                entry.kind = EntryKind::Symlink;
                entry.mode = perm | 0o120000;
                entry.linkname = target;
            }
            Kind::HardLink(target) => {
                let to = clean_rooted(&target);
                let Some(linked) = self
                    .entries
                    .get(&to)
                    .filter(|e| e.kind != EntryKind::Dir)
                    .cloned()
                else {
                    return Err(untar_error(format!(
                        "link /{to} /{path}: no such file or directory"
                    )));
                };
                // The same inode: the target's metadata and content, this header's tarsum. The
                // manifest names the first path of the inode, as the docker CLI's tar does.
                let sum = hex::encode(sum_header(0, &target, &entry.xattrs).finalize());
                let first = match linked.is_hard_link() {
                    true => linked.linkname.clone(),
                    false => to,
                };
                entry = Entry {
                    path: path.clone(),
                    tarsum: Some(sum),
                    linkname: first,
                    ..linked
                };
            }
            Kind::File => {
                entry.kind = EntryKind::File;
                entry.mode = perm | 0o100000;
                entry.size = item.size();
                // The memo knows tarsums by the header the manifest implies: usable when
                // the tar's header is that one (what the docker CLI sends).
                let memoable = raw_name == path && raw_mode == entry.mode && typeflag == b'0';
                let tarsum = sum_header(entry.size, "", &entry.xattrs);
                let (digest, sum) = self.store_content(item, &entry, tarsum, memoable)?;
                entry.digest = Some(format!("sha256:{digest}"));
                if memoable {
                    self.memo.push((super::memo::key(&entry), sum.clone()));
                }
                entry.tarsum = Some(sum);
            }
        }
        self.insert(entry);
        Ok(())
    }

    /// Docker's untar creates missing parents (0755) and fails under a non-directory.
    fn make_parents(&mut self, path: &str) -> Result<()> {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            let parent = &path[..end];
            match self.entries.get(parent).map(|e| e.kind) {
                Some(EntryKind::Dir) => {}
                Some(EntryKind::File) => {
                    return Err(untar_error(format!("open /{path}: not a directory")))
                }
                // Writing through a symlink is how an archive escapes its root: refused.
                Some(EntryKind::Symlink) => {
                    return Err(untar_error(format!(
                        "open /{path}: parent /{parent} is a symbolic link"
                    )))
                }
                None => {
                    let implied = Entry {
                        // Docker hashes an entry its tar lacked as its path.
                        tarsum: Some(parent.to_string()),
                        ..Entry::implied_dir(parent.to_string(), self.now)
                    };
                    self.entries.insert(parent.to_string(), implied);
                }
            }
            end += 1;
        }
        Ok(())
    }

    /// A later entry replaces an earlier one of the same name (a directory's contents go with
    /// it unless the new entry is a directory too), as extracting over it does.
    fn insert(&mut self, entry: Entry) {
        let replaces_dir = self
            .entries
            .get(&entry.path)
            .is_some_and(|old| old.kind == EntryKind::Dir);
        if replaces_dir && entry.kind != EntryKind::Dir {
            let prefix = format!("{}/", entry.path);
            let under: Vec<String> = self
                .entries
                .range(prefix.clone()..)
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            for k in under {
                self.entries.remove(&k);
            }
        }
        self.entries.insert(entry.path.clone(), entry);
    }

    /// Streams a file's content into a temp file, hashing it; publishes it as a blob when new
    /// (synced with the whole upload, then renamed), else drops the copy. Returns the content
    /// hex and the tarsum (`tarsum` = the hasher fed with the header). A big file is hashed
    /// once while it streams: its tarsum then comes from the memo (an unchanged file on a
    /// rebuild) or from reading the temp file back from the page cache.
    fn store_content(
        &mut self,
        item: &mut dyn Read,
        entry: &Entry,
        mut tarsum: Sha256,
        memoable: bool,
    ) -> Result<(String, String)> {
        const BIG: u64 = 1 << 20;
        let (mut file, temp) = temp_file(&self.store.dir.join("tmp"))?;
        let result = self.hash_into(
            item,
            &mut file,
            entry,
            &mut tarsum,
            memoable && entry.size >= BIG,
        );
        let (hex, sum) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        // Pinned before looking, so GC cannot remove it between the check and the build.
        self.store.pins.pin(&self.lease, std::slice::from_ref(&hex));
        let dest = self.store.blob_path(&hex);
        if dest.exists() {
            let _ = std::fs::remove_file(&temp);
            return Ok((hex, sum));
        }
        if let Err(e) = set_metadata(&file, entry.mode, entry.uid, entry.gid, entry.mtime_ns) {
            let _ = std::fs::remove_file(&temp);
            return Err(e.into());
        }
        self.publisher.submit(file, temp, dest);
        Ok((hex, sum))
    }

    /// `store_content`'s copy: the content's hex and the tarsum.
    fn hash_into(
        &self,
        item: &mut dyn Read,
        file: &mut std::fs::File,
        entry: &Entry,
        tarsum: &mut Sha256,
        tarsum_later: bool,
    ) -> Result<(String, String)> {
        let mut content = Sha256::new();
        let copied = match tarsum_later {
            true => copy_hashing(item, file, &mut [&mut content]),
            false => copy_hashing(item, file, &mut [&mut content, &mut *tarsum]),
        };
        // A stream that ends early reads as a short file, not an error: check the length.
        match copied {
            Ok(n) if n == entry.size => {}
            Ok(_) => return Err(tar_error(io::ErrorKind::UnexpectedEof.into())),
            Err(e) => return Err(tar_error(e)),
        }
        let hex = hex::encode(content.finalize());
        if tarsum_later {
            let mut known = entry.clone();
            known.digest = Some(format!("sha256:{hex}"));
            if let Some(Some(sum)) = self.store.memo.get_many(std::iter::once(&known))?.pop() {
                return Ok((hex, sum));
            }
            use std::io::Seek;
            file.seek(io::SeekFrom::Start(0))?;
            let mut back = io::BufReader::new(&*file);
            io::copy(&mut back, &mut HashWriter(tarsum))?;
        }
        Ok((hex, hex::encode(tarsum.clone().finalize())))
    }
}

/// `io::Write` into a hasher.
struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn link_name<R: Read>(item: &tar::Entry<'_, R>) -> Result<String> {
    let raw = item
        .link_name_bytes()
        .map(|b| b.into_owned())
        .unwrap_or_default();
    String::from_utf8(raw).map_err(|_| untar_error("a link target is not valid UTF-8".into()))
}

/// The entry's mtime in ns: PAX `mtime` (fractional seconds) when present, else the header's.
fn mtime_ns<R: Read>(item: &mut tar::Entry<'_, R>, header_secs: u64) -> i64 {
    let pax = item.pax_extensions().ok().flatten().and_then(|exts| {
        exts.flatten()
            .find(|e| e.key() == Ok("mtime"))
            .and_then(|e| e.value().ok().map(String::from))
    });
    pax.and_then(|v| parse_pax_time(&v))
        .unwrap_or(header_secs as i64 * 1_000_000_000)
}

fn parse_pax_time(v: &str) -> Option<i64> {
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nanos: i64 = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some(if secs < 0 {
        secs * 1_000_000_000 - nanos
    } else {
        secs * 1_000_000_000 + nanos
    })
}

/// The entry's extended attributes (PAX `SCHILY.xattr.*`), sorted by name.
fn xattrs<R: Read>(item: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = item.pax_extensions().map_err(tar_error)? {
        for ext in exts {
            let ext = ext.map_err(tar_error)?;
            if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    out.sort();
    Ok(out)
}
