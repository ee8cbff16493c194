//! Where berthd listens, as dockerd 20.10 does: `-H`/`hosts` parsed with dockerd's rules,
//! UNIX sockets and TCP ports, TCP with TLS (`--tls`) and with client certificates checked
//! against a CA (`--tlsverify`).

pub use crate::listen_hosts::Host;
use crate::listen_tls as tls;
pub use crate::listen_tls::{Stream, TlsOptions};

use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use tokio_rustls::TlsAcceptor;

/// A bound listener, ready to accept.
pub enum Listener {
    Unix {
        path: PathBuf,
        listener: tokio::net::UnixListener,
    },
    Tcp {
        addr: String,
        listener: tokio::net::TcpListener,
        tls: Option<TlsAcceptor>,
    },
}

/// The hosts to serve: those given, else dockerd's default (the UNIX socket, or
/// `tcp://localhost:2376` when TLS is on, as dockerd's `ParseHost` picks for an empty host).
pub fn effective_hosts(given: &[Host], tls: bool, default_socket: &str) -> Vec<Host> {
    if !given.is_empty() {
        return given.to_vec();
    }
    if tls {
        vec![Host::Tcp("localhost:2376".into())]
    } else {
        vec![Host::Unix(default_socket.into())]
    }
}

/// Binds every host. TLS settings load first so a bad certificate fails before any socket
/// exists, with dockerd's message.
pub async fn bind(hosts: &[Host], group: &str, tls: &TlsOptions) -> anyhow::Result<Vec<Listener>> {
    let acceptor = tls
        .acceptor()
        .map_err(|e| anyhow::anyhow!("failed to create API server: {e}"))?;
    // Socket activation is not supported: refuse before binding anything else.
    if hosts.iter().any(|h| matches!(h, Host::Fd(_))) {
        anyhow::bail!(
            "failed to load listeners: no sockets found via socket activation: make sure the service was started by systemd"
        );
    }
    let mut out = Vec::new();
    for host in hosts {
        match host {
            Host::Unix(path) => match bind_unix(path, group) {
                Ok(l) => out.push(l),
                Err(e) => return Err(unbind(out, e)),
            },
            // Refused above.
            Host::Fd(_) => {}
            Host::Tcp(addr) => {
                if !tls.verify {
                    // dockerd's warnings, word for word: only --tlsverify authenticates clients.
                    tracing::warn!(host = %format!("tcp://{addr}"), "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network.");
                    tracing::warn!(host = %format!("tcp://{addr}"), "Binding to an IP address, even on localhost, can also give access to scripts run in a browser. Be safe out there!");
                }
                let listener = match tokio::net::TcpListener::bind(addr.as_str()).await {
                    Ok(l) => l,
                    Err(e) => {
                        return Err(unbind(
                            out,
                            anyhow::anyhow!("failed to load listeners: listen tcp {addr}: {e}"),
                        ))
                    }
                };
                let local = listener
                    .local_addr()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| addr.clone());
                out.push(Listener::Tcp {
                    addr: local,
                    listener,
                    tls: acceptor.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// Bad input leaves nothing behind: the sockets already bound go with the error.
fn unbind(bound: Vec<Listener>, e: anyhow::Error) -> anyhow::Error {
    for l in bound {
        Listener::cleanup(&l.socket_file());
    }
    e
}

fn bind_unix(path: &std::path::Path, group: &str) -> anyhow::Result<Listener> {
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Ok(Some(g)) = nix::unistd::Group::from_name(group) {
        let _ = nix::unistd::chown(path, None, Some(g.gid));
    }
    Ok(Listener::Unix {
        path: path.to_path_buf(),
        listener,
    })
}

impl Listener {
    /// The address dockerd logs in "API listen on …".
    pub fn address(&self) -> String {
        match self {
            Listener::Unix { path, .. } => path.display().to_string(),
            Listener::Tcp { addr, .. } => addr.clone(),
        }
    }

    /// Accepts connections forever, handing each to `serve` (on its own task; a TLS
    /// handshake runs there too, so a slow client never holds up the others).
    pub async fn accept_loop<F, Fut>(self, serve: F)
    where
        F: Fn(tls::Stream) -> Fut + Send + Sync + Clone + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        loop {
            let stream = match &self {
                Listener::Unix { listener, .. } => match listener.accept().await {
                    Ok((s, _)) => tls::Stream::Unix(s),
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                },
                Listener::Tcp { listener, tls, .. } => match listener.accept().await {
                    Ok((s, peer)) => {
                        let _ = s.set_nodelay(true);
                        match tls {
                            None => tls::Stream::Tcp(s),
                            Some(acceptor) => {
                                let acceptor = acceptor.clone();
                                let serve = serve.clone();
                                tokio::spawn(async move {
                                    if let Some(s) = tls::handshake(acceptor, s, peer).await {
                                        serve(s).await;
                                    }
                                });
                                continue;
                            }
                        }
                    }
                    Err(e) => {
                        accept_failed(e).await;
                        continue;
                    }
                },
            };
            tokio::spawn(serve(stream));
        }
    }

    /// Removes what binding left on disk (the UNIX socket file).
    pub fn cleanup(path: &Option<PathBuf>) {
        if let Some(p) = path {
            let _ = std::fs::remove_file(p);
        }
    }

    /// The socket file to remove at shutdown, if any.
    pub fn socket_file(&self) -> Option<PathBuf> {
        match self {
            Listener::Unix { path, .. } => Some(path.clone()),
            Listener::Tcp { .. } => None,
        }
    }
}

/// Out of descriptors and the like: wait a moment instead of spinning, as Go's server does.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!("accept: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}
