//! `/networks…` routes (moby API v1.41).

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::{Engine, Error};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_api::models::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

type Engine_ = State<Arc<Engine>>;

/// Runs a network operation off the async workers: it talks to the kernel and may run `nft`.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::engine::Result<T> + Send + 'static,
) -> ApiResult<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(e.to_string()))??)
}

fn parse<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| bad_request(e.to_string()))
}

pub async fn list(State(engine): Engine_, RawQuery(q): RawQuery) -> ApiResult<Json<Vec<Value>>> {
    let filters = Query::parse(q.as_deref()).filters().map_err(bad_request)?;
    Ok(Json(engine.network_list(&filters)?))
}

pub async fn inspect(State(engine): Engine_, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(engine.network_inspect(&id)?))
}

pub async fn create(State(engine): Engine_, body: Bytes) -> ApiResult<Response> {
    let req: NetworkCreateRequest = parse(&body)?;
    let id = blocking(move || engine.network_create(req)).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id, "Warning": ""}))).into_response())
}

pub async fn remove(State(engine): Engine_, Path(id): Path<String>) -> ApiResult<StatusCode> {
    blocking(move || engine.network_remove(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn prune(State(engine): Engine_, RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let filters = Query::parse(q.as_deref()).filters().map_err(bad_request)?;
    let deleted = blocking(move || engine.network_prune(&filters)).await?;
    Ok(Json(json!({"NetworksDeleted": deleted})))
}

pub async fn connect(
    State(engine): Engine_,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let req: NetworkConnectRequest = parse(&body)?;
    blocking(move || engine.network_connect(&id, &req.container, req.endpoint_config)).await?;
    Ok(StatusCode::OK)
}

pub async fn disconnect(
    State(engine): Engine_,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let req: NetworkDisconnectRequest = parse(&body)?;
    blocking(move || engine.network_disconnect(&id, &req.container, req.force == Some(true)))
        .await?;
    Ok(StatusCode::OK)
}
