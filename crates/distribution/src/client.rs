//! The HTTP side of the registry client: one pooled hyper client (HTTPS with rustls and the
//! system's roots, or without certificate checks for insecure registries), Go-worded transport
//! errors, and a [`Repository`] session that pings `/v2/`, authenticates, retries a request
//! once after a 401 challenge and follows blob redirects (registries hand blobs to a CDN).
//!
//! Use: `Client::new(config)` once per daemon; `client.repository(domain, path, creds, "pull")`
//! per operation (or `connect` for one endpoint, e.g. a mirror); then `repo.send(...)` or
//! `repo.get(...)` with paths relative to `/v2/<name>/`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::auth::{repository_scope, Authorizer, Credentials, TokenCache};
use crate::endpoint::{Endpoint, RegistryConfig};
use crate::error::{go_method, registry_message, Error, Result};

/// Request body: boxed so uploads can stream.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

type Pool = hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// How long to wait for a connection (Go's dialer in dockerd: 30 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a response's headers once connected.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Redirects followed per request, as Go's client.
const MAX_REDIRECTS: usize = 10;

/// The pooled HTTP client: one pool checking certificates, one not (insecure registries).
#[derive(Clone)]
pub struct Http {
    verified: Pool,
    unverified: Pool,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http")
    }
}

impl Default for Http {
    fn default() -> Self {
        Http::new()
    }
}

impl Http {
    /// Builds both pools; a host without CA certificates gets an empty root store (every
    /// verified HTTPS request then fails with a certificate error, as Go's would).
    pub fn new() -> Http {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
        };
        let verified = builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let unverified = builder()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider.clone())))
            .with_no_client_auth();
        let pool = |tls: rustls::ClientConfig| {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_connect_timeout(Some(CONNECT_TIMEOUT));
            http.set_nodelay(true);
            let conn = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(conn)
        };
        Http {
            verified: pool(verified),
            unverified: pool(unverified),
        }
    }

    /// Sends one request (no redirects followed); transport failures read like Go's.
    pub async fn send(&self, req: Request<Body>, skip_verify: bool) -> Result<Response<Incoming>> {
        let method = go_method(req.method());
        let url = req.uri().to_string();
        let authority = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let authority = with_port(&authority, req.uri().scheme_str());
        let pool = if skip_verify {
            &self.unverified
        } else {
            &self.verified
        };
        match tokio::time::timeout(RESPONSE_TIMEOUT, pool.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(Error::Transport {
                method,
                url,
                reason: go_reason(&e, &authority),
            }),
            Err(_) => Err(Error::Transport {
                method,
                url,
                reason:
                    "net/http: request canceled (Client.Timeout exceeded while awaiting headers)"
                        .into(),
            }),
        }
    }
}

/// "host" → "host:443" for https, as Go's dialer names the address.
fn with_port(authority: &str, scheme: Option<&str>) -> String {
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']');
    if has_port {
        authority.to_string()
    } else if scheme == Some("http") {
        format!("{authority}:80")
    } else {
        format!("{authority}:443")
    }
}

/// Go's wording for why a request failed: `dial tcp 127.0.0.1:5000: connect: connection
/// refused`, `http: server gave HTTP response to HTTPS client`, …
fn go_reason(e: &hyper_util::client::legacy::Error, authority: &str) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            let text = io.to_string();
            if text.contains("InvalidContentType") || text.contains("corrupt message") {
                return "http: server gave HTTP response to HTTPS client".into();
            }
            match io.kind() {
                ConnectionRefused => {
                    return format!("dial tcp {authority}: connect: connection refused")
                }
                TimedOut => return format!("dial tcp {authority}: i/o timeout"),
                ConnectionReset => {
                    return format!("read tcp {authority}: read: connection reset by peer")
                }
                UnexpectedEof => return "EOF".into(),
                _ => {}
            }
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls_reason(tls);
            }
        }
        if let Some(tls) = s.downcast_ref::<rustls::Error>() {
            return tls_reason(tls);
        }
        innermost = s.to_string();
        source = s.source();
    }
    if innermost.contains("dns error") || innermost.contains("failed to lookup address") {
        let host = authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority);
        return match resolver() {
            Some(ns) => format!("dial tcp: lookup {host} on {ns}: no such host"),
            None => format!("dial tcp: lookup {host}: no such host"),
        };
    }
    if e.is_connect() {
        return format!("dial tcp {authority}: {innermost}");
    }
    innermost
}

/// The first nameserver of /etc/resolv.conf as "ip:53", as Go's resolver names it in errors.
fn resolver() -> Option<String> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    let ip = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("nameserver"))?
        .trim()
        .to_string();
    Some(if ip.contains(':') {
        format!("[{ip}]:53")
    } else {
        format!("{ip}:53")
    })
}

fn tls_reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidMessage(_) => {
            "http: server gave HTTP response to HTTPS client".into()
        }
        rustls::Error::InvalidCertificate(c) => format!("tls: failed to verify certificate: {c:?}"),
        other => format!("remote error: tls: {other}"),
    }
}

/// Accepts any certificate: only for registries configured (or defaulted, 127.0.0.0/8) insecure.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The registry client of a daemon: settings, the connection pools and the token cache.
#[derive(Clone, Debug)]
pub struct Client {
    http: Http,
    config: Arc<RegistryConfig>,
    tokens: Arc<TokenCache>,
}

impl Client {
    pub fn new(config: RegistryConfig) -> Client {
        Client {
            http: Http::new(),
            config: Arc::new(config),
            tokens: Arc::default(),
        }
    }

    /// The registry settings (insecure registries, mirrors).
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The pooled HTTP client, for requests outside a repository session.
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// A session with repository `name` (path within the registry, "library/busybox") on the
    /// registry `domain` itself: HTTPS, then plain HTTP when the registry is insecure and
    /// HTTPS failed. `actions` is the scope's action list ("pull", "pull,push").
    pub async fn repository(
        &self,
        domain: &str,
        name: &str,
        creds: Option<Credentials>,
        actions: &str,
    ) -> Result<Repository> {
        let mut last = None;
        for ep in self.config.endpoints(domain).await {
            match self.connect(&ep, name, creds.clone(), actions).await {
                Ok(r) => return Ok(r),
                Err(e @ Error::Transport { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::InvalidArgument(format!("no endpoint for {domain}"))))
    }

    /// A session on one endpoint: pings `/v2/` and learns its auth challenge (Docker's ping).
    pub async fn connect(
        &self,
        ep: &Endpoint,
        name: &str,
        creds: Option<Credentials>,
        actions: &str,
    ) -> Result<Repository> {
        let auth = Authorizer::new(
            self.http.clone(),
            ep.skip_verify,
            creds,
            self.tokens.clone(),
        );
        let ping = Request::get(format!("{}/v2/", ep.base))
            .body(empty())
            .map_err(|e| Error::InvalidArgument(format!("{}: {e}", ep.base)))?;
        let resp = self.http.send(ping, ep.skip_verify).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            if let Some(h) = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
            {
                auth.learn(h);
            }
        }
        drop(resp);
        Ok(Repository {
            http: self.http.clone(),
            endpoint: ep.clone(),
            name: name.to_string(),
            scopes: vec![repository_scope(name, actions)],
            auth,
        })
    }
}

/// A session with one repository on one endpoint.
#[derive(Debug)]
pub struct Repository {
    http: Http,
    endpoint: Endpoint,
    name: String,
    scopes: Vec<String>,
    auth: Authorizer,
}

impl Repository {
    /// The endpoint this session talks to.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The repository's path in the registry ("library/busybox").
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The session's authorizer (push adds scopes for cross-repository mounts).
    pub fn authorizer(&self) -> &Authorizer {
        &self.auth
    }

    /// Adds a scope requests of this session ask tokens for (`repository:other/repo:pull`).
    pub fn add_scope(&mut self, scope: String) {
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
        }
    }

    /// `<base>/v2/<name>/<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{}", self.endpoint.base, self.name, path)
    }

    /// Sends the request `make` builds (called again for the retry after a 401 challenge, and
    /// for each redirect of a GET or HEAD), with this session's authorization. Any status
    /// comes back as is; see [`Repository::get`] for status checking.
    pub async fn send(
        &self,
        make: &(dyn Fn() -> Request<Body> + Sync),
    ) -> Result<Response<Incoming>> {
        let mut retried = false;
        loop {
            let mut req = make();
            self.authorize(&mut req).await?;
            let method = req.method().clone();
            let resp = self.http.send(req, self.endpoint.skip_verify).await?;
            if resp.status() == StatusCode::UNAUTHORIZED && !retried {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                // A new challenge, or a cached token the registry no longer takes: once more.
                self.auth.forget(&self.scopes);
                let learned = self.auth.learn(challenge);
                if learned && self.auth.needs_credentials() {
                    // Go's basic-auth handler fails before sending: nothing to answer with.
                    return Err(Error::Transport {
                        method: go_method(&method),
                        url: make().uri().to_string(),
                        reason: "no basic auth credentials".into(),
                    });
                }
                if learned {
                    retried = true;
                    continue;
                }
            }
            if resp.status().is_redirection() && (method == Method::GET || method == Method::HEAD) {
                return self.follow(resp, method).await;
            }
            return Ok(resp);
        }
    }

    /// Adds this session's `Authorization` to `req`, fetching a token when needed; a failure
    /// is this request's, as Go's client reports an error of its transport.
    async fn authorize(&self, req: &mut Request<Body>) -> Result<()> {
        let authorization =
            self.auth
                .authorization(&self.scopes)
                .await
                .map_err(|e| Error::AuthFailed {
                    method: go_method(req.method()),
                    url: req.uri().to_string(),
                    reason: e.to_string(),
                })?;
        if let Some(v) = authorization.and_then(|a| a.parse().ok()) {
            req.headers_mut().insert("Authorization", v);
        }
        Ok(())
    }

    /// Sends a request whose body streams and so cannot be sent twice (a layer compressed
    /// while it uploads). A 401 is not retried here: the refused token is forgotten and the
    /// challenge learnt, and [`Error::TokenRefused`] tells the caller to start over (with the
    /// bytes it kept), when the next request fetches a new token.
    pub async fn send_once(&self, mut req: Request<Body>) -> Result<Response<Incoming>> {
        self.authorize(&mut req).await?;
        let method = go_method(req.method());
        let url = req.uri().to_string();
        let resp = self.http.send(req, self.endpoint.skip_verify).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        self.auth.forget(&self.scopes);
        if self.auth.learn(challenge) && self.auth.uses_tokens() {
            return Err(Error::TokenRefused { method, url });
        }
        check(resp).await
    }

    /// Follows a blob's redirect chain without our credentials (the CDN has its own).
    async fn follow(
        &self,
        mut resp: Response<Incoming>,
        method: Method,
    ) -> Result<Response<Incoming>> {
        let mut from = self.endpoint.base.clone();
        for _ in 0..MAX_REDIRECTS {
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) else {
                return Ok(resp);
            };
            let target = if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_string()
            } else {
                format!("{from}{loc}")
            };
            from = target.split('/').take(3).collect::<Vec<_>>().join("/");
            let req = Request::builder()
                .method(method.clone())
                .uri(&target)
                .body(empty())
                .map_err(|e| Error::Invalid(format!("bad redirect {target}: {e}")))?;
            resp = self.http.send(req, self.endpoint.skip_verify).await?;
        }
        Err(Error::Transport {
            method: go_method(&method),
            url: from,
            reason: "stopped after 10 redirects".into(),
        })
    }

    /// GET `path` (relative to the repository) with extra headers; a non-2xx answer becomes
    /// an [`Error::Registry`] (or [`Error::Unauthorized`]) with the registry's error text.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response<Incoming>> {
        let url = self.url(path);
        let make = || {
            let mut b = Request::get(&url);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(empty()).unwrap_or_else(|_| Request::new(empty()))
        };
        let resp = self.send(&make).await?;
        check(resp).await
    }
}

/// Passes a 2xx answer through; reads the error body of any other.
pub async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // As distribution's client: a Bearer challenge's error comes before the body's.
    let challenge_error = status
        .is_client_error()
        .then(|| resp.headers().get("www-authenticate"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer_error_message);
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let message = challenge_error.unwrap_or_else(|| registry_message(status.as_u16(), &body));
    Err(match status.as_u16() {
        401 | 403 => Error::Unauthorized(message),
        s => Error::Registry { status: s, message },
    })
}
