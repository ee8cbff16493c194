//! `POST /containers/prune`.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::Engine;
use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;

/// Removes stopped containers; answers as Docker does, `null` when none went.
pub async fn prune(
    State(engine): State<Arc<Engine>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let filters = Query::parse(q.as_deref()).filters().map_err(bad_request)?;
    let report = engine.prune_containers(&filters).await?;
    let deleted = (!report.deleted.is_empty()).then_some(report.deleted);
    Ok(Json(
        json!({"ContainersDeleted": deleted, "SpaceReclaimed": report.reclaimed}),
    ))
}
