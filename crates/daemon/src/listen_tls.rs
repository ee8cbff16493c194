//! berthd's TLS, dockerd's way: `--tls` serves TLS with `--tlscert`/`--tlskey`;
//! `--tlsverify` also requires a client certificate signed by `--tlscacert`. rustls with
//! the ring provider, as the registry and the registry client use.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;

/// The TLS settings after dockerd's defaulting (`SetDefaultOptions`).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Serve TLS on TCP hosts.
    pub enabled: bool,
    /// Require client certificates signed by `ca`.
    pub verify: bool,
    pub ca: PathBuf,
    /// Empty when not given and the default file is missing: dockerd then names "" in its error.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// dockerd's directory for `ca.pem`, `cert.pem` and `key.pem`: `DOCKER_CERT_PATH`, else
/// the docker config directory (`DOCKER_CONFIG`, else `~/.docker`).
pub fn default_cert_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("DOCKER_CERT_PATH")
        .or_else(|| env("DOCKER_CONFIG"))
        .unwrap_or_else(|| {
            env("HOME")
                .unwrap_or_else(|| "/root".into())
                .join(".docker")
        })
}

impl TlsOptions {
    /// `tls`/`tlsverify` as given (None: not given); a given `--tlsverify`, even `=false`,
    /// turns TLS on, as in dockerd. Cert and key paths not given fall back to the default
    /// files, or to "" when those do not exist.
    pub fn new(
        tls: Option<bool>,
        verify: Option<bool>,
        ca: Option<PathBuf>,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
    ) -> TlsOptions {
        let env_verify = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        let verify_on = verify.unwrap_or(env_verify);
        let enabled = tls.unwrap_or(false) || verify.is_some() || verify_on;
        let dir = default_cert_dir();
        let or_existing_default = |given: Option<PathBuf>, name: &str| {
            given.unwrap_or_else(|| {
                let p = dir.join(name);
                if p.exists() {
                    p
                } else {
                    PathBuf::new()
                }
            })
        };
        TlsOptions {
            enabled,
            verify: enabled && verify_on,
            ca: ca.unwrap_or_else(|| dir.join("ca.pem")),
            cert: or_existing_default(cert, "cert.pem"),
            key: or_existing_default(key, "key.pem"),
        }
    }

    /// The acceptor for TCP hosts, or None without TLS; errors worded as go-connections'.
    pub fn acceptor(&self) -> Result<Option<TlsAcceptor>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let pair = |what: &str| {
            format!(
                "(cert: {:?}, key: {:?}){what}",
                self.cert.display().to_string(),
                self.key.display().to_string()
            )
        };
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| {
                format!(
                    "Could not load X509 key pair {}",
                    pair(&format!(": {}", go_io_error("open", p, &e)))
                )
            })
        };
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        let bad = |why: &str| {
            format!(
                "Error reading X509 key pair {}. Make sure the key is not encrypted.",
                pair(&format!(": {why}"))
            )
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .ok()
            .filter(|c: &Vec<_>| !c.is_empty())
            .ok_or_else(|| bad("tls: failed to find any PEM data in certificate input"))?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|_| bad("tls: failed to find any PEM data in key input"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if self.verify {
            let roots = self.client_roots()?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| e.to_string())?;
            builder.with_client_cert_verifier(Arc::new(BadCertificateAlert(verifier)))
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|_| bad("tls: private key does not match public key"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }

    /// The CA pool client certificates must chain to (only this CA: dockerd's exclusive pool).
    fn client_roots(&self) -> Result<rustls::RootCertStore, String> {
        let pem = std::fs::read(&self.ca).map_err(|e| {
            format!(
                "could not read CA certificate {:?}: {}",
                self.ca.display().to_string(),
                go_io_error("open", &self.ca, &e)
            )
        })?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(format!(
                "failed to append certificates from PEM file: {:?}",
                self.ca.display().to_string()
            ));
        }
        Ok(roots)
    }
}

/// Go's `*PathError` text: `open /x: no such file or directory`.
fn go_io_error(op: &str, path: &Path, e: &io::Error) -> String {
    let reason = match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    };
    format!("{op} {}: {reason}", path.display())
}

/// Go's answer to plain HTTP on a TLS port (net/http's server), which the docker CLI shows.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Runs the TLS handshake; plain HTTP gets Go's 400 answer and a failed handshake is
/// logged as Go logs it. None when there is nothing to serve.
pub async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr) -> Option<Stream> {
    let mut head = [0u8; 5];
    if let Ok(n) = tcp.peek(&mut head).await {
        if looks_like_http(&head[..n]) {
            let mut tcp = tcp;
            let _ = tcp.write_all(PLAIN_HTTP_ANSWER).await;
            let _ = tcp.shutdown().await;
            return None;
        }
    }
    match acceptor.accept(tcp).await {
        Ok(s) => Some(Stream::Tls(Box::new(s))),
        Err(e) => {
            tracing::warn!(
                "http: TLS handshake error from {peer}: {}",
                go_handshake_error(&e)
            );
            None
        }
    }
}

/// A failed handshake in Go's words where dockerd's log has them.
fn go_handshake_error(e: &io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::NoCertificatesPresented) => {
            "tls: client didn't provide a certificate".into()
        }
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)) => {
            "tls: failed to verify client certificate".into()
        }
        _ => e.to_string(),
    }
}

/// Go's server answers any client certificate it cannot verify with a `bad_certificate`
/// alert, which the docker CLI recognises ("the server probably has client authentication
/// (--tlsverify) enabled…"); rustls would send `unknown_ca` and the like. BadEncoding is the
/// certificate error rustls turns into `bad_certificate`.
#[derive(Debug)]
struct BadCertificateAlert(Arc<dyn rustls::server::danger::ClientCertVerifier>);

impl rustls::server::danger::ClientCertVerifier for BadCertificateAlert {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.0
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| {
                tracing::debug!("client certificate refused: {e}");
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Go's `tlsRecordHeaderLooksLikeHTTP`: the first bytes of a request line, not a TLS record.
fn looks_like_http(head: &[u8]) -> bool {
    [&b"GET /"[..], b"HEAD ", b"POST ", b"PUT /", b"OPTIO"]
        .iter()
        .any(|m| head.starts_with(m))
        && head.len() == 5
}

/// One accepted connection, whatever the listener.
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            // The docker CLI ends a hijacked stdin by closing its TCP write side without a
            // TLS close_notify; Go reads that as EOF, and so do we, so the container's stdin
            // closes instead of the whole attach failing.
            Stream::Tls(s) => match Pin::new(s.as_mut()).poll_read(cx, buf) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    Poll::Ready(Ok(()))
                }
                other => other,
            },
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_recognised() {
        assert!(looks_like_http(b"GET /"));
        assert!(looks_like_http(b"POST "));
        assert!(!looks_like_http(&[0x16, 3, 1, 0, 0xc8]));
        assert!(!looks_like_http(b"GE"));
    }

    #[test]
    fn missing_files_are_reported_as_dockerd() {
        let o = TlsOptions {
            enabled: true,
            verify: false,
            ca: PathBuf::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
        };
        assert_eq!(
            o.acceptor().err().unwrap(),
            "Could not load X509 key pair (cert: \"\", key: \"\"): open : no such file or directory"
        );
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "garbage\n").unwrap();
        let o = TlsOptions {
            cert: bad.clone(),
            key: bad.clone(),
            ..o
        };
        assert_eq!(
            o.acceptor().err().unwrap(),
            format!(
                "Error reading X509 key pair (cert: {:?}, key: {:?}): tls: failed to find any PEM data in certificate input. Make sure the key is not encrypted.",
                bad.display().to_string(),
                bad.display().to_string()
            )
        );
        let o = TlsOptions {
            verify: true,
            ca: bad.clone(),
            ..o
        };
        assert_eq!(
            o.client_roots().err().unwrap(),
            format!(
                "failed to append certificates from PEM file: {:?}",
                bad.display().to_string()
            )
        );
    }
}
