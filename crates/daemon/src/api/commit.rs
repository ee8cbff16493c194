//! `POST /commit`: a container's changes as a new image.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::{CommitRequest, Engine};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use std::sync::Arc;

pub async fn commit(
    State(engine): State<Arc<Engine>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let config = config_body(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        &body,
    )?;
    let req = CommitRequest {
        container: q.get("container").unwrap_or_default().to_string(),
        repo: q.get("repo").map(String::from),
        tag: q.get("tag").map(String::from),
        comment: q.get("comment").unwrap_or_default().to_string(),
        author: q.get("author").unwrap_or_default().to_string(),
        // Since API 1.13 an absent `pause` means pause.
        pause: q.get("pause").is_none_or(str::is_empty) || q.flag("pause"),
        changes: q.all("changes"),
        config,
    };
    // In its own task: a client that hangs up must not stop the commit between pausing the
    // container and unpausing it.
    let id = tokio::spawn(async move { engine.commit_image(req).await })
        .await
        .map_err(crate::engine::Error::from)??;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))).into_response())
}

/// The optional JSON body, a container config (`null` or nothing: none). As Docker's
/// `CheckForJSON`, a body must come as `application/json`.
fn config_body(
    content_type: Option<&[u8]>,
    body: &[u8],
) -> ApiResult<Option<serde_json::Map<String, Value>>> {
    let ct = String::from_utf8_lossy(content_type.unwrap_or_default()).into_owned();
    if !(ct.is_empty() && body.is_empty()) {
        let media = ct.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(bad_request(format!(
                "Content-Type specified ({ct}) must be 'application/json'"
            )));
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Null) => Ok(None),
        Ok(Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(bad_request(
            "json: cannot unmarshal the body into a container config",
        )),
        Err(e) => Err(bad_request(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_optional_json() {
        assert!(config_body(None, b"").ok().unwrap().is_none());
        assert!(config_body(Some(b"application/json"), b"null\n")
            .ok()
            .unwrap()
            .is_none());
        let m = config_body(
            Some(b"application/json; charset=utf-8"),
            br#"{"Cmd":["x"]}"#,
        )
        .ok()
        .unwrap()
        .unwrap();
        assert_eq!(m["Cmd"], serde_json::json!(["x"]));
        assert!(config_body(Some(b"text/plain"), b"{}").is_err());
        assert!(config_body(None, b"{}").is_err());
        assert!(config_body(Some(b"application/json"), b"{").is_err());
    }
}
