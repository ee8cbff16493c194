//! `GET /events`: a stream of JSON event messages, one per line.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::{Engine, EventFilter};
use crate::io::logs::parse_time;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn events(State(engine): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let nanos = |key: &str| -> ApiResult<Option<i64>> {
        // `since=0` is the start of time here, not "unset" as for logs.
        if q.get(key) == Some("0") {
            return Ok(Some(0));
        }
        let t = parse_time(q.get(key)).map_err(bad_request)?;
        Ok(t.and_then(|t| t.timestamp_nanos_opt()))
    };
    let (since, until) = (nanos("since")?, nanos("until")?);
    let filter = EventFilter::new(q.filters().map_err(bad_request)?).map_err(bad_request)?;
    let mut rx = engine.follow_events(since, until, filter);
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|event| {
            event.map(|e| {
                let mut line = serde_json::to_vec(&*e).unwrap_or_default();
                line.push(b'\n');
                Ok::<_, std::convert::Infallible>(Bytes::from(line))
            })
        })
    });
    Ok(([("Content-Type", "application/json")], Body::from_stream(stream)).into_response())
}
