//! Crash-safe writes: every file is written under `tmp/`, made durable, then renamed into place,
//! so a name in `sha256/` or `manifests/` always holds its whole content. The files of one
//! upload share a single `syncfs` before their renames (one per file made a 20k-file context
//! take a minute); a rename a crash loses only leaves that blob missing, which the protocol
//! handles (the manifest stays incomplete, the tar is ingested again).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// A new, empty, private file in `tmp`, open for writing and reading back.
pub(crate) fn temp_file(tmp: &Path) -> io::Result<(File, PathBuf)> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    loop {
        let name = format!(
            "{}-{}-{:08x}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let path = tmp.join(name);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `body` to `dest` durably: temp, fsync, rename, fsync of the directory.
pub(crate) fn write_durable(tmp: &Path, dest: &Path, body: &[u8]) -> io::Result<()> {
    let (mut f, path) = temp_file(tmp)?;
    let done = f
        .write_all(body)
        .and_then(|_| f.sync_all())
        .and_then(|_| std::fs::rename(&path, dest));
    if done.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    done?;
    sync_dir(dest.parent().unwrap_or(Path::new("/")))
}

/// Replaces `dest` with `body` atomically (never torn), without waiting for the disk.
pub(crate) fn write_replace(tmp: &Path, dest: &Path, body: &[u8]) -> io::Result<()> {
    let (mut f, path) = temp_file(tmp)?;
    let done = f.write_all(body).and_then(|_| std::fs::rename(&path, dest));
    if done.is_err() {
        let _ = std::fs::remove_file(&path);
    }
    done
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Copies `src` to the end into `out`, feeding every byte to `hashers`. Returns the length.
pub(crate) fn copy_hashing(
    src: &mut dyn Read,
    out: &mut File,
    hashers: &mut [&mut sha2::Sha256],
) -> io::Result<u64> {
    use sha2::Digest;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for h in hashers.iter_mut() {
            h.update(&buf[..n]);
        }
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Sets a finished temp file's owner, mode and times (from the entry that brought it).
pub(crate) fn set_metadata(
    f: &File,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    nix::unistd::fchown(f.as_raw_fd(), Some(uid.into()), Some(gid.into()))
        .map_err(io::Error::from)?;
    // After chown: chown clears set-id bits.
    nix::sys::stat::fchmod(
        f.as_raw_fd(),
        nix::sys::stat::Mode::from_bits_truncate(mode & 0o7777),
    )
    .map_err(io::Error::from)?;
    // Whole seconds, as COPY writes a file into a layer (Docker truncates), so the layer can
    // hard-link the stored file instead of copying it.
    let t = nix::sys::time::TimeSpec::new(mtime_ns.div_euclid(1_000_000_000), 0);
    nix::sys::stat::futimens(f.as_raw_fd(), &t, &t).map_err(io::Error::from)
}

/// One finished temp file to make durable and move to `dest`.
struct Job {
    file: File,
    temp: PathBuf,
    dest: PathBuf,
}

/// Files at least this large get their writeback started as soon as they are handed over, so
/// the disk writes them while the next ones arrive and the final `syncfs` has little left.
const EARLY_WRITEBACK: u64 = 1 << 20;

/// Collects an upload's finished temp files, then makes them all durable with one `syncfs`
/// and renames them into place. A background thread starts the writeback of large files
/// and closes them, so the upload never waits on the disk before the end.
pub(crate) struct Publisher {
    tx: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<Vec<(PathBuf, PathBuf)>>>,
    dir: PathBuf,
}

impl Publisher {
    /// Files will land in `dir`.
    pub(crate) fn new(dir: &Path) -> Publisher {
        let (tx, rx) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name("ctx-writeback".into())
            .spawn(move || {
                let mut pending: Vec<(PathBuf, PathBuf)> = Vec::new();
                let mut dests = std::collections::HashSet::new();
                for job in rx {
                    // The same content twice in one upload: the first copy is enough.
                    if !dests.insert(job.dest.clone()) {
                        let _ = std::fs::remove_file(&job.temp);
                        continue;
                    }
                    if job
                        .file
                        .metadata()
                        .is_ok_and(|m| m.len() >= EARLY_WRITEBACK)
                    {
                        start_writeback(&job.file);
                    }
                    // Closed here: an upload of 20k files must not hold 20k descriptors.
                    drop(job.file);
                    pending.push((job.temp, job.dest));
                }
                pending
            })
            .expect("spawn writeback thread");
        Publisher {
            tx: Some(tx),
            worker: Some(worker),
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn submit(&self, file: File, temp: PathBuf, dest: PathBuf) {
        if let Some(tx) = &self.tx {
            if let Err(mpsc::SendError(job)) = tx.send(Job { file, temp, dest }) {
                let _ = std::fs::remove_file(job.temp);
            }
        }
    }

    /// Waits until every submitted file is durable under its name.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.publish()
    }

    /// One `syncfs` makes every temp file durable (contents and metadata); only then are they
    /// renamed, so no name ever holds content a crash could lose. Then one directory sync.
    fn publish(&mut self) -> io::Result<()> {
        drop(self.tx.take());
        let pending = match self.worker.take().map(|w| w.join()) {
            Some(Ok(pending)) => pending,
            Some(Err(_)) => return Err(io::Error::other("writeback thread panicked")),
            None => return Ok(()),
        };
        if pending.is_empty() {
            return Ok(());
        }
        let synced = File::open(&self.dir).and_then(|d| {
            use std::os::fd::AsRawFd;
            nix::unistd::syncfs(d.as_raw_fd()).map_err(io::Error::from)
        });
        if let Err(e) = synced {
            for (temp, _) in &pending {
                let _ = std::fs::remove_file(temp);
            }
            return Err(e);
        }
        let mut first_err = None;
        for (temp, dest) in &pending {
            if let Err(e) = std::fs::rename(temp, dest) {
                let _ = std::fs::remove_file(temp);
                first_err.get_or_insert(e);
            }
        }
        let synced = sync_dir(&self.dir);
        first_err.map_or(synced, Err)
    }
}

/// Asks the kernel to start writing `file` out now, without waiting (only `syncfs` makes it
/// durable). A hint: failure changes nothing but timing.
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on an open descriptor; no memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}

impl Drop for Publisher {
    /// A failed ingest still publishes the files already handed over (they are good content).
    fn drop(&mut self) {
        let _ = self.publish();
    }
}

#[cfg(test)]
mod publisher_tests {
    use super::*;

    /// Writes `body` to a new temp file in `tmp` and hands it to `p` for `dest`.
    fn hand_over(p: &Publisher, tmp: &Path, dest: PathBuf, body: &[u8]) {
        let (mut f, temp) = temp_file(tmp).unwrap();
        f.write_all(body).unwrap();
        p.submit(f, temp, dest);
    }

    #[test]
    fn files_appear_only_when_finished_and_temps_are_gone() {
        let root = tempfile::tempdir().unwrap();
        let (tmp, blobs) = (root.path().join("tmp"), root.path().join("sha256"));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::create_dir_all(&blobs).unwrap();
        let p = Publisher::new(&blobs);
        hand_over(&p, &tmp, blobs.join("a"), b"first");
        hand_over(&p, &tmp, blobs.join("a"), b"first");
        hand_over(&p, &tmp, blobs.join("big"), &vec![7u8; 2 << 20]);
        assert!(!blobs.join("a").exists(), "no name before the sync");
        p.finish().unwrap();
        assert_eq!(std::fs::read(blobs.join("a")).unwrap(), b"first");
        assert_eq!(std::fs::read(blobs.join("big")).unwrap().len(), 2 << 20);
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temps left");
    }

    #[test]
    fn a_dropped_publisher_still_publishes_what_it_was_given() {
        let root = tempfile::tempdir().unwrap();
        let (tmp, blobs) = (root.path().join("tmp"), root.path().join("sha256"));
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::create_dir_all(&blobs).unwrap();
        let p = Publisher::new(&blobs);
        hand_over(&p, &tmp, blobs.join("b"), b"kept");
        drop(p);
        assert_eq!(std::fs::read(blobs.join("b")).unwrap(), b"kept");
        assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "temps left");
    }
}
