//! TLS to a daemon on TCP, as the docker CLI 20.10 sets it up: `--tls` (encrypt, trust any
//! server), `--tlsverify` or `DOCKER_TLS_VERIFY` (check the server against `--tlscacert`),
//! a client certificate from `--tlscert`/`--tlskey`, the files defaulting to
//! `$DOCKER_CERT_PATH/{ca,cert,key}.pem` (else `~/.docker/`). rustls with the ring provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The TLS flags as given on the command line (None: not given).
#[derive(Debug, Default, Clone)]
pub struct TlsFlags {
    pub tls: Option<bool>,
    pub tlsverify: Option<bool>,
    pub tlscacert: Option<PathBuf>,
    pub tlscert: Option<PathBuf>,
    pub tlskey: Option<PathBuf>,
}

/// The directory of the default `ca.pem`, `cert.pem` and `key.pem`.
fn cert_dir() -> PathBuf {
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

impl TlsFlags {
    /// Whether TLS is on: `--tls`, or `--tlsverify` given at all (even `=false`, as docker's
    /// `SetDefaultOptions`), or `DOCKER_TLS_VERIFY` set.
    pub fn enabled(&self) -> bool {
        self.tls.unwrap_or(false) || self.tlsverify.is_some() || env_verify()
    }

    fn verify(&self) -> bool {
        self.tlsverify.unwrap_or_else(env_verify)
    }

    /// The client's TLS configuration, or None without TLS; errors worded as the docker CLI's.
    pub fn config(&self) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        if !self.enabled() {
            return Ok(None);
        }
        let dir = cert_dir();
        // The docker CLI reads the CA whenever TLS is on, and uses it only to verify.
        let ca_path = self.tlscacert.clone().unwrap_or_else(|| dir.join("ca.pem"));
        let ca_pem = read(&ca_path)?;
        // Default cert and key files are used only when they exist, and a client certificate
        // only with both (the docker CLI sends none otherwise).
        let optional = |given: &Option<PathBuf>, name: &str| -> Option<PathBuf> {
            given
                .clone()
                .or_else(|| Some(dir.join(name)).filter(|p| p.exists()))
        };
        let cert_path = optional(&self.tlscert, "cert.pem");
        let key_path = optional(&self.tlskey, "key.pem");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if self.verify() {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&ca_pem).flatten() {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err("failed to retrieve context tls info: ca.pem seems invalid".into());
            }
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(TrustAnyServer(provider)))
        };
        let mut config = match (cert_path, key_path) {
            (Some(cert), Some(key)) => {
                let cert_pem = read(&cert)?;
                let key_pem = read(&key)?;
                let info = |why: &str| format!("failed to retrieve context tls info: {why}");
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| info("tls: failed to find any PEM data in certificate input"))?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem)
                    .map_err(|_| info("tls: failed to find any PEM data in key input"))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|_| info("tls: private key does not match public key"))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Arc::new(config)))
    }
}

fn env_verify() -> bool {
    std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty())
}

/// Reads a certificate file; the docker CLI's words when it cannot.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        let reason = match e.raw_os_error() {
            Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
            None => e.to_string(),
        };
        format!(
            "unable to resolve docker endpoint: open {}: {reason}",
            path.display()
        )
    })
}

/// The server name to check the daemon's certificate against: the host of `host:port`.
pub fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = match addr.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => addr.rsplit_once(':').map_or(addr, |(h, _)| h),
    };
    ServerName::try_from(host.to_string()).map_err(|e| format!("invalid host {host:?}: {e}"))
}

/// Go's wording of a TLS failure, as the docker CLI prints it.
pub fn describe(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::AlertReceived(alert) => {
            use rustls::AlertDescription as A;
            // Go's names (crypto/tls alert.go) for those a daemon sends.
            let go = match alert {
                A::UnknownCA => Some("unknown certificate authority"),
                A::ProtocolVersion => Some("protocol version not supported"),
                A::DecryptError => Some("error decrypting message"),
                A::DecodeError => Some("error decoding message"),
                A::CertificateExpired => Some("expired certificate"),
                A::CertificateRevoked => Some("revoked certificate"),
                A::CertificateUnknown => Some("unknown certificate"),
                _ => None,
            };
            if let Some(go) = go {
                return format!("remote error: tls: {go}");
            }
            let name = format!("{alert:?}");
            // Go names alerts in lower case words: BadCertificate -> "bad certificate".
            let mut words = String::new();
            for (i, ch) in name.chars().enumerate() {
                if ch.is_uppercase() && i > 0 {
                    words.push(' ');
                }
                words.push(ch.to_ascii_lowercase());
            }
            format!("remote error: tls: {words}")
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "x509: certificate signed by unknown authority".into()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "x509: certificate has expired or is not yet valid".into()
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => "x509: certificate is not valid for the requested host".into(),
        rustls::Error::InvalidMessage(_) => {
            "http: server gave HTTP response to HTTPS client".into()
        }
        other => format!("tls: {other}"),
    }
}

/// `--tls` without `--tlsverify`: encrypted, but any server certificate is accepted, as the
/// docker CLI's InsecureSkipVerify (signatures are still checked so the session is sound).
#[derive(Debug)]
struct TrustAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for TrustAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_the_address() {
        assert!(matches!(
            server_name("127.0.0.1:2376"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[::1]:2376"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("localhost:2376"),
            Ok(ServerName::DnsName(_))
        ));
    }

    #[test]
    fn alerts_are_worded_as_go() {
        assert_eq!(
            describe(&rustls::Error::AlertReceived(
                rustls::AlertDescription::BadCertificate
            )),
            "remote error: tls: bad certificate"
        );
        assert_eq!(
            describe(&rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            )),
            "x509: certificate signed by unknown authority"
        );
    }

    #[test]
    fn missing_files_are_reported_as_docker() {
        let flags = TlsFlags {
            tlsverify: Some(true),
            tlscacert: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert_eq!(
            flags.config().err().unwrap(),
            "unable to resolve docker endpoint: open /nonexistent/ca.pem: no such file or directory"
        );
        assert!(TlsFlags::default().tls.is_none());
    }
}
