//! One stage's steps: the state a stage carries (image, run config, args) and the dispatch of
//! each instruction, as dockerd 20.10's `dispatchers.go`. Every step probes the cache with its
//! probe config first (design §3); a miss makes the image through a build container (metadata
//! steps and RUN) or a direct layer commit (COPY/ADD).

pub mod copy;
pub mod from;
pub mod meta;
pub mod onbuild;
pub mod run;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use berth_dockerfile::{Instruction, Step};
use berth_store::Image;

use super::args::BuildArgs;
use super::cache::CacheFrom;
use super::config::RunConfig;
use super::context_store::ContextView;
use super::expand::Scope;
use super::leases::BuildLeases;
use super::options::BuildOptions;
use super::output::{short_id, StageOut};
use super::BuildError;
use crate::engine::build_step::{BuildContainer, CancelToken, StepCommit};
use crate::engine::Engine;

/// What every stage of one build shares.
pub struct BuildCtx {
    pub engine: Arc<Engine>,
    pub opts: Arc<BuildOptions>,
    /// The Dockerfile's escape character, for word expansion.
    pub escape: char,
    pub cancel: CancelToken,
    pub cache_from: CacheFrom,
    pub context: Arc<ContextView>,
    pub stages: StageResults,
    /// Every image the build reads is held here until it ends (leases.rs).
    pub leases: Arc<BuildLeases>,
}

/// The images finished stages made, for `FROM <stage>` and `COPY --from=<stage>`.
#[derive(Default)]
pub struct StageResults {
    /// Stage name (lower case) → index, from the Dockerfile.
    names: HashMap<String, usize>,
    done: Mutex<HashMap<usize, Option<Image>>>,
}

impl StageResults {
    pub fn new(names: HashMap<String, usize>) -> StageResults {
        StageResults {
            names,
            done: Mutex::default(),
        }
    }

    /// Records what stage `index` made (`None`: a `FROM scratch` stage with no step).
    pub fn finish(&self, index: usize, image: Option<Image>) {
        crate::engine::lock(&self.done).insert(index, image);
    }

    /// The finished stage named `name` (FROM only looks stages up by name).
    pub fn get_by_name(&self, name: &str) -> Option<Option<Image>> {
        let i = self.names.get(&name.to_ascii_lowercase())?;
        crate::engine::lock(&self.done).get(i).cloned()
    }

    /// The stage a `--from` value names, as dockerd's `stagesBuildResults.get`: a
    /// finished stage's name, or an index below `current`. `Ok(None)`: not a stage (an image).
    pub fn get(
        &self,
        name_or_index: &str,
        current: usize,
    ) -> Result<Option<Option<Image>>, String> {
        let done = crate::engine::lock(&self.done);
        if let Some(i) = self.names.get(&name_or_index.to_ascii_lowercase()) {
            if let Some(image) = done.get(i) {
                return Ok(Some(image.clone()));
            }
            if *i < current {
                return Err(format!("stage {name_or_index} was not built"));
            }
            return Ok(None);
        }
        let Ok(i) = name_or_index.parse::<i64>() else {
            return Ok(None);
        };
        if i == current as i64 {
            return Err("refers to current build stage".into());
        }
        if i < 0 || i > current as i64 {
            return Err("index out of bounds".into());
        }
        match done.get(&(i as usize)) {
            Some(image) => Ok(Some(image.clone())),
            None => Err(format!("stage {i} was not built")),
        }
    }
}

/// A stage's state between steps (dockerd's `dispatchState`).
pub struct StageState {
    pub index: usize,
    /// The image the last step made; `None` on `scratch` before the first commit.
    pub image: Option<Image>,
    pub config: RunConfig,
    pub args: BuildArgs,
    /// MAINTAINER: the author of every image after it.
    pub maintainer: String,
    /// CMD was given in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

impl StageState {
    pub fn image_id(&self) -> Option<&str> {
        self.image.as_ref().map(|i| i.id.as_str())
    }

    /// The step's result becomes the stage's image (and the config's `Image`, as dockerd's
    /// `updateRunConfig`).
    pub fn set_image(&mut self, image: Image) {
        self.config.image = image.id.clone();
        self.image = Some(image);
    }

    /// Holds the stage's image until the build ends: an `rmi` meanwhile cannot free the
    /// layers the next steps and later stages read.
    pub async fn hold(&self, ctx: &BuildCtx) -> Result<(), BuildError> {
        match &self.image {
            Some(image) => ctx.leases.hold(image).await,
            None => Ok(()),
        }
    }

    /// ` ---> <id>` after a step.
    pub fn print_id(&self, out: &StageOut) {
        out.text(&format!(
            " ---> {}\n",
            self.image_id().map(short_id).unwrap_or_default()
        ));
    }
}

/// Runs one instruction of a stage (FROM excepted).
pub async fn dispatch(
    ctx: &BuildCtx,
    st: &mut StageState,
    step: &Step,
    out: &StageOut,
) -> Result<(), BuildError> {
    if ctx.cancel.is_cancelled() {
        return Err(BuildError::Cancelled);
    }
    let scope = Scope::for_step(&st.config, &st.args, ctx.escape);
    match &step.instruction {
        Instruction::From { .. } => return Err(BuildError::msg("FROM inside a stage")),
        Instruction::Run { command, heredocs } => run::run(ctx, st, command, heredocs, out).await?,
        Instruction::Copy(c) => copy::copy_step(ctx, st, &scope, c, false, out).await?,
        Instruction::Add(c) => copy::copy_step(ctx, st, &scope, c, true, out).await?,
        other => meta::dispatch(ctx, st, other, &scope, out).await?,
    }
    st.hold(ctx).await
}

/// Looks the probe config up in the cache; on a hit prints ` ---> Using cache` and moves the
/// stage to the cached image.
pub async fn probe_cache(
    ctx: &BuildCtx,
    st: &mut StageState,
    probe: &RunConfig,
    out: &StageOut,
) -> Result<bool, BuildError> {
    if ctx.opts.no_cache {
        return Ok(false);
    }
    let parent = st.image_id().map(String::from);
    let hit = ctx
        .engine
        .build_cache_get(parent.as_deref(), &probe.to_map(), &ctx.cache_from)
        .await?;
    match hit {
        Some(image) => {
            out.text(" ---> Using cache\n");
            st.set_image(image);
            Ok(true)
        }
        None => Ok(false),
    }
}

/// A step's container: created from the stage's image with `config`, announced with
/// ` ---> Running in <id>`.
pub async fn create_container(
    ctx: &BuildCtx,
    st: &StageState,
    config: &RunConfig,
    out: &StageOut,
) -> Result<BuildContainer, BuildError> {
    let c = ctx
        .engine
        .build_create(st.image_id(), config.to_map(), &ctx.opts.resources)
        .await?;
    out.text(&format!(" ---> Running in {}\n", short_id(&c.id)));
    Ok(c)
}

/// Commits the step's container as the stage's next image (`container_config` = the probe
/// config, `config` = the stage's run config), records it in the cache and removes the
/// container.
pub async fn commit_container(
    ctx: &BuildCtx,
    st: &mut StageState,
    c: BuildContainer,
    probe: &RunConfig,
    out: &StageOut,
) -> Result<(), BuildError> {
    let parent = st.image_id().map(String::from);
    // Docker's container config carries the hostname the container got: its short ID.
    let mut container_config = probe.clone();
    container_config.hostname = short_id(&c.id);
    let step = StepCommit {
        parent,
        config: st.config.to_map(),
        container_config: container_config.to_map(),
        created_by: probe.cmd_line(),
        author: st.maintainer.clone(),
    };
    let made = ctx.engine.build_commit_step(&c, step).await;
    finish_container_step(ctx, st, c, probe, made.map_err(BuildError::from), out).await
}

/// The end of a step that made `made` from its container `c`. On success the image is
/// recorded in the cache (under the stage's current image and `probe`) and becomes the
/// stage's image, and the container goes; on failure the container goes and the error is
/// returned.
pub async fn finish_container_step(
    ctx: &BuildCtx,
    st: &mut StageState,
    c: BuildContainer,
    probe: &RunConfig,
    made: Result<Image, BuildError>,
    out: &StageOut,
) -> Result<(), BuildError> {
    let image = match made {
        Ok(image) => image,
        Err(e) => {
            remove_container(ctx, c, out, false).await;
            return Err(e);
        }
    };
    if let Err(e) = ctx
        .engine
        .build_cache_put(st.image_id(), &probe.to_map(), &image.id)
        .await
    {
        tracing::warn!("recording build cache entry for {}: {e}", image.id);
    }
    remove_container(ctx, c, out, true).await;
    st.set_image(image);
    Ok(())
}

/// Removes a step's container. After a success it goes when `rm` is set (the default), with
/// dockerd's `Removing intermediate container` line; after a failure it always goes (20.10
/// leaves it behind), and the line is printed only with `--force-rm`, as dockerd prints it.
pub async fn remove_container(ctx: &BuildCtx, c: BuildContainer, out: &StageOut, succeeded: bool) {
    let announce = if succeeded {
        ctx.opts.remove
    } else {
        ctx.opts.force_remove
    };
    if succeeded && !ctx.opts.remove {
        // `--rm=false`: the container stays, as in Docker.
        c.keep();
        return;
    }
    ctx.engine.build_remove(&c).await;
    if announce {
        out.text(&format!(
            "Removing intermediate container {}\n",
            short_id(&c.id)
        ));
    }
}

/// A metadata step: probe, else create a container (never started) and commit it.
pub async fn commit_nop(
    ctx: &BuildCtx,
    st: &mut StageState,
    probe: RunConfig,
    out: &StageOut,
) -> Result<(), BuildError> {
    if probe_cache(ctx, st, &probe, out).await? {
        return Ok(());
    }
    let c = create_container(ctx, st, &probe, out).await?;
    commit_container(ctx, st, c, &probe, out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_references_as_dockerd() {
        let r = StageResults::new(HashMap::from([
            ("first".to_string(), 0),
            ("later".to_string(), 3),
        ]));
        r.finish(0, None);
        assert!(matches!(r.get("FIRST", 2), Ok(Some(None))));
        assert!(matches!(r.get("0", 2), Ok(Some(None))));
        assert_eq!(r.get("2", 2).unwrap_err(), "refers to current build stage");
        assert_eq!(r.get("5", 2).unwrap_err(), "index out of bounds");
        assert!(matches!(r.get("busybox", 2), Ok(None)));
        // A later stage's name is an image name for an earlier stage.
        assert!(matches!(r.get("later", 2), Ok(None)));
    }
}
