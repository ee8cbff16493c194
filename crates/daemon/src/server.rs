//! The API server: HTTP/1.1 with upgrades (attach hijacks the connection), and the
//! `/v1.NN/` prefix handled before routing so the router sees version-free paths.

use crate::api;
use crate::engine::Engine;
use crate::listen::{Listener, Stream};
use axum::body::Body;
use berth_api::version::{ApiVersion, API_VERSION, MIN_API_VERSION};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tower::ServiceExt;

/// Serves the API on every listener until SIGINT/SIGTERM. Containers keep running after it
/// returns.
pub async fn serve(listeners: Vec<Listener>, engine: Arc<Engine>) -> anyhow::Result<()> {
    let router = api::router(engine);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut socket_files = Vec::new();
    let mut loops = tokio::task::JoinSet::new();
    for listener in listeners {
        tracing::info!("API listen on {}", listener.address());
        socket_files.push(listener.socket_file());
        let router = router.clone();
        loops.spawn(listener.accept_loop(move |stream| serve_connection(router.clone(), stream)));
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    // No new connections during the shutdown; those open finish on their own tasks.
    loops.abort_all();
    for file in &socket_files {
        Listener::cleanup(file);
    }
    tracing::info!("stopping; containers keep running (live restore)");
    Ok(())
}

/// Serves HTTP/1.1 with upgrades (attach and exec hijack the connection) on one connection.
async fn serve_connection(router: axum::Router, stream: Stream) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let router = router.clone();
        async move { Ok::<_, std::convert::Infallible>(dispatch(router, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("connection: {e}");
    }
}

/// Strips and checks the version prefix, routes, and stamps Docker's headers.
async fn dispatch(router: axum::Router, req: Request<Incoming>) -> Response<Body> {
    let (mut parts, body) = req.into_parts();
    let (version, rest) = split_version(parts.uri.path());
    let mut response = match version {
        Some(Err(message)) => api::error::response(hyper::StatusCode::BAD_REQUEST, message),
        version => {
            // Handlers whose behaviour changed between API versions read the request's
            // version from here; no prefix means the version we advertise, as in Docker.
            let version = match version {
                Some(Ok(v)) => v,
                _ => API_VERSION,
            };
            parts.extensions.insert(version);
            if let Some(rest) = rest {
                let query = parts.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
                if let Ok(uri) = format!("{rest}{query}").parse() {
                    parts.uri = uri;
                }
            }
            let req = Request::from_parts(parts, Body::new(body));
            match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert("Api-Version", hyper::header::HeaderValue::from_static(api::API_VERSION_STR));
    headers.insert("Docker-Experimental", hyper::header::HeaderValue::from_static("false"));
    headers.insert("Ostype", hyper::header::HeaderValue::from_static("linux"));
    headers.insert(hyper::header::SERVER, hyper::header::HeaderValue::from_static("berth"));
    response
}

/// Splits `/v1.41/containers/json` into the version check and `/containers/json`.
fn split_version(path: &str) -> (Option<Result<ApiVersion, String>>, Option<String>) {
    let Some(after) = path.strip_prefix("/v") else { return (None, None) };
    let (ver, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    let Some(v) = ApiVersion::parse(ver) else { return (None, None) };
    let check = if v > API_VERSION {
        Err(format!("client version {v} is too new. Maximum supported API version is {API_VERSION}"))
    } else if v < MIN_API_VERSION {
        Err(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        ))
    } else {
        Ok(v)
    };
    (Some(check), Some(rest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_is_checked_and_stripped() {
        let (v, rest) = split_version("/v1.41/containers/json");
        assert_eq!(v, Some(Ok(ApiVersion(1, 41))));
        assert_eq!(rest.as_deref(), Some("/containers/json"));
        assert!(matches!(split_version("/v1.99/_ping").0, Some(Err(m)) if m.contains("too new")));
        assert!(matches!(split_version("/v1.12/_ping").0, Some(Err(m)) if m.contains("too old")));
        assert_eq!(split_version("/_ping"), (None, None));
        assert_eq!(split_version("/volumes"), (None, None));
    }
}
