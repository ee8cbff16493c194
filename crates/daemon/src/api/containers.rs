//! `/containers/…` routes.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use super::image_inspect::GraphDriver;
use crate::engine::{Engine, ListOptions, WaitCondition};
use crate::humanize;
use crate::io::logs;
use crate::state::{Record, Status};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_api::models::{
    ContainerConfig, ContainerCreateBody, ContainerCreateResponse, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, ContainerSummary, ContainerSummaryHostConfig, ContainerSummaryStateEnum, ContainerTopResponse,
    ContainerWaitResponse, DriverData,
};
use hyper::StatusCode;
use std::sync::Arc;

type Engine_ = State<Arc<Engine>>;

pub async fn create(State(engine): Engine_, RawQuery(q): RawQuery, body: Bytes) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    crate::engine::check_restart_policy_name(&body)?;
    let body: ContainerCreateBody = serde_json::from_slice(&body).map_err(|e| bad_request(e.to_string()))?;
    let (id, warnings) = engine.create(q.get("name").map(String::from), body).await?;
    Ok((StatusCode::CREATED, Json(ContainerCreateResponse { id, warnings })).into_response())
}

pub async fn start(State(engine): Engine_, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.start(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn stop(State(engine): Engine_, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Query::parse(q.as_deref());
    engine.stop(&id, q.int("t")).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn restart(State(engine): Engine_, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Query::parse(q.as_deref());
    engine.restart(&id, q.int("t")).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn rename(State(engine): Engine_, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Query::parse(q.as_deref());
    engine.rename(&id, q.get("name").unwrap_or_default())?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn top(State(engine): Engine_, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Json<ContainerTopResponse>> {
    let q = Query::parse(q.as_deref());
    let top = engine.top(&id, q.get("ps_args").unwrap_or_default()).await?;
    Ok(Json(ContainerTopResponse { titles: Some(top.titles), processes: Some(top.processes) }))
}

pub async fn pause(State(engine): Engine_, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.pause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn unpause(State(engine): Engine_, Path(id): Path<String>) -> ApiResult<StatusCode> {
    engine.unpause(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn kill(State(engine): Engine_, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Query::parse(q.as_deref());
    engine.kill(&id, q.get("signal")).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove(State(engine): Engine_, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Query::parse(q.as_deref());
    let mounts = engine.container(&id)?.snapshot().mounts;
    engine.remove(&id, q.flag("force")).await?;
    if q.flag("v") {
        engine.remove_anonymous_volumes(&mounts);
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn resize(State(engine): Engine_, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Query::parse(q.as_deref());
    let dim = |k| q.int(k).and_then(|v| u16::try_from(v).ok()).ok_or_else(|| bad_request(format!("invalid {k}")));
    engine.resize(&id, dim("h")?, dim("w")?).await?;
    Ok(StatusCode::OK)
}

/// Answers with headers at once and the exit code when the condition holds, so the client
/// knows the wait is registered before it starts the container.
pub async fn wait(State(engine): Engine_, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let condition = match q.get("condition").unwrap_or("not-running") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => return Err(bad_request(format!("invalid condition: {other:?}"))),
    };
    engine.container(&id)?;
    let body = futures_util::stream::once(async move {
        let code = engine.wait(&id, condition).await.unwrap_or(-1);
        let mut json = serde_json::to_vec(&ContainerWaitResponse { status_code: code, error: None })
            .unwrap_or_default();
        json.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(json))
    });
    Ok(([("Content-Type", "application/json")], Body::from_stream(body)).into_response())
}

pub async fn inspect(State(engine): Engine_, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    let c = engine.container(&id)?;
    let mut view = inspect_view(&engine, &c.snapshot())?;
    // API 1.41's NetworkSettings has fields the model no longer carries.
    view["NetworkSettings"] = engine.container_network_settings(&c.snapshot());
    Ok(Json(view))
}

pub async fn list(State(engine): Engine_, RawQuery(q): RawQuery) -> ApiResult<Json<Vec<ContainerSummary>>> {
    let q = Query::parse(q.as_deref());
    let opts = ListOptions {
        all: q.flag("all"),
        limit: q.int("limit").filter(|l| *l > 0).map(|l| l as usize),
        filters: q.filters().map_err(bad_request)?,
    };
    let records = engine.list(&opts)?;
    let mut views: Vec<ContainerSummary> = records.iter().map(|r| summary_view(&engine, r)).collect();
    // Sizes walk each container's files, so only on request and off the async workers.
    if q.flag("size") {
        let e = engine.clone();
        let sizes = tokio::task::spawn_blocking(move || records.iter().map(|r| e.container_sizes(r)).collect::<Vec<_>>())
            .await
            .map_err(crate::engine::Error::from)?;
        for (view, (rw, root_fs)) in views.iter_mut().zip(sizes) {
            view.size_rw = Some(rw);
            view.size_root_fs = Some(root_fs);
        }
    }
    Ok(Json(views))
}

pub async fn logs(State(engine): Engine_, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let c = engine.container(&id)?;
    let rec = c.snapshot();
    let opts = logs::Options {
        stdout: q.flag("stdout"),
        stderr: q.flag("stderr"),
        timestamps: q.flag("timestamps"),
        details: q.flag("details"),
        multiplexed: rec.config.tty != Some(true),
        since: logs::parse_time(q.get("since")).map_err(bad_request)?,
        until: logs::parse_time(q.get("until")).map_err(bad_request)?,
    };
    if !opts.stdout && !opts.stderr {
        return Err(bad_request("Bad parameters: you must choose at least one stream"));
    }
    let tail = q.get("tail").and_then(|t| t.parse::<usize>().ok());
    let follow = q.flag("follow");
    let rx = engine.follow_logs(&c, opts, tail, follow)?;
    let content_type = if opts.multiplexed {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    let mut rx = rx;
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|chunk| chunk.map(|b| Ok::<_, std::convert::Infallible>(Bytes::from(b))))
    });
    Ok(([("Content-Type", content_type)], Body::from_stream(stream)).into_response())
}

/// Docker's `Status` column: "Up 3 minutes", "Exited (0) 5 seconds ago", "Created".
fn status_text(rec: &Record) -> String {
    let since = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .and_then(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std().ok())
            .unwrap_or_default()
    };
    match rec.state.status {
        Status::Exited if rec.state.restarting => format!(
            "Restarting ({}) {} ago",
            rec.state.exit_code,
            humanize::duration(since(&rec.state.finished_at))
        ),
        Status::Created => "Created".into(),
        Status::Running if rec.state.paused => {
            format!("Up {} (Paused)", humanize::duration(since(&rec.state.started_at)))
        }
        Status::Running => format!(
            "Up {}{}",
            humanize::duration(since(&rec.state.started_at)),
            crate::engine::health_status_suffix(rec.state.health.as_ref())
        ),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            rec.state.exit_code,
            humanize::duration(since(&rec.state.finished_at))
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
    }
}

/// Docker's `Command` in lists: the path and args, an arg holding a space in single quotes.
fn command_line(rec: &Record) -> String {
    let quoted = |a: &String| if a.contains(' ') { format!("'{a}'") } else { a.clone() };
    std::iter::once(rec.path.clone()).chain(rec.args.iter().map(quoted)).collect::<Vec<_>>().join(" ")
}

pub(super) fn summary_view(engine: &Engine, rec: &Record) -> ContainerSummary {
    let created = chrono::DateTime::parse_from_rfc3339(&rec.created).map(|t| t.timestamp()).unwrap_or(0);
    ContainerSummary {
        id: Some(rec.id.clone()),
        names: Some(vec![format!("/{}", rec.name)]),
        image: Some(engine.list_image_name(rec)),
        image_id: Some(rec.image_id.clone()),
        command: Some(command_line(rec)),
        created: Some(created),
        ports: Some(engine.summary_ports(rec)),
        network_settings: Some(berth_api::models::ContainerSummaryNetworkSettings { networks: Some(engine.summary_networks(rec)) }),
        labels: rec.config.labels.clone().or_else(|| Some(Default::default())),
        state: Some(match rec.state.status {
            Status::Exited if rec.state.restarting => ContainerSummaryStateEnum::RESTARTING,
            Status::Running if rec.state.paused => ContainerSummaryStateEnum::PAUSED,
            Status::Created => ContainerSummaryStateEnum::CREATED,
            Status::Running => ContainerSummaryStateEnum::RUNNING,
            Status::Exited => ContainerSummaryStateEnum::EXITED,
            Status::Removing => ContainerSummaryStateEnum::REMOVING,
            Status::Dead => ContainerSummaryStateEnum::DEAD,
        }),
        status: Some(status_text(rec)),
        host_config: Some(ContainerSummaryHostConfig {
            network_mode: Some(rec.host_config.network_mode.clone().unwrap_or_else(|| "default".into())),
            annotations: None,
        }),
        mounts: Some(engine.mount_points(&rec.mounts)),
        ..Default::default()
    }
}

/// overlay2's directories as Docker lists them (without its init layer, which berth has
/// not); empty for vfs, which has none to show.
fn graph_driver_data(engine: &Engine, rec: &Record) -> std::collections::BTreeMap<String, String> {
    let mut data = std::collections::BTreeMap::new();
    let tree = engine.store.container_image(&rec.image_id).and_then(|image| engine.store.rootfs_tree(&rec.id, &image));
    if let Ok(berth_store::RootfsTree::Changes { upper, lowers }) = tree {
        let lowers: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        if !lowers.is_empty() {
            data.insert("LowerDir".into(), lowers.join(":"));
        }
        let merged = engine.paths.run_dir(&rec.id).join("rootfs");
        data.insert("MergedDir".into(), merged.display().to_string());
        data.insert("WorkDir".into(), upper.with_file_name("work").display().to_string());
        data.insert("UpperDir".into(), upper.display().to_string());
    }
    data
}

/// The container's `Config` as inspect shows it: dockerd stores the hostname it generates
/// (the short ID) in `Config.Hostname` at create, and clients read it from there.
fn config_view(rec: &Record) -> ContainerConfig {
    let mut config = rec.config.clone();
    if config.hostname.as_deref().unwrap_or("").is_empty() {
        config.hostname = Some(crate::spec::hostname(&rec.id, &rec.config));
    }
    config
}

/// The container's inspect JSON (without API 1.41's `NetworkSettings`, which the handler adds).
fn inspect_view(engine: &Engine, rec: &Record) -> Result<serde_json::Value, crate::engine::Error> {
    // Empty before the first start; under `--network container:` the other's files.
    let etc_dir = engine.etc_files_dir(rec);
    let etc_path = |file: &str| etc_dir.as_ref().map_or(String::new(), |d| d.join(file).display().to_string());
    let s = &rec.state;
    let model = ContainerInspectResponse {
        id: Some(rec.id.clone()),
        created: Some(rec.created.clone()),
        path: Some(rec.path.clone()),
        args: Some(rec.args.clone()),
        state: Some(ContainerState {
            status: Some(match s.status {
                Status::Exited if s.restarting => ContainerStateStatusEnum::RESTARTING,
                Status::Running if s.paused => ContainerStateStatusEnum::PAUSED,
                Status::Created => ContainerStateStatusEnum::CREATED,
                Status::Running => ContainerStateStatusEnum::RUNNING,
                Status::Exited => ContainerStateStatusEnum::EXITED,
                Status::Removing => ContainerStateStatusEnum::REMOVING,
                Status::Dead => ContainerStateStatusEnum::DEAD,
            }),
            running: Some(s.counts_as_running()),
            paused: Some(s.is_paused()),
            restarting: Some(s.restarting),
            oom_killed: Some(s.oom_killed),
            dead: Some(s.status == Status::Dead),
            pid: Some(s.pid),
            exit_code: Some(s.exit_code),
            error: Some(s.error.clone()),
            started_at: Some(s.started_at.clone()),
            finished_at: Some(s.finished_at.clone()),
            health: s.health.clone(),
        }),
        image: Some(rec.image_id.clone()),
        resolv_conf_path: Some(etc_path("resolv.conf")),
        hostname_path: Some(etc_path("hostname")),
        hosts_path: Some(etc_path("hosts")),
        // json-file's only, as Docker shows it (empty for `none`, `local` and `syslog`).
        log_path: Some(if logs::driver::is_json_file(rec) { engine.paths.log_path(&rec.id).display().to_string() } else { String::new() }),
        name: Some(format!("/{}", rec.name)),
        restart_count: Some(rec.restart_count),
        driver: Some(engine.store.driver().name().into()),
        platform: Some("linux".into()),
        mount_label: Some(String::new()),
        process_label: Some(String::new()),
        app_armor_profile: Some(crate::spec_security::apparmor_profile(&rec.host_config)),
        host_config: Some(rec.host_config.clone()),
        // A placeholder holding `GraphDriver`'s place in the field order: the model's type
        // cannot say vfs's `"Data": null`, so the shared view replaces it below.
        graph_driver: Some(DriverData::default()),
        mounts: Some(engine.mount_points(&rec.mounts)),
        config: Some(config_view(rec)),
        // `inspect` replaces it with the engine's API 1.41 view (`container_network_settings`).
        network_settings: None,
        ..Default::default()
    };
    let json = |e: serde_json::Error| crate::engine::Error::Internal(e.to_string());
    let mut view = serde_json::to_value(model).map_err(json)?;
    let driver = GraphDriver::new(engine.store.driver(), graph_driver_data(engine, rec));
    view["GraphDriver"] = serde_json::to_value(driver).map_err(json)?;
    crate::spec_security::inspect_defaults(&mut view["HostConfig"]);
    Ok(view)
}
