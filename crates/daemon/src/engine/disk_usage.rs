//! `GET /system/df`: what images, containers and volumes take on disk, measured on the disk
//! itself the way Docker measures it (apparent sizes, hard links once, symlinks not
//! followed, mounts not entered).
//!
//! An image takes its unpacked layers (snapshots) and its other files: the config blob and,
//! for each layer, what keeps its uncompressed tar so `save` hands out the exact bytes the
//! diff IDs name (an index over the snapshot, as Docker's tar-split files, or a whole tar for
//! layers stored without one; `Store::image_blobs`). All count, so the images' total (`LayersSize`)
//! plus the containers' writable layers and the volumes is what `du` finds under the data
//! root, less directories themselves and the metadata database (and the build context
//! store, listed apart as Build Cache). `df`'s per-image sizes count
//! the same pieces (so RECLAIMABLE stays right); `docker images` keeps the content size.

use super::{lock, Engine, Result};
use crate::state::Record;
use berth_api::models::{Volume, VolumeUsageData};
use berth_store::Image;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One image's line of `system df`.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    /// The image, its `size` the bytes it takes on disk (snapshots and blobs).
    pub image: Image,
    /// Bytes of this image's snapshots and blobs that another image uses too.
    pub shared_size: u64,
    /// Containers created from this image.
    pub containers: u64,
}

/// One container's line of `system df`.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub rec: Record,
    /// Bytes in the container's writable layer.
    pub size_rw: u64,
    /// The image's size plus `size_rw`.
    pub size_root_fs: u64,
}

/// Everything `system df` reports.
#[derive(Debug, Clone)]
pub struct DiskUsage {
    /// Bytes of all images' snapshots and blobs, each shared one counted once.
    pub layers_size: u64,
    pub images: Vec<ImageUsage>,
    pub containers: Vec<ContainerUsage>,
    /// Volumes with `UsageData` filled in.
    pub volumes: Vec<Volume>,
    /// The build context store's records (Build Cache).
    pub build_cache: Vec<crate::build::context_store::ContextUsage>,
}

/// Apparent size of the files under `root` as Docker's `directory.Size` counts it: every
/// non-directory's `st_size` (a symlink's is its target's length), each inode once, without
/// following symlinks or entering other filesystems mounted below `root`. Unreadable parts
/// count as empty: a file vanishing mid-walk is normal for a running container.
pub fn du(root: &Path) -> u64 {
    let Ok(top) = std::fs::symlink_metadata(root) else { return 0 };
    if !top.is_dir() {
        return top.len();
    }
    let dev = top.dev();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            // DirEntry::metadata is lstat: symlinks are measured, never followed.
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != dev {
                continue;
            }
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.len() > 0 && seen.insert(meta.ino()) {
                total += meta.len();
            }
        }
    }
    total
}

impl Engine {
    /// What a container's writable layer holds: overlay's upper directory; for a vfs copy,
    /// Docker's naive measure, the sizes of what the container added or changed.
    pub(super) fn size_rw(&self, rec: &Record) -> u64 {
        let tree = self.store.container_image(&rec.image_id).and_then(|image| self.store.rootfs_tree(&rec.id, &image));
        match tree {
            Ok(berth_store::RootfsTree::Changes { upper, .. }) => du(&upper),
            Ok(berth_store::RootfsTree::Full { root, lowers }) => {
                let Ok(changes) = super::diff::tree_changes(&root, &lowers) else { return 0 };
                let mut seen = HashSet::new();
                changes
                    .iter()
                    .filter(|c| c.kind != berth_api::models::ChangeType::_2)
                    .filter_map(|c| std::fs::symlink_metadata(root.join(c.path.trim_start_matches('/'))).ok())
                    .filter(|m| !m.is_dir() && seen.insert(m.ino()))
                    .map(|m| m.len())
                    .sum()
            }
            Err(_) => 0,
        }
    }

    /// Measures images, containers and volumes. Walks the disk: call it off the async workers.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let images = self.store.list()?;
        let records: Vec<Record> = self.all_containers().iter().map(|c| lock(&c.rec).clone()).collect();

        // Each piece (a snapshot by chain ID, a blob by digest) measured once; how many
        // images use it decides whether it is shared.
        let mut piece_size: HashMap<String, u64> = HashMap::new();
        let mut piece_users: HashMap<String, u64> = HashMap::new();
        let mut image_pieces: Vec<Vec<String>> = Vec::with_capacity(images.len());
        for image in &images {
            let mut pieces = Vec::new();
            let snapshots = self.store.layer_dirs(image)?.into_iter().map(|(c, p)| (format!("snapshot {c}"), p));
            let blobs = self.store.image_blobs(image)?.into_iter().map(|(d, p)| (format!("blob {d}"), p));
            for (key, path) in snapshots.chain(blobs) {
                piece_size.entry(key.clone()).or_insert_with(|| du(&path));
                if !pieces.contains(&key) {
                    *piece_users.entry(key.clone()).or_default() += 1;
                    pieces.push(key);
                }
            }
            image_pieces.push(pieces);
        }
        let layers_size = piece_size.values().sum();

        let mut per_image: HashMap<&str, u64> = HashMap::new();
        for r in &records {
            *per_image.entry(r.image_id.as_str()).or_default() += 1;
        }
        let size_of = |p: &String| piece_size.get(p).copied().unwrap_or(0);
        let parents: std::collections::HashSet<&str> = images.iter().filter_map(|i| i.parent.as_deref()).collect();
        let image_usage = images
            .iter()
            .zip(&image_pieces)
            .map(|(image, pieces)| {
                let shared = pieces.iter().filter(|p| piece_users.get(*p).copied().unwrap_or(0) > 1).map(size_of).sum();
                let mut on_disk = image.clone();
                on_disk.size = pieces.iter().map(size_of).sum();
                ImageUsage {
                    image: on_disk,
                    shared_size: shared,
                    containers: per_image.get(image.id.as_str()).copied().unwrap_or(0),
                }
            })
            // As Docker's list without `all`: untagged parents of other images are left out
            // (their layers still count in `layers_size`).
            .filter(|u| {
                let untagged = u.image.repo_tags.is_empty() && u.image.repo_digests.is_empty();
                !(untagged && parents.contains(u.image.id.as_str()))
            })
            .collect();

        let image_size: HashMap<&str, u64> = images.iter().map(|i| (i.id.as_str(), i.size)).collect();
        let mut containers: Vec<ContainerUsage> = records
            .iter()
            .map(|rec| {
                let size_rw = self.size_rw(rec);
                let base = image_size.get(rec.image_id.as_str()).copied().unwrap_or(0);
                ContainerUsage { rec: rec.clone(), size_rw, size_root_fs: base + size_rw }
            })
            .collect();
        containers.sort_by(|a, b| b.rec.created.cmp(&a.rec.created));

        let mut refs: HashMap<String, i64> = HashMap::new();
        for r in &records {
            let mut names: Vec<&str> = r
                .mounts
                .iter()
                .filter(|m| m.kind == super::mounts::MountKind::Volume)
                .map(|m| m.name.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            for n in names {
                *refs.entry(n.to_string()).or_default() += 1;
            }
        }
        let mut volumes: Vec<Volume> = Vec::new();
        for meta in self.volumes.all()? {
            let mut v = super::volumes::view(&self.volumes, &meta);
            v.usage_data = Some(VolumeUsageData {
                size: du(&self.volumes.data_dir(&meta.name)) as i64,
                ref_count: refs.get(&meta.name).copied().unwrap_or(0),
            });
            volumes.push(v);
        }
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        let build_cache = self.build_context.usage()?;
        Ok(DiskUsage { layers_size, images: image_usage, containers, volumes, build_cache })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn du_counts_apparent_sizes_once_and_skips_symlink_targets() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/file"), vec![0u8; 3000]).unwrap();
        std::fs::write(root.join("top"), b"12345").unwrap();
        std::fs::hard_link(root.join("top"), root.join("a/hard")).unwrap();
        // A symlink counts its own length (4 bytes), not the 3000-byte file it names.
        std::os::unix::fs::symlink("a/b/file", root.join("ln")).unwrap();
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        // A sparse file counts its apparent size.
        let f = std::fs::File::create(root.join("sparse")).unwrap();
        f.set_len(1 << 20).unwrap();
        assert_eq!(du(root), 3000 + 5 + 8 + 1 + (1 << 20));
        assert_eq!(du(&root.join("a/b/file")), 3000);
        assert_eq!(du(&root.join("missing")), 0);
    }
}
