//! `docker exec` routes: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked
//! like attach unless detached), `GET /exec/{id}/json`, `POST /exec/{id}/resize`.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::Engine;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_api::models::{ExecConfig, ExecInspectResponse, ExecStartConfig};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

pub async fn create(State(engine): State<Arc<Engine>>, Path(id): Path<String>, body: Bytes) -> ApiResult<Response> {
    let config: ExecConfig = serde_json::from_slice(&body).map_err(|e| bad_request(e.to_string()))?;
    let exec_id = engine.exec_create(&id, config)?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": exec_id }))).into_response())
}

pub async fn inspect(State(engine): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    let resp: ExecInspectResponse = engine.exec_inspect(&id)?;
    let mut v = serde_json::to_value(resp).map_err(|e| bad_request(e.to_string()))?;
    // Docker sends `"ExitCode": null` while the process runs; the stubs would omit it.
    if let Some(obj) = v.as_object_mut() {
        obj.entry("ExitCode").or_insert(serde_json::Value::Null);
    }
    Ok(Json(v))
}

pub async fn resize(State(engine): State<Arc<Engine>>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Query::parse(q.as_deref());
    let dim = |k| q.int(k).and_then(|v| u16::try_from(v).ok()).ok_or_else(|| bad_request(format!("invalid {k}")));
    engine.exec_resize(&id, dim("h")?, dim("w")?).await?;
    Ok(StatusCode::OK)
}

pub async fn start(State(engine): State<Arc<Engine>>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let upgrade = req.headers().get(hyper::header::UPGRADE).is_some();
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.map_err(|e| bad_request(e.to_string()))?;
    // An empty body means the defaults, as in Docker.
    let cfg: ExecStartConfig = if body.iter().all(|b| b.is_ascii_whitespace()) {
        ExecStartConfig::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad_request(e.to_string()))?
    };
    let exec = engine.exec_claim(&id)?;
    if cfg.detach == Some(true) {
        engine.exec_start(exec, None).await?;
        return Ok(StatusCode::OK.into_response());
    }
    let content_type = if Engine::exec_tty(&exec) {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    if !upgrade {
        // A client that does not upgrade reads the output as the response body.
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let engine2 = engine.clone();
        tokio::spawn(async move {
            let _ = engine2.exec_start(exec, Some(Box::new(theirs))).await;
        });
        let body = Body::from_stream(super::attach::tokio_util_stream(ours));
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", content_type)
            .body(body)
            .unwrap_or_default());
    }
    let on_upgrade = hyper::upgrade::on(Request::from_parts(parts, Body::empty()));
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let _ = engine.exec_start(exec, Some(Box::new(TokioIo::new(upgraded)))).await;
            }
            Err(e) => tracing::debug!("exec upgrade failed: {e}"),
        }
    });
    Ok(super::attach::switching_protocols(content_type))
}
