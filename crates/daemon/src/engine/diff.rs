//! `docker diff`: what a container changed in its writable layer, as Docker 20.10 reports it.
//!
//! Docker compares the image's tree with the container's tree (its "naive" diff): a path is
//! added (A) when the image lacks it, changed (C) when its stat differs, deleted (D) when the
//! container removed it; a directory holding any change is reported changed too, before its
//! contents. We only walk the overlay upper directory (everything else is unchanged) and look
//! each path up in the image's layers. Whiteouts (0/0 character devices) are deletions; an
//! opaque directory (`trusted.overlay.opaque=y`) hides every image entry the upper lacks.
//! A vfs container has no upper directory, only its whole tree: we walk it beside the image's
//! merged layers, as Docker's naive diff walks the container's and the image's trees.

use super::{blocking, Engine, Result};
use berth_api::models::{ChangeType, FilesystemChange};
use berth_store::RootfsTree;
use std::collections::BTreeSet;
use super::nofollow::{self, Node};
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Paths Docker keeps in a container's init layer, below the writable layer: mount points and
/// bind targets the runtime creates. Docker never reports them; we skip them (and their
/// contents) wherever the runtime created them in the upper directory.
const INIT_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev",
    "/proc",
    "/sys",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/resolv.conf",
    "/etc/mtab",
];

/// Directories the init layer holds because an init path lives in them: they count as
/// present in the image even when the image lacks them.
const INIT_PARENTS: &[&str] = &["/etc"];

impl Engine {
    /// The changes in a container's writable layer against its image.
    pub async fn container_changes(&self, name: &str) -> Result<Vec<FilesystemChange>> {
        let c = self.container(name)?;
        let rec = c.snapshot();
        let store = self.store.clone();
        blocking(move || {
            let image = store.container_image(&rec.image_id)?;
            match store.rootfs_tree(&rec.id, &image)? {
                RootfsTree::Changes { upper, lowers } => layer_changes(&upper, &lowers),
                RootfsTree::Full { root, lowers } => tree_changes(&root, &lowers),
            }
            .map_err(Into::into)
        })
        .await
    }
}

/// The changes `upper` makes over `lowers` (top layer first), parents before their contents,
/// names in byte order within a directory. A missing `upper` (never started) changes nothing.
pub fn layer_changes(upper: &Path, lowers: &[PathBuf]) -> io::Result<Vec<FilesystemChange>> {
    let dir = match nofollow::open_trusted_dir(upper) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        dir => dir?,
    };
    let mut walker = Walker {
        lowers,
        out: Vec::new(),
    };
    walker.walk_dir(Path::new("/"), &dir)?;
    Ok(walker.out)
}

/// Walks the upper directory by descriptors (`nofollow`): a running container may swap any of
/// its directories for a symlink to the host meanwhile, and must not get host names listed.
/// Each entry is looked at through its directory's descriptor (`pinned`).
struct Walker<'a> {
    lowers: &'a [PathBuf],
    out: Vec<FilesystemChange>,
}

impl Walker<'_> {
    fn push(&mut self, path: &Path, kind: ChangeType) {
        self.out.push(FilesystemChange {
            path: path.to_string_lossy().into_owned(),
            kind,
        });
    }

    /// Reports the entries of upper directory `rel` (an absolute path inside the container),
    /// open as `dir`.
    fn walk_dir(&mut self, rel: &Path, dir: &OwnedFd) -> io::Result<()> {
        let in_upper = nofollow::names(dir)?;
        for name in &in_upper {
            let path = rel.join(name);
            let path_str = path.to_string_lossy();
            if INIT_PATHS.contains(&path_str.as_ref()) {
                continue;
            }
            let here = pinned(dir, name);
            let node = match Node::open(dir, name) {
                // Removed since the listing (a running container).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                node => node?,
            };
            let meta = node.metadata()?;
            let child = if meta.is_dir() {
                Some(node.open_dir()?)
            } else {
                None
            };
            if is_whiteout(&meta) {
                self.push(&path, ChangeType::_2);
                continue;
            }
            let start = self.out.len();
            let old = lower_entry(self.lowers, &path);
            let mut reported = false;
            match &old {
                None if meta.is_dir() && INIT_PARENTS.contains(&path_str.as_ref()) => {}
                None => {
                    self.push(&path, ChangeType::_1);
                    reported = true;
                }
                Some(old) => {
                    if stat_differs(old, &meta) || self.capability_differs(&here, &path) {
                        self.push(&path, ChangeType::_0);
                        reported = true;
                    }
                }
            }
            if let Some(child) = &child {
                self.walk_dir(&path, child)?;
            }
            // Image entries the new tree no longer shows: the old contents of a directory
            // made opaque (removed and made again), or of one a file replaced.
            let old_is_dir = old.as_ref().is_some_and(|m| m.is_dir());
            if old_is_dir && (child.is_none() || is_opaque(&here)) {
                let kept: BTreeSet<OsString> = match &child {
                    Some(child) => nofollow::names(child)?.into_iter().collect(),
                    None => BTreeSet::new(),
                };
                for gone in lower_children(self.lowers, &path).difference(&kept) {
                    self.push(&path.join(gone), ChangeType::_2);
                }
            }
            if !reported && meta.is_dir() && self.out.len() > start {
                let change = FilesystemChange {
                    path: path_str.into_owned(),
                    kind: ChangeType::_0,
                };
                self.out.insert(start, change);
            }
        }
        Ok(())
    }

    /// Docker compares the file capability xattr as well as the stat (`here`: the entry in
    /// the upper directory, `path`: its path in the container).
    fn capability_differs(&self, here: &Path, path: &Path) -> bool {
        let new = xattr(here, "security.capability");
        let old = self.lowers.iter().find_map(|l| in_layer(l, path).ok());
        new != old.and_then(|n| n.xattr("security.capability"))
    }
}

/// The changes of the whole container tree `root` (vfs) against the image's `lowers` (top
/// layer first), in the order [`layer_changes`] gives. As Docker's naive diff: a directory
/// that replaced a file, or is new, lists its contents as added; a file that replaced a
/// directory is one change, without the directory's old contents.
pub fn tree_changes(root: &Path, lowers: &[PathBuf]) -> io::Result<Vec<FilesystemChange>> {
    let mut out = Vec::new();
    let dir = nofollow::open_trusted_dir(root)?;
    walk_tree(&dir, lowers, Path::new("/"), true, &mut out)?;
    Ok(out)
}

/// Compares directory `rel` of the container, open as `dir` (walked by descriptors as the
/// upper directory is), with the image's (`in_image`: whether the image has a directory there).
fn walk_tree(dir: &OwnedFd, lowers: &[PathBuf], rel: &Path, in_image: bool, out: &mut Vec<FilesystemChange>) -> io::Result<()> {
    let mut old = if in_image { lower_children(lowers, rel) } else { BTreeSet::new() };
    let new: BTreeSet<OsString> = nofollow::names(dir)?.into_iter().collect();
    let names: BTreeSet<OsString> = new.union(&old).cloned().collect();
    let push = |out: &mut Vec<FilesystemChange>, path: &Path, kind| {
        out.push(FilesystemChange { path: path.to_string_lossy().into_owned(), kind })
    };
    for name in names {
        let path = rel.join(&name);
        let path_str = path.to_string_lossy();
        if INIT_PATHS.contains(&path_str.as_ref()) {
            continue;
        }
        if !new.contains(&name) {
            push(out, &path, ChangeType::_2);
            continue;
        }
        let here = pinned(dir, &name);
        let node = match Node::open(dir, &name) {
            // Removed since the listing (a running container).
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            node => node?,
        };
        let meta = node.metadata()?;
        let old_meta = if old.remove(&name) { lower_entry(lowers, &path) } else { None };
        let start = out.len();
        let reported = match &old_meta {
            None if meta.is_dir() && INIT_PARENTS.contains(&path_str.as_ref()) => false,
            None => {
                push(out, &path, ChangeType::_1);
                true
            }
            Some(o) => {
                let caps = |p: &Path| xattr(p, "security.capability");
                let upper_layer = lowers.iter().find_map(|l| in_layer(l, &path).ok());
                if stat_differs(o, &meta) || caps(&here) != upper_layer.and_then(|n| n.xattr("security.capability")) {
                    push(out, &path, ChangeType::_0);
                    true
                } else {
                    false
                }
            }
        };
        if meta.is_dir() {
            let was_dir = old_meta.as_ref().is_some_and(|m| m.is_dir());
            let child = node.open_dir()?;
            walk_tree(&child, lowers, &path, was_dir, out)?;
            if !reported && out.len() > start {
                let change = FilesystemChange { path: path_str.into_owned(), kind: ChangeType::_0 };
                out.insert(start, change);
            }
        }
    }
    Ok(())
}

/// Entry `path` (absolute in the container) of one image layer, resolved without following
/// any symlink: an image's `a -> /etc` must not make the host's /etc part of the image.
fn in_layer(layer: &Path, path: &Path) -> io::Result<Node> {
    Node::open_beneath(&nofollow::open_trusted_dir(layer)?, path)
}

/// Entry `name` of directory `dir` as a path that reaches it through the descriptor: the
/// directory cannot be swapped under it, and path calls that do not follow a final symlink
/// (`symlink_metadata`, `lgetxattr`) see the entry itself.
fn pinned(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

/// An overlay whiteout: a character device with device number 0/0.
fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    xattr(dir, "trusted.overlay.opaque").as_deref() == Some(b"y")
}

/// The image's entry at `path`: the topmost layer holding it, unless that layer whites it out
/// or has a symlink or file on the way to it (which hides the layers below, as in overlayfs).
fn lower_entry(lowers: &[PathBuf], path: &Path) -> Option<Metadata> {
    for layer in lowers {
        match in_layer(layer, path) {
            Ok(node) => {
                let meta = node.metadata().ok()?;
                return (!is_whiteout(&meta)).then_some(meta);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => return None,
        }
    }
    None
}

/// The names the image shows in directory `path`, merged across layers as overlayfs does.
fn lower_children(lowers: &[PathBuf], path: &Path) -> BTreeSet<OsString> {
    let (mut shown, mut hidden) = (BTreeSet::new(), BTreeSet::new());
    for layer in lowers {
        let node = match in_layer(layer, path) {
            Ok(node) => node,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => break,
        };
        let Ok(dir) = node.open_dir() else { break };
        for name in nofollow::names(&dir).unwrap_or_default() {
            if hidden.contains(&name) {
                continue;
            }
            if !std::fs::symlink_metadata(pinned(&dir, &name)).is_ok_and(|m| is_whiteout(&m)) {
                shown.insert(name.clone());
            }
            hidden.insert(name);
        }
        if node.xattr("trusted.overlay.opaque").as_deref() == Some(b"y") {
            break;
        }
    }
    shown
}

/// Docker's `statDifferent`: mode, owner and device always; size and mtime for non-directories
/// only (a directory's are no measure of change).
fn stat_differs(old: &Metadata, new: &Metadata) -> bool {
    old.mode() != new.mode()
        || old.uid() != new.uid()
        || old.gid() != new.gid()
        || old.rdev() != new.rdev()
        || (!new.is_dir()
            && (old.size() != new.size()
                || old.mtime() != new.mtime()
                || old.mtime_nsec() != new.mtime_nsec()))
}

/// An extended attribute of `path` itself (not a symlink's target); `None` when absent.
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    super::nofollow::read_xattr(path, name, false)
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
