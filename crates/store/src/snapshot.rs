//! The overlayfs snapshotter: one read-only directory per layer chain ID under
//! <root>/snapshots/<hex>, and per-container upper/work directories under
//! <root>/containers-rootfs/<key>. It returns mounts as data and never mounts anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::hex_part;
use crate::error::{ctx, Error};
use crate::fsutil::{fsync_dir, remove_tree, temp_name, TEMP_PREFIX};

/// One mount, as the runtime should perform it (`mount -t <kind> -o <options> <source> <target>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type: "overlay".
    pub kind: String,
    /// Mount source ("overlay" for overlayfs, which has no device).
    pub source: String,
    /// Mount options, e.g. "lowerdir=…", "upperdir=…", "workdir=…".
    pub options: Vec<String>,
}

/// Snapshot directories.
#[derive(Debug)]
pub(crate) struct Snapshots {
    dir: PathBuf,
    rootfs_dir: PathBuf,
}

/// A layer being unpacked under a temp name; removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct TempSnapshot {
    path: Option<PathBuf>,
}

impl TempSnapshot {
    /// Where to unpack.
    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new("/nonexistent"))
    }
}

impl Drop for TempSnapshot {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            if let Err(e) = remove_tree(&p) {
                tracing::warn!(path = %p.display(), error = %e, "leaving temp snapshot for gc");
            }
        }
    }
}

/// A rootfs key becomes a directory name: it must be one plain path component.
fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() || key == "." || key == ".." || key.contains('/') || key.contains('\0') {
        return Err(Error::InvalidArgument(format!(
            "invalid rootfs key {key:?}"
        )));
    }
    Ok(())
}

impl Snapshots {
    pub(crate) fn open(root: &Path) -> Result<Snapshots, Error> {
        let dir = root.join("snapshots");
        let rootfs_dir = root.join("containers-rootfs");
        for d in [&dir, &rootfs_dir] {
            std::fs::create_dir_all(d).map_err(|e| ctx(e, d.display()))?;
        }
        Ok(Snapshots { dir, rootfs_dir })
    }

    /// Directory of a committed snapshot.
    pub(crate) fn path(&self, chain_id: &str) -> Result<PathBuf, Error> {
        let hex = hex_part(chain_id)
            .ok_or_else(|| Error::Corrupt(format!("bad chain id {chain_id:?}")))?;
        Ok(self.dir.join(hex))
    }

    /// A fresh, empty directory to unpack a layer into.
    pub(crate) fn temp(&self) -> Result<TempSnapshot, Error> {
        let p = self.dir.join(temp_name("snap"));
        std::fs::create_dir(&p).map_err(|e| ctx(e, p.display()))?;
        Ok(TempSnapshot { path: Some(p) })
    }

    /// Publishes an unpacked layer under its chain ID. If another import got there first the
    /// content is identical (same chain ID), so ours is dropped.
    pub(crate) fn commit(&self, mut tmp: TempSnapshot, chain_id: &str) -> Result<(), Error> {
        let to = self.path(chain_id)?;
        if to.is_dir() {
            return Ok(());
        }
        let Some(from) = tmp.path.take() else {
            return Err(Error::Corrupt("temp snapshot committed twice".into()));
        };
        // One syncfs makes every file of the layer durable before its name appears.
        let f = std::fs::File::open(&from).map_err(|e| ctx(e, from.display()))?;
        nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f)).map_err(|e| ctx(e, "syncfs"))?;
        if let Err(e) = std::fs::rename(&from, &to) {
            tmp.path = Some(from);
            return Err(ctx(e, to.display()));
        }
        fsync_dir(&self.dir)
    }

    /// Takes a snapshot out of its name at once (cheap, so callers can do it under a lock) and
    /// returns a handle whose drop deletes the content.
    pub(crate) fn detach(&self, chain_id: &str) -> Result<TempSnapshot, Error> {
        let from = self.path(chain_id)?;
        let to = self.dir.join(temp_name("del"));
        match std::fs::rename(&from, &to) {
            Ok(()) => Ok(TempSnapshot { path: Some(to) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TempSnapshot { path: None }),
            Err(e) => Err(ctx(e, from.display())),
        }
    }

    /// Removes temp directories and snapshots whose chain ID `keep` rejects. Run at open only.
    pub(crate) fn gc(&self, keep: impl Fn(&str) -> bool) -> Result<usize, Error> {
        let mut removed = 0;
        let rd = std::fs::read_dir(&self.dir).map_err(|e| ctx(e, self.dir.display()))?;
        for entry in rd {
            let entry = entry.map_err(|e| ctx(e, self.dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let chain = format!("sha256:{name}");
            if name.starts_with(TEMP_PREFIX) || hex_part(&chain).is_none() || !keep(&chain) {
                let p = entry.path();
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    remove_tree(&p)?;
                } else {
                    crate::fsutil::remove_file(&p)?;
                }
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Directory holding a container's upper/work dirs.
    pub(crate) fn rootfs_path(&self, key: &str) -> Result<PathBuf, Error> {
        check_key(key)?;
        Ok(self.rootfs_dir.join(key))
    }

    /// Creates upper/work (and an empty "merged" mount point for the caller's convenience) and
    /// returns the overlay mount. `chain_ids` are bottom layer first, as in the image config.
    pub(crate) fn prepare_rootfs(
        &self,
        key: &str,
        chain_ids: &[String],
    ) -> Result<Vec<Mount>, Error> {
        let base = self.rootfs_path(key)?;
        let mut lowers = Vec::with_capacity(chain_ids.len().max(1));
        // overlayfs lists the top layer first.
        for c in chain_ids.iter().rev() {
            let p = self.path(c)?;
            if !p.is_dir() {
                return Err(Error::Corrupt(format!("snapshot {c} is missing")));
            }
            lowers.push(path_opt(&p)?);
        }
        let upper = base.join("upper");
        let work = base.join("work");
        let mut dirs = vec![upper.clone(), work.clone(), base.join("merged")];
        if lowers.is_empty() {
            // overlayfs needs at least one lower layer; an image without layers gets an empty one.
            let empty = base.join("empty");
            lowers.push(path_opt(&empty)?);
            dirs.push(empty);
        }
        for d in &dirs {
            std::fs::create_dir_all(d).map_err(|e| ctx(e, d.display()))?;
        }
        Ok(vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", lowers.join(":")),
                format!("upperdir={}", path_opt(&upper)?),
                format!("workdir={}", path_opt(&work)?),
            ],
        }])
    }

    /// Removes a container's rootfs directories; idempotent. Fails (EBUSY) if still mounted.
    pub(crate) fn remove_rootfs(&self, key: &str) -> Result<(), Error> {
        let base = self.rootfs_path(key)?;
        remove_tree(&base)
    }
}

/// A path as an overlay option value. ',' and ':' separate options and layers, and '\' escapes,
/// so paths containing them would be misparsed; our paths never do unless the data root does.
fn path_opt(p: &Path) -> Result<String, Error> {
    let s = p
        .to_str()
        .ok_or_else(|| Error::InvalidArgument(format!("non-UTF-8 path {}", p.display())))?;
    if s.contains([',', ':', '\\']) {
        return Err(Error::InvalidArgument(format!(
            "path unusable in overlay options: {s}"
        )));
    }
    Ok(s.to_string())
}
