//! `POST /build`: the classic builder's API (design §2). Bad parameters, an unreadable
//! context or Dockerfile, parse errors and a missing target are answered with an error
//! status before any output; then the build streams Docker's JSON messages. The context is
//! the request's tar (the docker CLI), or a manifest the berth CLI uploaded (`context=`).

use super::error::{bad_request, ApiResult};
use super::images::BodyReader;
use super::unread_body;
use crate::build::options::BuildOptions;
use crate::build::{self, BuildError};
use crate::engine::{Engine, Error};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::mpsc;

pub async fn build(
    State(engine): State<Arc<Engine>>,
    RawQuery(q): RawQuery,
    req: Request,
) -> ApiResult<Response> {
    let registry_config = req
        .headers()
        .get("x-registry-config")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let opts =
        match BuildOptions::parse(q.as_deref().unwrap_or_default(), registry_config.as_deref()) {
            Ok(o) => o,
            Err(message) => {
                // The client is still sending its context: read it to the end.
                unread_body::discard(req.into_body().into_data_stream(), usize::MAX).await;
                return Err(bad_request(message));
            }
        };
    let store = engine.build_context.clone();
    let dockerfile = opts.dockerfile.clone();
    let context = match opts.context.clone() {
        Some(id) => tokio::task::spawn_blocking(move || store.open_manifest(&id, &dockerfile))
            .await
            .map_err(Error::from)??,
        None => {
            let mut body = BodyReader::spawn(req.into_body());
            tokio::task::spawn_blocking(move || store.ingest_tar_for(&mut body, &dockerfile))
                .await
                .map_err(Error::from)??
        }
    };
    let (view, name) = (context.clone(), opts.dockerfile.clone());
    let text = tokio::task::spawn_blocking(move || view.dockerfile(&name))
        .await
        .map_err(Error::from)??;
    let plan = build::plan(&opts, &text).map_err(|e| match e {
        BuildError::Invalid(m) => bad_request(m),
        other => Error::Internal(other.to_string()).into(),
    })?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(build::run(engine, opts, context, plan, tx));
    let stream = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(Ok::<Bytes, std::io::Error>))
    });
    Ok((
        [("Content-Type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

