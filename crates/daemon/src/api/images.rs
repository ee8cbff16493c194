//! `/images/…` routes.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::{Engine, Error, ImportRequest};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_api::models::{DriverData, ImageConfig, ImageInspect, ImageInspectRootFs, ImageSummary};
use berth_store::Image;
use futures_util::StreamExt;
use hyper::StatusCode;
use std::sync::Arc;

type Engine_ = State<Arc<Engine>>;

pub async fn list(State(engine): Engine_, RawQuery(q): RawQuery) -> ApiResult<Json<Vec<ImageSummary>>> {
    let q = Query::parse(q.as_deref());
    let filters = q.filters().map_err(bad_request)?;
    let dangling_only = filters.get("dangling").is_some_and(|v| v.iter().any(|x| x == "true" || x == "1"));
    let mut images = engine.images().await?;
    if dangling_only {
        images.retain(|i| i.repo_tags.is_empty());
    }
    images.sort_by(|a, b| b.created.cmp(&a.created));
    Ok(Json(images.iter().map(summary_view).collect()))
}

/// `POST /images/create`: import from the request body (`fromSrc=-`). Pulling from a
/// registry is not built yet and says so.
pub async fn create(State(engine): Engine_, RawQuery(q): RawQuery, req: Request) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    if let Some(image) = q.get("fromImage") {
        return Err(Error::NotFound(format!(
            "pull access denied for {image}: berth cannot pull from registries yet (import an image instead)"
        ))
        .into());
    }
    match q.get("fromSrc") {
        Some("-") => {}
        Some(url) => return Err(bad_request(format!("importing from a URL is not supported: {url}"))),
        None => return Err(bad_request("fromImage or fromSrc is required")),
    }
    let import = ImportRequest {
        repo: q.get("repo").map(String::from),
        tag: q.get("tag").map(String::from),
        changes: q.all("changes"),
        message: q.get("message").map(String::from),
    };
    let reader = BodyReader::spawn(req.into_body());
    let image = engine.import(import, Box::new(reader)).await?;
    let line = serde_json::json!({ "status": image.id }).to_string() + "\r\n";
    Ok(([("Content-Type", "application/json")], line).into_response())
}

/// Routes `/images/{name}/json`.
pub async fn get_action(State(engine): Engine_, Path(rest): Path<String>) -> ApiResult<Response> {
    let (name, action) = split_action(&rest)?;
    match action {
        "json" => {
            let image = engine.image(name).await.map_err(|_| Error::NotFound(format!("No such image: {name}")))?;
            Ok(Json(inspect_view(&image)).into_response())
        }
        _ => Err(super::error::ApiError(Error::NotFound(format!("page not found: /images/{rest}")))),
    }
}

/// Routes `/images/{name}/tag`.
pub async fn post_action(State(engine): Engine_, Path(rest): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let (name, action) = split_action(&rest)?;
    match action {
        "tag" => {
            let repo = q.get("repo").filter(|r| !r.is_empty()).ok_or_else(|| bad_request("repository name must have at least one component"))?;
            engine.tag(name, repo, q.get("tag")).await?;
            Ok(StatusCode::CREATED.into_response())
        }
        _ => Err(super::error::ApiError(Error::NotFound(format!("page not found: /images/{rest}")))),
    }
}

pub async fn remove(State(engine): Engine_, Path(name): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let deleted = engine.remove_image(&name, q.flag("force")).await?;
    Ok(Json(deleted).into_response())
}

/// `busybox/json` → (`busybox`, `json`); `localhost:5000/a/b/tag` → (`localhost:5000/a/b`, `tag`).
fn split_action(rest: &str) -> ApiResult<(&str, &str)> {
    rest.rsplit_once('/').ok_or_else(|| Error::NotFound(format!("page not found: /images/{rest}")).into())
}

pub(super) fn summary_view(image: &Image) -> ImageSummary {
    let labels = image.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default();
    ImageSummary {
        id: image.id.clone(),
        parent_id: String::new(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        created: image.created,
        size: image.size as i64,
        shared_size: -1,
        labels,
        containers: -1,
        ..Default::default()
    }
}

fn inspect_view(image: &Image) -> ImageInspect {
    let c = image.config.config().clone().unwrap_or_default();
    let history_comment = image.config.history().as_ref().and_then(|h| h.last()).and_then(|h| h.comment().clone());
    ImageInspect {
        id: Some(image.id.clone()),
        repo_tags: Some(image.repo_tags.clone()),
        repo_digests: Some(image.repo_digests.clone()),
        comment: history_comment,
        created: image.config.created().clone(),
        author: image.config.author().clone(),
        config: Some(ImageConfig {
            user: c.user().clone(),
            exposed_ports: c.exposed_ports().clone(),
            env: c.env().clone(),
            cmd: c.cmd().clone(),
            volumes: c.volumes().clone(),
            working_dir: c.working_dir().clone(),
            entrypoint: c.entrypoint().clone(),
            labels: c.labels().clone(),
            stop_signal: c.stop_signal().clone(),
            ..Default::default()
        }),
        architecture: Some(image.config.architecture().to_string()),
        os: Some(image.config.os().to_string()),
        size: Some(image.size as i64),
        graph_driver: Some(DriverData { name: "overlay2".into(), data: Default::default() }),
        root_fs: Some(ImageInspectRootFs {
            typ: "layers".into(),
            layers: Some(image.config.rootfs().diff_ids().clone()),
        }),
        ..Default::default()
    }
}

/// A blocking `Read` over an async request body, for the store's streaming import: chunks
/// pass through a small bounded channel, so the body is never held in memory whole.
struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl BodyReader {
    fn spawn(body: Body) -> BodyReader {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                let item = chunk.map_err(std::io::Error::other);
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        BodyReader { rx, current: Bytes::new() }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

