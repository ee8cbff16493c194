//! `GET /images/get` and `GET /images/{name}/get` (`docker save`), `POST /images/load`.

use super::error::{bad_request, ApiResult};
use super::query::Query;
use crate::engine::Engine;
use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub async fn save_many(State(engine): State<Arc<Engine>>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let names = Query::parse(q.as_deref()).all("names");
    if names.is_empty() {
        return Err(bad_request("no images specified"));
    }
    archive(&engine, &names).await
}

/// The archive of `names` as a streamed `application/x-tar` body.
pub async fn archive(engine: &Engine, names: &[String]) -> ApiResult<Response> {
    let mut rx = engine.save(names).await?;
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(([("Content-Type", "application/x-tar")], Body::from_stream(stream)).into_response())
}

/// `docker load`: the whole archive is checked and stored before the answer, one
/// `{"stream": "Loaded image: …"}` line per image, so a bad archive is a plain error.
pub async fn load(State(engine): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let reader = super::images::BodyReader::spawn(req.into_body());
    let loaded = engine.load(Box::new(reader)).await?;
    let mut out = String::new();
    for image in loaded {
        let lines: Vec<String> = match image.tags.is_empty() {
            true => vec![format!("Loaded image ID: {}\n", image.id)],
            false => image.tags.iter().map(|t| format!("Loaded image: {t}\n")).collect(),
        };
        for line in lines {
            out.push_str(&serde_json::json!({ "stream": line }).to_string());
            out.push_str("\r\n");
        }
    }
    Ok(([("Content-Type", "application/json")], out).into_response())
}
