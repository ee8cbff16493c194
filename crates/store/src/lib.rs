//! berth-store: the content store, image references and records, layer unpacking and the
//! overlayfs snapshotter.
//!
//! Layout under the data root:
//! - `blobs/sha256/<hex>`: image configs by digest, and the uncompressed tars of layers that
//!   have no index (stored before indexes existed, or not indexable);
//! - `layer-index/<diff hex>`: a layer's tar as an index over its snapshot (tarsplit.rs): the
//!   tar's bytes other than file contents, and for each file its path and size, from which
//!   `Store::layer_tar` rebuilds the exact tar its diff ID names;
//! - `snapshots/<chain hex>`: each layer unpacked once, shared by every image using it;
//! - `containers-rootfs/<key>/{upper,work,merged}`: a container's writable layer (overlay2),
//!   or `containers-rootfs/<key>/vfs`: its full copy of the image (vfs);
//! - metadata in the daemon's redb database, tables `images_v1`, `images_tags_v1`, `layers_v1`,
//!   `images_removed_v1` (images deleted while stopped containers use them).
//!
//! Files are always published before the one redb transaction that references them, and
//! unpublished after the one that stops referencing them, so a crash leaves at worst
//! unreferenced files, which `Store::open` removes.

mod build_cache;
mod commit;
mod compressed;
mod compression;
mod content;
mod digest;
mod error;
mod fsutil;
mod images;
mod layer_entries;
mod load;
pub mod manifest;
pub mod platform;
mod pulled;
mod reference;
mod save;
mod snapshot;
pub mod tar_cap;
mod tarsplit;
mod unpack;
mod usage;
mod vfs;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub use content::{BlobWriter, ContentStore, PendingBlob};
pub use commit::ConfigBuilder;
pub use compression::Compression;
pub use compressed::{BlobSource, CompressedLayer};
pub use error::Error;
pub use reference::Reference;
pub use images::LayerLease;
pub use layer_entries::{ImageFs, ImageFsNode, NewEntry, NewEntryKind, ScratchDir};
pub use load::LoadedImage;
pub use pulled::{Pulled, PulledLayer};
pub use save::SaveItem;
pub use snapshot::{Driver, Mount, RootfsTree};
pub use tar_cap::CappedTar;
pub use tarsplit::LayerTar;

/// Re-exported so callers name the exact types the store uses.
pub use oci_spec::image::{Config as ImageConfig, ImageConfiguration};

/// The image store. `Send + Sync`; share it in an `Arc`.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    db: Arc<redb::Database>,
    content: content::ContentStore,
    indexes: tarsplit::IndexDir,
    snapshots: snapshot::Snapshots,
    /// Serialises the short "publish files + commit record" and "commit removal + unpublish"
    /// phases, so an import never references a layer that a concurrent delete is removing.
    /// Slow work (unpacking, deleting trees) happens outside it.
    publish: Mutex<()>,
    /// Layers a save or push is reading (images.rs).
    leases: images::Leases,
}

/// What `docker import` passes besides the tarball.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// The image's run config (from `--change`).
    pub config: oci_spec::image::Config,
    /// Docker-only run config fields the OCI type has no place for (`Healthcheck`, `OnBuild`),
    /// added to the stored config's `config` object as they are.
    pub docker_fields: serde_json::Map<String, serde_json::Value>,
    /// History comment; "Imported from -" when absent or empty.
    pub message: Option<String>,
    /// Tag to apply, if any.
    pub tag: Option<Reference>,
}

/// An image as the daemon sees it.
#[derive(Clone, Debug)]
pub struct Image {
    /// "sha256:<64 hex>": the digest of the config blob.
    pub id: String,
    /// Familiar references pointing at it, sorted: "busybox:latest", "myreg:5000/x/y:v1".
    pub repo_tags: Vec<String>,
    /// "name@sha256:…" for images pulled by digest (empty for imports).
    pub repo_digests: Vec<String>,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Sum of the layers' unpacked content sizes.
    pub size: u64,
    /// The image this one was committed from (Docker's `Parent`), if made locally.
    pub parent: Option<String>,
    /// The image config.
    pub config: oci_spec::image::ImageConfiguration,
    /// The config's `config` object as stored, with Docker's fields that the OCI type drops
    /// (`Healthcheck`, `OnBuild`, `Shell`).
    pub docker_config: Option<serde_json::Value>,
}

impl Store {
    /// Opens (creating if needed) the store under `root`, using the daemon's database `db`.
    /// Removes whatever an interrupted operation left behind.
    pub fn open(root: &Path, db: Arc<redb::Database>) -> Result<Store, Error> {
        Store::open_with_driver(root, db, None)
    }

    /// [`Store::open`] with a storage driver for containers' writable layers; `None` picks
    /// the one the existing containers use, else overlay2 where an overlay mounts, else vfs.
    pub fn open_with_driver(root: &Path, db: Arc<redb::Database>, driver: Option<Driver>) -> Result<Store, Error> {
        std::fs::create_dir_all(root).map_err(|e| error::ctx(e, root.display()))?;
        for dir in ["blobs", "compressed", "layer-index", "snapshots", "containers-rootfs"] {
            fsutil::private_dir(&root.join(dir))?;
        }
        let store = Store {
            root: root.to_path_buf(),
            db,
            content: content::ContentStore::open(root)?,
            indexes: tarsplit::IndexDir::open(root)?,
            snapshots: snapshot::Snapshots::open(root, driver)?,
            publish: Mutex::new(()),
            leases: images::Leases::default(),
        };
        store.init_tables()?;
        store.collect_garbage()?;
        store.collect_compressed_garbage()?;
        Ok(store)
    }

    /// The data root this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded value is (), so a panic elsewhere cannot have left it inconsistent.
        self.publish.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The storage driver containers get.
    pub fn driver(&self) -> Driver {
        self.snapshots.driver()
    }

    /// A container's root filesystem as mounts (one overlay, or one bind mount for vfs),
    /// bottom layers from `image`. Creates the container's writable layer (upper/work, or
    /// the vfs copy) on first use; never mounts anything itself.
    pub fn prepare_rootfs(&self, key: &str, image: &Image) -> Result<Vec<Mount>, Error> {
        let chain = digest::chain_ids(image.config.rootfs().diff_ids());
        self.snapshots.prepare_rootfs(key, &chain)
    }

    /// [`Store::prepare_rootfs`], as a mount through which nothing can be written.
    pub fn readonly_rootfs(&self, key: &str, image: &Image) -> Result<Vec<Mount>, Error> {
        let chain = digest::chain_ids(image.config.rootfs().diff_ids());
        self.snapshots.readonly_rootfs(key, &chain)
    }

    /// A container's files beside its image's layers, for `diff` and sizes.
    pub fn rootfs_tree(&self, key: &str, image: &Image) -> Result<RootfsTree, Error> {
        let chain = digest::chain_ids(image.config.rootfs().diff_ids());
        self.snapshots.rootfs_tree(key, &chain)
    }

    /// Removes a container's rootfs directories, and the deleted image it alone still held
    /// (`Store::delete_for_containers`); idempotent.
    pub fn remove_rootfs(&self, key: &str) -> Result<(), Error> {
        self.snapshots.remove_rootfs(key)?;
        self.release_container(key)
    }

    /// Directory of a container's rootfs (holds upper, work and an empty `merged` mount point
    /// for overlay2, the `vfs` copy for vfs).
    pub fn rootfs_dir(&self, key: &str) -> Result<PathBuf, Error> {
        self.snapshots.rootfs_path(key)
    }

    /// The unpacked directory of each of `image`'s layers, bottom first, keyed by chain ID
    /// (two images share a layer exactly when they share its chain ID).
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<(String, PathBuf)>, Error> {
        digest::chain_ids(image.config.rootfs().diff_ids())
            .into_iter()
            .map(|c| self.snapshots.path(&c).map(|p| (c, p)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

/// Extracts the tar stream in `reader` into the existing directory `target` with the layer
/// unpacker's protections (every path resolved with `target` as "/", `..` escapes refused,
/// symlinks never written through, hard links kept inside). Used by `docker cp`; returns the
/// bytes written. Entries keep the archive's ownership and modes.
pub fn extract_tar(reader: &mut dyn std::io::Read, target: &Path) -> Result<u64, Error> {
    unpack::unpack(reader, target).map(|u| u.size)
}
