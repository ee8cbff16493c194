//! The server: shared state, authentication, routing of each request to its handler, and the
//! accept loop (plain TCP or TLS, HTTP/1.1).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_store::ContentStore;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::{Htpasswd, REALM};
use crate::error::Code;
use crate::http::{self, Body, Reply};
use crate::names::is_repo_name;
use crate::repos::Repos;
use crate::route::{self, Route};
use crate::uploads::Uploads;
use crate::{blobs, listing, manifests};

/// How the server is run.
#[derive(Debug, Clone)]
pub struct Config {
    /// host:port to listen on.
    pub addr: String,
    /// Where blobs, repositories and uploads live.
    pub root: PathBuf,
    /// Basic auth against this htpasswd file (bcrypt entries) when given.
    pub htpasswd: Option<PathBuf>,
    /// TLS certificate chain and key (PEM) when given.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Upload sessions untouched this long are removed (Distribution: 168h).
    pub upload_ttl: Duration,
}

/// What every request handler can reach.
pub struct State {
    pub content: Arc<ContentStore>,
    pub repos: Repos,
    pub uploads: Uploads,
    pub auth: Option<Htpasswd>,
    /// Whether clients reach us over TLS (for absolute `Location` URLs).
    pub tls: bool,
}

impl State {
    /// Opens the storage under `config.root`, dropping what no repository references (the
    /// leftovers of deletes and crashes) and abandoned uploads.
    pub fn open(config: &Config, auth: Option<Htpasswd>) -> anyhow::Result<State> {
        let content = Arc::new(ContentStore::open(&config.root)?);
        let repos = Repos::open(&config.root)?;
        let keep = repos.referenced()?;
        content.gc(|d| keep.contains(d))?;
        let uploads = Uploads::open(&config.root, content.clone())?;
        uploads.purge(config.upload_ttl)?;
        Ok(State {
            content,
            repos,
            uploads,
            auth,
            tls: config.tls.is_some(),
        })
    }
}

/// Answers one request; never fails (errors become the spec's JSON).
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let mut resp = match authorized(&state, &req).await {
        Ok(()) => dispatch(&state, req)
            .await
            .unwrap_or_else(|e| http::error(&e)),
        Err(resp) => resp,
    };
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp
}

async fn authorized(state: &State, req: &Request<Incoming>) -> Result<(), Response<Body>> {
    let Some(auth) = &state.auth else {
        return Ok(());
    };
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth.check(header).await {
        return Ok(());
    }
    let mut resp = http::error(&Code::Unauthorized.detail(serde_json::Value::Null));
    http::set(
        &mut resp,
        "www-authenticate",
        &format!("Basic realm=\"{REALM}\""),
    );
    Err(resp)
}

fn not_found() -> Response<Body> {
    http::full(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 page not found\n",
    )
}

async fn dispatch(state: &State, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let Some(route) = route::parse(&path) else {
        return Ok(not_found());
    };
    let name = match &route {
        Route::Base | Route::Catalog => None,
        Route::Tags { name }
        | Route::Manifest { name, .. }
        | Route::Blob { name, .. }
        | Route::UploadStart { name }
        | Route::Upload { name, .. }
        | Route::Referrers { name, .. } => Some(*name),
    };
    if let Some(name) = name {
        if !is_repo_name(name) {
            return Err(Code::NameInvalid.detail(serde_json::json!({ "name": name })));
        }
    }
    let method = req.method().clone();
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => listing::base(),
        (Route::Catalog, Method::GET) => listing::catalog(state, req.uri()),
        (Route::Tags { name }, Method::GET) => listing::tags(state, name, req.uri()),
        (Route::Manifest { name, reference }, m @ (Method::GET | Method::HEAD)) => {
            manifests::get(state, name, reference, &m)
        }
        (Route::Manifest { name, reference }, Method::PUT) => {
            manifests::put(state, name, reference, req).await
        }
        (Route::Manifest { name, reference }, Method::DELETE) => {
            manifests::delete(state, name, reference)
        }
        (Route::Blob { name, digest }, Method::GET | Method::HEAD) => {
            blobs::get(state, name, digest, &req)
        }
        (Route::Blob { name, digest }, Method::DELETE) => blobs::delete(state, name, digest),
        (Route::UploadStart { name }, Method::POST) => blobs::start(state, name, req).await,
        (Route::Upload { name, id }, Method::GET) => {
            blobs::status(state, name, id, req.headers()).await
        }
        (Route::Upload { name, id }, Method::PATCH) => blobs::patch(state, name, id, req).await,
        (Route::Upload { name, id }, Method::PUT) => blobs::finish(state, name, id, req).await,
        (Route::Upload { name, id }, Method::DELETE) => blobs::cancel(state, name, id).await,
        (Route::Referrers { name, digest }, Method::GET) => {
            manifests::referrers(state, name, digest, req.uri())
        }
        (route, _) => Ok(method_not_allowed(&route)),
    }
}

/// Distribution's router answer to a known path with the wrong method.
fn method_not_allowed(route: &Route) -> Response<Body> {
    let allow = match route {
        Route::Base => "GET, HEAD",
        Route::Catalog | Route::Tags { .. } | Route::Referrers { .. } => "GET",
        Route::Manifest { .. } => "GET, HEAD, PUT, DELETE",
        Route::Blob { .. } => "GET, HEAD, DELETE",
        Route::UploadStart { .. } => "POST",
        Route::Upload { .. } => "GET, PATCH, PUT, DELETE",
    };
    let mut resp = http::full(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain; charset=utf-8",
        "Method not allowed\n",
    );
    http::set(&mut resp, "allow", allow);
    resp
}

async fn serve_connection<S>(state: Arc<State>, io: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, req).await) }
    });
    // Title case: Go's canonical header names, which some clients' logs and tests expect.
    let _ = hyper::server::conn::http1::Builder::new()
        .title_case_headers(true)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Runs the registry until the process is stopped.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Everything that can be refused is checked before the root is created.
    let auth = config.htpasswd.as_deref().map(Htpasswd::load).transpose()?;
    let acceptor = match &config.tls {
        Some((cert, key)) => Some(crate::tls::acceptor(cert, key)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("listen on {}: {e}", config.addr))?;
    let state = Arc::new(State::open(&config, auth)?);
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    eprintln!(
        "berth-registry: serving {} on {scheme}://{}",
        config.root.display(),
        listener.local_addr()?
    );

    let purger = state.clone();
    let ttl = config.upload_ttl;
    tokio::spawn(async move {
        // Distribution purges once a day; hourly (or sooner for short TTLs) is as cheap.
        let every = ttl.clamp(Duration::from_secs(1), Duration::from_secs(3600));
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = purger.uploads.purge(ttl) {
                eprintln!("berth-registry: purging uploads: {e}");
            }
        }
    });

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: wait rather than spin or die.
                eprintln!("berth-registry: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(a) => {
                    if let Ok(tls) = a.accept(stream).await {
                        serve_connection(state, tls).await;
                    }
                }
                None => serve_connection(state, stream).await,
            }
        });
    }
}
