//! `docker save`: images as one tar that both Docker's loader and OCI tools read. The layout
//! is the one Docker 25 writes: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) whose `manifest.json` and `repositories` are Docker's own; Docker's
//! loader (20.10 included) follows `manifest.json`, which points into `blobs/`.
//!
//! Blobs are copied from the store as they are (a layer's tar from its blob, or rebuilt from
//! its index over its snapshot), so image IDs (config digests) and layer diff IDs stay the
//! same across a save and a load. Every layer is hashed as it is copied and a mismatch fails
//! the save: a corrupt store never produces an archive that looks good.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde_json::{json, Value};

use crate::digest::{hex_part, sha256_of};
use crate::error::Error;
use crate::{Image, Reference, Store};

const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// One image to save, and the references it is saved under (empty: by ID, untagged).
pub struct SaveItem {
    pub image: Image,
    pub tags: Vec<Reference>,
}

impl Store {
    /// Writes `items` as a save archive to `out`.
    pub fn save(&self, items: &[SaveItem], out: &mut dyn Write) -> Result<(), Error> {
        // An `rmi` during the save must not take the configs and layers it reads from under it.
        let _leases = items.iter().map(|i| self.lease(&i.image)).collect::<Result<Vec<_>, _>>()?;
        let mut tar = tar::Builder::new(out);
        let mut written = std::collections::HashSet::new();
        let mut manifests = Vec::new();
        let mut docker_manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        add_file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for dir in ["blobs/", "blobs/sha256/"] {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_path(dir).map_err(Error::Io)?;
            h.set_cksum();
            tar.append(&h, io::empty()).map_err(Error::Io)?;
        }
        for item in items {
            let config = self.content.read(&item.image.id)?;
            if sha256_of(&config) != item.image.id {
                return Err(Error::Corrupt(format!("image config {} does not match its digest", item.image.id)));
            }
            let config_path = blob_path(&item.image.id)?;
            if written.insert(item.image.id.clone()) {
                add_file(&mut tar, &config_path, &config)?;
            }
            let mut layers = Vec::new();
            for diff_id in item.image.config.rootfs().diff_ids() {
                let size = self.add_layer(&mut tar, diff_id, &mut written)?;
                layers.push(json!({"mediaType": LAYER_MEDIA_TYPE, "digest": diff_id, "size": size}));
            }
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": item.image.id, "size": config.len()},
                "layers": layers,
            }))
            .map_err(|e| Error::Corrupt(e.to_string()))?;
            let manifest_digest = sha256_of(&manifest);
            if written.insert(manifest_digest.clone()) {
                add_file(&mut tar, &blob_path(&manifest_digest)?, &manifest)?;
            }
            let layer_paths: Vec<String> =
                item.image.config.rootfs().diff_ids().iter().map(|d| blob_path(d)).collect::<Result<_, _>>()?;
            let top_layer = item.image.config.rootfs().diff_ids().last().and_then(|d| hex_part(d)).unwrap_or("");
            let tags: Vec<String> = item.tags.iter().map(|t| t.familiar()).collect();
            for t in &item.tags {
                let name = t.familiar_name();
                repositories.entry(name).or_default().insert(t.tag().unwrap_or("latest").to_string(), top_layer.into());
                manifests.push(index_entry(&manifest_digest, manifest.len(), Some(t)));
            }
            if item.tags.is_empty() {
                manifests.push(index_entry(&manifest_digest, manifest.len(), None));
            }
            let mut entry = json!({"Config": config_path, "RepoTags": tags, "Layers": layer_paths});
            // As Docker: the parent is named only when it is saved too, so a load can link them.
            if let Some(parent) = item.image.parent.as_deref() {
                if parent != item.image.id && items.iter().any(|i| i.image.id == parent) {
                    entry["Parent"] = json!(parent);
                }
            }
            docker_manifest.push(entry);
        }
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
        add_file(&mut tar, "index.json", &to_json(&index)?)?;
        add_file(&mut tar, "manifest.json", &to_json(&Value::Array(docker_manifest))?)?;
        if !repositories.is_empty() {
            add_file(&mut tar, "repositories", &to_json(&json!(repositories))?)?;
        }
        tar.into_inner().map_err(Error::Io)?.flush().map_err(Error::Io)
    }

    /// Copies a layer's tar into the archive once (its blob, or rebuilt from its index),
    /// checked against its digest on the way; returns its size.
    fn add_layer<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        diff_id: &str,
        written: &mut std::collections::HashSet<String>,
    ) -> Result<u64, Error> {
        let layer = self.layer_tar(diff_id)?;
        let size = layer.size();
        if !written.insert(diff_id.to_string()) {
            return Ok(size);
        }
        let mut header = header(&blob_path(diff_id)?, size);
        // Big reads: the default 8 KiB copy would make a rebuilt layer syscall-bound.
        let mut reader = io::BufReader::with_capacity(1 << 20, layer);
        tar.append(&mut header, &mut reader).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => Error::Corrupt(e.to_string()),
            _ => Error::Io(e),
        })?;
        Ok(size)
    }
}

fn index_entry(digest: &str, size: usize, tag: Option<&Reference>) -> Value {
    let mut entry = json!({"mediaType": MANIFEST_MEDIA_TYPE, "digest": digest, "size": size});
    if let Some(t) = tag {
        entry["annotations"] = json!({
            "io.containerd.image.name": t.full(),
            "org.opencontainers.image.ref.name": t.tag().unwrap_or("latest"),
        });
    }
    entry
}

fn blob_path(digest: &str) -> Result<String, Error> {
    let hex = hex_part(digest).ok_or_else(|| Error::Corrupt(format!("bad digest {digest:?}")))?;
    Ok(format!("blobs/sha256/{hex}"))
}

fn to_json(v: &Value) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::Corrupt(e.to_string()))
}

fn header(path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    // The path is set by `append_data`-style callers; `blobs/sha256/<hex>` always fits ustar.
    let _ = h.set_path(path);
    h.set_cksum();
    h
}

fn add_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, data: &[u8]) -> Result<(), Error> {
    let mut h = header(path, data.len() as u64);
    tar.append(&mut h, data).map_err(Error::Io)
}
