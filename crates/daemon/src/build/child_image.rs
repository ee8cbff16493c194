//! The image JSON of a build step made without the engine's container commit (moby's
//! `image.NewChildImage`): the parent's platform, layers and history plus this step.

use serde_json::{json, Map, Value};

use super::config::RunConfig;
use super::steps::{BuildCtx, StageState};
use super::BuildError;

/// What a step's image is made of, besides its layer.
pub struct ChildImage {
    parent: Value,
    config: Value,
    /// The step's container, if one was created (`container` in the JSON; omitted when empty).
    container: String,
    container_config: Value,
    author: String,
    created_by: String,
    created: String,
}

impl ChildImage {
    /// The next image of `st` for a step whose probe config is `probe`.
    pub async fn new(
        ctx: &BuildCtx,
        st: &StageState,
        probe: &RunConfig,
        container: &str,
    ) -> Result<ChildImage, BuildError> {
        let parent = match &st.image {
            Some(p) => {
                let (store, p) = (ctx.engine.store.clone(), p.clone());
                let blob = tokio::task::spawn_blocking(move || store.config_blob(&p)).await??;
                serde_json::from_slice(&blob)
                    .map_err(|e| BuildError::msg(format!("image config: {e}")))?
            }
            None => json!({}),
        };
        Ok(ChildImage {
            parent,
            config: Value::Object(st.config.to_map()),
            container: container.to_string(),
            container_config: Value::Object(probe.to_map()),
            author: st.maintainer.clone(),
            created_by: probe.cmd_line(),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        })
    }

    /// The config blob, given the new layer's diff ID (`None`: an empty layer).
    pub fn blob(&self, diff_id: Option<&str>) -> Value {
        let parent = |k: &str| self.parent.get(k).cloned();
        let mut history = match parent("history") {
            Some(Value::Array(h)) => h,
            _ => Vec::new(),
        };
        let mut entry = Map::new();
        entry.insert("created".into(), json!(self.created));
        if !self.author.is_empty() {
            entry.insert("author".into(), json!(self.author));
        }
        entry.insert("created_by".into(), json!(self.created_by));
        if diff_id.is_none() {
            entry.insert("empty_layer".into(), json!(true));
        }
        history.push(Value::Object(entry));
        let mut diff_ids = parent("rootfs")
            .and_then(|r| r.get("diff_ids").cloned())
            .and_then(|d| d.as_array().cloned())
            .unwrap_or_default();
        diff_ids.extend(diff_id.map(|d| json!(d)));
        let mut blob = Map::new();
        for key in ["architecture", "variant", "os", "os.version", "os.features"] {
            if let Some(v) = parent(key).filter(|v| !v.is_null()) {
                blob.insert(key.into(), v);
            }
        }
        blob.entry("architecture")
            .or_insert_with(|| json!(host_arch()));
        blob.entry("os").or_insert_with(|| json!("linux"));
        if !self.author.is_empty() {
            blob.insert("author".into(), json!(self.author));
        }
        blob.insert("config".into(), self.config.clone());
        if !self.container.is_empty() {
            blob.insert("container".into(), json!(self.container));
        }
        blob.insert("container_config".into(), self.container_config.clone());
        blob.insert("created".into(), json!(self.created));
        blob.insert(
            "docker_version".into(),
            json!(berth_api::version::ENGINE_VERSION),
        );
        blob.insert("history".into(), Value::Array(history));
        blob.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        Value::Object(blob)
    }
}

/// GOARCH's name for this CPU, for a parent that names none (scratch).
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
