//! `/volumes…` routes.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::Engine;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::Extension;
use berth_api::version::{ApiVersion, API_VERSION};
use axum::response::{IntoResponse, Response};
use axum::Json;
use berth_api::models::{Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};
use hyper::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;

type Engine_ = State<Arc<Engine>>;

pub async fn list(State(engine): Engine_, RawQuery(q): RawQuery) -> ApiResult<Json<VolumeListResponse>> {
    let q = Query::parse(q.as_deref());
    let filters = q.filters().map_err(bad_request)?;
    let volumes = engine.volume_list(&filters)?;
    Ok(Json(VolumeListResponse { volumes: Some(volumes), warnings: Some(Vec::new()) }))
}

pub async fn create(State(engine): Engine_, body: Bytes) -> ApiResult<Response> {
    // An empty body is a request for an anonymous volume with defaults, as Docker takes it.
    let req: VolumeCreateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        VolumeCreateRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad_request(e.to_string()))?
    };
    let engine2 = engine.clone();
    let volume = tokio::task::spawn_blocking(move || {
        engine2.volume_create(
            req.name,
            req.driver,
            req.driver_opts.unwrap_or_default(),
            req.labels.unwrap_or_default(),
        )
    })
    .await
    .map_err(|e| crate::engine::Error::Internal(e.to_string()))??;
    Ok((StatusCode::CREATED, Json(volume)).into_response())
}

pub async fn inspect(State(engine): Engine_, Path(name): Path<String>) -> ApiResult<Json<Volume>> {
    Ok(Json(engine.volume_inspect(&name)?))
}

pub async fn remove(State(engine): Engine_, Path(name): Path<String>, RawQuery(q): RawQuery) -> ApiResult<StatusCode> {
    let q = Query::parse(q.as_deref());
    let force = q.flag("force");
    tokio::task::spawn_blocking(move || engine.volume_remove(&name, force))
        .await
        .map_err(|e| crate::engine::Error::Internal(e.to_string()))??;
    Ok(StatusCode::NO_CONTENT)
}

/// First API version whose prune spares named volumes unless asked (`all`).
const PRUNE_ANONYMOUS_ONLY_SINCE: ApiVersion = ApiVersion(1, 42);

pub async fn prune(
    State(engine): Engine_,
    version: Option<Extension<ApiVersion>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<VolumePruneResponse>> {
    let q = Query::parse(q.as_deref());
    let mut filters = q.filters().map_err(bad_request)?;
    let version = version.map(|Extension(v)| v).unwrap_or(API_VERSION);
    prune_filters_for(version, &mut filters);
    let (deleted, reclaimed) = tokio::task::spawn_blocking(move || engine.volume_prune(&filters))
        .await
        .map_err(|e| crate::engine::Error::Internal(e.to_string()))??;
    Ok(Json(VolumePruneResponse { volumes_deleted: Some(deleted), space_reclaimed: Some(reclaimed as i64) }))
}

/// Before API 1.42 Docker pruned every unused volume, named ones too, and had no `all`
/// filter: it adds `all=true` itself. An explicit `all` is left as sent, so the berth CLI
/// can still ask for anonymous volumes only (`all=false`), which Docker would refuse as a
/// conflicting filter; docker's own clients never send `all` at these versions.
fn prune_filters_for(version: ApiVersion, filters: &mut HashMap<String, Vec<String>>) {
    if version < PRUNE_ANONYMOUS_ONLY_SINCE {
        filters.entry("all".into()).or_insert_with(|| vec!["true".into()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_before_1_42_takes_named_volumes_too() {
        let mut f = HashMap::new();
        prune_filters_for(ApiVersion(1, 41), &mut f);
        assert_eq!(f.get("all"), Some(&vec!["true".to_string()]));
        let mut f = HashMap::from([("all".to_string(), vec!["false".to_string()])]);
        prune_filters_for(ApiVersion(1, 24), &mut f);
        assert_eq!(f.get("all"), Some(&vec!["false".to_string()]));
        let mut f = HashMap::new();
        prune_filters_for(ApiVersion(1, 42), &mut f);
        assert!(f.is_empty());
    }
}
