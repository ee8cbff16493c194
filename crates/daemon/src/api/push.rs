//! `POST /images/{name}/push` (reached through `images::post_action`) and `POST /auth`.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::Engine;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_distribution::Credentials;
use std::sync::Arc;

/// The client's registry credentials header.
fn registry_auth(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// `POST /images/{name}/push?tag=`: Docker's JSON progress stream.
pub async fn push(
    engine: &Arc<Engine>,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let mut rx = engine
        .push(name, q.get("tag"), registry_auth(headers))
        .await?;
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, std::io::Error>))
    });
    Ok((
        [("Content-Type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /auth`: `{"IdentityToken":"","Status":"Login Succeeded"}`.
pub async fn auth(State(engine): State<Arc<Engine>>, body: Bytes) -> ApiResult<Response> {
    let creds: Credentials = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("Bad parameters and missing X-Registry-Auth: {e}")))?;
    let status = engine.login(creds).await?;
    Ok(Json(serde_json::json!({ "IdentityToken": "", "Status": status })).into_response())
}
