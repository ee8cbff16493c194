//! The image JSON of a build step made without the engine's container commit (moby's
//! `image.NewChildImage`): the parent's platform, layers and history plus this step. The
//! JSON itself is the engine's (`engine::commit::NewImage`), shared with `docker commit`.

use serde_json::{json, Value};

use super::config::RunConfig;
use super::steps::{BuildCtx, StageState};
use super::BuildError;
use crate::engine::commit::NewImage;

/// What a step's image is made of, besides its layer.
pub struct ChildImage(NewImage);

impl ChildImage {
    /// The next image of `st` for a step whose probe config is `probe`; `container` is the
    /// step's container, if one was created (empty: none, and no `container` in the JSON).
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
        Ok(ChildImage(NewImage {
            parent,
            config: Value::Object(st.config.to_map()),
            container: container.to_string(),
            container_config: Value::Object(probe.to_map()),
            author: st.maintainer.clone(),
            comment: String::new(),
            created_by: probe.cmd_line(),
            created: crate::engine::now_rfc3339(),
        }))
    }

    /// The config blob, given the new layer's diff ID (`None`: an empty layer).
    pub fn blob(&self, diff_id: Option<&str>) -> Value {
        self.0.blob(diff_id)
    }
}
