//! Small filesystem helpers shared by the blob store and the snapshotter.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ctx, Error};

/// Names starting with this are work in progress; anything carrying it at open is garbage.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique within this process and, through the pid and clock, across restarts.
pub(crate) fn temp_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{TEMP_PREFIX}{tag}-{}-{n}-{nanos}", std::process::id())
}

/// Makes a rename or unlink inside `dir` durable: rename is only crash-safe once the directory
/// entry itself has reached the disk.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), Error> {
    let f = File::open(dir).map_err(|e| ctx(e, dir.display()))?;
    f.sync_all().map_err(|e| ctx(e, dir.display()))
}

/// Creates `dir` if needed and makes it root's alone (0700), as dockerd keeps `image/`:
/// what it holds (image layers and configs, container layers) is no host user's to read.
/// Also tightens a directory an older version created 0755.
pub(crate) fn private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| ctx(e, dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| ctx(e, dir.display()))
}

/// `remove_dir_all` that treats "already gone" as success, so removals are idempotent.
pub(crate) fn remove_tree(path: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ctx(e, path.display())),
    }
}

/// `remove_file` that treats "already gone" as success.
pub(crate) fn remove_file(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ctx(e, path.display())),
    }
}

/// Starts the disk writing big files early, so it overlaps the rest of an import instead of
/// all waiting for the final fsync/syncfs (the kernel would otherwise hold gigabytes dirty
/// until then). Call `wrote` after each write; it asks for writeback every few megabytes.
#[derive(Default)]
pub(crate) struct EarlyWriteback {
    written: u64,
    flushed: u64,
}

impl EarlyWriteback {
    const STEP: u64 = 8 << 20;

    pub(crate) fn wrote(&mut self, file: &File, n: usize) {
        self.written += n as u64;
        if self.written - self.flushed >= Self::STEP {
            use std::os::fd::AsRawFd;
            // SAFETY: plain syscall on an open fd; it only starts writeback of the range.
            // A failure only means the data is written later, by the fsync.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    self.flushed as libc::off64_t,
                    (self.written - self.flushed) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
            self.flushed = self.written;
        }
    }
}
