//! `GET /containers/{id}/stats?stream=&one-shot=`: Docker's `StatsJSON`, one JSON document
//! per line, once or every second.

use super::error::ApiResult;
use super::query::Query;
use crate::engine::Engine;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use berth_api::models::ContainerStatsResponse;
use std::sync::Arc;

/// The `blkio_stats` lists, which Go always writes (`null` when it has none) and the API
/// models leave out when unset.
const BLKIO_LISTS: [&str; 8] = [
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
];

pub async fn stats(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    // `stream` defaults to true: only an explicit false value turns it off.
    let stream = q.get("stream").is_none() || q.flag("stream");
    let mut feed = engine.stats(&id, stream, q.flag("one-shot"))?;
    let headers = [("Content-Type", "application/json")];
    if !stream {
        let frame = feed.next().await.map(|f| encode(&f)).unwrap_or_default();
        return Ok((headers, frame).into_response());
    }
    let frames = futures_util::stream::unfold(feed, |mut feed| async move {
        let frame = feed.next().await?;
        Some((Ok::<_, std::convert::Infallible>(encode(&frame)), feed))
    });
    Ok((headers, Body::from_stream(frames)).into_response())
}

/// One frame as Go's JSON encoder writes it: the blkio lists present, and a newline.
fn encode(frame: &ContainerStatsResponse) -> Bytes {
    let mut value = serde_json::to_value(frame).unwrap_or_default();
    if let Some(blkio) = value.get_mut("blkio_stats").and_then(|b| b.as_object_mut()) {
        for key in BLKIO_LISTS {
            blkio.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    let mut out = serde_json::to_vec(&value).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::{ContainerBlkioStatEntry, ContainerBlkioStats};

    #[test]
    fn blkio_lists_are_null_not_missing() {
        let frame = ContainerStatsResponse {
            blkio_stats: Some(ContainerBlkioStats {
                io_service_bytes_recursive: Some(vec![ContainerBlkioStatEntry::default()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = encode(&frame);
        assert!(bytes.ends_with(b"}\n"));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let blkio = v["blkio_stats"].as_object().unwrap();
        assert_eq!(blkio.len(), 8);
        assert!(blkio["io_service_bytes_recursive"].is_array());
        assert!(blkio["sectors_recursive"].is_null());
    }
}
