//! Images from a registry: layers arrive one stream each (several at once), are unpacked
//! while they stream, and the image is recorded in one transaction at the end.
//!
//! Each layer is published (its tar's index, its snapshot and its `layers_v1` row)
//! as soon as it is complete and verified, before the image is: a pull interrupted after some
//! layers (ctrl-c, a registry failure) leaves those layers for the next pull to reuse by chain
//! ID, while no image, tag or digest refers to anything half-done. Layers no image uses are
//! removed by the next `Store::open` (the orphan cleanup in `collect_garbage`), so reuse
//! lasts as long as the daemon runs.
//!
//! The registry's compressed blobs are hashed but not kept (the puller's choice, see
//! berth-distribution's `pull`); the puller records where each layer came from
//! (`Store::add_blob_source`) so a push to that registry can skip or mount it.

use std::io::{self, BufRead, BufReader, Read};

use redb::{ReadableDatabase, ReadableTable};

use crate::compression::Compression;
use crate::digest::{chain_id, sha256_of};
use crate::error::Error;
use crate::images::{decode, encode, layers_size, ImageRecord, LayerRecord, IMAGES, LAYERS, TAGS};
use crate::tarsplit::SplitLayer;
use crate::unpack::BUF_SIZE;
use crate::{Image, Reference, Store};

/// A layer unpacked and verified against its diff ID, not yet visible.
#[derive(Debug)]
pub struct PulledLayer {
    chain_id: String,
    record: LayerRecord,
    layer: SplitLayer,
}

impl PulledLayer {
    /// Unpacked content size (what `docker images` sums).
    pub fn size(&self) -> u64 {
        self.record.size
    }
}

/// What recording a pulled image did.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub image: Image,
    /// The tag already pointed at this image: Docker's "Image is up to date".
    pub up_to_date: bool,
}

impl Store {
    /// OCI chain IDs of a layer stack given by diff IDs, bottom first.
    pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
        crate::digest::chain_ids(diff_ids)
    }

    /// Whether the layer with `chain_id` is in the store (a pull says "Already exists").
    pub fn has_layer(&self, chain_id: &str) -> Result<bool, Error> {
        let txn = self.db.begin_read()?;
        let layers = txn.open_table(LAYERS)?;
        let found = layers.get(chain_id)?.is_some();
        Ok(found)
    }

    /// Unpacks one layer from `input` (its blob as the registry sends it: gzip, zstd or plain),
    /// keeping its uncompressed tar as an index over the snapshot; fails unless the tar matches `diff_id`. Reads
    /// `input` to its end, so a caller hashing it sees every byte. Blocking: run it on a
    /// thread of its own.
    pub fn unpack_layer(
        &self,
        input: &mut dyn Read,
        diff_id: &str,
        parent: Option<&str>,
    ) -> Result<PulledLayer, Error> {
        let mut input = BufReader::with_capacity(BUF_SIZE, input);
        let compression = Compression::sniff(input.fill_buf()?)?;
        // The tar is kept as an index over the snapshot (tarsplit.rs), not as a second copy.
        let layer = {
            let mut tar = compression.reader(&mut input);
            self.unpack_split(&mut tar)?
        };
        // Bytes after the compressed stream are part of the blob the caller is hashing.
        io::copy(&mut input, &mut io::sink())?;
        if layer.diff_id != diff_id {
            return Err(Error::InvalidArchive(format!(
                "layer does not match its diff ID: expected {diff_id}, got {}",
                layer.diff_id
            )));
        }
        let chain = chain_id(parent, diff_id);
        Ok(PulledLayer {
            chain_id: chain,
            record: LayerRecord {
                diff_id: diff_id.to_string(),
                parent: parent.map(String::from),
                size: layer.size,
                tar_size: layer.tar_size,
            },
            layer,
        })
    }

    /// Makes a verified layer visible to later pulls (files, then its row).
    pub fn publish_layer(&self, layer: PulledLayer) -> Result<(), Error> {
        let _g = self.lock();
        self.publish_split(layer.layer, &layer.chain_id)?;
        let txn = self.db.begin_write()?;
        {
            let mut layers = txn.open_table(LAYERS)?;
            if layers.get(layer.chain_id.as_str())?.is_none() {
                layers.insert(layer.chain_id.as_str(), encode(&layer.record)?.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Records a pulled image in one transaction: its config, row, `tag` (if any),
    /// and `repo_digest` ("127.0.0.1:5000/app@sha256:…", full name; taken from any other image,
    /// since a digest names one image).
    /// Every layer must have been published; one removed meanwhile (a concurrent `rmi`) fails
    /// the pull rather than leave an image without files.
    pub fn record_pulled(
        &self,
        config_bytes: &[u8],
        tag: Option<&Reference>,
        repo_digest: Option<&str>,
    ) -> Result<Pulled, Error> {
        let config: oci_spec::image::ImageConfiguration = serde_json::from_slice(config_bytes)
            .map_err(|e| Error::InvalidArchive(format!("image config: {e}")))?;
        let chain_ids = Store::chain_ids(config.rootfs().diff_ids());
        let id = sha256_of(config_bytes);
        let created = config
            .created()
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0);
        let up_to_date;
        {
            let _g = self.lock();
            self.content.write_all(config_bytes)?;
            let txn = self.db.begin_write()?;
            {
                let layers = txn.open_table(LAYERS)?;
                let size = layers_size(&layers, &chain_ids, |chain| {
                    Error::Conflict(format!(
                        "layer {chain} was removed while the image was being pulled; pull it again"
                    ))
                })?;
                let mut images = txn.open_table(IMAGES)?;
                if let Some(d) = repo_digest {
                    let mut moved = Vec::new();
                    for item in images.iter()? {
                        let (k, v) = item?;
                        let mut rec: ImageRecord = decode("image record", v.value())?;
                        if k.value() != id && rec.repo_digests.iter().any(|x| x == d) {
                            rec.repo_digests.retain(|x| x != d);
                            moved.push((k.value().to_string(), rec));
                        }
                    }
                    for (other, rec) in moved {
                        images.insert(other.as_str(), encode(&rec)?.as_slice())?;
                    }
                }
                let existing = images
                    .get(id.as_str())?
                    .map(|v| decode::<ImageRecord>("image record", v.value()))
                    .transpose()?;
                let mut record = existing.unwrap_or(ImageRecord {
                    created,
                    chain_ids: chain_ids.clone(),
                    size,
                    repo_digests: Vec::new(),
                    parent: None,
                });
                if let Some(d) = repo_digest {
                    if !record.repo_digests.iter().any(|x| x == d) {
                        record.repo_digests.push(d.to_string());
                        record.repo_digests.sort();
                    }
                }
                images.insert(id.as_str(), encode(&record)?.as_slice())?;
                let mut tags = txn.open_table(TAGS)?;
                up_to_date = match tag {
                    Some(t) => {
                        let before = tags.get(t.full().as_str())?.map(|v| v.value() == id);
                        tags.insert(t.full().as_str(), id.as_str())?;
                        before == Some(true)
                    }
                    None => false,
                };
            }
            txn.commit()?;
        }
        let image = self.resolve(&id)?;
        Ok(Pulled { image, up_to_date })
    }
}
