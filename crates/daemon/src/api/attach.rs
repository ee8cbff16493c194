//! `POST /containers/{id}/attach`: the connection is hijacked (HTTP upgrade) and becomes
//! the container's stdio, framed as Docker frames it. `detachKeys` sets the sequence that
//! ends the session of a container with a TTY.

use super::error::ApiResult;
use super::query::Query;
use crate::engine::{AttachRequest, AttachStreams, Engine};
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::response::Response;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

pub async fn attach(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    req: Request,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let (container, detach_keys) = engine.attach_target(&id, q.get("detachKeys").unwrap_or_default())?;
    let tty = container.snapshot().config.tty == Some(true);
    let streams = AttachStreams { stdin: q.flag("stdin"), stdout: q.flag("stdout"), stderr: q.flag("stderr") };
    let content_type = if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    let wants_upgrade = req.headers().get(hyper::header::UPGRADE).is_some();
    if !wants_upgrade {
        // Clients that do not upgrade get output only, as the response body.
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let streams = AttachStreams { stdin: false, ..streams };
        engine.attach(container, AttachRequest { streams, detach_keys }, Box::new(theirs)).await;
        let (read, _write) = tokio::io::split(ours);
        let body = Body::from_stream(tokio_util_stream(read));
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", content_type)
            .body(body)
            .unwrap_or_default());
    }
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let req = AttachRequest { streams, detach_keys };
                engine.attach(container, req, Box::new(TokioIo::new(upgraded))).await
            }
            Err(e) => tracing::debug!("attach upgrade failed: {e}"),
        }
    });
    Ok(switching_protocols(content_type))
}

/// The 101 answer that hands the connection over to a container's (or exec's) stdio.
pub(super) fn switching_protocols(content_type: &'static str) -> Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Content-Type", content_type)
        .header(hyper::header::CONNECTION, "Upgrade")
        .header(hyper::header::UPGRADE, "tcp")
        .body(Body::empty())
        .unwrap_or_default()
}

/// Turns an async reader into a body stream of chunks.
pub(super) fn tokio_util_stream(
    mut read: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> impl futures_util::Stream<Item = Result<axum::body::Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| {
        let mut buf = vec![0u8; 32 * 1024];
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        match std::pin::Pin::new(&mut read).poll_read(cx, &mut rb) {
            std::task::Poll::Ready(Ok(())) if rb.filled().is_empty() => std::task::Poll::Ready(None),
            std::task::Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                buf.truncate(n);
                std::task::Poll::Ready(Some(Ok(buf.into())))
            }
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
}
