//! The berth CLI's fast context sync (design §4; docker clients never call these):
//! `POST /build/context?key=<hex>` registers a manifest and answers which file contents the
//! daemon lacks; `PUT /build/context/{id}/blobs` uploads them. `POST /build?context=<id>`
//! then builds from the store without a tar.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::build::context_store::ContextUsage;
use crate::engine::Engine;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::Json;
use berth_api::models::{BuildCache, BuildCacheTypeEnum};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

/// A manifest is one JSON line per file: far below this even for huge contexts.
const MANIFEST_LIMIT: usize = 1 << 30;

/// `POST /build/context?key=`: body = the manifest as JSON lines, without tarsums.
pub async fn register(
    State(engine): State<Arc<Engine>>,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(q.as_deref());
    let key = q.get("key").unwrap_or_default().to_string();
    let bytes = axum::body::to_bytes(body, MANIFEST_LIMIT)
        .await
        .map_err(|e| bad_request(e.to_string()))?;
    let manifest = berth_context::Manifest::from_json_lines(&bytes)
        .map_err(|e| bad_request(format!("invalid build context manifest: {e}")))?;
    let store = engine.build_context.clone();
    let (id, missing) = tokio::task::spawn_blocking(move || store.register(&key, manifest))
        .await
        .map_err(crate::engine::Error::from)??;
    Ok(Json(json!({ "ID": id, "Missing": missing })))
}

/// `PUT /build/context/{id}/blobs`: body = a tar of the missing files, each named by its
/// content's hex digest; streamed into the store.
pub async fn blobs(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<StatusCode> {
    let mut reader = super::images::BodyReader::spawn(req.into_body());
    let store = engine.build_context.clone();
    tokio::task::spawn_blocking(move || store.ingest_blobs(&id, &mut reader))
        .await
        .map_err(crate::engine::Error::from)??;
    Ok(StatusCode::NO_CONTENT)
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One `system df` Build Cache record.
pub(super) fn build_cache_view(u: &ContextUsage) -> BuildCache {
    BuildCache {
        id: Some(u.id.clone()),
        typ: Some(match u.kind {
            "source.local" => BuildCacheTypeEnum::SOURCE_LOCAL,
            _ => BuildCacheTypeEnum::REGULAR,
        }),
        description: Some(u.description.clone()),
        in_use: Some(u.in_use),
        shared: Some(false),
        size: Some(u.size as i64),
        created_at: Some(rfc3339(u.created_ns)),
        last_used_at: u.last_used_ns.map(rfc3339),
        usage_count: Some(u.usage_count as i64),
        ..Default::default()
    }
}
