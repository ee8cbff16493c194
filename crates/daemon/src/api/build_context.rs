//! The berth CLI's fast context sync (design §4; docker clients never call these):
//! `POST /build/context?key=<hex>` registers a manifest and answers which file contents the
//! daemon lacks; `PUT /build/context/{id}/blobs` uploads them. `POST /build?context=<id>`
//! then builds from the store without a tar.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::build::context_store::{ContextUsage, MAX_ENTRIES};
use crate::engine::Engine;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::Json;
use berth_api::models::{BuildCache, BuildCacheTypeEnum};
use hyper::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

/// A manifest is one JSON line per file, about 150 bytes and its path: this holds as many
/// entries as a context tar may have (`MAX_ENTRIES`) with room for long paths, and is all
/// the memory one request may take before it is parsed.
const MANIFEST_LIMIT: usize = MAX_ENTRIES * 256;

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
        .map_err(|e| match std::error::Error::source(&e) {
            Some(s) if s.is::<http_body_util::LengthLimitError>() => bad_request(format!(
                "build context manifest is larger than {} MiB",
                MANIFEST_LIMIT >> 20
            )),
            _ => bad_request(e.to_string()),
        })?;
    // Counted before parsing: the parsed entries take more memory than their lines.
    let lines = bytes.split(|&c| c == b'\n');
    if lines.filter(|l| !l.trim_ascii().is_empty()).count() > MAX_ENTRIES {
        return Err(bad_request(format!(
            "build context has more than {MAX_ENTRIES} entries"
        )));
    }
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
