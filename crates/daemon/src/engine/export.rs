//! `docker export`: a tar of a container's whole filesystem, image layers and writable layer
//! merged, without the contents of its volumes and other mounts.
//!
//! We never read the running container's own rootfs mount (a stop would unmount it under us,
//! and it may carry mounts of the container). Instead we mount a private read-only view: for
//! overlay2 an overlay whose lower layers are the container's upper directory on top of the
//! image layers (the kernel merges them, whiteouts and opaque directories included); for vfs a
//! read-only bind of its copy. Nothing can be written through either.
//! The mount lives as long as the tar stream and is always removed.

use super::archive::append_entry;
use super::chunks::ChunkWriter;
use super::{blocking, Engine, Error, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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
        let (store, exports) = (self.store.clone(), self.paths.exec_root.join("exports"));
        let mount = blocking(move || {
            let image = store.resolve(&rec.image_id)?;
            // Creates the writable layer of a never-started container; `rm` removes it.
            let mounts = store.readonly_rootfs(&rec.id, &image)?;
            ReadOnlyMount::new(&exports, &rec.id, &mounts)
        })
        .await?;
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut out = ChunkWriter::new(tx, CHUNK);
            let result = write_tar(&mount.path, &mut out);
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

/// Writes the tree under `root` as a tar, as Docker's archive package does: names relative
/// to the root without a leading "./", directories before their contents, names sorted,
/// hard links as link entries, sockets left out.
pub fn write_tar(root: &Path, out: &mut impl Write) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut links = HashMap::new();
    append_dir_contents(&mut tar, root, Path::new(""), &mut links)?;
    tar.into_inner()?.flush()
}

fn append_dir_contents<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let dir = root.join(rel);
    let mut names = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = std::fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        if kind.is_socket() {
            continue;
        }
        let mut header = tar::Header::new_ustar();
        header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
        header.set_size(0);
        super::archive::name_owners(&mut header);
        let name = rel.as_os_str().as_bytes();
        if !kind.is_dir() && meta.nlink() > 1 {
            if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                header.set_entry_type(tar::EntryType::Link);
                let first = first.as_os_str().as_bytes();
                append_entry(tar, header, name, Some(first), io::empty())?;
                continue;
            }
            links.insert((meta.dev(), meta.ino()), rel.clone());
        }
        if kind.is_dir() {
            append_entry(tar, header, &[name, b"/"].concat(), None, io::empty())?;
            append_dir_contents(tar, root, &rel, links)?;
        } else if kind.is_symlink() {
            let target = std::fs::read_link(&path)?;
            append_entry(
                tar,
                header,
                name,
                Some(target.as_os_str().as_bytes()),
                io::empty(),
            )?;
        } else if kind.is_file() {
            header.set_size(meta.len());
            let file = std::fs::File::open(&path)?;
            // A file that changes size while we read it (a running container) must still
            // fill exactly the size the header announced.
            let data = file.take(meta.len()).chain(io::repeat(0)).take(meta.len());
            append_entry(tar, header, name, None, data)?;
        } else {
            // Devices and fifos: the header says it all.
            append_entry(tar, header, name, None, io::empty())?;
        }
    }
    Ok(())
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
        write_tar(root, &mut out).unwrap();
        let got = entries(&out);
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
        let file = archive.entries().unwrap().nth(2).unwrap().unwrap();
        assert_eq!(file.header().mode().unwrap() & 0o7777, 0o640);
        assert_eq!(file.link_name().unwrap().unwrap().to_str(), Some("a-link"));
    }
}
