//! Reading a tree a container may be changing, without ever leaving it.
//!
//! A running container can swap any directory of its filesystem for a symlink (`d -> /`)
//! between the moment the daemon looks at a path and the moment it opens it. A walk by path
//! (`read_dir(root/d)`, `File::open(root/d/f)`) would then read the host. So the walkers of
//! `export`, `cp` and `diff` go by descriptors instead: each entry is opened once, relative to
//! its parent's descriptor, with `O_PATH | O_NOFOLLOW`, and everything after (its type, its
//! contents, a directory's listing) comes from that descriptor. A symlink opened this way is
//! the link itself; a name swapped after the open no longer matters.
//!
//! Only a regular file is ever opened for reading, and only after `fstat` on the very inode
//! says it is one: a container (it has `CAP_MKNOD`) could otherwise swap in a device node of
//! a host disk, or one whose open has effects (a watchdog).

use nix::fcntl::{openat, openat2, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode};
use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// One entry of a directory, pinned: an `O_PATH` descriptor of it and its stat from that.
pub struct Node {
    fd: OwnedFd,
    /// The entry's own stat (a symlink's, never its target's).
    pub st: FileStat,
}

/// The file type bits of a stat.
pub fn kind(st: &FileStat) -> u32 {
    st.st_mode & libc::S_IFMT
}

impl Node {
    /// Opens `name` in directory `dir` without following it if it is a symlink. `name` must
    /// be one component (as listed by [`names`]), or "." for `dir` itself.
    pub fn open(dir: &OwnedFd, name: &OsStr) -> io::Result<Node> {
        if name.is_empty() || name == ".." || name.as_encoded_bytes().contains(&b'/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a single path component: {name:?}"),
            ));
        }
        let fd = openat(
            Some(dir.as_raw_fd()),
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let fd = own(fd);
        let st = fstat(fd.as_raw_fd())?;
        Ok(Node { fd, st })
    }

    /// Opens `rel` below directory `root`, failing (`ELOOP`) rather than following a symlink
    /// anywhere on the way, the last component included; `ENOTDIR` when a non-directory is
    /// in the way. For paths whose every component may have been swapped by a container.
    pub fn open_beneath(root: &OwnedFd, rel: &Path) -> io::Result<Node> {
        let rel = rel.strip_prefix("/").unwrap_or(rel);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        let fd = own(openat2(root.as_raw_fd(), rel, how)?);
        let st = fstat(fd.as_raw_fd())?;
        Ok(Node { fd, st })
    }

    /// An extended attribute of the entry (a symlink's own); `None` when it has none.
    pub fn xattr(&self, name: &str) -> Option<Vec<u8>> {
        // getxattr follows only the /proc link, which is the entry itself.
        read_xattr(&self.proc_path(), name, true)
    }

    /// The directory itself, for listing it and opening its entries. Fails unless it is one.
    pub fn open_dir(&self) -> io::Result<OwnedFd> {
        let fd = openat(
            Some(self.fd.as_raw_fd()),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(own(fd))
    }

    /// The regular file for reading. Fails unless it is one.
    pub fn open_file(&self) -> io::Result<File> {
        if kind(&self.st) != libc::S_IFREG {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        // Reopening through the descriptor's /proc link reaches the inode we stat'ed, by
        // whatever name it has now (or none).
        let fd = nix::fcntl::open(
            &self.proc_path(),
            OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(File::from(own(fd)))
    }

    /// The entry's stat as std's `Metadata`, from the descriptor.
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        File::from(self.fd.try_clone()?).metadata()
    }

    /// A symlink's target, as stored.
    pub fn read_link(&self) -> io::Result<OsString> {
        // An empty path reads the link the descriptor is (Linux 2.6.39+).
        Ok(readlinkat(Some(self.fd.as_raw_fd()), "")?)
    }

    /// A path naming this entry itself, for calls that only take paths (xattrs).
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

/// Opens a directory the daemon trusts (a mount point of ours, an upper directory).
pub fn open_trusted_dir(path: &Path) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(own(fd))
}

/// The names in directory `dir`, sorted by bytes, without "." and "..".
pub fn names(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    // The /proc link is the directory we hold, whatever its name has become.
    let mut names = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open and nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_symlink_is_the_link_not_its_target() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("d")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("f")).unwrap();
        let dir = open_trusted_dir(root.path()).unwrap();
        assert_eq!(names(&dir).unwrap(), ["d", "f"]);
        for name in ["d", "f"] {
            let node = Node::open(&dir, OsStr::new(name)).unwrap();
            assert_eq!(kind(&node.st), libc::S_IFLNK);
            assert!(node.open_dir().is_err(), "{name}: a link is no directory");
            assert!(node.open_file().is_err(), "{name}: a link is no file");
        }
        let d = Node::open(&dir, OsStr::new("d")).unwrap();
        assert_eq!(d.read_link().unwrap(), outside.path().as_os_str());
    }

    #[test]
    fn an_opened_entry_stays_itself_when_its_name_is_swapped() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        std::fs::write(root.path().join("d/inner"), "mine").unwrap();
        std::fs::write(root.path().join("f"), "file").unwrap();
        let dir = open_trusted_dir(root.path()).unwrap();
        let d = Node::open(&dir, OsStr::new("d")).unwrap();
        let f = Node::open(&dir, OsStr::new("f")).unwrap();
        // The container swaps both names for links to the host between open and read.
        std::fs::rename(root.path().join("d"), root.path().join("d.x")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("d")).unwrap();
        std::fs::remove_file(root.path().join("f")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("f")).unwrap();
        let listed = names(&d.open_dir().unwrap()).unwrap();
        assert_eq!(listed, ["inner"]);
        let mut text = String::new();
        f.open_file().unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "file");
    }

    #[test]
    fn a_path_beneath_never_passes_a_symlink() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("x")).unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("real/x")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("a")).unwrap();
        let dir = open_trusted_dir(root.path()).unwrap();
        let err = |p: &str| Node::open_beneath(&dir, Path::new(p)).err().unwrap();
        assert_eq!(err("/a/x").raw_os_error(), Some(libc::ELOOP));
        assert_eq!(err("../x").raw_os_error(), Some(libc::EXDEV));
        assert_eq!(err("/real/missing").kind(), io::ErrorKind::NotFound);
        let x = Node::open_beneath(&dir, Path::new("/real/x")).unwrap();
        assert_eq!(kind(&x.st), libc::S_IFDIR);
        // The last component is the link itself, never its target.
        let a = Node::open_beneath(&dir, Path::new("a")).unwrap();
        assert_eq!(kind(&a.st), libc::S_IFLNK);
        let top = Node::open_beneath(&dir, Path::new("/")).unwrap();
        assert_eq!(kind(&top.st), libc::S_IFDIR);
    }

    #[test]
    fn only_single_components_are_opened() {
        let root = tempfile::tempdir().unwrap();
        let dir = open_trusted_dir(root.path()).unwrap();
        for bad in ["", "..", "a/b", "/etc"] {
            assert!(Node::open(&dir, OsStr::new(bad)).is_err(), "{bad:?}");
        }
    }
}

/// An extended attribute of `path`: of what it leads to when `follow`, else of `path` itself
/// (a symlink's own). `None` when absent.
pub fn read_xattr(path: &Path, name: &str, follow: bool) -> Option<Vec<u8>> {
    let path = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let name = CString::new(name).ok()?;
    let get = if follow { libc::getxattr } else { libc::lgetxattr };
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and outlive the call; `buf` is writable for
    // the length we pass.
    let n = unsafe { get(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}
