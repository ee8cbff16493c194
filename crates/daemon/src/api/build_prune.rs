//! `POST /build/prune` (`docker builder prune`, and last in `docker system prune`): empties
//! the build context store, the only build cache berthd keeps apart from images (the image
//! cache is the images themselves, pruned by `image prune`). Filters are checked as Docker
//! 20.10 checks them; `until`/`unused-for` keep recently used contexts, `keep-storage` stops
//! once the store is that small, and a filter no record can match prunes nothing.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::{Engine, Error};
use axum::extract::{RawQuery, State};
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

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

/// Record types the store's records have (see `ContextUsage`).
const OUR_TYPES: &[&str] = &["source.local", "regular"];

/// Whether records the store could prune (never in use, never shared, without labels) can
/// pass `filters`; the time filters are applied by the store.
fn prunable_pass(filters: &HashMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| match key.as_str() {
        "until" | "unused-for" | "label!" => true,
        "type" => values.iter().any(|v| OUR_TYPES.contains(&v.as_str())),
        "inuse" | "shared" => values.iter().all(|v| v == "false"),
        "private" => values.iter().all(|v| v == "true" || v.is_empty()),
        // id, parent, description, label: nothing of ours carries what they name.
        _ => values.is_empty(),
    })
}

pub async fn prune(
    State(engine): State<Arc<Engine>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = Query::parse(q.as_deref());
    let filters = q.filters().map_err(bad_request)?;
    let fail = |e: Error| match e {
        Error::InvalidParameter(m) => {
            Error::InvalidParameter(format!("failed to prune build cache: {m}"))
        }
        other => Error::Internal(format!("failed to prune build cache: {other}")),
    };
    if let Some(bad) = filters.keys().find(|k| !FILTERS.contains(&k.as_str())) {
        return Err(fail(Error::InvalidParameter(format!("Invalid filter '{bad}'"))).into());
    }
    let mut unused_for: Option<i64> = None;
    for key in ["until", "unused-for"] {
        for v in filters.get(key).into_iter().flatten() {
            let Some(ns) = berth_api::duration::parse_go(v) else {
                let msg = format!("\"{key}\" filter expects a duration (e.g., '24h'): time: invalid duration \"{v}\"");
                return Err(fail(Error::Internal(msg)).into());
            };
            unused_for = Some(unused_for.map_or(ns, |d| d.max(ns)));
        }
    }
    let keep_storage = match q.get("keep-storage").filter(|v| !v.is_empty()) {
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| bad_request(format!("invalid keep-storage value: {v:?}")))?
            .max(0) as u64,
        None => 0,
    };
    if !prunable_pass(&filters) {
        return Ok(Json(json!({"CachesDeleted": null, "SpaceReclaimed": 0})));
    }
    let store = engine.build_context.clone();
    let unused_since =
        unused_for.map(|d| chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0) - d);
    let reclaimed =
        tokio::task::spawn_blocking(move || store.prune_with(unused_since, keep_storage))
            .await
            .map_err(Error::from)?
            .map_err(fail)?;
    Ok(Json(
        json!({"CachesDeleted": null, "SpaceReclaimed": reclaimed}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        m
    }

    #[test]
    fn filters_no_context_record_matches_prune_nothing() {
        assert!(prunable_pass(&f(&[])));
        assert!(prunable_pass(&f(&[
            ("until", "24h"),
            ("type", "source.local"),
            ("inuse", "false")
        ])));
        assert!(prunable_pass(&f(&[("label!", "keep")])));
        assert!(!prunable_pass(&f(&[("type", "exec.cachemount")])));
        assert!(!prunable_pass(&f(&[("inuse", "true")])));
        assert!(!prunable_pass(&f(&[("label", "x=y")])));
        assert!(!prunable_pass(&f(&[("id", "abc")])));
    }
}
