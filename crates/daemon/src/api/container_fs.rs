//! `/containers/{id}/changes` and `/containers/{id}/export`: a container's filesystem.

use super::error::ApiResult;
use crate::engine::Engine;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hyper::header::CONTENT_TYPE;
use std::sync::Arc;

/// `GET /containers/{id}/changes`: Docker answers `null`, not `[]`, when nothing changed.
pub async fn changes(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let changes = engine.container_changes(&id).await?;
    if changes.is_empty() {
        return Ok(Json(serde_json::Value::Null).into_response());
    }
    Ok(Json(changes).into_response())
}

/// `GET /containers/{id}/export`: the tar, streamed as it is made.
pub async fn export(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let chunks = engine.export(&id).await?;
    let stream =
        futures_util::stream::unfold(
            chunks,
            |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
        );
    Ok((
        [(CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}
