//! Image records in redb, and the image operations: import, resolve, list, tag, untag, delete.
//!
//! Tables (all owned by the store, prefixed so they can share the daemon's database):
//! - `images_v1`: image id → ImageRecord (JSON);
//! - `images_tags_v1`: full reference ("docker.io/library/busybox:latest") → image id;
//! - `layers_v1`: chain id → LayerRecord (JSON); one row per unpacked snapshot.
//! - `images_removed_v1`: image id → RemovedRecord (JSON), images deleted while stopped
//!   containers use them, kept for those containers only.
//!
//! A layer row stays while an image, a removed image or a lease (a save or push reading it)
//! uses it; when the last goes its files go too.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use oci_spec::image::{
    Arch, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, Os, RootFsBuilder,
};
use redb::{ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::digest::{is_lower_hex, sha256_of, SHA256_PREFIX};
use crate::error::Error;
use crate::{Image, ImportOptions, Reference, Store};

pub(crate) const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images_v1");
pub(crate) const TAGS: TableDefinition<&str, &str> = TableDefinition::new("images_tags_v1");
pub(crate) const LAYERS: TableDefinition<&str, &[u8]> = TableDefinition::new("layers_v1");
/// Images deleted while stopped containers still use them: image id → RemovedRecord (JSON).
const REMOVED: TableDefinition<&str, &[u8]> = TableDefinition::new("images_removed_v1");

/// What the database keeps about an image; the config itself is the blob named by the id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub(crate) created: i64,
    /// Layer chain ids, bottom first.
    pub(crate) chain_ids: Vec<String>,
    pub(crate) size: u64,
    #[serde(default)]
    pub(crate) repo_digests: Vec<String>,
    /// The image this one was committed from (Docker's `Parent`). Imported, loaded and
    /// pulled images have none; records written before parents were kept decode as none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<String>,
}

/// An image deleted (as Docker does on `rmi -f`) while stopped containers were made from it.
/// Docker drops the image record but its layers stay under the containers' writable layers;
/// here the record moves out of sight (no listing, no name, no short id) and stays for the
/// containers until the last of them goes, then its layers are freed.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RemovedRecord {
    image: ImageRecord,
    /// The containers' rootfs keys (`Store::prepare_rootfs`) still using it.
    holders: Vec<String>,
}

/// One unpacked layer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub(crate) diff_id: String,
    pub(crate) parent: Option<String>,
    /// Unpacked content size.
    pub(crate) size: u64,
    /// Size of the uncompressed tar blob.
    pub(crate) tar_size: u64,
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// The unpacked size of an image made of the layers `chains` (the sum of theirs), read in
/// the transaction that records the image; `gone` is the error when one of them has been
/// removed meanwhile.
pub(crate) fn layers_size(
    layers: &impl ReadableTable<&'static str, &'static [u8]>,
    chains: &[String],
    gone: impl FnOnce(&str) -> Error,
) -> Result<u64, Error> {
    let mut size = 0;
    for chain in chains {
        match layers.get(chain.as_str())? {
            Some(v) => size += decode::<LayerRecord>("layer record", v.value())?.size,
            None => return Err(gone(chain)),
        }
    }
    Ok(size)
}

/// `config_bytes` (an encoded image config) with `fields` added to its `config` object.
fn with_docker_fields(
    config_bytes: Vec<u8>,
    fields: serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<u8>, Error> {
    if fields.is_empty() {
        return Ok(config_bytes);
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(&config_bytes).map_err(|e| Error::Corrupt(e.to_string()))?;
    let run_config = value
        .as_object_mut()
        .map(|o| o.entry("config").or_insert_with(|| serde_json::json!({})));
    if let Some(serde_json::Value::Object(run_config)) = run_config {
        run_config.extend(fields);
    }
    encode(&value)
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::Corrupt(e.to_string()))
}

/// GOARCH name of the host, as image configs spell it.
fn host_arch() -> Arch {
    Arch::from(match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    })
}

/// One decoder for import, load and every layer: gzip, zstd or plain, judged by the bytes.
pub(crate) use crate::compression::decompress;

impl Store {
    pub(crate) fn init_tables(&self) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        {
            txn.open_table(IMAGES)?;
            txn.open_table(TAGS)?;
            txn.open_table(LAYERS)?;
            txn.open_table(REMOVED)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Drops layer rows no image uses, then every blob and snapshot no row names. Removed
    /// images whose containers are all gone (a crash between the two) go first.
    pub(crate) fn collect_garbage(&self) -> Result<(), Error> {
        let _g = self.lock();
        let txn = self.db.begin_write()?;
        let (blobs, chains) = {
            let mut removed = txn.open_table(REMOVED)?;
            let mut blobs = HashSet::new();
            let mut used = HashSet::new();
            let mut updates = Vec::new();
            for item in removed.iter()? {
                let (k, v) = item?;
                let mut rec: RemovedRecord = decode("removed image record", v.value())?;
                let before = rec.holders.len();
                rec.holders.retain(|h| self.has_rootfs(h));
                if rec.holders.is_empty() {
                    updates.push((k.value().to_string(), None));
                    continue;
                }
                if rec.holders.len() != before {
                    updates.push((k.value().to_string(), Some(encode(&rec)?)));
                }
                blobs.insert(k.value().to_string());
                used.extend(rec.image.chain_ids);
            }
            for (k, v) in updates {
                match v {
                    Some(v) => removed.insert(k.as_str(), v.as_slice())?,
                    None => removed.remove(k.as_str())?,
                };
            }
            let images = txn.open_table(IMAGES)?;
            let mut layers = txn.open_table(LAYERS)?;
            for item in images.iter()? {
                let (k, v) = item?;
                blobs.insert(k.value().to_string());
                let rec: ImageRecord = decode("image record", v.value())?;
                used.extend(rec.chain_ids);
            }
            let mut chains = HashSet::new();
            let mut stale = Vec::new();
            for item in layers.iter()? {
                let (k, v) = item?;
                let k = k.value().to_string();
                if used.contains(&k) {
                    let rec: LayerRecord = decode("layer record", v.value())?;
                    blobs.insert(rec.diff_id);
                    chains.insert(k);
                } else {
                    stale.push(k);
                }
            }
            for k in stale {
                layers.remove(k.as_str())?;
            }
            (blobs, chains)
        };
        txn.commit()?;
        let b = self.content.gc(|d| blobs.contains(d))? + self.indexes.gc(|d| blobs.contains(d))?;
        let s = self.snapshots.gc(|c| chains.contains(c))?;
        if b + s > 0 {
            tracing::info!(
                blobs = b,
                snapshots = s,
                "removed leftovers of interrupted operations"
            );
        }
        Ok(())
    }

    /// `docker import`: one layer from a plain or gzip'd tarball, plus a fresh config.
    pub fn import(&self, tar: &mut dyn Read, opts: ImportOptions) -> Result<Image, Error> {
        if let Some(t) = &opts.tag {
            check_taggable(t)?;
        }
        let mut decoded = decompress(tar)?;
        // Unpacked while its tar is split into an index over the snapshot (tarsplit.rs), as
        // load, pull and commit do; reads to the end, since bytes after the end-of-archive
        // marker are part of the tar the diff ID covers.
        let split = self.unpack_split(&mut decoded)?;
        let diff_id = split.diff_id.clone();
        let chain_id = diff_id.clone();
        let (unpacked_size, tar_size) = (split.size, split.tar_size);

        let now = chrono::Utc::now();
        let created = now.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let comment = opts
            .message
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "Imported from -".to_string());
        let oci = |e: oci_spec::OciSpecError| Error::Corrupt(e.to_string());
        let history = HistoryBuilder::default()
            .created(created.clone())
            .created_by(String::new())
            .comment(comment)
            .build()
            .map_err(oci)?;
        let rootfs = RootFsBuilder::default()
            .typ("layers")
            .diff_ids(vec![diff_id.clone()])
            .build()
            .map_err(oci)?;
        let config = ImageConfigurationBuilder::default()
            .created(created)
            .architecture(host_arch())
            .os(Os::Linux)
            .config(opts.config)
            .rootfs(rootfs)
            .history(vec![history])
            .build()
            .map_err(oci)?;
        let config_bytes = with_docker_fields(encode(&config)?, opts.docker_fields)?;
        let id = sha256_of(&config_bytes);
        let record = ImageRecord {
            created: now.timestamp(),
            chain_ids: vec![chain_id.clone()],
            size: unpacked_size,
            repo_digests: Vec::new(),
            parent: None,
        };
        let layer = LayerRecord {
            diff_id: diff_id.clone(),
            parent: None,
            size: unpacked_size,
            tar_size,
        };

        {
            let _g = self.lock();
            self.publish_split(split, &chain_id)?;
            self.content.write_all(&config_bytes)?;
            let txn = self.db.begin_write()?;
            {
                let mut layers = txn.open_table(LAYERS)?;
                if layers.get(chain_id.as_str())?.is_none() {
                    layers.insert(chain_id.as_str(), encode(&layer)?.as_slice())?;
                }
                let mut images = txn.open_table(IMAGES)?;
                images.insert(id.as_str(), encode(&record)?.as_slice())?;
                if let Some(t) = &opts.tag {
                    let mut tags = txn.open_table(TAGS)?;
                    tags.insert(t.full().as_str(), id.as_str())?;
                }
            }
            txn.commit()?;
        }
        let txn = self.db.begin_read()?;
        self.load(&txn, &id)?
            .ok_or_else(|| Error::ImageNotFound(id.clone()))
    }

    /// Finds an image by id (full, short, with or without "sha256:") or by reference.
    pub fn resolve(&self, name: &str) -> Result<Image, Error> {
        let not_found = || Error::ImageNotFound(name.to_string());
        let txn = self.db.begin_read()?;
        if let Some(hex) = name.strip_prefix(SHA256_PREFIX) {
            let id = self.find_id(&txn, hex)?.ok_or_else(not_found)?;
            return self.load(&txn, &id)?.ok_or_else(not_found);
        }
        if name.len() == 64 && is_lower_hex(name) {
            let id = self.find_id(&txn, name)?.ok_or_else(not_found)?;
            return self.load(&txn, &id)?.ok_or_else(not_found);
        }
        // A tag wins over a short id that happens to spell the same ("abc" the repo vs abc… the id).
        if let Ok(r) = Reference::parse(name) {
            if let Some(id) = self.lookup_ref(&txn, &r)? {
                if let Some(img) = self.load(&txn, &id)? {
                    return Ok(img);
                }
            }
        }
        if is_lower_hex(name) {
            if let Some(id) = self.find_id(&txn, name)? {
                return self.load(&txn, &id)?.ok_or_else(not_found);
            }
        }
        Err(not_found())
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<Image>, Error> {
        let txn = self.db.begin_read()?;
        let mut tags_by_id: HashMap<String, Vec<String>> = HashMap::new();
        for item in txn.open_table(TAGS)?.iter()? {
            let (k, v) = item?;
            tags_by_id
                .entry(v.value().to_string())
                .or_default()
                .push(familiar(k.value()));
        }
        let images = txn.open_table(IMAGES)?;
        let mut out = Vec::new();
        for item in images.iter()? {
            let (k, v) = item?;
            let id = k.value().to_string();
            let rec: ImageRecord = decode("image record", v.value())?;
            let mut tags = tags_by_id.remove(&id).unwrap_or_default();
            tags.sort();
            out.push(self.build_image(id, rec, tags)?);
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Points `reference` at the image (moving it if it pointed elsewhere).
    pub fn tag(&self, image_id: &str, reference: &Reference) -> Result<(), Error> {
        check_taggable(reference)?;
        let id = self.resolve(image_id)?.id;
        let _g = self.lock();
        let txn = self.db.begin_write()?;
        {
            // The image may have been deleted since resolve; check inside the transaction.
            if txn.open_table(IMAGES)?.get(id.as_str())?.is_none() {
                return Err(Error::ImageNotFound(image_id.to_string()));
            }
            txn.open_table(TAGS)?
                .insert(reference.full().as_str(), id.as_str())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes a tag; returns the image it pointed to (as it is after the removal).
    pub fn untag(&self, reference: &Reference) -> Result<Image, Error> {
        let id = {
            let _g = self.lock();
            let txn = self.db.begin_write()?;
            let id = {
                let mut tags = txn.open_table(TAGS)?;
                let removed = tags.remove(reference.full().as_str())?;
                removed.map(|g| g.value().to_string())
            };
            let Some(id) = id else {
                return Err(Error::ImageNotFound(reference.familiar()));
            };
            txn.commit()?;
            id
        };
        let txn = self.db.begin_read()?;
        self.load(&txn, &id)?
            .ok_or_else(|| Error::ImageNotFound(reference.familiar()))
    }

    /// Removes the image, its tags, its config blob and every layer no other image uses;
    /// returns the chain ids of the layers it freed, top first (Docker lists them so).
    /// Refuses an image that another image names as its parent.
    pub fn delete(&self, image_id: &str) -> Result<Vec<String>, Error> {
        self.delete_as(image_id, &[])
    }

    /// [`Store::delete`] of an image the stopped containers with rootfs keys `holders` were
    /// made from: it goes from every listing and name at once, but its record and layers
    /// stay for those containers ([`Store::container_image`]) until the last one's rootfs is
    /// removed. Frees nothing now.
    pub fn delete_for_containers(&self, image_id: &str, holders: &[String]) -> Result<(), Error> {
        self.delete_as(image_id, holders).map(drop)
    }

    fn delete_as(&self, image_id: &str, holders: &[String]) -> Result<Vec<String>, Error> {
        let hex = image_id.strip_prefix(SHA256_PREFIX).unwrap_or(image_id);
        let guard = self.lock();
        // A container removed meanwhile no longer holds anything: its `release_container`
        // (under this lock too) has run or will find the record.
        let holders: Vec<String> = holders
            .iter()
            .filter(|h| self.has_rootfs(h))
            .cloned()
            .collect();
        let id = {
            let txn = self.db.begin_read()?;
            self.find_id(&txn, hex)?
                .ok_or_else(|| Error::ImageNotFound(image_id.to_string()))?
        };
        let txn = self.db.begin_write()?;
        let (chains, configs) = {
            let mut images = txn.open_table(IMAGES)?;
            let rec: ImageRecord = match images.remove(id.as_str())? {
                Some(v) => decode("image record", v.value())?,
                None => return Err(Error::ImageNotFound(image_id.to_string())),
            };
            for item in images.iter()? {
                let (_, v) = item?;
                let other: ImageRecord = decode("image record", v.value())?;
                // Checked here too, under the lock: a commit may have just made a child.
                if other.parent.as_deref() == Some(id.as_str()) {
                    return Err(child_conflict(&id));
                }
            }
            drop(images);
            let mut tags = txn.open_table(TAGS)?;
            let mut dead_tags = Vec::new();
            for item in tags.iter()? {
                let (k, v) = item?;
                if v.value() == id {
                    dead_tags.push(k.value().to_string());
                }
            }
            for t in dead_tags {
                tags.remove(t.as_str())?;
            }
            drop(tags);
            let mut removed = txn.open_table(REMOVED)?;
            if !holders.is_empty() {
                let mut held = match removed.get(id.as_str())? {
                    Some(v) => decode::<RemovedRecord>("removed image record", v.value())?.holders,
                    None => Vec::new(),
                };
                held.extend(
                    holders
                        .iter()
                        .filter(|h| !held.contains(h))
                        .cloned()
                        .collect::<Vec<_>>(),
                );
                let removed_rec = RemovedRecord {
                    image: rec,
                    holders: held,
                };
                removed.insert(id.as_str(), encode(&removed_rec)?.as_slice())?;
                (Vec::new(), Vec::new())
            } else {
                (rec.chain_ids, vec![id])
            }
        };
        self.free_unused(guard, txn, &chains, &configs)
    }

    /// An image as a container made from it sees it, by full id: also one deleted while the
    /// container holds it ([`Store::delete_for_containers`]), which nothing else can name.
    pub fn container_image(&self, id: &str) -> Result<Image, Error> {
        let txn = self.db.begin_read()?;
        if let Some(image) = self.load(&txn, id)? {
            return Ok(image);
        }
        match txn.open_table(REMOVED)?.get(id)? {
            Some(v) => {
                let rec: RemovedRecord = decode("removed image record", v.value())?;
                self.build_image(id.to_string(), rec.image, Vec::new())
            }
            None => Err(Error::ImageNotFound(id.to_string())),
        }
    }

    /// A container's rootfs (key `key`) went: the removed images it held that nobody else
    /// holds go now, with the layers only they used.
    pub(crate) fn release_container(&self, key: &str) -> Result<(), Error> {
        let holds = |rec: &RemovedRecord| rec.holders.iter().any(|h| h == key);
        // Before the check: a `delete_for_containers` naming this container either
        // committed before it or sees its rootfs gone.
        let guard = self.lock();
        {
            // Nearly always nothing is held: no write transaction (and its sync) for that.
            let txn = self.db.begin_read()?;
            let mut any = false;
            for item in txn.open_table(REMOVED)?.iter()? {
                let (_, v) = item?;
                any |= holds(&decode("removed image record", v.value())?);
            }
            if !any {
                return Ok(());
            }
        }
        let txn = self.db.begin_write()?;
        let (candidates, dead_configs) = {
            let mut removed = txn.open_table(REMOVED)?;
            let mut updates = Vec::new();
            for item in removed.iter()? {
                let (k, v) = item?;
                let mut rec: RemovedRecord = decode("removed image record", v.value())?;
                if holds(&rec) {
                    rec.holders.retain(|h| h != key);
                    updates.push((k.value().to_string(), rec));
                }
            }
            let mut candidates = Vec::new();
            let mut dead_configs = Vec::new();
            for (id, rec) in updates {
                if rec.holders.is_empty() {
                    removed.remove(id.as_str())?;
                    candidates.extend(rec.image.chain_ids);
                    dead_configs.push(id);
                } else {
                    removed.insert(id.as_str(), encode(&rec)?.as_slice())?;
                }
            }
            (candidates, dead_configs)
        };
        self.free_unused(guard, txn, &candidates, &dead_configs)
            .map(drop)
    }

    /// Whether a container's rootfs (key `key`) is on disk.
    fn has_rootfs(&self, key: &str) -> bool {
        self.snapshots.rootfs_path(key).is_ok_and(|p| p.exists())
    }

    /// Whether config blob `id` may go: no image (one loaded again since it was deleted),
    /// removed image or lease (a save or push about to read it) names it.
    fn config_unused(&self, txn: &redb::WriteTransaction, id: &str) -> Result<bool, Error> {
        Ok(txn.open_table(IMAGES)?.get(id)?.is_none()
            && txn.open_table(REMOVED)?.get(id)?.is_none()
            && !self.leases.defer(id))
    }

    /// Removes the rows of the layers among `candidates` that no image, removed image or
    /// lease uses; returns them (bottom first) and the diff IDs whose tar no row needs now.
    fn drop_unused_layers(
        &self,
        txn: &redb::WriteTransaction,
        candidates: &[String],
    ) -> Result<(Vec<String>, Vec<String>), Error> {
        let mut used = HashSet::new();
        for item in txn.open_table(IMAGES)?.iter()? {
            let (_, v) = item?;
            used.extend(decode::<ImageRecord>("image record", v.value())?.chain_ids);
        }
        for item in txn.open_table(REMOVED)?.iter()? {
            let (_, v) = item?;
            used.extend(
                decode::<RemovedRecord>("removed image record", v.value())?
                    .image
                    .chain_ids,
            );
        }
        let mut layers = txn.open_table(LAYERS)?;
        let mut dead_layers = Vec::new();
        let mut dead_diffs = Vec::new();
        for c in candidates {
            if used.contains(c) || dead_layers.contains(c) || self.leases.defer(c) {
                continue;
            }
            if let Some(v) = layers.remove(c.as_str())? {
                let l: LayerRecord = decode("layer record", v.value())?;
                dead_diffs.push(l.diff_id);
                dead_layers.push(c.clone());
            }
        }
        // The same layer tar can sit at another position (another chain) in another image.
        let mut live_diffs = HashSet::new();
        for item in layers.iter()? {
            let (_, v) = item?;
            live_diffs.insert(decode::<LayerRecord>("layer record", v.value())?.diff_id);
        }
        dead_diffs.retain(|d| !live_diffs.contains(d));
        Ok((dead_layers, dead_diffs))
    }

    /// Ends a delete: in `txn` drops the rows of the layers among `chains` and picks the
    /// config blobs among `configs` that nothing uses now, commits, then removes their files
    /// (a crash in between leaves garbage for `open`). `guard` is the store lock, let go
    /// before the snapshots' trees are deleted (the slow part). Returns the freed layers'
    /// chain ids, top first.
    fn free_unused(
        &self,
        guard: std::sync::MutexGuard<'_, ()>,
        txn: redb::WriteTransaction,
        chains: &[String],
        configs: &[String],
    ) -> Result<Vec<String>, Error> {
        let (dead_layers, mut dead_blobs) = self.drop_unused_layers(&txn, chains)?;
        for id in configs {
            if self.config_unused(&txn, id)? {
                dead_blobs.push(id.clone());
            }
        }
        txn.commit()?;
        for b in &dead_blobs {
            self.content.remove(b)?;
            self.indexes.remove(b)?;
        }
        self.forget_compressed(&dead_blobs)?;
        let mut handles = Vec::new();
        for c in &dead_layers {
            handles.push(self.snapshots.detach(c)?);
        }
        drop(guard);
        drop(handles);
        let mut freed = dead_layers;
        freed.reverse();
        Ok(freed)
    }

    /// The full id whose hex starts with `prefix`, if exactly one does.
    fn find_id(&self, txn: &ReadTransaction, prefix: &str) -> Result<Option<String>, Error> {
        if prefix.is_empty() || prefix.len() > 64 || !is_lower_hex(prefix) {
            return Ok(None);
        }
        let start = format!("{SHA256_PREFIX}{prefix}");
        let images = txn.open_table(IMAGES)?;
        let mut found = None;
        for item in images.range(start.as_str()..)? {
            let (k, _) = item?;
            let k = k.value();
            if !k.starts_with(&start) {
                break;
            }
            if found.is_some() {
                // Ambiguous short id: like Docker, it names no image.
                return Ok(None);
            }
            found = Some(k.to_string());
        }
        Ok(found)
    }

    fn lookup_ref(&self, txn: &ReadTransaction, r: &Reference) -> Result<Option<String>, Error> {
        if r.digest().is_none() {
            let tags = txn.open_table(TAGS)?;
            return Ok(tags.get(r.full().as_str())?.map(|v| v.value().to_string()));
        }
        // name@digest: match against the digests images were pulled by.
        let want = format!("{}@{}", r.name(), r.digest().unwrap_or_default());
        let images = txn.open_table(IMAGES)?;
        for item in images.iter()? {
            let (k, v) = item?;
            let rec: ImageRecord = decode("image record", v.value())?;
            if rec.repo_digests.contains(&want) {
                return Ok(Some(k.value().to_string()));
            }
        }
        Ok(None)
    }

    fn load(&self, txn: &ReadTransaction, id: &str) -> Result<Option<Image>, Error> {
        let rec: ImageRecord = match txn.open_table(IMAGES)?.get(id)? {
            Some(v) => decode("image record", v.value())?,
            None => return Ok(None),
        };
        let mut tags = Vec::new();
        for item in txn.open_table(TAGS)?.iter()? {
            let (k, v) = item?;
            if v.value() == id {
                tags.push(familiar(k.value()));
            }
        }
        tags.sort();
        self.build_image(id.to_string(), rec, tags).map(Some)
    }

    fn build_image(
        &self,
        id: String,
        rec: ImageRecord,
        repo_tags: Vec<String>,
    ) -> Result<Image, Error> {
        let bytes = self.content.read(&id)?;
        let config: ImageConfiguration = decode("image config", &bytes)?;
        let docker_config = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|mut v| v.get_mut("config").map(serde_json::Value::take));
        let repo_digests = rec
            .repo_digests
            .iter()
            .map(|d| match Reference::parse(d) {
                Ok(r) => r.familiar(),
                Err(_) => d.clone(),
            })
            .collect();
        Ok(Image {
            id,
            repo_tags,
            repo_digests,
            created: rec.created,
            size: rec.size,
            parent: rec.parent,
            config,
            docker_config,
        })
    }
}

/// What a running save or push reads: layers by chain id and image configs by id, with how
/// many readers hold each. A delete leaves such a layer's row (and so its snapshot, index or
/// blob), or such a config blob, in place and marks it deferred; the last reader's release
/// frees it, unless an image took it up meanwhile.
#[derive(Debug, Default)]
pub(crate) struct Leases(std::sync::Mutex<LeaseState>);

#[derive(Debug, Default)]
struct LeaseState {
    held: HashMap<String, usize>,
    deferred: HashSet<String>,
}

impl Leases {
    fn state(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        // Counters only: a panic elsewhere cannot leave them half-updated.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` (a chain or config id) is leased; if so it is marked to be freed at the
    /// release.
    fn defer(&self, key: &str) -> bool {
        let mut st = self.state();
        let leased = st.held.contains_key(key);
        if leased {
            st.deferred.insert(key.to_string());
        }
        leased
    }

    /// Releases one hold on each of `keys`; returns those whose last hold this was and that
    /// a delete deferred.
    fn release(&self, keys: &[&str]) -> Vec<String> {
        let mut st = self.state();
        let mut freed = Vec::new();
        for &k in keys {
            let Some(n) = st.held.get_mut(k) else {
                continue;
            };
            *n -= 1;
            if *n == 0 {
                st.held.remove(k);
                if st.deferred.remove(k) {
                    freed.push(k.to_string());
                }
            }
        }
        freed
    }
}

/// Keeps an image's config and layers readable while alive (see [`Store::lease`]).
#[derive(Debug)]
pub struct LayerLease<'a> {
    store: &'a Store,
    chains: Vec<String>,
    config: String,
}

impl Drop for LayerLease<'_> {
    fn drop(&mut self) {
        let chains = self
            .store
            .leases
            .release(&self.chains.iter().map(String::as_str).collect::<Vec<_>>());
        let config = !self
            .store
            .leases
            .release(&[self.config.as_str()])
            .is_empty();
        if chains.is_empty() && !config {
            return;
        }
        if let Err(e) = self
            .store
            .free_leased(&chains, config.then_some(self.config.as_str()))
        {
            // Left as garbage for the next open.
            tracing::warn!("freeing layers after a save or push: {e}");
        }
    }
}

impl Store {
    /// Holds `image`'s config and layers for a save or push that reads them: an `rmi`
    /// meanwhile removes the image but leaves its files until the lease is dropped. Fails if
    /// the image (its config or a layer) is already gone.
    pub fn lease(&self, image: &Image) -> Result<LayerLease<'_>, Error> {
        let chains = crate::digest::chain_ids(image.config.rootfs().diff_ids());
        // Under the lock files and rows go together, so what is here now stays leased.
        let _g = self.lock();
        if !self.content.path(&image.id)?.exists() {
            return Err(Error::ImageNotFound(image.id.clone()));
        }
        {
            let txn = self.db.begin_read()?;
            let layers = txn.open_table(LAYERS)?;
            for c in &chains {
                if layers.get(c.as_str())?.is_none() {
                    return Err(Error::ImageNotFound(image.id.clone()));
                }
            }
        }
        let mut st = self.leases.state();
        for k in chains.iter().chain([&image.id]) {
            *st.held.entry(k.clone()).or_default() += 1;
        }
        Ok(LayerLease {
            store: self,
            chains,
            config: image.id.clone(),
        })
    }

    /// Frees the layers among `chains`, and the config blob `config`, that nothing uses any
    /// more.
    fn free_leased(&self, chains: &[String], config: Option<&str>) -> Result<(), Error> {
        let guard = self.lock();
        let txn = self.db.begin_write()?;
        let configs: Vec<String> = config.into_iter().map(String::from).collect();
        self.free_unused(guard, txn, chains, &configs).map(drop)
    }
}

/// Stored keys are full references; show them the way Docker does.
fn familiar(full: &str) -> String {
    Reference::parse(full)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| full.to_string())
}

/// Docker's refusal to delete an image another image was committed from.
pub(crate) fn child_conflict(id: &str) -> Error {
    let short: String = id
        .trim_start_matches(SHA256_PREFIX)
        .chars()
        .take(12)
        .collect();
    Error::Conflict(format!(
        "conflict: unable to delete {short} (cannot be forced) - image has dependent child images"
    ))
}

fn check_taggable(r: &Reference) -> Result<(), Error> {
    if r.digest().is_some() {
        return Err(Error::InvalidReference(
            "refusing to create a tag with a digest reference".into(),
        ));
    }
    Ok(())
}

/// Read-only queries the daemon's inspect, history and prune need.
impl Store {
    /// The image's config blob exactly as stored (Docker-only fields like `container_config`
    /// and `docker_version` included).
    pub fn config_blob(&self, image: &Image) -> Result<Vec<u8>, Error> {
        self.content.read(&image.id)
    }

    /// Each of `image`'s layers, bottom first: (chain id, unpacked content size).
    pub fn layer_sizes(&self, image: &Image) -> Result<Vec<(String, u64)>, Error> {
        let txn = self.db.begin_read()?;
        let layers = txn.open_table(LAYERS)?;
        crate::digest::chain_ids(image.config.rootfs().diff_ids())
            .into_iter()
            .map(|c| {
                let size = match layers.get(c.as_str())? {
                    Some(v) => decode::<LayerRecord>("layer record", v.value())?.size,
                    None => 0,
                };
                Ok((c, size))
            })
            .collect()
    }
}

#[cfg(test)]
mod parent_tests {
    use super::*;
    use crate::testutil::{require_root, temp_store, TarBuf};
    use std::sync::Arc;

    #[test]
    fn records_written_before_parents_still_decode() {
        let old = br#"{"created":1,"chain_ids":["sha256:a"],"size":3,"repo_digests":[]}"#;
        let rec: ImageRecord = decode("image record", old).unwrap();
        assert_eq!(rec.parent, None);
        let text = String::from_utf8(encode(&rec).unwrap()).unwrap();
        assert!(!text.contains("parent"), "{text}");
    }

    #[test]
    fn a_parent_cannot_be_deleted_before_its_child() {
        if !require_root("a_parent_cannot_be_deleted_before_its_child") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("db")).unwrap());
        let store = Store::open(&dir.path().join("root"), db).unwrap();
        let mut base = TarBuf::new();
        base.file("a", b"1");
        let parent = store
            .import(&mut &base.finish()[..], ImportOptions::default())
            .unwrap();
        let empty = [0u8; 1024];
        let diff_ids = parent.config.rootfs().diff_ids().clone();
        let config = Box::new(move |_: Option<&str>| {
            let v = serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            });
            Ok(serde_json::to_vec(&v).unwrap())
        });
        let child = store
            .commit(Some(&parent), &mut &empty[..], config, None)
            .unwrap();
        assert_eq!(child.parent.as_deref(), Some(parent.id.as_str()));
        let err = store.delete(&parent.id).unwrap_err().to_string();
        assert!(
            err.ends_with("(cannot be forced) - image has dependent child images"),
            "{err}"
        );
        assert_eq!(store.list().unwrap().len(), 2, "nothing went");
        store.delete(&child.id).unwrap();
        store.delete(&parent.id).unwrap();
    }

    fn reopen(dir: &std::path::Path, db: &Arc<redb::Database>) -> Store {
        Store::open(&dir.join("root"), db.clone()).unwrap()
    }

    /// Imports a one-layer image holding file `name`; returns it and its layer's tar.
    fn import_one(store: &Store, name: &str, data: &[u8], message: &str) -> (Image, Vec<u8>) {
        let mut tar = TarBuf::new();
        tar.file(name, data);
        let bytes = tar.finish();
        let opts = ImportOptions {
            message: Some(message.into()),
            ..Default::default()
        };
        (store.import(&mut &bytes[..], opts).unwrap(), bytes)
    }

    #[test]
    fn an_image_deleted_under_a_container_stays_for_it_alone() {
        if !require_root("an_image_deleted_under_a_container_stays_for_it_alone") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("db")).unwrap());
        let store = reopen(dir.path(), &db);
        let (image, _) = import_one(&store, "only-here", b"held", "");
        let (chain, snapshot) = store.layer_dirs(&image).unwrap().remove(0);
        store.prepare_rootfs("c1", &image).unwrap();
        store
            .delete_for_containers(&image.id, &["c1".to_string()])
            .unwrap();
        assert!(store.list().unwrap().is_empty(), "out of every listing");
        assert!(matches!(
            store.resolve(&image.id),
            Err(Error::ImageNotFound(_))
        ));
        assert_eq!(store.container_image(&image.id).unwrap().id, image.id);
        // An open (the crash collection) keeps it while the container's rootfs is there.
        drop(store);
        let store = reopen(dir.path(), &db);
        assert!(snapshot.is_dir(), "{chain} kept");
        store.remove_rootfs("c1").unwrap();
        assert!(!snapshot.exists(), "freed with the last container");
        assert!(store.container_image(&image.id).is_err());
        assert!(
            !store.content.path(&image.id).unwrap().exists(),
            "config gone"
        );
    }

    #[test]
    fn a_lease_keeps_layers_and_config_readable_through_a_delete() {
        if !require_root("a_lease_keeps_layers_and_config_readable_through_a_delete") {
            return;
        }
        let (_dir, store) = temp_store();
        let (image, bytes) = import_one(&store, "a", &[7u8; 5000], "");
        let diff_id = image.config.rootfs().diff_ids()[0].clone();
        let (_, snapshot) = store.layer_dirs(&image).unwrap().remove(0);
        let lease = store.lease(&image).unwrap();
        assert!(
            store.delete(&image.id).unwrap().is_empty(),
            "no layer freed yet"
        );
        let mut back = Vec::new();
        store
            .layer_tar(&diff_id)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, bytes, "rebuilt from its index after the delete");
        // A push reads the config after the layers.
        assert!(store.config_blob(&image).is_ok(), "the config stays too");
        assert!(store.lease(&image).is_ok(), "a second reader may join");
        drop(lease);
        assert!(!snapshot.exists(), "freed with the last lease");
        assert!(store.config_blob(&image).is_err(), "config freed with it");
        assert!(matches!(store.lease(&image), Err(Error::ImageNotFound(_))));
    }

    #[test]
    fn a_lease_of_a_deleted_image_sharing_its_layers_fails() {
        if !require_root("a_lease_of_a_deleted_image_sharing_its_layers_fails") {
            return;
        }
        let (_dir, store) = temp_store();
        let (first, _) = import_one(&store, "a", b"shared", "first");
        let (second, _) = import_one(&store, "a", b"shared", "second");
        assert_ne!(first.id, second.id);
        store.delete(&first.id).unwrap();
        // Its layer is still there (the second image's), its config is not.
        assert!(matches!(store.lease(&first), Err(Error::ImageNotFound(_))));
        assert!(store.lease(&second).is_ok());
    }

    #[test]
    fn a_container_already_removed_holds_nothing() {
        if !require_root("a_container_already_removed_holds_nothing") {
            return;
        }
        let (_dir, store) = temp_store();
        let (image, _) = import_one(&store, "a", b"1", "");
        let (_, snapshot) = store.layer_dirs(&image).unwrap().remove(0);
        store.prepare_rootfs("c1", &image).unwrap();
        // The container's `rm` ran between the daemon listing it and the delete.
        store.remove_rootfs("c1").unwrap();
        store
            .delete_for_containers(&image.id, &["c1".to_string()])
            .unwrap();
        assert!(!snapshot.exists(), "freed at once, not kept for nobody");
        assert!(store.container_image(&image.id).is_err());
    }
}
