//! The daemon's async side of the shim protocol (`berth_runtime::protocol`): one request
//! line per connection, then a reply line or a stream.

use super::{Error, Result};
use berth_runtime::protocol::{ExitStatus, Request};
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Connects to the shim in `state_dir`, sends `req`, and returns the stream positioned after
/// the reply line, with that line.
pub async fn request(state_dir: &Path, req: &Request) -> Result<(BufReader<UnixStream>, String)> {
    let mut stream = BufReader::new(connect(state_dir)?);
    let mut line = serde_json::to_vec(req).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    stream.get_mut().write_all(&line).await?;
    let mut reply = String::new();
    stream.read_line(&mut reply).await?;
    if reply.is_empty() {
        return Err(Error::Internal("the container's shim closed the connection".into()));
    }
    Ok((stream, reply))
}

fn connect(state_dir: &Path) -> Result<UnixStream> {
    // Connecting a UNIX socket is immediate (or refused), so the blocking connect is fine here.
    berth_runtime::with_socket_path(state_dir, |p| std::os::unix::net::UnixStream::connect(p))
        .and_then(|s| {
            s.set_nonblocking(true)?;
            UnixStream::from_std(s)
        })
        .map_err(|e| Error::Internal(format!("cannot reach the container's shim: {e}")))
}

#[derive(serde::Deserialize)]
struct Ack {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
}

/// Sends a request answered by `{"ok":…}`.
pub async fn call(state_dir: &Path, req: &Request) -> Result<()> {
    let (_, reply) = request(state_dir, req).await?;
    let ack: Ack = serde_json::from_str(&reply).map_err(|e| Error::Internal(format!("shim reply: {e}")))?;
    match ack {
        Ack { ok: true, .. } => Ok(()),
        Ack { error, .. } => Err(Error::Internal(error.unwrap_or_else(|| "shim refused".into()))),
    }
}

/// Waits for the container to exit. The returned connection closes when the shim has
/// finished cleaning up (rootfs unmounted, cgroup removed).
pub async fn wait(state_dir: &Path) -> Result<(ExitStatus, BufReader<UnixStream>)> {
    wait_reply(send_wait(state_dir).await?).await
}

/// Sends a `Wait` without waiting for its answer, so it can be registered before the start:
/// the shim then answers the moment the container exits.
pub async fn send_wait(state_dir: &Path) -> Result<BufReader<UnixStream>> {
    let stream = connect(state_dir)?;
    let mut stream = BufReader::new(stream);
    let mut line = serde_json::to_vec(&Request::Wait).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    stream.get_mut().write_all(&line).await?;
    Ok(stream)
}

/// The exit status answering a `send_wait`.
pub async fn wait_reply(mut conn: BufReader<UnixStream>) -> Result<(ExitStatus, BufReader<UnixStream>)> {
    let mut reply = String::new();
    conn.read_line(&mut reply).await?;
    if reply.is_empty() {
        return Err(Error::Internal("the container's shim closed the connection".into()));
    }
    let status = serde_json::from_str(&reply).map_err(|e| Error::Internal(format!("shim exit reply: {e}")))?;
    Ok((status, conn))
}

/// Whether a shim is alive and answering in `state_dir`.
pub async fn alive(state_dir: &Path) -> bool {
    request(state_dir, &Request::State).await.is_ok()
}

/// Returns when the shim behind a `wait` connection has finished cleaning up: it closes the
/// connection once the rootfs is unmounted and the cgroup removed.
pub async fn cleaned_up(mut conn: BufReader<UnixStream>) {
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut conn, &mut Vec::new()).await;
}
