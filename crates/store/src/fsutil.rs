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
