//! The vfs driver's copy: a container's rootfs made by applying its image's unpacked layers,
//! bottom first, into one plain directory, as Docker's vfs driver copies each layer's parent.
//! The layers are the overlay-format snapshots (whiteouts are 0/0 character devices, opaque
//! directories carry `trusted.overlay.opaque=y`); the copy has neither: a whiteout removes
//! what lower layers put there, an opaque directory drops their contents.
//!
//! Everything `docker diff` compares is kept: mode, owner, size, times (to the nanosecond),
//! device numbers and extended attributes (file capabilities); hard links within a layer stay
//! links.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Applies `layers` (bottom first) into the existing directory `target`.
pub(crate) fn apply_layers(layers: &[PathBuf], target: &Path) -> io::Result<()> {
    for layer in layers {
        let mut links = HashMap::new();
        apply_dir(layer, target, &mut links)?;
        copy_metadata(&std::fs::symlink_metadata(layer)?, layer, target)?;
    }
    Ok(())
}

/// Applies the entries of layer directory `src` onto `dst`. `links` maps a layer inode to
/// the first path copied from it, so its other names become hard links again.
fn apply_dir(src: &Path, dst: &Path, links: &mut HashMap<u64, PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let meta = std::fs::symlink_metadata(&from)?;
        let kind = meta.file_type();
        if kind.is_char_device() && meta.rdev() == 0 {
            remove_any(&to)?;
            continue;
        }
        let existing = std::fs::symlink_metadata(&to).ok();
        if kind.is_dir() {
            match existing {
                Some(m) if m.is_dir() && !is_opaque(&from) => {}
                Some(_) => {
                    remove_any(&to)?;
                    std::fs::create_dir(&to)?;
                }
                None => std::fs::create_dir(&to)?,
            }
            apply_dir(&from, &to, links)?;
            // After the contents, whose creation would move the directory's times again.
            copy_metadata(&meta, &from, &to)?;
            continue;
        }
        if existing.is_some() {
            remove_any(&to)?;
        }
        if meta.nlink() > 1 {
            if let Some(first) = links.get(&meta.ino()) {
                std::fs::hard_link(first, &to)?;
                continue;
            }
            links.insert(meta.ino(), to.clone());
        }
        if kind.is_file() {
            // std's copy uses copy_file_range: the data never passes through user space.
            std::fs::copy(&from, &to)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else {
            mknod(&to, meta.mode(), meta.rdev())?;
        }
        copy_metadata(&meta, &from, &to)?;
    }
    Ok(())
}

fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

/// Removes whatever `path` is (a tree, a file, nothing).
fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn mknod(path: &Path, mode: u32, rdev: u64) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    if unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives `to` the owner, mode, extended attributes and times of `from` (whose metadata is
/// `meta`), in the order that keeps them: chown clears set-id bits and file capabilities.
fn copy_metadata(meta: &std::fs::Metadata, from: &Path, to: &Path) -> io::Result<()> {
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    let symlink = meta.file_type().is_symlink();
    if !symlink {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    for name in xattr::list(from)? {
        // Overlay's own markers describe the layer, not the file.
        if name.as_bytes().starts_with(b"trusted.overlay.") {
            continue;
        }
        if let Some(value) = xattr::get(from, &name)? {
            xattr::set(to, &name, &value)?;
        }
    }
    let times = [
        libc::timespec {
            tv_sec: meta.atime() as _,
            tv_nsec: meta.atime_nsec() as _,
        },
        libc::timespec {
            tv_sec: meta.mtime() as _,
            tv_nsec: meta.mtime_nsec() as _,
        },
    ];
    let c = cpath(to)?;
    // SAFETY: `c` is NUL-terminated and `times` holds the two timespecs utimensat reads.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(path: &Path) {
        mknod(path, libc::S_IFCHR, 0).unwrap();
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts_opaque_dirs_and_metadata() {
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "this test needs root"
            );
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let (l1, l2, out) = (
            d.path().join("l1"),
            d.path().join("l2"),
            d.path().join("out"),
        );
        for p in [
            l1.join("etc/keep"),
            l1.join("opaque/old"),
            l1.join("gone/sub"),
            l2.join("opaque"),
            out.clone(),
        ] {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(l1.join("etc/file"), "one").unwrap();
        std::fs::hard_link(l1.join("etc/file"), l1.join("etc/link")).unwrap();
        std::fs::write(l1.join("replaced"), "file").unwrap();
        std::fs::set_permissions(l1.join("etc/file"), std::fs::Permissions::from_mode(0o4750))
            .unwrap();
        std::os::unix::fs::lchown(l1.join("etc/file"), Some(7), Some(8)).unwrap();
        xattr::set(l1.join("etc/file"), "user.note", b"x").ok();
        std::os::unix::fs::symlink("/etc/file", l1.join("sym")).unwrap();
        whiteout(&l2.join("gone"));
        xattr::set(l2.join("opaque"), "trusted.overlay.opaque", b"y").unwrap();
        std::fs::write(l2.join("opaque/new"), "new").unwrap();
        std::fs::create_dir(l2.join("replaced")).unwrap();
        apply_layers(&[l1.clone(), l2], &out).unwrap();

        let src = std::fs::symlink_metadata(l1.join("etc/file")).unwrap();
        let got = std::fs::symlink_metadata(out.join("etc/file")).unwrap();
        assert_eq!((got.mode(), got.uid(), got.gid()), (src.mode(), 7, 8));
        assert_eq!(
            (got.mtime(), got.mtime_nsec()),
            (src.mtime(), src.mtime_nsec())
        );
        assert_eq!(
            std::fs::read_to_string(out.join("etc/file")).unwrap(),
            "one"
        );
        assert_eq!(
            std::fs::symlink_metadata(out.join("etc/link"))
                .unwrap()
                .ino(),
            got.ino()
        );
        assert!(out.join("etc/keep").is_dir());
        assert_eq!(
            std::fs::read_link(out.join("sym")).unwrap(),
            Path::new("/etc/file")
        );
        assert!(
            !out.join("gone").exists(),
            "a whiteout removes the lower tree"
        );
        assert!(
            !out.join("opaque/old").exists(),
            "an opaque directory hides lower contents"
        );
        assert!(out.join("opaque/new").is_file());
        assert!(xattr::get(out.join("opaque"), "trusted.overlay.opaque")
            .unwrap()
            .is_none());
        assert!(out.join("replaced").is_dir());
    }
}
