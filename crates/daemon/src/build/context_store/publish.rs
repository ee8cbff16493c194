//! Crash-safe writes: every file is written under `tmp/`, fsynced, then renamed into place, so
//! a name in `sha256/` or `manifests/` always holds its whole content. Context files are
//! fsynced on a background thread while the next ones arrive.

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

/// fsyncs and renames files on a background thread, in the order given.
pub(crate) struct Publisher {
    tx: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<io::Result<()>>>,
    dir: PathBuf,
}

impl Publisher {
    /// Files will land in `dir`.
    pub(crate) fn new(dir: &Path) -> Publisher {
        let (tx, rx) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name("ctx-fsync".into())
            .spawn(move || {
                let mut first_err = None;
                for job in rx {
                    // After a failure the rest are only cleaned up: the ingest fails anyway.
                    let done = match first_err {
                        Some(_) => Err(io::Error::other("skipped")),
                        None => job
                            .file
                            .sync_all()
                            .and_then(|_| std::fs::rename(&job.temp, &job.dest)),
                    };
                    if let Err(e) = done {
                        let _ = std::fs::remove_file(&job.temp);
                        first_err.get_or_insert(e);
                    }
                }
                first_err.map_or(Ok(()), Err)
            })
            .expect("spawn fsync thread");
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
        self.join()?;
        sync_dir(&self.dir)
    }

    fn join(&mut self) -> io::Result<()> {
        drop(self.tx.take());
        match self.worker.take().map(|w| w.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("fsync thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Publisher {
    /// A failed ingest still waits for the files already handed over (they are good content).
    fn drop(&mut self) {
        let _ = self.join();
    }
}
