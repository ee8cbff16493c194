//! `docker load`: images from an archive that `docker save` wrote (any version: the
//! `manifest.json` it always has names each image's config and layer tars), or from a bare
//! OCI image layout (`oci-layout`, `index.json`, `blobs/`) as Docker 25+ with the containerd
//! store, skopeo and buildah write it. In a layout, each entry of `index.json` is one image:
//! an index is narrowed to this host's platform (manifest.rs), and the entry's annotations
//! name it (Docker's rules, `manifest::image_name`); an unnamed one loads untagged.
//!
//! The archive is read once, member by member, and never extracted: its members come in any
//! order (Docker's layers before the manifest that names them), so every member that looks
//! like a layer (a tar, or gzip or zstd) is unpacked into a temp snapshot as it streams, its
//! tar kept as an index over that snapshot (tarsplit.rs), and hashed on the way; small
//! members (manifests, configs) are kept in memory. Then the manifests pick their layers by
//! member name: each is checked against the digest its descriptor names (layouts) and the
//! diff ID its config names, so nothing unverified is kept, and members no image uses are
//! dropped. The images are published only when every layer is in place: a bad archive leaves
//! the store unchanged, and what a crash leaves is removed by the next open's garbage
//! collection (temp snapshots and indexes included).

use std::collections::HashMap;
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use redb::{ReadableDatabase, ReadableTable};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::compression::{decompress, Compression};
use crate::digest::{chain_id, format_digest, hex_part, sha256_of};
use crate::error::Error;
use crate::images::{decode, encode, ImageRecord, LayerRecord, IMAGES, LAYERS, TAGS};
use crate::manifest::{self, media, Descriptor, Index};
use crate::platform::Matcher;
use crate::tarsplit::SplitLayer;
use crate::unpack::BUF_SIZE;
use crate::{Reference, Store};

/// One entry of Docker's `manifest.json`.
#[derive(Debug, Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
    /// The image this one was committed from, when the archive holds it too.
    #[serde(rename = "Parent", default)]
    parent: Option<String>,
}

/// An image the archive held: its ID and the references it was loaded under.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub id: String,
    pub tags: Vec<String>,
}

/// One image found in the archive, before anything is stored.
struct ToLoad {
    config_bytes: Vec<u8>,
    /// How errors name the config: its path in the archive.
    config_name: String,
    layers: Vec<LayerSource>,
    tags: Vec<Reference>,
    /// `Parent` from Docker's `manifest.json`.
    parent: Option<String>,
}

/// A layer unpacked and verified, not yet published.
struct FreshLayer {
    record: LayerRecord,
    layer: SplitLayer,
}

/// An image whose layers are all in place or fresh, ready to record.
struct Prepared {
    id: String,
    config_bytes: Vec<u8>,
    record: ImageRecord,
    tags: Vec<Reference>,
}

/// One layer an image names.
struct LayerSource {
    /// How errors name it: its path in the archive, or its digest in a layout.
    name: String,
    /// The archive member holding it.
    key: PathBuf,
    /// The descriptor the blob must match (digest and size of the bytes as stored,
    /// compressed or not); none in Docker's format, whose layers are named by path only.
    descriptor: Option<Descriptor>,
}

/// JSON blobs (manifests, indexes, configs) are read whole; a bigger one is hostile.
const MAX_JSON_BLOB: u64 = 32 << 20;
/// All small members kept in memory together; an archive needing more is refused.
const MAX_SMALL_TOTAL: u64 = 512 << 20;

/// What one regular member of the archive turned out to be.
enum Member {
    /// Not a layer by its first bytes, and small: kept (JSON, or a tiny layer such as the
    /// 1024 zero bytes of an empty tar).
    Small(Vec<u8>),
    /// Unpacked as it streamed; `stored` is the digest and size of its bytes as stored.
    Layer {
        layer: SplitLayer,
        stored: (String, u64),
    },
    /// Its layer went to the image at this chain (a second chain unpacks it again from there).
    Used {
        chain: String,
        stored: (String, u64),
        diff_id: String,
    },
    /// Looked like a layer but is not one; an error only if an image uses it.
    Failed(String),
    /// Neither a layer nor small enough to keep.
    Big,
}

/// The archive as read: its members by normalised path, and its symlinks (Docker links a
/// layer repeated in the archive to its first copy).
#[derive(Default)]
struct Archive {
    members: HashMap<PathBuf, Member>,
    links: HashMap<PathBuf, PathBuf>,
}

impl Archive {
    fn has(&self, name: &str) -> bool {
        self.members.contains_key(Path::new(name))
    }

    /// The member a manifest names, following an in-archive link at most once.
    fn key(&self, name: &str) -> Result<PathBuf, Error> {
        let rel = relative(Path::new(name))
            .ok_or_else(|| Error::InvalidArchive(format!("unsafe path in manifest: {name}")))?;
        Ok(self.links.get(&rel).cloned().unwrap_or(rel))
    }

    /// A small member's bytes (JSON metadata).
    fn small(&self, key: &Path, name: &str) -> Result<Vec<u8>, Error> {
        match self.members.get(key) {
            Some(Member::Small(b)) => Ok(b.clone()),
            Some(_) => Err(Error::InvalidArchive(format!(
                "{name} is too big or not JSON"
            ))),
            None => Err(Error::InvalidArchive(format!(
                "{name} is missing from the archive"
            ))),
        }
    }
}

impl Store {
    /// Loads every image of a save archive or OCI layout (plain, gzip'd or zstd'd tar).
    pub fn load_archive(&self, input: &mut dyn Read) -> Result<Vec<LoadedImage>, Error> {
        let mut archive = self.read_archive(&mut decompress(input)?)?;
        let images = if archive.has("manifest.json") {
            docker_images(&archive)?
        } else if archive.has("index.json") {
            oci_images(&archive, &Matcher::host())?
        } else {
            return Err(Error::InvalidArchive(
                "no manifest.json or index.json in the archive (was it made by docker save?)"
                    .into(),
            ));
        };
        // Every image is checked before any is published: a bad image anywhere in the
        // archive leaves the store as it was.
        let mut unpacked_here = HashMap::new();
        let mut prepared = Vec::new();
        for image in &images {
            prepared.push(self.prepare_image(image, &mut archive, &mut unpacked_here)?);
        }
        link_parents(&images, &mut prepared)?;
        drop(archive); // unused layers go before the publish takes the lock
        self.publish(prepared, unpacked_here)
    }

    /// Reads the whole archive, unpacking layer-looking members as they come.
    fn read_archive(&self, input: &mut dyn Read) -> Result<Archive, Error> {
        let bad = |what: String| Error::InvalidArchive(what);
        let mut archive = Archive::default();
        let mut small_total = 0u64;
        let mut outer = tar::Archive::new(crate::CappedTar::new(input));
        for entry in outer
            .entries()
            .map_err(|e| bad(format!("reading archive: {e}")))?
        {
            let mut entry = entry.map_err(|e| bad(format!("reading archive: {e}")))?;
            let name = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
            let rel = relative(&name)
                .ok_or_else(|| bad(format!("unsafe path in archive: {}", name.display())))?;
            if rel.as_os_str().is_empty() {
                continue;
            }
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.size();
                    let member = self.read_member(&mut entry, size, &rel)?;
                    if let Member::Small(b) = &member {
                        small_total += b.len() as u64;
                        if small_total > MAX_SMALL_TOTAL {
                            return Err(bad("the archive holds too much metadata".into()));
                        }
                    }
                    archive.links.remove(&rel);
                    archive.members.insert(rel, member);
                }
                tar::EntryType::Symlink => {
                    let link = entry
                        .link_name()
                        .map_err(|e| bad(e.to_string()))?
                        .unwrap_or_default()
                        .into_owned();
                    let resolved = relative(&rel.parent().unwrap_or(Path::new("")).join(&link))
                        .filter(|_| !link.is_absolute())
                        .ok_or_else(|| {
                            bad(format!(
                                "link out of the archive: {} -> {}",
                                name.display(),
                                link.display()
                            ))
                        })?;
                    archive.members.remove(&rel);
                    archive.links.insert(rel, resolved);
                }
                // Nothing else belongs in a save archive; skipped.
                _ => {}
            }
        }
        Ok(archive)
    }

    /// Reads one member: a layer (by its first bytes) is unpacked as it streams.
    fn read_member(&self, entry: &mut dyn Read, size: u64, rel: &Path) -> Result<Member, Error> {
        let mut head = Vec::with_capacity(512);
        entry
            .take(512)
            .read_to_end(&mut head)
            .map_err(|e| Error::InvalidArchive(format!("reading archive: {e}")))?;
        let compression = Compression::sniff(&head).ok();
        let plain_tar = head.len() == 512 && is_tar_header(&head);
        let mut rest = Cursor::new(head).chain(entry);
        if plain_tar || matches!(compression, Some(Compression::Gzip | Compression::Zstd)) {
            let result = if plain_tar {
                self.unpack_split(&mut rest).map(|layer| {
                    let stored = (layer.diff_id.clone(), layer.tar_size);
                    Member::Layer { layer, stored }
                })
            } else {
                self.unpack_stored(&mut rest, compression.unwrap_or(Compression::None))
            };
            return match result {
                Ok(m) => Ok(m),
                Err(Error::InvalidArchive(e)) => {
                    // The rest of the member is skipped by the outer reader.
                    tracing::debug!(member = %rel.display(), error = %e, "member is no layer");
                    Ok(Member::Failed(e))
                }
                Err(e) => Err(e),
            };
        }
        if size > MAX_JSON_BLOB {
            io::copy(&mut rest, &mut io::sink())
                .map_err(|e| Error::InvalidArchive(format!("reading archive: {e}")))?;
            return Ok(Member::Big);
        }
        let mut bytes = Vec::new();
        rest.read_to_end(&mut bytes)
            .map_err(|e| Error::InvalidArchive(format!("reading archive: {e}")))?;
        Ok(Member::Small(bytes))
    }

    /// Unpacks a stored layer blob (compressed or not), hashing the stored bytes too.
    fn unpack_stored(
        &self,
        input: &mut dyn Read,
        compression: Compression,
    ) -> Result<Member, Error> {
        let mut stored = HashingReader {
            inner: input,
            hasher: Sha256::new(),
            size: 0,
        };
        let layer = {
            let mut tar = compression.reader(BufReader::with_capacity(BUF_SIZE, &mut stored));
            self.unpack_split(&mut tar)?
        };
        // Bytes after the compressed stream are part of the blob its digest covers.
        io::copy(&mut stored, &mut io::sink()).map_err(|e| Error::InvalidArchive(e.to_string()))?;
        let digest = format_digest(stored.hasher.finalize().as_slice());
        Ok(Member::Layer {
            layer,
            stored: (digest, stored.size),
        })
    }

    /// Unpacks and verifies the layers of `image` that neither the store nor this load
    /// (`unpacked_here`, by chain ID) has yet.
    fn prepare_image(
        &self,
        image: &ToLoad,
        archive: &mut Archive,
        unpacked_here: &mut HashMap<String, FreshLayer>,
    ) -> Result<Prepared, Error> {
        let config: ImageConfiguration =
            serde_json::from_slice(&image.config_bytes).map_err(|e| {
                Error::InvalidArchive(format!("image config {}: {e}", image.config_name))
            })?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != image.layers.len() {
            return Err(Error::InvalidArchive(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                diff_ids.len(),
                image.layers.len()
            )));
        }

        let mut parent: Option<String> = None;
        let mut chain_ids = Vec::new();
        let mut size = 0;
        for (diff_id, source) in diff_ids.iter().zip(&image.layers) {
            let chain = chain_id(parent.as_deref(), diff_id);
            let in_place = match unpacked_here.get(&chain) {
                Some(fresh) => Some(fresh.record.size),
                None => self.layer_record(&chain)?.map(|r| r.size),
            };
            // Checked even when the layer is in place: the archive must be what it claims.
            let layer = self.layer_for(
                archive,
                source,
                diff_id,
                &chain,
                in_place.is_none(),
                unpacked_here,
            )?;
            if let Some(s) = in_place {
                size += s;
            } else if let Some(layer) = layer {
                let record = LayerRecord {
                    diff_id: diff_id.to_string(),
                    parent: parent.clone(),
                    size: layer.size,
                    tar_size: layer.tar_size,
                };
                size += record.size;
                unpacked_here.insert(chain.clone(), FreshLayer { record, layer });
            }
            parent = Some(chain.clone());
            chain_ids.push(chain);
        }
        let created = config
            .created()
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0);
        Ok(Prepared {
            id: sha256_of(&image.config_bytes),
            config_bytes: image.config_bytes.clone(),
            record: ImageRecord {
                created,
                chain_ids,
                size,
                repo_digests: Vec::new(),
                parent: None,
            },
            tags: image.tags.clone(),
        })
    }

    /// Checks the member `source` names against its descriptor and `diff_id`; when `needed`,
    /// hands out its unpacked layer for `chain` (unpacking it again if another chain took it).
    fn layer_for(
        &self,
        archive: &mut Archive,
        source: &LayerSource,
        diff_id: &str,
        chain: &str,
        needed: bool,
        unpacked_here: &HashMap<String, FreshLayer>,
    ) -> Result<Option<SplitLayer>, Error> {
        let name = &source.name;
        if let Some(Member::Small(bytes)) = archive.members.get(&source.key) {
            // A small layer (an empty tar is 1024 bytes) was kept as bytes: unpack it now.
            let bytes = bytes.clone();
            let compression = Compression::sniff(&bytes)?;
            let member = match self.unpack_stored(&mut bytes.as_slice(), compression) {
                Ok(m) => m,
                Err(Error::InvalidArchive(e)) => Member::Failed(e),
                Err(e) => return Err(e),
            };
            archive.members.insert(source.key.clone(), member);
        }
        let (stored, got_diff) = match archive.members.get(&source.key) {
            None => {
                return Err(Error::InvalidArchive(format!(
                    "layer {name} is missing from the archive"
                )))
            }
            Some(Member::Failed(e)) => {
                return Err(Error::InvalidArchive(format!("layer {name}: {e}")))
            }
            Some(Member::Big | Member::Small(_)) => {
                return Err(Error::InvalidArchive(format!(
                    "layer {name} is not a tar archive"
                )))
            }
            Some(Member::Layer { layer, stored }) => (stored.clone(), layer.diff_id.clone()),
            Some(Member::Used {
                stored, diff_id, ..
            }) => (stored.clone(), diff_id.clone()),
        };
        if let Some(want) = &source.descriptor {
            if stored.0 != want.digest || stored.1 != want.size {
                return Err(Error::InvalidArchive(format!(
                    "layer {name} does not match its descriptor: expected {} ({} bytes), got {} ({} bytes)",
                    want.digest, want.size, stored.0, stored.1
                )));
            }
        }
        if got_diff != diff_id {
            return Err(Error::InvalidArchive(format!(
                "layer {name} does not match its diff ID: expected {diff_id}, got {got_diff}"
            )));
        }
        if !needed {
            return Ok(None);
        }
        if let Some(Member::Used { chain: first, .. }) = archive.members.get(&source.key) {
            // The same member at another position (another chain): same content, but a
            // snapshot belongs to one chain, so it is unpacked once more, from the first.
            let from = unpacked_here.get(first).ok_or_else(|| {
                Error::Corrupt(format!("layer {name} went missing during the load"))
            })?;
            return Ok(Some(self.unpack_split(&mut from.layer.reader()?)?));
        }
        let used = Member::Used {
            chain: chain.to_string(),
            stored,
            diff_id: got_diff,
        };
        match archive.members.insert(source.key.clone(), used) {
            Some(Member::Layer { layer, .. }) => Ok(Some(layer)),
            _ => Err(Error::Corrupt(format!(
                "layer {name} went missing during the load"
            ))),
        }
    }

    /// Publishes the fresh layers' files, then records every image in one transaction.
    fn publish(
        &self,
        images: Vec<Prepared>,
        fresh: HashMap<String, FreshLayer>,
    ) -> Result<Vec<LoadedImage>, Error> {
        let _g = self.lock();
        let mut layer_rows = Vec::new();
        for (chain, fresh) in fresh {
            self.publish_split(fresh.layer, &chain)?;
            layer_rows.push((chain, fresh.record));
        }
        for image in &images {
            self.content.write_all(&image.config_bytes)?;
        }
        let txn = self.db.begin_write()?;
        {
            let mut layers = txn.open_table(LAYERS)?;
            for (chain, layer) in &layer_rows {
                if layers.get(chain.as_str())?.is_none() {
                    layers.insert(chain.as_str(), encode(layer)?.as_slice())?;
                }
            }
            // A layer found in the store at prepare time may have gone with a concurrent
            // `rmi` since; recording an image on it would leave the image without its files.
            for image in &images {
                for chain in &image.record.chain_ids {
                    if layers.get(chain.as_str())?.is_none() {
                        return Err(Error::Conflict(format!(
                            "layer {chain} was removed while the image was loading; load it again"
                        )));
                    }
                }
            }
            let mut table = txn.open_table(IMAGES)?;
            let mut tags = txn.open_table(TAGS)?;
            for image in &images {
                // An image loaded again keeps its parent, as Docker keeps it beside the image.
                let old: Option<ImageRecord> = table
                    .get(image.id.as_str())?
                    .map(|v| decode("image record", v.value()))
                    .transpose()?;
                let mut record = image.record.clone();
                if record.parent.is_none() {
                    record.parent = old.and_then(|o| o.parent);
                }
                table.insert(image.id.as_str(), encode(&record)?.as_slice())?;
                for t in &image.tags {
                    tags.insert(t.full().as_str(), image.id.as_str())?;
                }
            }
        }
        txn.commit()?;
        Ok(images
            .into_iter()
            .map(|i| LoadedImage {
                id: i.id,
                tags: i.tags.iter().map(|t| t.familiar()).collect(),
            })
            .collect())
    }

    fn layer_record(&self, chain: &str) -> Result<Option<LayerRecord>, Error> {
        let txn = self.db.begin_read()?;
        let layers = txn.open_table(LAYERS)?;
        let found = layers.get(chain)?;
        found
            .map(|v| decode::<LayerRecord>("layer record", v.value()))
            .transpose()
    }
}

/// The images Docker's `manifest.json` lists.
fn docker_images(archive: &Archive) -> Result<Vec<ToLoad>, Error> {
    let manifest = archive.small(Path::new("manifest.json"), "manifest.json")?;
    let entries: Vec<ManifestEntry> = serde_json::from_slice(&manifest)
        .map_err(|e| Error::InvalidArchive(format!("manifest.json: {e}")))?;
    entries
        .into_iter()
        .map(|entry| {
            let config_bytes = archive.small(&archive.key(&entry.config)?, &entry.config)?;
            let tags = entry
                .repo_tags
                .iter()
                .flatten()
                .map(|t| Reference::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            let layers = entry
                .layers
                .iter()
                .map(|l| {
                    Ok(LayerSource {
                        name: l.clone(),
                        key: archive.key(l)?,
                        descriptor: None,
                    })
                })
                .collect::<Result<_, Error>>()?;
            Ok(ToLoad {
                config_bytes,
                config_name: entry.config,
                layers,
                tags,
                parent: entry.parent,
            })
        })
        .collect()
}

/// Records each `Parent` of `manifest.json` as moby's loader does: only a parent loaded from
/// the same archive counts, and it must be the image the child was committed from (its
/// history one entry shorter and otherwise the same), else the whole load fails.
fn link_parents(images: &[ToLoad], prepared: &mut [Prepared]) -> Result<(), Error> {
    let history = |p: &Prepared| {
        serde_json::from_slice::<serde_json::Value>(&p.config_bytes)
            .ok()
            .and_then(|c| c.get("history").and_then(|h| h.as_array().cloned()))
            .unwrap_or_default()
    };
    for i in 0..prepared.len() {
        let Some(parent_id) = images[i].parent.as_deref() else {
            continue;
        };
        let Some(parent) = prepared
            .iter()
            .find(|p| p.id == parent_id && p.id != prepared[i].id)
        else {
            continue;
        };
        let (child_history, parent_history) = (history(&prepared[i]), history(parent));
        let valid = (child_history.is_empty() && parent_history.is_empty())
            || (child_history.len() == parent_history.len() + 1
                && child_history.starts_with(&parent_history));
        if !valid {
            return Err(Error::InvalidArchive(format!(
                "image {parent_id} is not a valid parent for {}",
                prepared[i].id
            )));
        }
        prepared[i].record.parent = Some(parent_id.to_string());
    }
    Ok(())
}

/// The images an OCI layout's `index.json` lists, each narrowed to one manifest for `matcher`.
fn oci_images(archive: &Archive, matcher: &Matcher) -> Result<Vec<ToLoad>, Error> {
    let index_bytes = archive.small(Path::new("index.json"), "index.json")?;
    let index: Index = match manifest::parse(&index_bytes, media::OCI_INDEX)? {
        manifest::Document::Index(i) => i,
        manifest::Document::Manifest(_) => {
            return Err(Error::InvalidArchive(
                "index.json is not an image index".into(),
            ))
        }
    };
    let mut fetch = |d: &Descriptor| -> Result<Vec<u8>, Error> {
        if d.size > MAX_JSON_BLOB {
            return Err(Error::InvalidArchive(format!(
                "{}: {} bytes is too big for a manifest or config",
                d.digest, d.size
            )));
        }
        archive.small(&blob_member(archive, &d.digest)?, &d.digest)
    };
    let mut out = Vec::new();
    for entry in index
        .manifests
        .iter()
        .filter(|d| manifest::is_manifest_or_index(&d.media_type))
    {
        let tags = match manifest::image_name(&entry.annotations) {
            // A name Docker cannot parse leaves the image untagged rather than failing the load.
            Some(name) => match Reference::parse(name) {
                Ok(r) if r.digest().is_none() => vec![r],
                _ => {
                    tracing::warn!(name, "load: ignoring an image name that is not a valid tag");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let (_, m) = manifest::select_manifest(&mut fetch, entry, matcher)?;
        if !matches!(
            m.config.media_type.as_str(),
            media::OCI_CONFIG | media::DOCKER_CONFIG | ""
        ) {
            return Err(Error::InvalidArchive(format!(
                "{} is not a container image (config media type {})",
                entry.digest, m.config.media_type
            )));
        }
        let config_bytes = manifest::fetch_verified(&mut fetch, &m.config)?;
        let layers = m
            .layers
            .iter()
            .map(|l| {
                Compression::check_layer_media_type(&l.media_type)?;
                Ok(LayerSource {
                    name: l.digest.clone(),
                    key: blob_member(archive, &l.digest)?,
                    descriptor: Some(l.clone()),
                })
            })
            .collect::<Result<_, Error>>()?;
        out.push(ToLoad {
            config_bytes,
            config_name: m.config.digest.clone(),
            layers,
            tags,
            parent: None,
        });
    }
    if out.is_empty() {
        return Err(Error::InvalidArchive("index.json lists no image".into()));
    }
    Ok(out)
}

/// The file of blob `digest` in a layout; it must be there (we never fetch).
fn blob_member(archive: &Archive, digest: &str) -> Result<PathBuf, Error> {
    let hex = hex_part(digest).ok_or_else(|| {
        Error::InvalidArchive(format!("unsupported or malformed digest {digest:?}"))
    })?;
    let path = archive.key(&format!("blobs/sha256/{hex}"))?;
    if !archive.members.contains_key(&path) {
        return Err(Error::InvalidArchive(format!(
            "blob {digest} is missing from the archive"
        )));
    }
    Ok(path)
}

/// Whether `block` is a tar header (its checksum holds), as a plain layer starts.
fn is_tar_header(block: &[u8]) -> bool {
    if block.iter().all(|&b| b == 0) {
        return false;
    }
    let h = tar::Header::from_byte_slice(block);
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * 32;
    h.cksum().ok() == Some(sum)
}

/// Hashes and counts the bytes of a blob as they are read.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    size: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// `name` without `.` components, if it stays inside (no `..` above its start, not absolute).
fn relative(name: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::host_platform;
    use crate::testutil::{count, image_config, require_root, temp_store as store, TarBuf};
    use serde_json::json;
    use std::sync::Arc;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut e, data).unwrap();
        e.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    /// An OCI image layout being written into a tar.
    struct Layout {
        tar: tar::Builder<Vec<u8>>,
    }

    impl Layout {
        fn new() -> Layout {
            let mut l = Layout {
                tar: tar::Builder::new(Vec::new()),
            };
            l.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
            l
        }
        fn file(&mut self, path: &str, data: &[u8]) {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            self.tar.append_data(&mut h, path, data).unwrap();
        }
        fn blob(&mut self, media_type: &str, data: &[u8]) -> serde_json::Value {
            let d = sha256_of(data);
            self.file(&format!("blobs/sha256/{}", hex_part(&d).unwrap()), data);
            json!({"mediaType": media_type, "digest": d, "size": data.len()})
        }
        /// An image whose layers are `(media type, stored bytes, uncompressed tar)`.
        fn image(
            &mut self,
            arch: &str,
            layers: &[(&str, Vec<u8>, Vec<u8>)],
        ) -> (serde_json::Value, String) {
            let diff_ids: Vec<String> = layers.iter().map(|(_, _, tar)| sha256_of(tar)).collect();
            let mut config = image_config(arch, &diff_ids);
            config["config"] = json!({"Cmd": ["/bin/sh"]});
            let config = serde_json::to_vec(&config).unwrap();
            let config_desc = self.blob(media::OCI_CONFIG, &config);
            let layer_descs: Vec<_> = layers
                .iter()
                .map(|(mt, bytes, _)| self.blob(mt, bytes))
                .collect();
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
                "config": config_desc, "layers": layer_descs,
            }))
            .unwrap();
            (
                self.blob(media::OCI_MANIFEST, &manifest),
                sha256_of(&config),
            )
        }
        fn finish(mut self, entries: Vec<serde_json::Value>) -> Vec<u8> {
            let index =
                json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": entries});
            self.file("index.json", &serde_json::to_vec(&index).unwrap());
            self.tar.into_inner().unwrap()
        }
    }

    fn two_layers() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
        let mut base = TarBuf::new();
        base.dir("etc/")
            .file("etc/hostname", b"base")
            .file("etc/gone", b"x");
        let base = base.finish();
        let mut top = TarBuf::new();
        top.file("etc/.wh.gone", b"")
            .file("etc/motd", b"zstd layer");
        let top = top.finish();
        vec![
            (media::OCI_LAYER_GZIP, gzip(&base), base),
            (media::OCI_LAYER_ZSTD, zstd(&top), top),
        ]
    }

    /// A `docker save` archive of images over the two_layers() tars (`base/layer.tar`,
    /// `top/layer.tar`): per image, `(name, its config's diff IDs, its layer members)`,
    /// tagged `name:1`.
    fn docker_archive(images: &[(&str, Vec<String>, &[&str])]) -> Vec<u8> {
        let mut l = Layout::new();
        l.file("base/layer.tar", &two_layers()[0].2);
        l.file("top/layer.tar", &two_layers()[1].2);
        let mut manifest = Vec::new();
        for (name, diff_ids, members) in images {
            let config = serde_json::to_vec(&image_config("amd64", diff_ids)).unwrap();
            l.file(&format!("{name}.json"), &config);
            manifest.push(json!({
                "Config": format!("{name}.json"), "RepoTags": [format!("{name}:1")], "Layers": members,
            }));
        }
        l.file("manifest.json", &serde_json::to_vec(&manifest).unwrap());
        l.tar.into_inner().unwrap()
    }

    fn annotated(mut desc: serde_json::Value, annotations: serde_json::Value) -> serde_json::Value {
        desc["annotations"] = annotations;
        desc
    }

    #[test]
    fn loads_an_oci_layout_with_zstd_and_gzip_layers_from_a_two_platform_index() {
        if !require_root("loads_an_oci_layout_with_zstd_and_gzip_layers_from_a_two_platform_index")
        {
            return;
        }
        let host = host_platform();
        let foreign = if host.architecture == "s390x" {
            "riscv64"
        } else {
            "s390x"
        };
        let mut l = Layout::new();
        let (ours, id) = l.image(&host.architecture, &two_layers());
        // The other platform's layer is not in the archive: it must never be read.
        let (mut theirs, _) = l.image(foreign, &[]);
        theirs["platform"] = json!({"os": "linux", "architecture": foreign});
        let mut ours_p = ours.clone();
        ours_p["platform"] =
            json!({"os": "linux", "architecture": host.architecture, "variant": host.variant});
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [theirs, ours_p],
        }))
        .unwrap();
        let index_desc = l.blob(media::OCI_INDEX, &index);
        let archive = l.finish(vec![annotated(
            index_desc,
            json!({manifest::ANNOTATION_IMAGE_NAME: "docker.io/library/multi:1", manifest::ANNOTATION_REF_NAME: "1"}),
        )]);

        let (_d, s) = store();
        let loaded = s.load_archive(&mut archive.as_slice()).unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].id, id);
        assert_eq!(loaded[0].tags, vec!["multi:1".to_string()]);
        let image = s.resolve("multi:1").unwrap();
        let dirs = s.layer_dirs(&image).unwrap();
        assert_eq!(
            std::fs::read(dirs[0].1.join("etc/hostname")).unwrap(),
            b"base"
        );
        assert_eq!(
            std::fs::read(dirs[1].1.join("etc/motd")).unwrap(),
            b"zstd layer"
        );
        // Layers read back uncompressed, byte for byte, under their diff IDs, as save
        // expects them, from indexes over the snapshots (no second copy of the tar).
        for (diff_id, (_, _, tar)) in image.config.rootfs().diff_ids().iter().zip(two_layers()) {
            let mut got = Vec::new();
            s.layer_tar(diff_id).unwrap().read_to_end(&mut got).unwrap();
            assert_eq!(got, tar);
            assert!(!s.content.path(diff_id).unwrap().exists());
            assert!(s.indexes.path(diff_id).unwrap().exists());
        }
        // Loading again finds everything in place.
        assert_eq!(
            s.load_archive(&mut zstd(&archive).as_slice()).unwrap()[0].id,
            id
        );
    }

    #[test]
    fn names_follow_the_annotations_and_bare_tags_load_untagged() {
        if !require_root("names_follow_the_annotations_and_bare_tags_load_untagged") {
            return;
        }
        let mut l = Layout::new();
        let (m, id) = l.image(&host_platform().architecture, &two_layers());
        let archive = l.finish(vec![
            annotated(m.clone(), json!({manifest::ANNOTATION_REF_NAME: "latest"})),
            annotated(
                m.clone(),
                json!({manifest::ANNOTATION_REF_NAME: "example.com/app:v2"}),
            ),
            m,
        ]);
        let (_d, s) = store();
        let loaded = s.load_archive(&mut archive.as_slice()).unwrap();
        let tags: Vec<_> = loaded
            .iter()
            .map(|i| (i.id.as_str(), i.tags.clone()))
            .collect();
        assert_eq!(
            tags,
            vec![
                (id.as_str(), vec![]),
                (id.as_str(), vec!["example.com/app:v2".to_string()]),
                (id.as_str(), vec![])
            ]
        );
    }

    #[test]
    fn a_tampered_or_incomplete_layout_is_refused_and_leaves_nothing() {
        if !require_root("a_tampered_or_incomplete_layout_is_refused_and_leaves_nothing") {
            return;
        }
        let host = host_platform().architecture;
        let layers = two_layers();
        let check = |archive: Vec<u8>, want: &str| {
            let (d, s) = store();
            let err = s.load_archive(&mut archive.as_slice()).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
            assert_eq!(count(&d.path().join("root/snapshots")), 0);
            assert_eq!(count(&d.path().join("root/blobs/sha256")), 0);
            assert!(s.list().unwrap().is_empty());
        };

        // A layer blob whose bytes are not the ones its descriptor names.
        let mut l = Layout::new();
        let (m, _) = l.image(&host, &layers);
        let mut other = TarBuf::new();
        other.file("etc/motd", b"swapped");
        let good_digest = sha256_of(&layers[1].1);
        l.file(
            &format!("blobs/sha256/{}", hex_part(&good_digest).unwrap()),
            &zstd(&other.finish()),
        );
        check(l.finish(vec![m]), "does not match its descriptor");

        // A config naming the wrong diff ID.
        let mut l = Layout::new();
        let mut wrong = layers.clone();
        wrong[0].2 = b"other".to_vec();
        let (m, _) = l.image(&host, &wrong);
        check(l.finish(vec![m]), "does not match its diff ID");

        // A missing blob; an index without this platform; a non-image artifact.
        let mut l = Layout::new();
        let (m, _) = l.image(&host, &[]);
        let mut missing = m.clone();
        missing["digest"] = json!(sha256_of(b"elsewhere"));
        check(l.finish(vec![missing]), "is missing from the archive");
        let mut l = Layout::new();
        let (mut m, _) = l.image("s390x", &[]);
        m["platform"] = json!({"os": "windows", "architecture": "amd64"});
        let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [m]})).unwrap();
        let desc = l.blob(media::OCI_INDEX, &index);
        let digest = desc["digest"].as_str().unwrap().to_string();
        check(
            l.finish(vec![desc]),
            &format!("no match for platform in manifest {digest}: not found"),
        );
        let mut l = Layout::new();
        let cfg = l.blob("application/vnd.cncf.helm.config.v1+json", b"{}");
        let manifest =
            serde_json::to_vec(&json!({"schemaVersion": 2, "config": cfg, "layers": []})).unwrap();
        let m = l.blob(media::OCI_MANIFEST, &manifest);
        check(l.finish(vec![m]), "is not a container image");
        // Neither format.
        let mut l = Layout::new();
        l.file("hello", b"x");
        check(
            l.tar.into_inner().unwrap(),
            "no manifest.json or index.json",
        );
    }

    #[test]
    fn one_bad_image_in_an_archive_stores_none_of_them() {
        if !require_root("one_bad_image_in_an_archive_stores_none_of_them") {
            return;
        }
        let base = sha256_of(&two_layers()[0].2);
        let archive = docker_archive(&[
            ("good", vec![base.clone()], &["base/layer.tar"]),
            // The second image claims the wrong diff ID for its top layer.
            (
                "bad",
                vec![base, sha256_of(b"other")],
                &["base/layer.tar", "top/layer.tar"],
            ),
        ]);
        let (d, s) = store();
        let err = s.load_archive(&mut archive.as_slice()).unwrap_err();
        assert!(
            err.to_string().contains("does not match its diff ID"),
            "{err}"
        );
        assert!(s.list().unwrap().is_empty());
        assert_eq!(count(&d.path().join("root/snapshots")), 0);
        assert_eq!(count(&d.path().join("root/blobs/sha256")), 0);
    }

    #[test]
    fn one_member_at_two_positions_is_unpacked_for_each() {
        if !require_root("one_member_at_two_positions_is_unpacked_for_each") {
            return;
        }
        let (base, top) = (two_layers()[0].2.clone(), two_layers()[1].2.clone());
        let archive = docker_archive(&[
            ("one", vec![sha256_of(&base)], &["base/layer.tar"]),
            // The same base member again, now above another layer: another chain, another
            // snapshot.
            (
                "two",
                vec![sha256_of(&top), sha256_of(&base)],
                &["top/layer.tar", "base/layer.tar"],
            ),
        ]);
        let (_d, s) = store();
        assert_eq!(s.load_archive(&mut archive.as_slice()).unwrap().len(), 2);
        let two = s.resolve("two:1").unwrap();
        let dirs = s.layer_dirs(&two).unwrap();
        assert_eq!(
            std::fs::read(dirs[1].1.join("etc/hostname")).unwrap(),
            b"base"
        );
        let one = s.resolve("one:1").unwrap();
        assert_ne!(s.layer_dirs(&one).unwrap()[0].1, dirs[1].1);
        // Either snapshot rebuilds the tar; removing one image keeps the other's readable.
        s.delete(&one.id).unwrap();
        let mut got = Vec::new();
        s.layer_tar(&sha256_of(&base))
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, base);
    }

    #[test]
    fn open_collects_what_any_interrupted_operation_leaves() {
        if !require_root("open_collects_what_any_interrupted_operation_leaves") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let db = Arc::new(redb::Database::create(dir.path().join("meta.redb")).unwrap());
        let mut l = Layout::new();
        let (m, id) = l.image(&host_platform().architecture, &two_layers());
        let archive = l.finish(vec![annotated(
            m,
            json!({manifest::ANNOTATION_IMAGE_NAME: "keep:1"}),
        )]);
        // Every blob, snapshot and layer index under the root, sorted.
        let contents = || {
            let mut names: Vec<_> = ["blobs/sha256", "snapshots", "layer-index"]
                .iter()
                .flat_map(|d| {
                    std::fs::read_dir(root.join(d))
                        .unwrap()
                        .map(|e| e.unwrap().path())
                })
                .collect();
            names.sort();
            names
        };
        let before = {
            let s = Store::open(&root, db.clone()).unwrap();
            s.load_archive(&mut archive.as_slice()).unwrap();
            contents()
        };
        let blobs = root.join("blobs/sha256");
        let snaps = root.join("snapshots");
        let orphan = sha256_of(b"orphan layer");
        // load: its extraction dir and a half-unpacked layer; any write: a temp blob.
        std::fs::create_dir_all(snaps.join(".tmp-snap-1-2-3/blobs/sha256")).unwrap();
        std::fs::write(snaps.join(".tmp-snap-1-2-3/index.json"), b"{}").unwrap();
        std::fs::create_dir_all(snaps.join(".tmp-snap-4-5-6/etc")).unwrap();
        std::fs::write(blobs.join(".tmp-blob-7-8-9"), b"partial").unwrap();
        // An index written but not published, and one whose layer never got recorded.
        std::fs::write(root.join("layer-index/.tmp-index-1-2-3"), b"partial").unwrap();
        std::fs::write(
            root.join("layer-index").join(hex_part(&orphan).unwrap()),
            b"BTSPLIT1",
        )
        .unwrap();
        // delete: a detached snapshot not yet removed.
        std::fs::create_dir_all(snaps.join(".tmp-del-1-2-3/usr")).unwrap();
        // A layer published (blob, snapshot, row) whose image record never committed.
        std::fs::write(blobs.join(hex_part(&orphan).unwrap()), b"orphan layer").unwrap();
        std::fs::create_dir_all(snaps.join(hex_part(&orphan).unwrap())).unwrap();
        {
            let txn = db.begin_write().unwrap();
            let rec = LayerRecord {
                diff_id: orphan.clone(),
                parent: None,
                size: 12,
                tar_size: 12,
            };
            txn.open_table(LAYERS)
                .unwrap()
                .insert(orphan.as_str(), encode(&rec).unwrap().as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        // Things that are no blob or snapshot at all.
        std::fs::write(blobs.join("not-a-digest"), b"?").unwrap();
        std::fs::write(snaps.join("stray-file"), b"?").unwrap();

        let s = Store::open(&root, db.clone()).unwrap();
        assert_eq!(contents(), before);
        assert!(s.layer_record(&orphan).unwrap().is_none());
        assert_eq!(s.resolve("keep:1").unwrap().id, id);
    }
}
