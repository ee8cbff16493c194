//! The build cache (design §3 "Lookup"): which earlier step image a step can reuse.
//!
//! Docker finds a cached step among the images whose parent is the step's parent, taking the
//! most recently created one whose `container_config` compares equal to the step's probe
//! config (moby `image/cache`). Berth hashes the parent and exactly the compared fields into a
//! key, and the store keeps key → image IDs (`build_cache_v1`, written at each commit), so a
//! lookup reads one row. Fields Docker does not compare (`Hostname`, `Domainname`, `Image`,
//! `MacAddress`) are left out; empty and missing lists/maps are equal, as Docker compares
//! lengths.
//!
//! `--cache-from` (moby `ImageCache`): a local hit counts only when it is an ancestor of a
//! cache-from image; otherwise a cache-from image whose history and layers start with the
//! parent's, and whose next history entry was made by this step (`created_by` equal to the
//! probe's `Cmd` joined with spaces), gives the step: that image itself when the entry is its
//! last (it gets the parent as its `Parent`), else a new image made of the parent plus that
//! entry and its layer. After such a hit the build keeps to that one cache-from image.

use crate::engine::{Engine, Error, Result};
use berth_store::Image;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The key of a step: sha256 over the parent ID and the compared fields of its probe config.
pub fn cache_key(parent: Option<&str>, container_config: &Map<String, Value>) -> String {
    let mut h = Sha256::new();
    h.update(parent.unwrap_or_default().as_bytes());
    // The parent is an ID ("sha256:<hex>") or empty: it never holds a NUL.
    h.update([0u8]);
    h.update(canonical(container_config).to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Exactly the fields moby's `compare` looks at, in a fixed order, normalised as it compares
/// them (a missing list equals an empty one; maps and sets by content).
fn canonical(c: &Map<String, Value>) -> Value {
    let strings = |k: &str| string_list(c.get(k));
    let key_set = |k: &str| -> Vec<String> {
        let mut keys: Vec<String> = match c.get(k) {
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        keys.sort();
        keys
    };
    let labels: BTreeMap<String, String> = match c.get("Labels") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        _ => BTreeMap::new(),
    };
    let flag = |k: &str| c.get(k).and_then(Value::as_bool).unwrap_or(false);
    let word = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let healthcheck = match c.get("Healthcheck") {
        Some(Value::Object(h)) => {
            let num = |k: &str| h.get(k).and_then(Value::as_i64).unwrap_or(0);
            json!({
                "Test": string_list(h.get("Test")),
                "Interval": num("Interval"),
                "Timeout": num("Timeout"),
                "StartPeriod": num("StartPeriod"),
                "StartInterval": num("StartInterval"),
                "Retries": num("Retries"),
            })
        }
        _ => Value::Null,
    };
    json!({
        "Env": strings("Env"),
        "Cmd": strings("Cmd"),
        "Entrypoint": strings("Entrypoint"),
        "Shell": strings("Shell"),
        "OnBuild": strings("OnBuild"),
        "ExposedPorts": key_set("ExposedPorts"),
        "Volumes": key_set("Volumes"),
        "Labels": labels,
        "AttachStdin": flag("AttachStdin"),
        "AttachStdout": flag("AttachStdout"),
        "AttachStderr": flag("AttachStderr"),
        "NetworkDisabled": flag("NetworkDisabled"),
        "Tty": flag("Tty"),
        "OpenStdin": flag("OpenStdin"),
        "StdinOnce": flag("StdinOnce"),
        "ArgsEscaped": flag("ArgsEscaped"),
        "User": word("User"),
        "WorkingDir": word("WorkingDir"),
        "StopSignal": word("StopSignal"),
        "StopTimeout": c.get("StopTimeout").and_then(Value::as_i64),
        "Healthcheck": healthcheck,
    })
}

/// A JSON list as Docker's `[]string`: anything else (null, missing) is empty.
fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().map(text).collect(),
        _ => Vec::new(),
    }
}

/// A JSON value as the string Docker's config holds (non-strings as their JSON text).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The build's `cachefrom` images. Shared by all stages of one build (clones share state).
#[derive(Debug, Clone, Default)]
pub struct CacheFrom {
    names: Vec<String>,
    /// After a hit restored from one of them, only that one is used (as Docker does).
    pinned: Arc<Mutex<Option<String>>>,
}

impl CacheFrom {
    pub fn new(names: Vec<String>) -> CacheFrom {
        CacheFrom {
            names,
            pinned: Default::default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl Engine {
    /// The image a step with this parent and probe config can reuse, if any.
    pub async fn build_cache_get(
        &self,
        parent: Option<&str>,
        container_config: &Map<String, Value>,
        cache_from: &CacheFrom,
    ) -> Result<Option<Image>> {
        let key = cache_key(parent, container_config);
        let store = self.store.clone();
        let local = tokio::task::spawn_blocking(move || store.build_cache_lookup(&key)).await??;
        let local = local.into_iter().next();
        if cache_from.is_empty() {
            return Ok(local);
        }
        let sources = self.cache_from_sources(cache_from);
        if let Some(hit) = local {
            for source in &sources {
                if self.is_ancestor(&hit.id, source)? {
                    return Ok(Some(hit));
                }
            }
        }
        let created_by = join_cmd(container_config);
        let store = self.store.clone();
        let parent = match parent.filter(|p| !p.is_empty()) {
            Some(p) => Some(store.resolve(p)?),
            None => None,
        };
        for source in sources {
            let store = store.clone();
            let (parent, config, created_by) =
                (parent.clone(), container_config.clone(), created_by.clone());
            let source_id = source.id.clone();
            let restored = tokio::task::spawn_blocking(move || {
                store.build_cache_from(parent.as_ref(), &source, &created_by, &config)
            })
            .await??;
            if let Some(image) = restored {
                *crate::engine::lock(&cache_from.pinned) = Some(source_id);
                return Ok(Some(image));
            }
        }
        Ok(None)
    }

    /// Records that a step with this parent and probe config made `image_id`.
    pub async fn build_cache_put(
        &self,
        parent: Option<&str>,
        container_config: &Map<String, Value>,
        image_id: &str,
    ) -> Result<()> {
        let key = cache_key(parent, container_config);
        let (store, id) = (self.store.clone(), image_id.to_string());
        tokio::task::spawn_blocking(move || store.build_cache_add(&key, &id)).await??;
        Ok(())
    }

    /// The cache-from images that exist (missing ones are skipped, as Docker does).
    fn cache_from_sources(&self, cache_from: &CacheFrom) -> Vec<Image> {
        let pinned = crate::engine::lock(&cache_from.pinned).clone();
        let names: Vec<String> = match pinned {
            Some(id) => vec![id],
            None => cache_from.names.clone(),
        };
        names
            .iter()
            .filter_map(|name| match self.store.resolve(name) {
                Ok(image) => Some(image),
                Err(e) => {
                    tracing::debug!("cache-from {name}: {e}");
                    None
                }
            })
            .collect()
    }

    /// Whether `ancestor` is a strict ancestor of `image` through the `Parent` chain.
    fn is_ancestor(&self, ancestor: &str, image: &Image) -> Result<bool> {
        let mut next = image.parent.clone();
        while let Some(id) = next {
            if id == ancestor {
                return Ok(true);
            }
            next = match self.store.resolve(&id) {
                Ok(p) => p.parent,
                Err(berth_store::Error::ImageNotFound(_)) => None,
                Err(e) => return Err(Error::from(e)),
            };
        }
        Ok(false)
    }
}

/// The probe's `Cmd` joined with spaces: the `created_by` its step records.
fn join_cmd(c: &Map<String, Value>) -> String {
    string_list(c.get("Cmd")).join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Map<String, Value> {
        json!({
            "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
            "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh", "-c", "#(nop) ", "ENV A=1"], "Image": "sha256:aa", "Volumes": null,
            "WorkingDir": "", "Entrypoint": null, "OnBuild": null, "Labels": {}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    const PARENT: Option<&str> =
        Some("sha256:114596fac294d3d1de91d5aa9e0160433cb0abddb964e99c784b97be132be23d");

    #[test]
    fn equal_configs_have_equal_keys() {
        let key = cache_key(PARENT, &config());
        assert_eq!(key.len(), 64);
        assert_eq!(key, cache_key(PARENT, &config()));
        // Field order does not matter.
        let mut reordered = Map::new();
        for (k, v) in config().into_iter().rev() {
            reordered.insert(k, v);
        }
        assert_eq!(key, cache_key(PARENT, &reordered));
    }

    #[test]
    fn the_parent_is_part_of_the_key() {
        let key = cache_key(PARENT, &config());
        assert_ne!(key, cache_key(Some("sha256:bb"), &config()));
        assert_ne!(key, cache_key(None, &config()));
        assert_eq!(
            cache_key(None, &config()),
            cache_key(Some(""), &config()),
            "scratch"
        );
    }

    #[test]
    fn fields_docker_does_not_compare_leave_the_key_alone() {
        let key = cache_key(PARENT, &config());
        for (field, value) in [
            ("Hostname", json!("abcdef")),
            ("Domainname", json!("example.com")),
            ("Image", json!("sha256:other")),
            ("MacAddress", json!("02:42:ac:11:00:02")),
        ] {
            let mut c = config();
            c.insert(field.into(), value);
            assert_eq!(key, cache_key(PARENT, &c), "{field} changed the key");
        }
    }

    #[test]
    fn missing_and_empty_collections_are_equal() {
        let key = cache_key(PARENT, &config());
        let mut c = config();
        c.insert("Volumes".into(), json!({}));
        c.insert("Entrypoint".into(), json!([]));
        c.insert("OnBuild".into(), json!([]));
        c.insert("Labels".into(), Value::Null);
        c.remove("Tty");
        c.remove("User");
        assert_eq!(key, cache_key(PARENT, &c));
    }

    #[test]
    fn each_compared_field_changes_the_key() {
        let key = cache_key(PARENT, &config());
        let changes = [
            (
                "Env",
                json!([
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "A=1"
                ]),
            ),
            ("Cmd", json!(["/bin/sh", "-c", "#(nop) ", "ENV A=2"])),
            ("Entrypoint", json!([""])),
            ("Shell", json!(["/bin/sh", "-xc"])),
            ("OnBuild", json!(["RUN true"])),
            ("ExposedPorts", json!({"80/tcp": {}})),
            ("Volumes", json!({"/data": {}})),
            ("Labels", json!({"a": "b"})),
            ("AttachStdin", json!(true)),
            ("AttachStdout", json!(true)),
            ("AttachStderr", json!(true)),
            ("NetworkDisabled", json!(true)),
            ("Tty", json!(true)),
            ("OpenStdin", json!(true)),
            ("StdinOnce", json!(true)),
            ("ArgsEscaped", json!(true)),
            ("User", json!("nobody")),
            ("WorkingDir", json!("/app")),
            ("StopSignal", json!("SIGKILL")),
            ("StopTimeout", json!(5)),
            ("Healthcheck", json!({"Test": ["NONE"]})),
        ];
        let mut seen = std::collections::HashSet::new();
        for (field, value) in changes {
            let mut c = config();
            c.insert(field.into(), value);
            let changed = cache_key(PARENT, &c);
            assert_ne!(key, changed, "{field} did not change the key");
            assert!(seen.insert(changed), "{field} collides with another change");
        }
    }

    #[test]
    fn order_matters_in_lists_but_not_in_maps() {
        let mut a = config();
        a.insert("Env".into(), json!(["A=1", "B=2"]));
        let mut b = config();
        b.insert("Env".into(), json!(["B=2", "A=1"]));
        assert_ne!(cache_key(PARENT, &a), cache_key(PARENT, &b));
        a.insert("Labels".into(), json!({"x": "1", "y": "2"}));
        b.insert("Env".into(), json!(["A=1", "B=2"]));
        b.insert("Labels".into(), json!({"y": "2", "x": "1"}));
        assert_eq!(cache_key(PARENT, &a), cache_key(PARENT, &b));
        b.insert("Labels".into(), json!({"y": "2", "x": "3"}));
        assert_ne!(cache_key(PARENT, &a), cache_key(PARENT, &b));
    }

    #[test]
    fn each_healthcheck_field_changes_the_key() {
        let base = json!({"Test": ["CMD-SHELL", "true"], "Interval": 0, "Timeout": 0, "StartPeriod": 0, "Retries": 0});
        let with = |h: Value| {
            let mut c = config();
            c.insert("Healthcheck".into(), h);
            cache_key(PARENT, &c)
        };
        let key = with(base.clone());
        for (field, value) in [
            ("Test", json!(["CMD-SHELL", "false"])),
            ("Interval", json!(5_000_000_000i64)),
            ("Timeout", json!(1)),
            ("StartPeriod", json!(1)),
            ("Retries", json!(3)),
        ] {
            let mut h = base.clone();
            h[field] = value;
            assert_ne!(key, with(h), "Healthcheck.{field}");
        }
    }

    #[test]
    fn created_by_is_the_command_joined() {
        assert_eq!(join_cmd(&config()), "/bin/sh -c #(nop)  ENV A=1");
    }
}
