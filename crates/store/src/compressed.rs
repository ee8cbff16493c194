//! What a registry needs to know about layers besides their uncompressed tars: the compressed
//! form of each layer (made once, kept, reused by every later push), where each compressed
//! blob was seen (Docker's "v2 metadata": the registry repositories that hold it, for HEAD
//! checks and cross-repository mounts), and the digests images were pushed or pulled by.
//!
//! Layout and tables (the API for push and pull):
//! - `<root>/compressed/blobs/sha256/<hex>`: compressed layer blobs, by their own digest;
//! - `layer_compressed_v1`: "<diff id> <gzip|zstd>" → [`CompressedLayer`] (JSON): the kept
//!   compressed blob of a layer. Push writes it after compressing ([`Store::compressed_writer`]
//!   then [`Store::add_compressed`]); a pull that keeps the registry's blob does the same with
//!   the bytes it downloaded, so a push of an unchanged layer sends them as they are;
//! - `layer_sources_v1`: diff id → [`BlobSource`]s (JSON list): compressed digests this layer
//!   is known by, each with the repository ("127.0.0.1:5000/team/app") it was pulled from or
//!   pushed to. A pull records one per layer ([`Store::add_blob_source`]) even when it does
//!   not keep the blob: a later push then HEADs or mounts that digest instead of uploading.
//!
//! Rows are dropped with their layer: a layer's uncompressed tar leaving the store (image
//! delete, or garbage found at open) takes its compressed blob and sources with it.

use std::path::PathBuf;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::compression::Compression;
use crate::content::{BlobWriter, ContentStore, PendingBlob};
use crate::digest::hex_part;
use crate::error::Error;
use crate::images::{decode, encode};
use crate::Store;

const COMPRESSED: TableDefinition<&str, &[u8]> = TableDefinition::new("layer_compressed_v1");
const SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("layer_sources_v1");

/// Sources kept per layer: enough for every repository a layer plausibly lives in.
const MAX_SOURCES: usize = 32;

/// A layer's kept compressed blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedLayer {
    /// Digest of the compressed bytes (the layer's digest in a manifest).
    pub digest: String,
    /// Size of the compressed bytes.
    pub size: u64,
}

/// A registry repository known to hold a compressed form of a layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobSource {
    /// Digest of the compressed blob in that repository.
    pub digest: String,
    /// Its size.
    pub size: u64,
    /// Its media type as the manifest gave it.
    pub media_type: String,
    /// Registry host and repository path: "127.0.0.1:5000/team/app", "docker.io/library/busybox".
    pub repository: String,
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

fn compressed_key(diff_id: &str, c: Compression) -> String {
    format!("{diff_id} {}", compression_name(c))
}

impl Store {
    fn compressed_blobs(&self) -> Result<ContentStore, Error> {
        ContentStore::open(&self.root.join("compressed"))
    }

    /// A writer for a compressed layer blob; publish it with [`Store::add_compressed`].
    pub fn compressed_writer(&self) -> Result<BlobWriter, Error> {
        self.compressed_blobs()?.writer()
    }

    /// Publishes `blob` as the `compression` form of layer `diff_id` (whose tar the store must
    /// hold). A form already recorded wins (the two are equally valid; keeping the first keeps
    /// digests stable across pushes) and `blob` is discarded.
    pub fn add_compressed(
        &self,
        diff_id: &str,
        compression: Compression,
        blob: PendingBlob,
    ) -> Result<CompressedLayer, Error> {
        if let Some(existing) = self.compressed(diff_id, compression)? {
            return Ok(existing);
        }
        let layer = CompressedLayer {
            digest: blob.digest.clone(),
            size: blob.size,
        };
        let _g = self.lock();
        if !self.has_layer_tar(diff_id)? {
            return Err(Error::NotFound(format!(
                "layer {diff_id} is not in the store"
            )));
        }
        blob.commit()?;
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(COMPRESSED)?;
            t.insert(
                compressed_key(diff_id, compression).as_str(),
                encode(&layer)?.as_slice(),
            )?;
        }
        txn.commit()?;
        Ok(layer)
    }

    /// The kept `compression` form of layer `diff_id`, if there is one.
    pub fn compressed(
        &self,
        diff_id: &str,
        compression: Compression,
    ) -> Result<Option<CompressedLayer>, Error> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(COMPRESSED) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(v) = t.get(compressed_key(diff_id, compression).as_str())? else {
            return Ok(None);
        };
        let layer: CompressedLayer = decode("compressed layer", v.value())?;
        // A row whose file went missing (a crash between unlink and commit) is no cache.
        Ok(self
            .compressed_path(&layer.digest)?
            .exists()
            .then_some(layer))
    }

    /// File holding a kept compressed blob.
    pub fn compressed_path(&self, digest: &str) -> Result<PathBuf, Error> {
        self.compressed_blobs()?.path(digest)
    }

    /// Records that `source.repository` holds `source.digest`, a compressed form of layer
    /// `diff_id` (after a pull or a push). Most recent last; old entries make room.
    pub fn add_blob_source(&self, diff_id: &str, source: BlobSource) -> Result<(), Error> {
        if hex_part(&source.digest).is_none() || hex_part(diff_id).is_none() {
            return Err(Error::InvalidArgument(format!("bad digest in {source:?}")));
        }
        let _g = self.lock();
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(SOURCES)?;
            let mut list: Vec<BlobSource> = match t.get(diff_id)? {
                Some(v) => decode("layer sources", v.value())?,
                None => Vec::new(),
            };
            list.retain(|s| !(s.digest == source.digest && s.repository == source.repository));
            list.push(source);
            if list.len() > MAX_SOURCES {
                list.drain(..list.len() - MAX_SOURCES);
            }
            t.insert(diff_id, encode(&list)?.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Every known compressed form of layer `diff_id` and where it was seen, most recent first.
    pub fn blob_sources(&self, diff_id: &str) -> Result<Vec<BlobSource>, Error> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(SOURCES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut list: Vec<BlobSource> = match t.get(diff_id)? {
            Some(v) => decode("layer sources", v.value())?,
            None => Vec::new(),
        };
        list.reverse();
        Ok(list)
    }

    /// Adds "name@sha256:…" (a full reference: "127.0.0.1:5000/app@sha256:…") to the image's
    /// RepoDigests, taking it from any other image: a digest names one image.
    pub fn add_repo_digest(&self, image_id: &str, digest_ref: &str) -> Result<(), Error> {
        use crate::images::{ImageRecord, IMAGES};
        let _g = self.lock();
        let txn = self.db.begin_write()?;
        {
            let mut images = txn.open_table(IMAGES)?;
            let mut changed = Vec::new();
            for item in images.iter()? {
                let (k, v) = item?;
                let mut rec: ImageRecord = decode("image record", v.value())?;
                let id = k.value().to_string();
                let had = rec.repo_digests.iter().any(|d| d == digest_ref);
                if id == image_id && !had {
                    rec.repo_digests.push(digest_ref.to_string());
                    changed.push((id, rec));
                } else if id != image_id && had {
                    rec.repo_digests.retain(|d| d != digest_ref);
                    changed.push((id, rec));
                }
            }
            if images.get(image_id)?.is_none() {
                return Err(Error::ImageNotFound(image_id.to_string()));
            }
            for (id, rec) in changed {
                images.insert(id.as_str(), encode(&rec)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Drops the compressed forms and sources of layers whose tar the store no longer holds,
    /// and every compressed blob no row names. Run at open, like the store's own collection.
    pub(crate) fn collect_compressed_garbage(&self) -> Result<(), Error> {
        let _g = self.lock();
        let txn = self.db.begin_write()?;
        let keep = {
            let mut keep = std::collections::HashSet::new();
            let mut t = txn.open_table(COMPRESSED)?;
            let mut dead = Vec::new();
            for item in t.iter()? {
                let (k, v) = item?;
                let key = k.value().to_string();
                let diff_id = key.split(' ').next().unwrap_or_default();
                if self.has_layer_tar(diff_id).unwrap_or(false) {
                    let layer: CompressedLayer = decode("compressed layer", v.value())?;
                    keep.insert(layer.digest);
                } else {
                    dead.push(key);
                }
            }
            for k in dead {
                t.remove(k.as_str())?;
            }
            let mut s = txn.open_table(SOURCES)?;
            let mut dead = Vec::new();
            for item in s.iter()? {
                let (k, _) = item?;
                let diff_id = k.value().to_string();
                if !self.has_layer_tar(&diff_id).unwrap_or(false) {
                    dead.push(diff_id);
                }
            }
            for k in dead {
                s.remove(k.as_str())?;
            }
            keep
        };
        txn.commit()?;
        self.compressed_blobs()?.gc(|d| keep.contains(d))?;
        Ok(())
    }

    /// Forgets the compressed forms and sources of layers `diff_ids` (deleted with their image).
    pub(crate) fn forget_compressed(&self, diff_ids: &[String]) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        let mut dead_blobs = Vec::new();
        {
            let mut t = txn.open_table(COMPRESSED)?;
            let mut s = txn.open_table(SOURCES)?;
            for d in diff_ids {
                for c in [Compression::Gzip, Compression::Zstd] {
                    if let Some(v) = t.remove(compressed_key(d, c).as_str())? {
                        let layer: CompressedLayer = decode("compressed layer", v.value())?;
                        dead_blobs.push(layer.digest);
                    }
                }
                s.remove(d.as_str())?;
            }
        }
        txn.commit()?;
        let blobs = self.compressed_blobs()?;
        for b in dead_blobs {
            blobs.remove(&b)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn layer_store() -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().unwrap();
        let db = std::sync::Arc::new(redb::Database::create(dir.path().join("db")).unwrap());
        let store = Store::open(&dir.path().join("root"), db).unwrap();
        let diff_id = store.content.write_all(b"pretend layer tar").unwrap();
        (dir, store, diff_id)
    }

    #[test]
    fn compressed_forms_are_kept_once_and_go_with_their_layer() {
        let (_dir, store, diff_id) = layer_store();
        assert_eq!(store.compressed(&diff_id, Compression::Gzip).unwrap(), None);
        let mut w = store.compressed_writer().unwrap();
        w.write_all(b"gzipped bytes").unwrap();
        let first = store
            .add_compressed(&diff_id, Compression::Gzip, w.finish().unwrap())
            .unwrap();
        assert_eq!(
            store.compressed(&diff_id, Compression::Gzip).unwrap(),
            Some(first.clone())
        );
        assert_eq!(
            std::fs::read(store.compressed_path(&first.digest).unwrap()).unwrap(),
            b"gzipped bytes"
        );
        // A second form does not replace the first.
        let mut w = store.compressed_writer().unwrap();
        w.write_all(b"other bytes").unwrap();
        let again = store
            .add_compressed(&diff_id, Compression::Gzip, w.finish().unwrap())
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(store.compressed(&diff_id, Compression::Zstd).unwrap(), None);
        // Garbage collection keeps it while the layer is there, and drops it after.
        store.collect_compressed_garbage().unwrap();
        assert!(store
            .compressed(&diff_id, Compression::Gzip)
            .unwrap()
            .is_some());
        store.content.remove(&diff_id).unwrap();
        store.collect_compressed_garbage().unwrap();
        assert_eq!(store.compressed(&diff_id, Compression::Gzip).unwrap(), None);
        assert!(!store.compressed_path(&first.digest).unwrap().exists());
    }

    #[test]
    fn sources_are_listed_newest_first_without_duplicates() {
        let (_dir, store, diff_id) = layer_store();
        let src = |repo: &str| BlobSource {
            digest: crate::digest::sha256_of(b"gz"),
            size: 2,
            media_type: crate::manifest::media::DOCKER_LAYER_GZIP.into(),
            repository: repo.into(),
        };
        store.add_blob_source(&diff_id, src("r:5000/a")).unwrap();
        store.add_blob_source(&diff_id, src("r:5000/b")).unwrap();
        store.add_blob_source(&diff_id, src("r:5000/a")).unwrap();
        let repos: Vec<String> = store
            .blob_sources(&diff_id)
            .unwrap()
            .into_iter()
            .map(|s| s.repository)
            .collect();
        assert_eq!(repos, ["r:5000/a", "r:5000/b"]);
        store
            .forget_compressed(std::slice::from_ref(&diff_id))
            .unwrap();
        assert!(store.blob_sources(&diff_id).unwrap().is_empty());
        assert!(store.add_blob_source("sha256:nope", src("x")).is_err());
    }
}
