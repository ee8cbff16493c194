//! FROM (dockerd's `initializeStage`): the base is a finished stage, `scratch`, a local image,
//! or one pulled with the request's credentials (always with `--pull`). The pull's progress
//! messages go into the build's stream, as dockerd writes them.

use berth_store::{Image, Reference};
use bytes::Bytes;
use serde_json::Value;

use super::{BuildCtx, StageState};
use crate::build::args::BuildArgs;
use crate::build::config::RunConfig;
use crate::build::expand::Scope;
use crate::build::output::StageOut;
use crate::build::BuildError;
use crate::engine::PullOptions;

/// The stage's starting state, and the ONBUILD triggers its base carries.
pub async fn initialize(
    ctx: &BuildCtx,
    index: usize,
    image: &str,
    platform: Option<&str>,
    args: BuildArgs,
    out: &StageOut,
) -> Result<(StageState, Vec<String>), BuildError> {
    let scope = Scope::for_from(&args, ctx.escape);
    if let Some(p) = platform.or(ctx.opts.platform.as_deref()) {
        let p = scope.word(p).map_err(|e| {
            BuildError::msg(format!("failed to process arguments for platform {p}: {e}"))
        })?;
        check_platform(&p)?;
    }
    let name = scope.word(image)?;
    if name.is_empty() {
        return Err(BuildError::msg(format!(
            "base name ({image}) should not be blank"
        )));
    }
    let base = base_image(ctx, &name, out).await?;
    if let Some(image) = &base {
        ctx.leases.hold(image).await?;
    }
    let docker_config = base.as_ref().map(config_of);
    let mut config = RunConfig::for_stage(docker_config.as_ref());
    let triggers = config.on_build.take().unwrap_or_default();
    config.image = base.as_ref().map(|i| i.id.clone()).unwrap_or_default();
    let state = StageState {
        index,
        image: base,
        config,
        args,
        maintainer: String::new(),
        cmd_set: false,
    };
    Ok((state, triggers))
}

/// The image's `config` object as stored (Docker's fields included).
fn config_of(image: &Image) -> Value {
    match &image.docker_config {
        Some(v) => v.clone(),
        None => image
            .config
            .config()
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or(Value::Null),
    }
}

/// `--platform` (of FROM, or the build's): berthd builds only for platforms this host runs.
fn check_platform(p: &str) -> Result<(), BuildError> {
    use berth_store::platform::{Matcher, Platform};
    let host = Matcher::host();
    let parts: Vec<&str> = p.trim().split('/').collect();
    let wanted = match parts.as_slice() {
        [os] => Platform::new(
            os,
            &host.preferred().architecture,
            host.preferred().variant.as_deref().unwrap_or(""),
        ),
        [os, arch] => Platform::new(os, arch, ""),
        [os, arch, variant] => Platform::new(os, arch, variant),
        _ => {
            return Err(BuildError::msg(format!(
                "failed to parse platform {p}: invalid platform"
            )))
        }
    };
    if host.matches(&wanted) {
        Ok(())
    } else {
        let host = host.preferred();
        Err(BuildError::msg(format!(
            "platform {} is not supported: berthd builds for {}/{} only",
            wanted.display(),
            host.os,
            host.architecture
        )))
    }
}

/// The base image `name` names (`None` for scratch).
async fn base_image(
    ctx: &BuildCtx,
    name: &str,
    out: &StageOut,
) -> Result<Option<Image>, BuildError> {
    // A finished stage's name; anything else (an index too, unlike `--from`) names an image.
    if let Some(stage_image) = ctx.stages.get_by_name(name) {
        return Ok(stage_image);
    }
    if name == "scratch" {
        return Ok(None);
    }
    resolve_or_pull(ctx, name, out).await.map(Some)
}

/// A local image, else (or with `--pull` always) pulled.
pub async fn resolve_or_pull(
    ctx: &BuildCtx,
    name: &str,
    out: &StageOut,
) -> Result<Image, BuildError> {
    if !ctx.opts.pull {
        if let Ok(image) = ctx.engine.image(name).await {
            ctx.leases.hold(&image).await?;
            return Ok(image);
        }
    }
    let reference = Reference::parse(name).map_err(|e| BuildError::msg(e.to_string()))?;
    pull(ctx, &reference, out).await?;
    let image = ctx.engine.image(&reference.full()).await?;
    ctx.leases.hold(&image).await?;
    Ok(image)
}

/// Pulls `reference`, passing its progress into the stream; the pull's error ends the step.
async fn pull(ctx: &BuildCtx, reference: &Reference, out: &StageOut) -> Result<(), BuildError> {
    let opts = PullOptions {
        from_image: reference.name(),
        tag: reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_string(),
        platform: None,
        auth: ctx.opts.pull_auth(reference),
    };
    let mut rx = tokio::select! {
        r = ctx.engine.pull(opts) => r?,
        () = ctx.cancel.cancelled() => return Err(BuildError::Cancelled),
    };
    loop {
        let line: Option<Bytes> = tokio::select! {
            l = rx.recv() => l,
            () = ctx.cancel.cancelled() => return Err(BuildError::Cancelled),
        };
        let Some(line) = line else { return Ok(()) };
        let parsed: Option<Value> = serde_json::from_slice(&line).ok();
        if let Some(message) = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
        {
            return Err(BuildError::msg(message));
        }
        out.raw(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_platform() {
        let host = berth_store::platform::host_platform();
        assert!(check_platform(&format!("linux/{}", host.architecture)).is_ok());
        assert!(check_platform("linux").is_ok());
        assert!(check_platform("windows/amd64").is_err());
        assert!(check_platform("linux/s390x").is_err() || host.architecture == "s390x");
    }
}
