//! A small Docker Engine API client: HTTP/1.1 over a UNIX socket or TCP (with TLS when
//! asked), one connection per request (connecting costs less than managing a pool in a CLI).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// API version prefixed to every path: berth implements Docker 20.10's API.
pub const API_PREFIX: &str = "/v1.41";

/// Where the daemon listens unless `-H`, `BERTH_HOST` or `DOCKER_HOST` say otherwise.
pub const DEFAULT_HOST: &str = "unix:///run/berth.sock";

/// A request body: streaming so `import` can send a tar of any size.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// What went wrong talking to the daemon, worded as docker words it.
#[derive(Debug)]
pub enum ClientError {
    /// The socket could not be reached.
    Connect { host: String },
    /// The daemon answered with a non-2xx status and `{"message": …}`.
    Api { status: StatusCode, message: String },
    /// The connection broke or the answer could not be read.
    Io(String),
    /// A failure the docker CLI words in full itself (a client certificate refused).
    Transport(String),
}

impl ClientError {
    /// True for a 404 answer (no such container/image).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Api { status, .. } if *status == StatusCode::NOT_FOUND)
    }

    /// The daemon's message, or the error's text.
    pub fn message(&self) -> String {
        match self {
            ClientError::Api { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { host } => write!(
                f,
                "Cannot connect to the berth daemon at {host}. Is the daemon running?"
            ),
            ClientError::Api { message, .. } => write!(f, "Error response from daemon: {message}"),
            ClientError::Io(msg) => write!(f, "error during connect: {msg}"),
            ClientError::Transport(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ClientError {}

/// Where docker's clients go on TCP when only TLS is asked for (its `DefaultTLSHost`).
pub const DEFAULT_TLS_HOST: &str = "tcp://localhost:2376";

/// The daemon's address and how to reach it.
#[derive(Debug, Clone)]
pub struct Client {
    host: String,
    transport: Transport,
}

#[derive(Debug, Clone)]
enum Transport {
    Unix(PathBuf),
    /// `host:port`, with the TLS configuration when `--tls`/`--tlsverify` is on.
    Tcp {
        addr: String,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

/// A connection to the daemon, whichever transport.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}
type Io = TokioIo<Box<dyn Connection>>;

/// An empty request body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A request body holding `data`.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON request body.
pub fn json_body<T: serde::Serialize>(value: &T) -> Result<Body, ClientError> {
    serde_json::to_vec(value)
        .map(full)
        .map_err(|e| ClientError::Io(e.to_string()))
}

impl Client {
    /// A client for `host` (`unix:///path`, `tcp://host:port` or a bare `host:port`);
    /// `tls` encrypts TCP connections.
    pub fn new(host: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Client, String> {
        let unresolved = |why: String| format!("unable to resolve docker endpoint: {why}");
        let (proto, addr) = host.split_once("://").unwrap_or(("tcp", host));
        let transport = match proto {
            "unix" if !addr.is_empty() => Transport::Unix(PathBuf::from(addr)),
            "unix" => return Err(format!("invalid host {host:?}: empty socket path")),
            "tcp" => Transport::Tcp {
                addr: tcp_addr(addr, host).map_err(unresolved)?,
                tls,
            },
            _ => return Err(unresolved(format!("Invalid bind address format: {host}"))),
        };
        Ok(Client {
            host: host.to_string(),
            transport,
        })
    }

    /// Connects, and on TLS runs the handshake; `method` and `path` word its errors as
    /// the docker CLI (Go's `Get "https://…": reason`).
    async fn connect(&self, method: &Method, path: &str) -> Result<Io, ClientError> {
        let refused = || ClientError::Connect {
            host: self.host.clone(),
        };
        match &self.transport {
            Transport::Unix(socket) => {
                let s = UnixStream::connect(socket).await.map_err(|_| refused())?;
                Ok(TokioIo::new(Box::new(s)))
            }
            Transport::Tcp { addr, tls } => {
                let tcp = TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|_| refused())?;
                let _ = tcp.set_nodelay(true);
                let Some(config) = tls else {
                    return Ok(TokioIo::new(Box::new(tcp)));
                };
                let name = crate::tls::server_name(addr).map_err(ClientError::Io)?;
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| self.failed(method, path, &e))?;
                Ok(TokioIo::new(Box::new(stream)))
            }
        }
    }

    /// A transport failure as the docker CLI words it: a TLS error in Go's words after the
    /// request's URL; anything else as it is.
    fn failed(
        &self,
        method: &Method,
        path: &str,
        e: &(dyn std::error::Error + 'static),
    ) -> ClientError {
        let Transport::Tcp { addr, tls } = &self.transport else {
            return ClientError::Io(e.to_string());
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut verb = method.as_str().to_ascii_lowercase();
        if let Some(first) = verb.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        let url = format!("{verb} \"{scheme}://{addr}{API_PREFIX}{path}\"");
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            let tls = c.downcast_ref::<rustls::Error>().or_else(|| {
                c.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .and_then(|i| i.downcast_ref::<rustls::Error>())
            });
            if let Some(t) = tls {
                let reason = format!("{url}: {}", crate::tls::describe(t));
                // The docker CLI's hint, on the same condition as its.
                if reason.contains("bad certificate") {
                    return ClientError::Transport(format!(
                        "the server probably has client authentication (--tlsverify) enabled; check your TLS client certification settings: {reason}"
                    ));
                }
                return ClientError::Io(reason);
            }
            cause = c.source();
        }
        ClientError::Io(e.to_string())
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Body,
        upgrade: bool,
    ) -> Result<Request<Body>, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{API_PREFIX}{path}"))
            // The Host header is required by HTTP/1.1; the value is meaningless on a socket.
            .header(hyper::header::HOST, "berth")
            .header(
                hyper::header::USER_AGENT,
                concat!("berth-cli/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if upgrade {
            builder = builder
                .header(hyper::header::CONNECTION, "Upgrade")
                .header(hyper::header::UPGRADE, "tcp");
        }
        builder
            .body(body)
            .map_err(|e| ClientError::Io(e.to_string()))
    }

    /// Sends a request and returns the answer whatever its status; the caller checks it.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Response<Incoming>, ClientError> {
        let io = self.connect(&method, path).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        // The connection task ends with the response body; its error shows up there too.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = self.request(method.clone(), path, body, false)?;
        sender
            .send_request(req)
            .await
            .map_err(|e| self.failed(&method, path, &e))
    }

    /// [`Client::send`] with extra headers (`X-Registry-Auth` for pull and push).
    pub async fn send_with_headers(
        &self,
        method: Method,
        path: &str,
        body: Body,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>, ClientError> {
        let io = self.connect(&method, path).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = self.request(method.clone(), path, body, false)?;
        for (k, v) in headers {
            let name = hyper::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| ClientError::Io(e.to_string()))?;
            let value = hyper::header::HeaderValue::from_str(v)
                .map_err(|e| ClientError::Io(e.to_string()))?;
            req.headers_mut().insert(name, value);
        }
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.failed(&method, path, &e))?;
        check(resp).await
    }

    /// Sends a request; a non-2xx answer becomes `ClientError::Api`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Response<Incoming>, ClientError> {
        let resp = self.send_raw(method, path, body).await?;
        check(resp).await
    }

    /// Sends a request and collects the whole 2xx body.
    pub async fn bytes(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Bytes, ClientError> {
        let resp = self.send(method, path, body).await?;
        collect(resp.into_body()).await
    }

    /// Sends a request and decodes the 2xx JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<T, ClientError> {
        let data = self.bytes(method, path, body).await?;
        serde_json::from_slice(&data)
            .map_err(|e| ClientError::Io(format!("cannot decode the daemon's answer: {e}")))
    }

    /// GET shorthand decoding JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, empty()).await
    }

    /// POST with no body, ignoring the answer's body.
    pub async fn post(&self, path: &str) -> Result<(), ClientError> {
        self.bytes(Method::POST, path, empty()).await.map(|_| ())
    }

    /// Opens a hijacked stream (attach): sends `Upgrade: tcp` and returns the raw duplex
    /// connection once the daemon answers 101, or the body stream on a plain 200.
    pub async fn upgrade(&self, path: &str) -> Result<Hijacked, ClientError> {
        let io = self.connect(&Method::POST, path).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| ClientError::Io(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let req = self.request(Method::POST, path, empty(), true)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.failed(&Method::POST, path, &e))?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upgraded = hyper::upgrade::on(resp)
                .await
                .map_err(|e| ClientError::Io(e.to_string()))?;
            return Ok(Hijacked::Upgraded(TokioIo::new(upgraded)));
        }
        let resp = check(resp).await?;
        Ok(Hijacked::Body(resp.into_body()))
    }
}

/// docker's `ParseTCPAddr` for a client: `localhost` and port 2375 fill what is left out.
fn tcp_addr(addr: &str, original: &str) -> Result<String, String> {
    let authority = addr.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Ok("localhost:2375".into());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("Invalid bind address format: {original}"))?;
            (format!("[{h}]"), after.strip_prefix(':').unwrap_or(after))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.to_string(), ""),
        },
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "parse \"tcp://{addr}\": invalid port \":{port}\" after host"
        ));
    }
    let host = if host.is_empty() {
        "localhost".to_string()
    } else {
        host
    };
    let port = if port.is_empty() { "2375" } else { port };
    Ok(format!("{host}:{port}"))
}

/// An attach connection: either upgraded (duplex) or a plain response body (output only).
pub enum Hijacked {
    Upgraded(TokioIo<hyper::upgrade::Upgraded>),
    Body(Incoming),
}

/// Turns a non-2xx answer into `ClientError::Api` with the daemon's message.
pub async fn check(resp: Response<Incoming>) -> Result<Response<Incoming>, ClientError> {
    let status = resp.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        return Ok(resp);
    }
    let data = collect(resp.into_body()).await.unwrap_or_default();
    let message = match serde_json::from_slice::<berth_api::ErrorBody>(&data) {
        Ok(body) => body.message,
        // Not Docker's error shape: show whatever text came back, or the status itself.
        Err(_) => {
            let text = String::from_utf8_lossy(&data).trim().to_string();
            if text.is_empty() {
                status.to_string()
            } else {
                text
            }
        }
    };
    Err(ClientError::Api { status, message })
}

/// Reads a whole body.
pub async fn collect(body: Incoming) -> Result<Bytes, ClientError> {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| ClientError::Io(e.to_string()))
}

/// Reads the next chunk of a streaming body; `None` at its end.
pub async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, ClientError> {
    loop {
        match body.frame().await {
            None => return Ok(None),
            Some(Err(e)) => return Err(ClientError::Io(e.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
                // A trailers frame carries no output; keep reading.
            }
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay as they are).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a path segment, keeping `/` and `:` because image names carry them and
/// the daemon routes `/images/{name:.*}`.
pub fn enc_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/' | b':' | b'@')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds `?k=v&…` from pairs, skipping none; empty when there are no pairs.
pub fn query(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    format!("?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_queries() {
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
        assert_eq!(
            query(&[("name", "x".into()), ("f", "{\"a\":1}".into())]),
            "?name=x&f=%7B%22a%22%3A1%7D"
        );
        assert_eq!(query(&[]), "");
        assert_eq!(enc_path("library/busybox:latest"), "library/busybox:latest");
    }

    #[test]
    fn parses_hosts() {
        assert!(Client::new("unix:///run/berth.sock", None).is_ok());
        assert!(Client::new("unix://", None).is_err());
        assert_eq!(tcp_addr("1.2.3.4:2375", "").unwrap(), "1.2.3.4:2375");
        assert_eq!(tcp_addr(":2376", "").unwrap(), "localhost:2376");
        assert_eq!(tcp_addr("", "").unwrap(), "localhost:2375");
        assert_eq!(tcp_addr("h", "").unwrap(), "h:2375");
        assert_eq!(tcp_addr("[::1]:5", "").unwrap(), "[::1]:5");
        assert_eq!(
            Client::new("tcp://127.0.0.1:abc", None).unwrap_err(),
            "unable to resolve docker endpoint: parse \"tcp://127.0.0.1:abc\": invalid port \":abc\" after host"
        );
        assert_eq!(
            Client::new("bogus://x", None).unwrap_err(),
            "unable to resolve docker endpoint: Invalid bind address format: bogus://x"
        );
    }
}
