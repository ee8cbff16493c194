//! `POST /build/prune`: berthd builds nothing and keeps no build cache, so a prune (which
//! `docker system prune` always sends last) checks its filters as Docker 20.10 does and
//! reports that nothing was there to remove.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::Error;
use axum::extract::RawQuery;
use axum::Json;
use serde_json::{json, Value};

/// The filter keys Docker's build-cache prune takes.
const FILTERS: &[&str] = &[
    "until",
    "unused-for",
    "id",
    "parent",
    "type",
    "description",
    "inuse",
    "shared",
    "private",
    "label",
    "label!",
];

pub async fn prune(RawQuery(q): RawQuery) -> ApiResult<Json<Value>> {
    let filters = Query::parse(q.as_deref()).filters().map_err(bad_request)?;
    let fail = |e: Error| match e {
        Error::InvalidParameter(m) => {
            Error::InvalidParameter(format!("failed to prune build cache: {m}"))
        }
        other => Error::Internal(format!("failed to prune build cache: {other}")),
    };
    if let Some(bad) = filters.keys().find(|k| !FILTERS.contains(&k.as_str())) {
        return Err(fail(Error::InvalidParameter(format!("Invalid filter '{bad}'"))).into());
    }
    for key in ["until", "unused-for"] {
        for v in filters.get(key).into_iter().flatten() {
            if berth_api::duration::parse_go(v).is_none() {
                let msg = format!("\"{key}\" filter expects a duration (e.g., '24h'): time: invalid duration \"{v}\"");
                return Err(fail(Error::Internal(msg)).into());
            }
        }
    }
    Ok(Json(json!({"CachesDeleted": null, "SpaceReclaimed": 0})))
}
