//! `docker commit`: a new image made of a parent image's layers plus one layer read as a tar
//! stream (a container's writable layer), with a config the caller builds.
//!
//! The layer is unpacked into a temp snapshot while its tar is hashed and kept as an index
//! over that snapshot (tarsplit.rs). Only when the stream read to its end without error are
//! the index, the snapshot, the config and the records published, in one redb
//! transaction: a failed commit leaves no index, no snapshot and no image. An empty layer (the
//! 1024-byte empty tar: the container changed nothing) is not stored; Docker then records
//! only a history entry with `empty_layer`, and so do we.

use std::io::Read;

use oci_spec::image::ImageConfiguration;
use redb::{ReadableDatabase, ReadableTable};

use crate::digest::{chain_id, chain_ids, sha256_of};
use crate::error::Error;
use crate::images::{decode, encode, ImageRecord, LayerRecord, IMAGES, LAYERS, TAGS};
use crate::tarsplit::SplitLayer;
use crate::{Image, Reference, Store};

/// Builds the new image's config blob from the diff ID of the new layer, or `None` when the
/// layer is empty and adds nothing to `rootfs.diff_ids`.
pub type ConfigBuilder<'a> = dyn FnOnce(Option<&str>) -> Result<Vec<u8>, Error> + 'a;

/// Digest of an empty tar archive (two zero blocks): the diff ID of a layer that changes
/// nothing. Docker compares against the same value (`layer.DigestSHA256EmptyTar`).
fn empty_tar_digest() -> String {
    sha256_of(&[0u8; 1024])
}

impl Store {
    /// Publishes `parent`'s layers plus the layer tar read from `layer` as a new image, with
    /// the config `build_config` makes, tagged `tag` if given. The config's `rootfs.diff_ids`
    /// must be the parent's plus the new layer's (when not empty). No parent (a build `FROM
    /// scratch`) means the new layer is the image's first, and the image has no `Parent`.
    pub fn commit(
        &self,
        parent: Option<&Image>,
        layer: &mut dyn Read,
        build_config: Box<ConfigBuilder<'_>>,
        tag: Option<&Reference>,
    ) -> Result<Image, Error> {
        check_commit_tag(tag)?;
        // Unpacked while its tar is split into an index over the snapshot (tarsplit.rs). Reads
        // to the end, so an error the producer reports after the end-of-archive marker still
        // fails the commit, and the padding is part of the digest.
        let split = self.unpack_split(layer)?;
        self.publish_child(parent, split, build_config, tag)
    }

    /// The second half of a commit: the layer (already in a temp snapshot with its index)
    /// becomes `parent`'s child image. Nothing is visible until the one redb transaction; on
    /// any error before it the temp snapshot and index are dropped, so nothing is left.
    pub(crate) fn publish_child(
        &self,
        parent: Option<&Image>,
        split: SplitLayer,
        build_config: Box<ConfigBuilder<'_>>,
        tag: Option<&Reference>,
    ) -> Result<Image, Error> {
        let empty = split.diff_id == empty_tar_digest();
        let (diff_id, unpacked_size, tar_size) =
            (split.diff_id.clone(), split.size, split.tar_size);

        let config_bytes = build_config((!empty).then_some(diff_id.as_str()))?;
        let config: ImageConfiguration = decode("image config", &config_bytes)?;
        let mut expected = parent
            .map(|p| p.config.rootfs().diff_ids().clone())
            .unwrap_or_default();
        if !empty {
            expected.push(diff_id.clone());
        }
        if config.rootfs().diff_ids() != &expected {
            return Err(Error::Corrupt(
                "commit: the new config's layers are not the parent's plus the new one".into(),
            ));
        }
        let parent_chains = chain_ids(
            parent
                .map(|p| p.config.rootfs().diff_ids().as_slice())
                .unwrap_or_default(),
        );
        let chains = chain_ids(&expected);
        let new_layer = (!empty).then(|| {
            let chain = chain_id(parent_chains.last().map(String::as_str), &diff_id);
            let record = LayerRecord {
                diff_id: diff_id.clone(),
                parent: parent_chains.last().cloned(),
                size: unpacked_size,
                tar_size,
            };
            (chain, record)
        });
        let id = sha256_of(&config_bytes);
        let created = config
            .created()
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.timestamp())
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let record = ImageRecord {
            created,
            chain_ids: chains,
            size: parent.map_or(0, |p| p.size) + if empty { 0 } else { unpacked_size },
            repo_digests: Vec::new(),
            parent: parent.map(|p| p.id.clone()),
        };

        {
            let _g = self.lock();
            // The parent's layers must still be there: a concurrent delete may have taken
            // them (checked under the lock, which deletes hold too).
            if let Some(parent) = parent {
                let txn = self.db.begin_read()?;
                let gone = || {
                    Error::Conflict(format!(
                        "the image {} was removed during the commit",
                        parent.id
                    ))
                };
                // The new image names it as its parent, so it must still exist.
                if txn.open_table(IMAGES)?.get(parent.id.as_str())?.is_none() {
                    return Err(gone());
                }
                let layers = txn.open_table(LAYERS)?;
                for c in &parent_chains {
                    if layers.get(c.as_str())?.is_none() {
                        return Err(gone());
                    }
                }
            }
            if let Some((chain, _)) = &new_layer {
                self.publish_split(split, chain)?;
            }
            self.content.write_all(&config_bytes)?;
            let txn = self.db.begin_write()?;
            {
                if let Some((chain, layer)) = &new_layer {
                    let mut layers = txn.open_table(LAYERS)?;
                    if layers.get(chain.as_str())?.is_none() {
                        layers.insert(chain.as_str(), encode(layer)?.as_slice())?;
                    }
                }
                txn.open_table(IMAGES)?
                    .insert(id.as_str(), encode(&record)?.as_slice())?;
                if let Some(t) = tag {
                    txn.open_table(TAGS)?
                        .insert(t.full().as_str(), id.as_str())?;
                }
            }
            txn.commit()?;
        }
        self.resolve(&id)
    }
}

/// A commit may tag its image, never with a digest reference.
pub(crate) fn check_commit_tag(tag: Option<&Reference>) -> Result<(), Error> {
    if let Some(t) = tag {
        if t.digest().is_some() {
            return Err(Error::InvalidReference(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{count, image_config, require_root, temp_store, TarBuf};
    use crate::ImportOptions;

    /// A config whose layers are the parent's plus `diff` (what the daemon builds).
    fn config_for(parent: &Image) -> Box<ConfigBuilder<'static>> {
        let mut diff_ids = parent.config.rootfs().diff_ids().clone();
        Box::new(move |diff: Option<&str>| {
            diff_ids.extend(diff.map(String::from));
            let mut v = image_config("amd64", &diff_ids);
            v["created"] = "2024-01-02T03:04:05Z".into();
            v["config"] = serde_json::json!({"Cmd": ["sh"]});
            v["history"] = serde_json::json!([{"created_by": "x", "empty_layer": diff.is_none()}]);
            Ok(serde_json::to_vec(&v).unwrap())
        })
    }

    fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut t = TarBuf::new();
        for (name, data) in files {
            t.file(name, data);
        }
        t.finish()
    }

    /// A store holding one imported image, file `a` in its one layer: the commits' parent.
    fn store_with_parent() -> (tempfile::TempDir, Store, Image) {
        let (dir, store) = temp_store();
        let base = tar(&[("a", b"1")]);
        let parent = store
            .import(&mut &base[..], ImportOptions::default())
            .unwrap();
        (dir, store, parent)
    }

    #[test]
    fn adds_one_layer_on_top_of_the_parent() {
        if !require_root("adds_one_layer_on_top_of_the_parent") {
            return;
        }
        let (dir, store, parent) = store_with_parent();
        let layer = tar(&[("b", b"22"), (".wh.a", b"")]);
        let tag = Reference::parse("committed:v1").unwrap();
        let image = store
            .commit(
                Some(&parent),
                &mut &layer[..],
                config_for(&parent),
                Some(&tag),
            )
            .unwrap();
        assert_eq!(image.repo_tags, ["committed:v1"]);
        assert_eq!(image.config.rootfs().diff_ids().len(), 2);
        assert_eq!(image.size, parent.size + 2);
        let dirs = store.layer_dirs(&image).unwrap();
        let top = &dirs[1].1;
        assert_eq!(std::fs::read(top.join("b")).unwrap(), b"22");
        let wh = std::fs::symlink_metadata(top.join("a")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &wh.file_type()
        ));
        // Blobs: base config, new config; each layer's tar (imported and new) is an index
        // over its snapshot, which gives back the very bytes committed.
        assert_eq!(count(&dir.path().join("root/blobs/sha256")), 2);
        assert_eq!(count(&dir.path().join("root/layer-index")), 2);
        let mut tar_back = Vec::new();
        let new_diff = &image.config.rootfs().diff_ids()[1];
        store
            .layer_tar(new_diff)
            .unwrap()
            .read_to_end(&mut tar_back)
            .unwrap();
        assert_eq!(tar_back, layer);
    }

    #[test]
    fn an_empty_layer_adds_no_layer() {
        if !require_root("an_empty_layer_adds_no_layer") {
            return;
        }
        let (dir, store, parent) = store_with_parent();
        let empty = vec![0u8; 1024];
        let image = store
            .commit(Some(&parent), &mut &empty[..], config_for(&parent), None)
            .unwrap();
        assert_ne!(image.id, parent.id);
        assert_eq!(
            image.config.rootfs().diff_ids(),
            parent.config.rootfs().diff_ids()
        );
        assert_eq!(count(&dir.path().join("root/snapshots")), 1);
        assert_eq!(count(&dir.path().join("root/blobs/sha256")), 2);
    }

    #[test]
    fn a_failed_stream_leaves_nothing() {
        if !require_root("a_failed_stream_leaves_nothing") {
            return;
        }
        let (dir, store, parent) = store_with_parent();
        let layer = tar(&[("b", b"22")]);
        // The producer fails after a whole entry: the reader reports it.
        let mut failing = (&layer[..1024]).chain(FailingReader);
        let err = store
            .commit(Some(&parent), &mut failing, config_for(&parent), None)
            .unwrap_err();
        assert!(err.to_string().contains("producer failed"), "{err}");
        assert_eq!(count(&dir.path().join("root/snapshots")), 1);
        assert_eq!(count(&dir.path().join("root/blobs/sha256")), 1);
        assert_eq!(count(&dir.path().join("root/layer-index")), 1);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    use std::io;

    struct FailingReader;

    impl Read for FailingReader {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("producer failed"))
        }
    }
}
