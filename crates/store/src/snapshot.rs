//! The snapshotter: one read-only directory per layer chain ID under <root>/snapshots/<hex>,
//! shared by both storage drivers, and a directory per container under
//! <root>/containers-rootfs/<key> holding its writable layer as the driver keeps it:
//! - `overlay2`: `upper`, `work` and an empty `merged` mount point; the rootfs is an overlay
//!   of `upper` on the layer snapshots;
//! - `vfs`: `vfs`, a full copy of the image's layers (see vfs.rs), bind-mounted as the rootfs.
//!
//! It returns mounts as data; only [`Mount::mount_on`] mounts, for the daemon's own views.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::hex_part;
use crate::error::{ctx, Error};
use crate::fsutil::{fsync_dir, remove_tree, temp_name, TEMP_PREFIX};

/// One mount, as the runtime should perform it (`mount -t <kind> -o <options> <source> <target>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Filesystem type: "overlay", or "bind" (vfs).
    pub kind: String,
    /// Mount source ("overlay" for overlayfs, which has no device; the directory for a bind).
    pub source: String,
    /// Mount options, e.g. "lowerdir=…", "upperdir=…", "workdir=…", or "rbind", "ro".
    pub options: Vec<String>,
}

impl Mount {
    /// Mounts this on `target`, for the daemon's own short-lived views of a container's files
    /// (`cp` on a stopped container, `export`). `read_only` also makes it nodev and nosuid.
    pub fn mount_on(&self, target: &Path, read_only: bool) -> Result<(), Error> {
        use nix::mount::{mount, MsFlags};
        let mut flags = MsFlags::empty();
        let mut data = Vec::new();
        for o in &self.options {
            match o.as_str() {
                "ro" => flags |= MsFlags::MS_RDONLY,
                "bind" => flags |= MsFlags::MS_BIND,
                "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
                other => data.push(other),
            }
        }
        if read_only {
            flags |= MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID;
        }
        let fail = |e: nix::Error| {
            Error::Io(std::io::Error::other(format!(
                "mount {} on {}: {e}",
                self.kind,
                target.display()
            )))
        };
        if self.kind == "bind" {
            flags |= MsFlags::MS_BIND;
            // The kernel ignores every flag but MS_REC on the first bind: the rest needs a remount.
            mount(
                Some(self.source.as_str()),
                target,
                None::<&str>,
                flags & (MsFlags::MS_BIND | MsFlags::MS_REC),
                None::<&str>,
            )
            .map_err(fail)?;
            let rest = flags & (MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID);
            if !rest.is_empty() {
                let re = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | rest;
                if let Err(e) = mount(None::<&str>, target, None::<&str>, re, None::<&str>) {
                    let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
                    return Err(fail(e));
                }
            }
            return Ok(());
        }
        let data = data.join(",");
        mount(
            Some(self.source.as_str()),
            target,
            Some(self.kind.as_str()),
            flags,
            Some(data.as_str()),
        )
        .map_err(fail)
    }
}

/// How containers' writable layers are kept: Docker's `--storage-driver`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// An overlay of the container's upper directory on the shared layer snapshots.
    Overlay2,
    /// A full copy of the image per container, bind-mounted: slow to create, works anywhere.
    Vfs,
}

impl Driver {
    /// The name Docker shows (`docker info`'s `Storage Driver`, `GraphDriver.Name`).
    pub fn name(self) -> &'static str {
        match self {
            Driver::Overlay2 => "overlay2",
            Driver::Vfs => "vfs",
        }
    }

    /// Parses `--storage-driver`; `None` for a driver berth does not have.
    pub fn from_name(name: &str) -> Option<Driver> {
        match name {
            "overlay2" => Some(Driver::Overlay2),
            "vfs" => Some(Driver::Vfs),
            _ => None,
        }
    }

    /// The driver that made a container's directory, from what it holds.
    fn of_rootfs(dir: &Path) -> Option<Driver> {
        if dir.join(VFS_DIR).is_dir() {
            Some(Driver::Vfs)
        } else if dir.join("upper").is_dir() {
            Some(Driver::Overlay2)
        } else {
            None
        }
    }
}

/// A container's filesystem as files, for the walkers that compare it with its image.
#[derive(Clone, Debug)]
pub enum RootfsTree {
    /// Only what the container changed: overlay's upper directory (whiteouts and opaque
    /// directories included), over the image's layer directories, top first.
    Changes {
        upper: PathBuf,
        lowers: Vec<PathBuf>,
    },
    /// The container's whole tree (vfs), beside the image's layer directories, top first.
    Full { root: PathBuf, lowers: Vec<PathBuf> },
}

/// The vfs copy inside a container's directory.
const VFS_DIR: &str = "vfs";

/// Snapshot directories.
#[derive(Debug)]
pub(crate) struct Snapshots {
    dir: PathBuf,
    rootfs_dir: PathBuf,
    driver: Driver,
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
    /// Opens the snapshot directories with the driver asked for, or (`None`) the one the
    /// existing containers use, else overlay2 when an overlay mounts here, else vfs.
    pub(crate) fn open(root: &Path, requested: Option<Driver>) -> Result<Snapshots, Error> {
        let dir = root.join("snapshots");
        let rootfs_dir = root.join("containers-rootfs");
        for d in [&dir, &rootfs_dir] {
            std::fs::create_dir_all(d).map_err(|e| ctx(e, d.display()))?;
            // Layers and root filesystems hold images' set-uid programs and device nodes:
            // no host user may reach them (dockerd's CVE-2021-41091). The daemon and the
            // kernel's overlay lookups (with the mounter's credentials) are root.
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| ctx(e, d.display()))?;
        }
        let prior = prior_driver(&rootfs_dir)?;
        let driver = match (requested, prior) {
            (Some(want), Some(had)) if want != had => {
                // Containers keep their writable layer in their driver's format; opening them
                // with the other driver would start them on a fresh copy of their image.
                return Err(Error::Conflict(format!(
                    "error initializing graphdriver: {} holds containers of the {} storage driver; \
                     start with --storage-driver {} (or remove those containers first)",
                    root.display(),
                    had.name(),
                    had.name()
                )));
            }
            (Some(want), _) => {
                if want == Driver::Overlay2 {
                    overlay_works(root).map_err(|e| {
                        Error::Conflict(format!(
                            "error initializing graphdriver: driver not supported: overlay2 ({e})"
                        ))
                    })?;
                }
                want
            }
            (None, Some(had)) => {
                tracing::info!("using prior storage driver: {}", had.name());
                had
            }
            (None, None) => match overlay_works(root) {
                Ok(()) => Driver::Overlay2,
                Err(e) => {
                    tracing::warn!("overlay2 is not supported here ({e}): falling back to the vfs storage driver");
                    Driver::Vfs
                }
            },
        };
        Ok(Snapshots {
            dir,
            rootfs_dir,
            driver,
        })
    }

    pub(crate) fn driver(&self) -> Driver {
        self.driver
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

    /// Makes the container's writable layer if it does not exist yet and returns the mounts
    /// of its rootfs. `chain_ids` are bottom layer first, as in the image config.
    pub(crate) fn prepare_rootfs(
        &self,
        key: &str,
        chain_ids: &[String],
    ) -> Result<Vec<Mount>, Error> {
        match self.driver {
            Driver::Overlay2 => self.prepare_overlay(key, chain_ids),
            Driver::Vfs => Ok(vec![bind_mount(&self.prepare_vfs(key, chain_ids)?, false)?]),
        }
    }

    /// The rootfs as a read-only mount (for `export`): overlay's upper becomes one more lower
    /// layer, so nothing can be written through it.
    pub(crate) fn readonly_rootfs(
        &self,
        key: &str,
        chain_ids: &[String],
    ) -> Result<Vec<Mount>, Error> {
        let mounts = self.prepare_rootfs(key, chain_ids)?;
        if self.driver == Driver::Vfs {
            return Ok(vec![bind_mount(
                &self.rootfs_path(key)?.join(VFS_DIR),
                true,
            )?]);
        }
        let option = |k: &str| {
            mounts
                .iter()
                .flat_map(|m| &m.options)
                .find_map(|o| o.strip_prefix(k))
                .map(String::from)
        };
        let (Some(upper), Some(lowers)) = (option("upperdir="), option("lowerdir=")) else {
            return Err(Error::Corrupt(format!("rootfs of {key} is not an overlay")));
        };
        Ok(vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![format!("lowerdir={upper}:{lowers}")],
        }])
    }

    /// The container's files and its image's layers, for comparing the two.
    pub(crate) fn rootfs_tree(&self, key: &str, chain_ids: &[String]) -> Result<RootfsTree, Error> {
        let base = self.rootfs_path(key)?;
        let lowers = chain_ids
            .iter()
            .rev()
            .map(|c| self.path(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(match self.driver {
            Driver::Overlay2 => RootfsTree::Changes {
                upper: base.join("upper"),
                lowers,
            },
            Driver::Vfs => RootfsTree::Full {
                root: base.join(VFS_DIR),
                lowers,
            },
        })
    }

    /// The vfs copy of the image for container `key`, made on first use. It is built under a
    /// temp name and renamed into place, so a crash never leaves a half copy in use.
    fn prepare_vfs(&self, key: &str, chain_ids: &[String]) -> Result<PathBuf, Error> {
        let base = self.rootfs_path(key)?;
        let done = base.join(VFS_DIR);
        if done.is_dir() {
            return Ok(done);
        }
        std::fs::create_dir_all(&base).map_err(|e| ctx(e, base.display()))?;
        // What an interrupted copy left.
        for entry in std::fs::read_dir(&base)
            .map_err(|e| ctx(e, base.display()))?
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                remove_tree(&entry.path())?;
            }
        }
        let mut layers = Vec::with_capacity(chain_ids.len());
        for c in chain_ids {
            let p = self.path(c)?;
            if !p.is_dir() {
                return Err(Error::Corrupt(format!("snapshot {c} is missing")));
            }
            layers.push(p);
        }
        // Dropped (and so removed) unless the rename publishes it.
        let mut tmp = TempSnapshot {
            path: Some(base.join(temp_name("vfs"))),
        };
        std::fs::create_dir(tmp.path()).map_err(|e| ctx(e, tmp.path().display()))?;
        crate::vfs::apply_layers(&layers, tmp.path())
            .map_err(|e| ctx(e, format!("copying the image for {key}")))?;
        std::fs::rename(tmp.path(), &done).map_err(|e| ctx(e, done.display()))?;
        tmp.path = None;
        Ok(done)
    }

    /// Creates upper/work (and an empty "merged" mount point for the caller's convenience) and
    /// returns the overlay mount.
    fn prepare_overlay(&self, key: &str, chain_ids: &[String]) -> Result<Vec<Mount>, Error> {
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

/// The bind mount of a vfs rootfs.
fn bind_mount(dir: &Path, read_only: bool) -> Result<Mount, Error> {
    let mut options = vec!["rbind".to_string()];
    if read_only {
        options.push("ro".into());
    }
    Ok(Mount {
        kind: "bind".into(),
        source: path_str(dir)?,
        options,
    })
}

fn path_str(p: &Path) -> Result<String, Error> {
    p.to_str()
        .map(String::from)
        .ok_or_else(|| Error::InvalidArgument(format!("non-UTF-8 path {}", p.display())))
}

/// The driver of the containers already in `rootfs_dir`, if any; both at once is corruption.
fn prior_driver(rootfs_dir: &Path) -> Result<Option<Driver>, Error> {
    let mut found = None;
    for entry in std::fs::read_dir(rootfs_dir)
        .map_err(|e| ctx(e, rootfs_dir.display()))?
        .flatten()
    {
        match (found, Driver::of_rootfs(&entry.path())) {
            (_, None) => {}
            (None, d) => found = d,
            (Some(a), Some(b)) if a != b => {
                return Err(Error::Corrupt(format!(
                    "{} holds containers of both the overlay2 and the vfs storage drivers",
                    rootfs_dir.display()
                )))
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Mounts a throwaway overlay under `root` (the kernel may lack overlayfs, or refuse it on
/// the filesystem holding the data root, e.g. an overlay itself) and removes it again.
fn overlay_works(root: &Path) -> Result<(), String> {
    let dir = root.join(temp_name("overlay-check"));
    let result = (|| {
        let [lower, upper, work, merged] =
            ["lower", "upper", "work", "merged"].map(|d| dir.join(d));
        for d in [&lower, &upper, &work, &merged] {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            path_opt(&lower).map_err(|e| e.to_string())?,
            path_opt(&upper).map_err(|e| e.to_string())?,
            path_opt(&work).map_err(|e| e.to_string())?
        );
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(options.as_str()),
        )
        .map_err(|e| format!("mount overlay: {e}"))?;
        let _ = nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH);
        Ok(())
    })();
    let _ = remove_tree(&dir);
    result
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

#[cfg(test)]
mod driver_tests {
    use super::*;

    fn root_only() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "this test needs root"
        );
        false
    }

    /// A committed one-file layer; returns its chain ID.
    fn layer(s: &Snapshots) -> String {
        let chain = format!("sha256:{}", "a".repeat(64));
        let tmp = s.temp().unwrap();
        std::fs::write(tmp.path().join("file"), "layer").unwrap();
        s.commit(tmp, &chain).unwrap();
        chain
    }

    #[test]
    fn vfs_copies_once_binds_and_keeps_its_data_root() {
        if !root_only() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let s = Snapshots::open(d.path(), Some(Driver::Vfs)).unwrap();
        let chain = layer(&s);
        let mounts = s.prepare_rootfs("c1", &[chain.clone()]).unwrap();
        let copy = d.path().join("containers-rootfs/c1/vfs");
        assert_eq!(
            mounts,
            [Mount {
                kind: "bind".into(),
                source: copy.display().to_string(),
                options: vec!["rbind".into()]
            }]
        );
        std::fs::write(copy.join("file"), "changed").unwrap();
        s.prepare_rootfs("c1", &[chain.clone()]).unwrap();
        assert_eq!(
            std::fs::read_to_string(copy.join("file")).unwrap(),
            "changed",
            "made once"
        );
        assert_eq!(
            s.readonly_rootfs("c1", &[chain.clone()]).unwrap()[0].options,
            ["rbind", "ro"]
        );
        assert!(
            matches!(s.rootfs_tree("c1", &[chain]).unwrap(), RootfsTree::Full { root, lowers } if root == copy && lowers.len() == 1)
        );

        let e = Snapshots::open(d.path(), Some(Driver::Overlay2))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds containers of the vfs storage driver"),
            "{e}"
        );
        assert_eq!(
            Snapshots::open(d.path(), None).unwrap().driver(),
            Driver::Vfs,
            "the prior driver"
        );
        s.remove_rootfs("c1").unwrap();
        assert!(!d.path().join("containers-rootfs/c1").exists());
        assert_eq!(
            Snapshots::open(d.path(), Some(Driver::Overlay2))
                .unwrap()
                .driver(),
            Driver::Overlay2
        );
    }

    #[test]
    fn overlay2_is_the_default_where_overlays_mount() {
        if !root_only() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let s = Snapshots::open(d.path(), None).unwrap();
        assert_eq!(s.driver(), Driver::Overlay2);
        let chain = layer(&s);
        let m = s.readonly_rootfs("c1", &[chain.clone()]).unwrap();
        let upper = d.path().join("containers-rootfs/c1/upper");
        let lower = s.path(&chain).unwrap();
        assert_eq!(
            m[0].options,
            [format!("lowerdir={}:{}", upper.display(), lower.display())]
        );
        let names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "the overlay check cleans up: {names:?}");
    }
}
