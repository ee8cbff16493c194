//! `docker load`: images from an archive that `docker save` wrote (any version: the
//! `manifest.json` it always has names each image's config and layer tars).
//!
//! The archive is first extracted into a temp directory of the store (its members come in
//! any order, and the manifest is last). Each layer is then checked against the diff ID its
//! config names while it is unpacked, so nothing unverified is kept, and the image is
//! published only when every layer is in place: a bad archive leaves the store unchanged,
//! and what a crash leaves is removed by the next open's garbage collection.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::ImageConfiguration;
use redb::{ReadableDatabase, ReadableTable};
use serde::Deserialize;

use crate::content::TeeReader;
use crate::digest::{chain_id, sha256_of};
use crate::error::{ctx, Error};
use crate::images::{decode, decompress, encode, ImageRecord, LayerRecord, IMAGES, LAYERS, TAGS};
use crate::unpack::{unpack, BUF_SIZE};
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
}

/// An image the archive held: its ID and the references it was loaded under.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub id: String,
    pub tags: Vec<String>,
}

impl Store {
    /// Loads every image of a save archive (plain or gzip'd tar).
    pub fn load_archive(&self, input: &mut dyn Read) -> Result<Vec<LoadedImage>, Error> {
        let dir = self.snapshots.temp()?;
        extract(&mut decompress(input)?, dir.path())?;
        let manifest = std::fs::read(dir.path().join("manifest.json"))
            .map_err(|_| Error::InvalidArchive("no manifest.json in the archive (was it made by docker save?)".into()))?;
        let entries: Vec<ManifestEntry> =
            serde_json::from_slice(&manifest).map_err(|e| Error::InvalidArchive(format!("manifest.json: {e}")))?;
        let mut loaded = Vec::new();
        for entry in &entries {
            loaded.push(self.load_image(dir.path(), entry)?);
        }
        Ok(loaded)
    }

    fn load_image(&self, dir: &Path, entry: &ManifestEntry) -> Result<LoadedImage, Error> {
        let config_bytes = std::fs::read(member(dir, &entry.config)?).map_err(|e| ctx(e, &entry.config))?;
        let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
            .map_err(|e| Error::InvalidArchive(format!("image config {}: {e}", entry.config)))?;
        let diff_ids = config.rootfs().diff_ids().clone();
        if diff_ids.len() != entry.layers.len() {
            return Err(Error::InvalidArchive(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                diff_ids.len(),
                entry.layers.len()
            )));
        }
        let tags = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|t| Reference::parse(t))
            .collect::<Result<Vec<_>, _>>()?;

        // Unpack and verify the layers this store does not have yet.
        let mut parent: Option<String> = None;
        let mut chain_ids = Vec::new();
        let mut fresh = Vec::new();
        let mut size = 0;
        for (diff_id, path) in diff_ids.iter().zip(&entry.layers) {
            let chain = chain_id(parent.as_deref(), diff_id);
            match self.layer_record(&chain)? {
                Some(rec) => size += rec.size,
                None => {
                    let (layer, pending, snapshot) = self.unpack_verified(dir, path, diff_id, parent.clone())?;
                    size += layer.size;
                    fresh.push((chain.clone(), layer, pending, snapshot));
                }
            }
            parent = Some(chain.clone());
            chain_ids.push(chain);
        }
        let id = sha256_of(&config_bytes);
        let created = config
            .created()
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map(|t| t.timestamp())
            .unwrap_or(0);
        let record = ImageRecord { created, chain_ids, size, repo_digests: Vec::new() };

        let _g = self.lock();
        let mut layer_rows = Vec::new();
        for (chain, layer, pending, snapshot) in fresh {
            pending.commit()?;
            self.snapshots.commit(snapshot, &chain)?;
            layer_rows.push((chain, layer));
        }
        self.content.write_all(&config_bytes)?;
        let txn = self.db.begin_write()?;
        {
            let mut layers = txn.open_table(LAYERS)?;
            for (chain, layer) in &layer_rows {
                if layers.get(chain.as_str())?.is_none() {
                    layers.insert(chain.as_str(), encode(layer)?.as_slice())?;
                }
            }
            txn.open_table(IMAGES)?.insert(id.as_str(), encode(&record)?.as_slice())?;
            let mut table = txn.open_table(TAGS)?;
            for t in &tags {
                table.insert(t.full().as_str(), id.as_str())?;
            }
        }
        txn.commit()?;
        Ok(LoadedImage { id, tags: tags.iter().map(|t| t.familiar()).collect() })
    }

    fn layer_record(&self, chain: &str) -> Result<Option<LayerRecord>, Error> {
        let txn = self.db.begin_read()?;
        let layers = txn.open_table(LAYERS)?;
        let found = layers.get(chain)?;
        found.map(|v| decode::<LayerRecord>("layer record", v.value())).transpose()
    }

    /// Unpacks one layer tar into a temp snapshot while storing it as a blob; fails unless
    /// its digest is the one the config names.
    fn unpack_verified(
        &self,
        dir: &Path,
        path: &str,
        diff_id: &str,
        parent: Option<String>,
    ) -> Result<(LayerRecord, crate::content::PendingBlob, crate::snapshot::TempSnapshot), Error> {
        let mut file = File::open(member(dir, path)?).map_err(|e| ctx(e, path))?;
        let blob = self.content.writer()?;
        let mut tee = BufReader::with_capacity(BUF_SIZE, TeeReader { inner: decompress(&mut file)?, blob });
        let snapshot = self.snapshots.temp()?;
        let unpacked = unpack(&mut tee, snapshot.path())?;
        io::copy(&mut tee, &mut io::sink()).map_err(|e| Error::InvalidArchive(e.to_string()))?;
        let pending = tee.into_inner().blob.finish()?;
        if pending.digest != diff_id {
            return Err(Error::InvalidArchive(format!(
                "layer {path} does not match its diff ID: expected {diff_id}, got {}",
                pending.digest
            )));
        }
        let layer = LayerRecord { diff_id: diff_id.to_string(), parent, size: unpacked.size, tar_size: pending.size };
        Ok((layer, pending, snapshot))
    }
}

/// Extracts the archive's files, directories and in-archive symlinks (Docker links repeated
/// layers to their first copy). Nothing is written outside `dir`: names are relative without
/// `..`, links must point inside, and no file is written through a link.
fn extract(input: &mut dyn Read, dir: &Path) -> Result<(), Error> {
    let bad = |what: String| Error::InvalidArchive(what);
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(|e| bad(format!("reading archive: {e}")))? {
        let mut entry = entry.map_err(|e| bad(format!("reading archive: {e}")))?;
        let name = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        let rel = relative(&name).ok_or_else(|| bad(format!("unsafe path in archive: {}", name.display())))?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = dir.join(&rel);
        if through_link(dir, &rel) {
            return Err(bad(format!("path in archive goes through a link: {}", name.display())));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&target).map_err(|e| ctx(e, target.display()))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(p) = target.parent() {
                    std::fs::create_dir_all(p).map_err(|e| ctx(e, p.display()))?;
                }
                let mut out = File::create(&target).map_err(|e| ctx(e, target.display()))?;
                io::copy(&mut entry, &mut out).map_err(|e| bad(format!("{}: {e}", name.display())))?;
            }
            tar::EntryType::Symlink => {
                let link = entry.link_name().map_err(|e| bad(e.to_string()))?.unwrap_or_default().into_owned();
                let resolved = rel.parent().unwrap_or(Path::new("")).join(&link);
                if link.is_absolute() || relative(&resolved).is_none() {
                    return Err(bad(format!("link out of the archive: {} -> {}", name.display(), link.display())));
                }
                if let Some(p) = target.parent() {
                    std::fs::create_dir_all(p).map_err(|e| ctx(e, p.display()))?;
                }
                std::os::unix::fs::symlink(&link, &target).map_err(|e| ctx(e, target.display()))?;
            }
            // Nothing else belongs in a save archive; skipped rather than made.
            _ => {}
        }
    }
    Ok(())
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

/// Whether a directory on the way to `rel` is a symlink.
fn through_link(dir: &Path, rel: &Path) -> bool {
    let mut p = dir.to_path_buf();
    let parents: Vec<_> = rel.parent().map(|x| x.components().collect()).unwrap_or_default();
    parents.into_iter().any(|c| {
        p.push(c);
        std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink())
    })
}

/// The file a manifest names, following an in-archive link at most once.
fn member(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let rel = relative(Path::new(name)).ok_or_else(|| Error::InvalidArchive(format!("unsafe path in manifest: {name}")))?;
    let path = dir.join(&rel);
    match std::fs::read_link(&path) {
        Ok(link) => {
            let resolved = relative(&rel.parent().unwrap_or(Path::new("")).join(link))
                .ok_or_else(|| Error::InvalidArchive(format!("link out of the archive: {name}")))?;
            Ok(dir.join(resolved))
        }
        Err(_) => Ok(path),
    }
}
