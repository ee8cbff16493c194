//! The classic builder's cache index: table `build_cache_v1`, cache key → the IDs of the
//! images a build step committed under that key (JSON array, oldest first).
//!
//! Docker 20.10 finds a cached step by scanning every image whose parent is the step's parent
//! and comparing container configs. Here the builder hashes exactly the compared fields into a
//! key (daemon `build/cache.rs`), so a lookup is one row read, never a scan of all images.
//! Rows are written at each build commit. Images deleted since are skipped when read and the
//! row is trimmed then; nothing else has to keep this table in step with image deletes.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{json, Map, Value};

use crate::digest::{chain_ids, sha256_of};
use crate::error::Error;
use crate::images::{decode, encode, layers_size, ImageRecord, IMAGES, LAYERS};
use crate::{Image, Store};

const BUILD_CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("build_cache_v1");

impl Store {
    /// Records that `image_id` was committed by a build step whose cache key is `key`.
    pub fn build_cache_add(&self, key: &str, image_id: &str) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(BUILD_CACHE)?;
            let mut ids = match table.get(key)? {
                Some(v) => decode_ids(v.value()),
                None => Vec::new(),
            };
            // Moved to the end: the last committed is the newest.
            ids.retain(|id| id != image_id);
            ids.push(image_id.to_string());
            table.insert(key, encode_ids(&ids).as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The images recorded under `key` that still exist, newest first (Docker picks the most
    /// recently created match). IDs of deleted images are dropped from the row.
    pub fn build_cache_lookup(&self, key: &str) -> Result<Vec<Image>, Error> {
        let ids = {
            let txn = self.db.begin_read()?;
            let table = match txn.open_table(BUILD_CACHE) {
                Ok(t) => t,
                // No build has committed anything yet.
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            match table.get(key)? {
                Some(v) => decode_ids(v.value()),
                None => return Ok(Vec::new()),
            }
        };
        let mut found = Vec::new();
        let mut gone = Vec::new();
        for (order, id) in ids.iter().enumerate() {
            match self.resolve(id) {
                Ok(image) if &image.id == id => found.push((order, image)),
                Ok(_) | Err(Error::ImageNotFound(_)) => gone.push(id.clone()),
                Err(e) => return Err(e),
            }
        }
        if !gone.is_empty() {
            self.build_cache_forget(key, &gone)?;
        }
        // Newest first: by creation time, then by the order the commits were recorded in.
        found.sort_by(|(oa, a), (ob, b)| created(b).cmp(&created(a)).then(ob.cmp(oa)));
        Ok(found.into_iter().map(|(_, image)| image).collect())
    }

    /// `--cache-from` (moby's `ImageCache.GetCache` for one source): the step on `parent`
    /// whose `created_by` is given, as `source` recorded it. `source` qualifies when its
    /// history and layers start with the parent's and its next history entry is this step's.
    /// That entry being its last, `source` itself is the hit (and gets `parent` as its
    /// parent); else a new image of the parent plus that entry (and its layer) is made, with
    /// `run_config` as its config, as Docker makes it.
    pub fn build_cache_from(
        &self,
        parent: Option<&Image>,
        source: &Image,
        created_by: &str,
        run_config: &Map<String, Value>,
    ) -> Result<Option<Image>, Error> {
        let src: Value = decode("image config", &self.content.read(&source.id)?)?;
        let src_history = list(&src, "history");
        let src_diffs = diff_ids(&src);
        let (parent_history, parent_diffs) = match parent {
            Some(p) => {
                let blob: Value = decode("image config", &self.content.read(&p.id)?)?;
                (list(&blob, "history"), diff_ids(&blob))
            }
            None => (Vec::new(), Vec::new()),
        };
        if src_history.is_empty() {
            return Ok(None);
        }
        let unconstrained = parent_history.is_empty() && parent_diffs.is_empty();
        if !unconstrained
            && (parent_history.len() >= src_history.len()
                || parent_diffs.len() > src_diffs.len()
                || src_history[..parent_history.len()] != parent_history[..]
                || src_diffs[..parent_diffs.len()] != parent_diffs[..])
        {
            return Ok(None);
        }
        let index = parent_history.len();
        let Some(entry) = src_history.get(index) else {
            return Ok(None);
        };
        if entry
            .get("created_by")
            .and_then(Value::as_str)
            .unwrap_or_default()
            != created_by
        {
            return Ok(None);
        }
        if index + 1 == src_history.len() {
            if let Some(p) = parent {
                self.set_parent(&source.id, &p.id)?;
            }
            return self.resolve(&source.id).map(Some);
        }
        // The layer of history entry `index`: count the non-empty entries before it.
        let layer = (!is_empty_layer(entry))
            .then(|| {
                src_history[..index]
                    .iter()
                    .filter(|h| !is_empty_layer(h))
                    .count()
            })
            .and_then(|n| src_diffs.get(n).cloned());
        let mut history = parent_history;
        history.push(entry.clone());
        let mut diffs = parent_diffs;
        diffs.extend(layer);
        let mut blob = Map::new();
        for key in [
            "architecture",
            "variant",
            "os",
            "os.version",
            "os.features",
            "author",
        ] {
            if let Some(v) = src.get(key).filter(|v| !v.is_null()) {
                blob.insert(key.into(), v.clone());
            }
        }
        blob.insert("config".into(), Value::Object(run_config.clone()));
        blob.insert(
            "created".into(),
            entry.get("created").cloned().unwrap_or(Value::Null),
        );
        blob.insert(
            "docker_version".into(),
            src.get("docker_version").cloned().unwrap_or(json!("")),
        );
        blob.insert("history".into(), Value::Array(history));
        blob.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diffs}),
        );
        let bytes = encode(&Value::Object(blob))?;
        self.create_from_layers(&bytes, &diffs, parent).map(Some)
    }

    /// Records an image whose layers are all stored already (a cache-from restore).
    fn create_from_layers(
        &self,
        config_bytes: &[u8],
        diffs: &[String],
        parent: Option<&Image>,
    ) -> Result<Image, Error> {
        let id = sha256_of(config_bytes);
        let chains = chain_ids(diffs);
        let created = serde_json::from_slice::<Value>(config_bytes)
            .ok()
            .and_then(|v| v.get("created").and_then(Value::as_str).map(String::from))
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(&c).ok())
            .map(|t| t.timestamp())
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        {
            let _g = self.lock();
            self.content.write_all(config_bytes)?;
            let txn = self.db.begin_write()?;
            {
                let layers = txn.open_table(LAYERS)?;
                let size = layers_size(&layers, &chains, |chain| {
                    Error::Conflict(format!("layer {chain} was removed during the build"))
                })?;
                let mut images = txn.open_table(IMAGES)?;
                if images.get(id.as_str())?.is_none() {
                    let record = ImageRecord {
                        created,
                        chain_ids: chains.clone(),
                        size,
                        repo_digests: Vec::new(),
                        parent: parent.map(|p| p.id.clone()),
                    };
                    images.insert(id.as_str(), encode(&record)?.as_slice())?;
                }
            }
            txn.commit()?;
        }
        self.resolve(&id)
    }

    /// Sets an image's `Parent` (Docker's `SetParent`).
    fn set_parent(&self, image_id: &str, parent_id: &str) -> Result<(), Error> {
        let _g = self.lock();
        let txn = self.db.begin_write()?;
        {
            let mut images = txn.open_table(IMAGES)?;
            let rec = images
                .get(image_id)?
                .map(|v| decode::<ImageRecord>("image record", v.value()))
                .transpose()?;
            if let Some(mut rec) = rec {
                if rec.parent.as_deref() != Some(parent_id) {
                    rec.parent = Some(parent_id.to_string());
                    images.insert(image_id, encode(&rec)?.as_slice())?;
                }
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Drops `ids` from the row of `key` (the row goes when it empties).
    fn build_cache_forget(&self, key: &str, ids: &[String]) -> Result<(), Error> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(BUILD_CACHE)?;
            let mut kept = match table.get(key)? {
                Some(v) => decode_ids(v.value()),
                None => Vec::new(),
            };
            kept.retain(|id| !ids.contains(id));
            if kept.is_empty() {
                table.remove(key)?;
            } else {
                table.insert(key, encode_ids(&kept).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

/// The image's `created` with its full precision (two steps may commit within one second).
fn created(image: &Image) -> (i64, u32) {
    image
        .config
        .created()
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .map(|t| (t.timestamp(), t.timestamp_subsec_nanos()))
        .unwrap_or((image.created, 0))
}

fn list(blob: &Value, key: &str) -> Vec<Value> {
    blob.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn diff_ids(blob: &Value) -> Vec<String> {
    blob.get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn is_empty_layer(entry: &Value) -> bool {
    entry
        .get("empty_layer")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn decode_ids(bytes: &[u8]) -> Vec<String> {
    // A row this version cannot read is as good as an empty one: it only costs a cache miss.
    serde_json::from_slice(bytes).unwrap_or_default()
}

fn encode_ids(ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(ids).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use crate::testutil::{require_root, temp_store, TarBuf};
    use crate::{Image, ImportOptions, Store};
    use serde_json::{json, Value};

    #[test]
    fn lookups_return_live_images_newest_first_and_forget_deleted_ones() {
        if !require_root("lookups_return_live_images_newest_first_and_forget_deleted_ones") {
            return;
        }
        let (_dir, store) = temp_store();
        assert!(store.build_cache_lookup("k").unwrap().is_empty());
        let import = |content: &[u8]| {
            let mut t = TarBuf::new();
            t.file("f", content);
            let tar = t.finish();
            store
                .import(&mut &tar[..], ImportOptions::default())
                .unwrap()
        };
        let (a, b) = (import(b"a"), import(b"b"));
        store.build_cache_add("k", &a.id).unwrap();
        store.build_cache_add("k", &b.id).unwrap();
        store.build_cache_add("other", &a.id).unwrap();
        let ids = |key: &str| -> Vec<String> {
            store
                .build_cache_lookup(key)
                .unwrap()
                .into_iter()
                .map(|i| i.id)
                .collect()
        };
        assert_eq!(ids("k")[0], b.id, "the most recent commit wins a tie");
        assert_eq!(ids("k").len(), 2);
        store.delete(&b.id).unwrap();
        assert_eq!(ids("k"), [a.id.clone()]);
        assert_eq!(ids("other"), [a.id.clone()]);
        store.delete(&a.id).unwrap();
        assert!(ids("k").is_empty());
    }

    /// A child of `parent` as a build step makes it: the parent's history plus one entry.
    fn child(
        store: &Store,
        parent: &Image,
        layer: &[u8],
        created_by: &str,
        created: &str,
    ) -> Image {
        let blob: Value = serde_json::from_slice(&store.config_blob(parent).unwrap()).unwrap();
        let (created_by, created) = (created_by.to_string(), created.to_string());
        let build = Box::new(move |diff: Option<&str>| {
            let mut b = blob.clone();
            let mut entry = json!({"created": created, "created_by": created_by});
            if let Some(d) = diff {
                b["rootfs"]["diff_ids"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!(d));
            } else {
                entry["empty_layer"] = json!(true);
            }
            b["history"].as_array_mut().unwrap().push(entry);
            b["created"] = json!(created);
            Ok(serde_json::to_vec(&b).unwrap())
        });
        let mut layer = layer;
        store.commit(Some(parent), &mut layer, build, None).unwrap()
    }

    #[test]
    fn cache_from_reuses_the_matching_history_entry() {
        if !require_root("cache_from_reuses_the_matching_history_entry") {
            return;
        }
        let (_dir, store) = temp_store();
        let mut t = TarBuf::new();
        t.file("a", b"1");
        let tar = t.finish();
        let base = store
            .import(&mut &tar[..], ImportOptions::default())
            .unwrap();
        let mut t = TarBuf::new();
        t.file("b", b"22");
        let run_layer = t.finish();
        let run = child(
            &store,
            &base,
            &run_layer,
            "/bin/sh -c echo b",
            "2024-01-01T00:00:01Z",
        );
        let env = child(
            &store,
            &run,
            &[0u8; 1024],
            "/bin/sh -c #(nop)  ENV A=1",
            "2024-01-01T00:00:02Z",
        );
        let config = serde_json::Map::new();

        // Not the next step of the source: no hit.
        assert!(store
            .build_cache_from(Some(&base), &env, "/bin/sh -c echo c", &config)
            .unwrap()
            .is_none());
        // A parent whose history the source does not start with: no hit.
        let other = store
            .import(&mut &tar[..], ImportOptions::default())
            .unwrap();
        let _ = child(&store, &other, &[0u8; 1024], "x", "2024-01-01T00:00:03Z");
        assert!(store
            .build_cache_from(Some(&env), &run, "/bin/sh -c #(nop)  ENV A=1", &config)
            .unwrap()
            .is_none());

        // A middle entry: a new image of the parent plus that entry and its layer.
        let restored = store
            .build_cache_from(Some(&base), &env, "/bin/sh -c echo b", &config)
            .unwrap()
            .unwrap();
        assert_ne!(
            restored.id, run.id,
            "config differs: the step's probe config, as Docker writes it"
        );
        assert_eq!(
            restored.config.rootfs().diff_ids(),
            run.config.rootfs().diff_ids()
        );
        assert_eq!(restored.parent.as_deref(), Some(base.id.as_str()));
        assert_eq!(restored.size, run.size);
        let blob: Value = serde_json::from_slice(&store.config_blob(&restored).unwrap()).unwrap();
        assert_eq!(blob["history"].as_array().unwrap().len(), 2);
        assert_eq!(blob["created"], "2024-01-01T00:00:01Z");

        // The last entry: the source itself, with the parent as its parent.
        let last = store
            .build_cache_from(Some(&restored), &env, "/bin/sh -c #(nop)  ENV A=1", &config)
            .unwrap()
            .unwrap();
        assert_eq!(last.id, env.id);
        assert_eq!(last.parent.as_deref(), Some(restored.id.as_str()));
    }
}
