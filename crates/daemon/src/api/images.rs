//! `/images/…` routes.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::{Engine, Error, ImportRequest};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use crate::engine::{Deleted, HistoryEntry};
use berth_api::models::{ImageDeleteResponseItem, ImagePruneResponse, ImageSummary};
use serde::Serialize;
use berth_store::Image;
use futures_util::{FutureExt, StreamExt};
use hyper::StatusCode;
use std::sync::Arc;

type Engine_ = State<Arc<Engine>>;

pub async fn list(State(engine): Engine_, RawQuery(q): RawQuery) -> ApiResult<Json<Vec<ListItem>>> {
    let q = Query::parse(q.as_deref());
    let filters = q.filters().map_err(bad_request)?;
    let mut filter = engine.image_filter(&filters).await?;
    filter.all = q.flag("all");
    let images = engine.images_filtered(&filter).await?;
    Ok(Json(images.iter().map(|i| ListItem { virtual_size: i.size as i64, summary: summary_view(i) }).collect()))
}

/// API 1.41's list entry: the summary plus `VirtualSize`, which newer APIs dropped.
#[derive(Serialize)]
pub struct ListItem {
    #[serde(flatten)]
    summary: ImageSummary,
    #[serde(rename = "VirtualSize")]
    virtual_size: i64,
}

/// `POST /images/prune`
pub async fn prune(State(engine): Engine_, RawQuery(q): RawQuery) -> ApiResult<Json<ImagePruneResponse>> {
    let q = Query::parse(q.as_deref());
    let filters = q.filters().map_err(bad_request)?;
    let report = engine.prune_images(&filters).await?;
    let deleted: Vec<ImageDeleteResponseItem> = report.deleted.into_iter().map(delete_item).collect();
    Ok(Json(ImagePruneResponse {
        // Docker sends null, not [], when nothing went.
        images_deleted: (!deleted.is_empty()).then_some(deleted),
        space_reclaimed: Some(report.reclaimed as i64),
    }))
}

fn delete_item(d: Deleted) -> ImageDeleteResponseItem {
    match d {
        Deleted::Untagged(u) => ImageDeleteResponseItem { untagged: Some(u), deleted: None },
        Deleted::Deleted(id) => ImageDeleteResponseItem { untagged: None, deleted: Some(id) },
    }
}

/// `POST /images/create`: pull from a registry (`fromImage`, see `engine::pull`) or import
/// from the request body (`fromSrc=-`).
pub async fn create(State(engine): Engine_, RawQuery(q): RawQuery, req: Request) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    if let Some(image) = q.get("fromImage") {
        let opts = crate::engine::PullOptions {
            from_image: image.to_string(),
            tag: q.get("tag").unwrap_or_default().to_string(),
            platform: q.get("platform").map(String::from),
            auth: req.headers().get("x-registry-auth").and_then(|v| v.to_str().ok()).map(String::from),
        };
        let mut rx = engine.pull(opts).await?;
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, std::io::Error>)));
        return Ok(([("Content-Type", "application/json")], Body::from_stream(stream)).into_response());
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

/// Routes `/images/{name}/json` and `/images/{name}/history`.
pub async fn get_action(State(engine): Engine_, Path(rest): Path<String>) -> ApiResult<Response> {
    let (name, action) = split_action(&rest)?;
    match action {
        "json" => {
            let detail = engine.image_detail(name).await.map_err(|e| match e {
                Error::InvalidParameter(m) => Error::InvalidParameter(format!("no such image: {name}: {m}")),
                _ => Error::NotFound(format!("No such image: {name}")),
            })?;
            Ok(Json(super::image_inspect::inspect_view(&detail)).into_response())
        }
        "history" => {
            let rows = engine.image_history(name).await?;
            Ok(Json(rows.into_iter().map(history_item).collect::<Vec<_>>()).into_response())
        }
        "get" => super::save::archive(&engine, &[name.to_string()]).await,
        _ => Err(super::error::ApiError(Error::NotFound(format!("page not found: /images/{rest}")))),
    }
}

/// Routes `/images/{name}/tag`.
pub async fn post_action(State(engine): Engine_, Path(rest): Path<String>, RawQuery(q): RawQuery, headers: axum::http::HeaderMap) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let (name, action) = split_action(&rest)?;
    match action {
        "tag" => {
            let repo = q.get("repo").filter(|r| !r.is_empty()).ok_or_else(|| bad_request("repository name must have at least one component"))?;
            engine.tag(name, repo, q.get("tag")).await?;
            Ok(StatusCode::CREATED.into_response())
        }
        "push" => super::push::push(&engine, name, &q, &headers).await,
        _ => Err(super::error::ApiError(Error::NotFound(format!("page not found: /images/{rest}")))),
    }
}

pub async fn remove(State(engine): Engine_, Path(name): Path<String>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let deleted = engine.remove_image(&name, q.flag("force"), !q.flag("noprune")).await?;
    Ok(Json(deleted).into_response())
}

/// `busybox/json` → (`busybox`, `json`); `localhost:5000/a/b/tag` → (`localhost:5000/a/b`, `tag`).
fn split_action(rest: &str) -> ApiResult<(&str, &str)> {
    rest.rsplit_once('/').ok_or_else(|| Error::NotFound(format!("page not found: /images/{rest}")).into())
}

pub(super) fn summary_view(image: &Image) -> ImageSummary {
    let labels = image.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default();
    let dangling = image.repo_tags.is_empty() && image.repo_digests.is_empty();
    ImageSummary {
        id: image.id.clone(),
        parent_id: image.parent.clone().unwrap_or_default(),
        repo_tags: if dangling { vec!["<none>:<none>".into()] } else { image.repo_tags.clone() },
        repo_digests: if dangling { vec!["<none>@<none>".into()] } else { image.repo_digests.clone() },
        created: image.created,
        size: image.size as i64,
        shared_size: -1,
        labels,
        containers: -1,
        ..Default::default()
    }
}

/// One history row; Docker sends `Tags: null` on rows without tags.
#[derive(Serialize)]
pub struct HistoryItem {
    #[serde(rename = "Comment")]
    comment: String,
    #[serde(rename = "Created")]
    created: i64,
    #[serde(rename = "CreatedBy")]
    created_by: String,
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Size")]
    size: i64,
    #[serde(rename = "Tags")]
    tags: Option<Vec<String>>,
}

fn history_item(h: HistoryEntry) -> HistoryItem {
    HistoryItem {
        comment: h.comment,
        created: h.created,
        created_by: h.created_by,
        id: h.id,
        size: h.size,
        tags: (!h.tags.is_empty()).then_some(h.tags),
    }
}

/// A blocking `Read` over an async request body, for the store's streaming import: chunks
/// pass through a small bounded channel, so the body is never held in memory whole.
pub(super) struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Vec<std::io::Result<Bytes>>>,
    pending: std::collections::VecDeque<std::io::Result<Bytes>>,
    current: Bytes,
}

/// Chunks that have already arrived travel to the reading thread together, so it wakes once per
/// batch rather than once per chunk (hyper yields ~180 KB chunks: thousands of wake-ups for a
/// 1 GB load). Channel and batch bounds keep at most ~32 chunks in memory.
const BODY_BATCH_CHUNKS: usize = 8;
const BODY_BATCHES_QUEUED: usize = 4;

impl BodyReader {
    pub(super) fn spawn(body: Body) -> BodyReader {
        let (tx, rx) = tokio::sync::mpsc::channel(BODY_BATCHES_QUEUED);
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            let mut ended = false;
            while !ended {
                let Some(first) = stream.next().await else { break };
                let mut batch = vec![first.map_err(std::io::Error::other)];
                while batch.len() < BODY_BATCH_CHUNKS {
                    match stream.next().now_or_never() {
                        Some(Some(chunk)) => batch.push(chunk.map_err(std::io::Error::other)),
                        Some(None) => {
                            ended = true;
                            break;
                        }
                        None => break, // nothing more has arrived yet
                    }
                }
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
        });
        BodyReader { rx, pending: Default::default(), current: Bytes::new() }
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if let Some(chunk) = self.pending.pop_front() {
                self.current = chunk?;
                continue;
            }
            match self.rx.blocking_recv() {
                Some(batch) => self.pending.extend(batch),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

