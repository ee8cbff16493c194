//! `docker export`: a tar of a container's whole filesystem, image layers and writable layer
//! merged, without the contents of its volumes and other mounts.
//!
//! We never read the running container's own rootfs mount (a stop would unmount it under us,
//! and it may carry mounts of the container). Instead we mount a private read-only view: for
//! overlay2 an overlay whose lower layers are the container's upper directory on top of the
//! image layers (the kernel merges them, whiteouts and opaque directories included); for vfs a
//! read-only bind of its copy. Nothing can be written through either.
//! The mount lives as long as the tar stream and is always removed.
//!
//! Docker's export also holds the container's init layer, which berth does not keep on disk:
//! the entries it would add are written in their places (`INIT_LAYER`).

use super::archive::append_entry;
use super::chunks::ChunkWriter;
use super::nofollow::{self, Node};
use super::{blocking, Engine, Error, Result};
use bytes::Bytes;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, FileStat};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Chunks of tar as they are produced; an `Err` ends the stream early.
pub type TarChunks = mpsc::Receiver<io::Result<Bytes>>;

/// How much tar we gather before handing it to the HTTP body.
const CHUNK: usize = 64 * 1024;

impl Engine {
    /// Starts streaming the container's filesystem as a tar. Errors finding or mounting the
    /// filesystem come back here, before any byte is sent.
    pub async fn export(&self, name: &str) -> Result<TarChunks> {
        let rec = self.container(name)?.snapshot();
        let init = InitLayer {
            mtime: chrono::DateTime::parse_from_rfc3339(&rec.created)
                .map(|t| t.timestamp().max(0) as u64)
                .unwrap_or(0),
        };
        let (store, exports) = (self.store.clone(), self.paths.exec_root.join("exports"));
        let mount = blocking(move || {
            let image = store.container_image(&rec.image_id)?;
            // Creates the writable layer of a never-started container; `rm` removes it.
            let mounts = store.readonly_rootfs(&rec.id, &image)?;
            ReadOnlyMount::new(&exports, &rec.id, &mounts)
        })
        .await?;
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter::new(tx, CHUNK);
            let result = write_tar(&mount.path, &mut out, &init);
            drop(mount);
            if let Err(e) = result {
                // The client may be gone already; then nobody needs to hear about it.
                if e.kind() != io::ErrorKind::BrokenPipe {
                    tracing::warn!("export: {e}");
                    out.fail(e);
                }
            }
        });
        Ok(rx)
    }
}

/// A read-only overlay mounted under `exports/`; unmounted and removed on drop.
struct ReadOnlyMount {
    path: PathBuf,
}

impl ReadOnlyMount {
    fn new(exports: &Path, id: &str, mounts: &[berth_store::Mount]) -> Result<ReadOnlyMount> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        remove_stale(exports);
        let pid = std::process::id();
        let path = exports.join(format!(
            "{pid}-{}-{id}",
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path)?;
        for m in mounts {
            if let Err(e) = m.mount_on(&path, true) {
                drop(ReadOnlyMount { path });
                return Err(Error::Internal(format!(
                    "mount the container's filesystem: {e}"
                )));
            }
        }
        Ok(ReadOnlyMount { path })
    }
}

/// Mounts an earlier berthd left when it died mid-export (ours carry our pid): nobody reads
/// them any more.
fn remove_stale(exports: &Path) {
    let ours = format!("{}-", std::process::id());
    for entry in std::fs::read_dir(exports).into_iter().flatten().flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&ours) {
            drop(ReadOnlyMount { path: entry.path() });
        }
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        // Detach: a reader that still holds a file must not keep the mount alive.
        match nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH) {
            // EINVAL: not mounted (a stale directory whose mount is already gone).
            Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => tracing::warn!("unmount {}: {e}", self.path.display()),
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// What Docker's init layer (moby's `initlayer.Setup`) puts below a container's writable
/// layer where the image lacks it: mount points and bind targets, files mode 0755.
const INIT_LAYER: &[(&str, InitKind)] = &[
    (".dockerenv", InitKind::File),
    ("dev/console", InitKind::File),
    ("dev/pts", InitKind::Dir),
    ("dev/shm", InitKind::Dir),
    ("etc/hostname", InitKind::File),
    ("etc/hosts", InitKind::File),
    ("etc/mtab", InitKind::Symlink("/proc/mounts")),
    ("etc/resolv.conf", InitKind::File),
    ("proc", InitKind::Dir),
    ("sys", InitKind::Dir),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum InitKind {
    File,
    Dir,
    Symlink(&'static str),
}

/// The init layer as one container has it: made when the container was.
#[derive(Clone, Copy, Debug)]
pub struct InitLayer {
    /// Unix seconds of the container's creation (its entries', and their parents' mtime).
    pub mtime: u64,
}

impl InitLayer {
    /// The init-layer names directly in directory `rel` ("" for the root): entries and the
    /// directories leading to them.
    fn children(rel: &Path) -> Vec<(std::ffi::OsString, InitKind)> {
        let mut out: Vec<(std::ffi::OsString, InitKind)> = Vec::new();
        for (path, kind) in INIT_LAYER {
            let Ok(rest) = Path::new(path).strip_prefix(rel) else {
                continue;
            };
            let mut comps = rest.components();
            let Some(first) = comps.next() else { continue };
            let kind = if comps.next().is_some() {
                InitKind::Dir
            } else {
                *kind
            };
            let name = first.as_os_str().to_os_string();
            if !out.iter().any(|(n, _)| *n == name) {
                out.push((name, kind));
            }
        }
        out
    }

    fn header(&self, kind: InitKind) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(match kind {
            InitKind::File => tar::EntryType::Regular,
            InitKind::Dir => tar::EntryType::Directory,
            InitKind::Symlink(_) => tar::EntryType::Symlink,
        });
        h.set_mode(if matches!(kind, InitKind::Symlink(_)) {
            0o777
        } else {
            0o755
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(self.mtime);
        super::archive::name_owners(&mut h);
        h
    }
}

/// Writes the tree under `root` as a tar, as Docker's archive package does: names relative
/// to the root without a leading "./", directories before their contents, names sorted,
/// hard links as link entries, sockets left out; with `init`'s entries where the tree lacks
/// them. The walk goes by descriptors (`nofollow`): a running container swapping a directory
/// for a symlink mid-walk gets the symlink archived, never followed.
pub fn write_tar(root: &Path, out: &mut impl Write, init: &InitLayer) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut links = HashMap::new();
    let dir = nofollow::open_trusted_dir(root)?;
    append_dir_contents(&mut tar, Some(&dir), Path::new(""), &mut links, init)?;
    tar.into_inner()?.flush()
}

/// One name in a directory: on disk, or only in the init layer.
enum Entry {
    Disk(std::ffi::OsString),
    Init(std::ffi::OsString, InitKind),
}

/// Appends the entries of directory `rel`, open as `dir` (None: only the init layer has it).
fn append_dir_contents<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: Option<&OwnedFd>,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    init: &InitLayer,
) -> io::Result<()> {
    let mut names = match dir {
        Some(dir) => nofollow::names(dir)?.into_iter().map(Entry::Disk).collect(),
        None => Vec::new(),
    };
    for (name, kind) in InitLayer::children(rel) {
        if !names
            .iter()
            .any(|n| matches!(n, Entry::Disk(d) if *d == name))
        {
            names.push(Entry::Init(name, kind));
        }
    }
    let name_of = |e: &Entry| match e {
        Entry::Disk(n) | Entry::Init(n, _) => n.clone(),
    };
    names.sort_by_key(name_of);
    for entry in names {
        let (name, init_kind) = match entry {
            Entry::Disk(n) => (n, None),
            Entry::Init(n, k) => (n, Some(k)),
        };
        let rel = rel.join(&name);
        let tar_name = rel.as_os_str().as_bytes();
        if let Some(kind) = init_kind {
            let header = init.header(kind);
            match kind {
                InitKind::Dir => {
                    append_entry(tar, header, &[tar_name, b"/"].concat(), None, io::empty())?;
                    append_dir_contents(tar, None, &rel, links, init)?;
                }
                InitKind::Symlink(target) => {
                    append_entry(tar, header, tar_name, Some(target.as_bytes()), io::empty())?
                }
                InitKind::File => append_entry(tar, header, tar_name, None, io::empty())?,
            }
            continue;
        }
        // Names on disk come only from a directory we hold.
        let Some(dir) = dir else { continue };
        let node = match Node::open(dir, &name) {
            Ok(node) => node,
            // Removed since the listing (a running container): Docker's walk skips it too.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // A copy: a directory's node is let go before descending.
        let st = &{ node.st };
        let kind = nofollow::kind(st);
        if kind == libc::S_IFSOCK {
            continue;
        }
        let is_init_file = INIT_LAYER
            .iter()
            .any(|(p, k)| *k == InitKind::File && Path::new(p) == rel);
        if is_init_file && kind == libc::S_IFREG && st.st_size == 0 {
            // The runtime's empty bind target: in Docker the init layer's file is there.
            append_entry(
                tar,
                init.header(InitKind::File),
                tar_name,
                None,
                io::empty(),
            )?;
            continue;
        }
        let mut header = stat_header(st);
        let child_dir = if kind == libc::S_IFDIR {
            Some(node.open_dir()?)
        } else {
            None
        };
        // A directory the init layer adds to was copied up into it when the container was
        // made: Docker shows that copy's time.
        if let Some(child) = &child_dir {
            if adds_to(child, &rel) {
                header.set_mtime(init.mtime);
            }
        }
        let name = tar_name;
        if kind != libc::S_IFDIR && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(first) = links.get(&key) {
                header.set_entry_type(tar::EntryType::Link);
                let first = first.as_os_str().as_bytes();
                append_entry(tar, header, name, Some(first), io::empty())?;
                continue;
            }
            links.insert(key, rel.clone());
        }
        match (kind, child_dir) {
            (_, Some(child)) => {
                // One descriptor per level of a deep tree is enough.
                drop(node);
                append_entry(tar, header, &[name, b"/"].concat(), None, io::empty())?;
                append_dir_contents(tar, Some(&child), &rel, links, init)?;
            }
            (libc::S_IFLNK, None) => {
                let target = node.read_link()?;
                append_entry(tar, header, name, Some(target.as_bytes()), io::empty())?;
            }
            (libc::S_IFREG, None) => {
                let size = st.st_size.max(0) as u64;
                header.set_size(size);
                let file = node.open_file()?;
                // A file that changes size while we read it (a running container) must still
                // fill exactly the size the header announced.
                let data = file.take(size).chain(io::repeat(0)).take(size);
                append_entry(tar, header, name, None, data)?;
            }
            // Devices and fifos: the header says it all.
            _ => append_entry(tar, header, name, None, io::empty())?,
        }
    }
    Ok(())
}

/// The header Docker's archiver writes for an entry with stat `st` (size left at 0).
fn stat_header(st: &FileStat) -> tar::Header {
    let kind = match nofollow::kind(st) {
        libc::S_IFDIR => tar::EntryType::Directory,
        libc::S_IFLNK => tar::EntryType::Symlink,
        libc::S_IFCHR => tar::EntryType::Char,
        libc::S_IFBLK => tar::EntryType::Block,
        libc::S_IFIFO => tar::EntryType::Fifo,
        _ => tar::EntryType::Regular,
    };
    super::archive::header_for(st, kind)
}

/// Whether the init layer creates something directly in directory `rel`, open as `dir` (an
/// entry the tree lacks, or the runtime's empty bind target standing for one).
fn adds_to(dir: &OwnedFd, rel: &Path) -> bool {
    InitLayer::children(rel).into_iter().any(|(name, kind)| {
        match fstatat(
            Some(dir.as_raw_fd()),
            name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Err(_) => true,
            Ok(st) => {
                kind == InitKind::File && nofollow::kind(&st) == libc::S_IFREG && st.st_size == 0
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entries(data: &[u8]) -> Vec<(String, tar::EntryType, u64)> {
        let mut archive = tar::Archive::new(data);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                    e.header().size().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_tar_lists_the_tree_sorted_with_links_and_long_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/sub")).unwrap();
        std::fs::write(root.join("b/file"), "hello").unwrap();
        std::fs::set_permissions(root.join("b/file"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::fs::hard_link(root.join("b/file"), root.join("a-link")).unwrap();
        std::os::unix::fs::symlink("/b/file", root.join("c")).unwrap();
        let long = "x".repeat(150);
        std::fs::write(root.join("b/sub").join(&long), "").unwrap();
        let mut out = Vec::new();
        write_tar(root, &mut out, &InitLayer { mtime: 0 }).unwrap();
        // The init layer's entries are another test's subject.
        let got: Vec<_> = entries(&out)
            .into_iter()
            .filter(|e| !is_init_name(&e.0))
            .collect();
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        let long_path = format!("b/sub/{long}");
        assert_eq!(
            names,
            ["a-link", "b/", "b/file", "b/sub/", long_path.as_str(), "c"]
        );
        assert_eq!(got[0].1, tar::EntryType::Regular);
        assert_eq!(got[0].2, 5);
        assert_eq!(
            got[2].1,
            tar::EntryType::Link,
            "the second name of a file is a hard link"
        );
        assert_eq!(got[5].1, tar::EntryType::Symlink);
        let mut archive = tar::Archive::new(&out[..]);
        // Behind ".dockerenv", the first of the init layer's entries.
        let file = archive.entries().unwrap().nth(3).unwrap().unwrap();
        assert_eq!(file.header().mode().unwrap() & 0o7777, 0o640);
        assert_eq!(file.link_name().unwrap().unwrap().to_str(), Some("a-link"));
    }

    fn is_init_name(name: &str) -> bool {
        let name = name.trim_end_matches('/');
        ["dev", "etc"].contains(&name) || INIT_LAYER.iter().any(|(p, _)| *p == name)
    }

    #[test]
    fn the_init_layer_fills_in_what_the_tree_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // The image has /etc with a real hosts file, and /proc; the runtime left an empty
        // bind target at /etc/hostname (mode 0644).
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
        std::fs::write(root.join("etc/hostname"), "").unwrap();
        std::fs::set_permissions(
            root.join("etc/hostname"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let mut out = Vec::new();
        write_tar(
            root,
            &mut out,
            &InitLayer {
                mtime: 1_700_000_000,
            },
        )
        .unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let got: Vec<(String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.mode().unwrap() & 0o7777,
                    h.size().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                ".dockerenv",
                "dev/",
                "dev/console",
                "dev/pts/",
                "dev/shm/",
                "etc/",
                "etc/hostname",
                "etc/hosts",
                "etc/mtab",
                "etc/resolv.conf",
                "proc/",
                "sys/"
            ]
        );
        let find = |n: &str| got.iter().find(|e| e.0 == n).unwrap().clone();
        assert_eq!(
            find("etc/hostname").1,
            0o755,
            "the init layer's file, not the bind target"
        );
        assert_eq!(find("etc/hosts").2, 20, "the image's own file stays");
        assert_eq!(
            find("etc/").3,
            1_700_000_000,
            "a directory the init layer adds to"
        );
        assert_ne!(
            find("proc/").3,
            1_700_000_000,
            "the image's /proc is untouched"
        );
        let mut archive = tar::Archive::new(&out[..]);
        let mtab = archive.entries().unwrap().nth(8).unwrap().unwrap();
        assert_eq!(
            mtab.link_name().unwrap().unwrap().to_str(),
            Some("/proc/mounts")
        );
    }
    #[test]
    fn symlinks_to_the_host_are_archived_as_links_never_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("host-secret"), "host").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::os::unix::fs::symlink(outside.path(), root.join("d")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("host-secret"), root.join("f")).unwrap();
        // Where the init layer would descend: `etc` itself a link to the host.
        std::os::unix::fs::symlink(outside.path(), root.join("etc")).unwrap();
        let mut out = Vec::new();
        write_tar(root, &mut out, &InitLayer { mtime: 0 }).unwrap();
        let got = entries(&out);
        for name in ["d", "etc", "f"] {
            let e = got.iter().find(|e| e.0 == name).unwrap();
            assert_eq!((e.1, e.2), (tar::EntryType::Symlink, 0), "{name}");
        }
        assert!(
            !got.iter()
                .any(|e| e.0.contains("host-secret") || e.0.starts_with("etc/")),
            "{got:?}"
        );
    }

    #[test]
    fn devices_keep_their_numbers() {
        if !nix::unistd::Uid::effective().is_root() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "needs root for mknod"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let null = dir.path().join("null");
        nix::sys::stat::mknod(
            &null,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        let mut out = Vec::new();
        write_tar(dir.path(), &mut out, &InitLayer { mtime: 0 }).unwrap();
        let mut archive = tar::Archive::new(&out[..]);
        let e = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("null"))
            .unwrap();
        assert_eq!(e.header().entry_type(), tar::EntryType::Char);
        assert_eq!(e.header().device_major().unwrap(), Some(1));
        assert_eq!(e.header().device_minor().unwrap(), Some(3));
    }
}
