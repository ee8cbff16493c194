//! Attach: a client connection joined to the container's shim, which streams output in
//! Docker's framing (or raw with a TTY) and takes stdin. Connections made before the
//! container starts wait here and are joined before the process runs, so they miss nothing.

use super::{lock, shim, Container, Engine, Error, Result};
use crate::state::Status;
use berth_runtime::protocol::Request;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// A hijacked client connection.
pub type ClientConn = Box<dyn AsyncReadWrite>;

/// Object-safe async read + write.
pub trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncReadWrite for T {}

/// Which streams the client asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

pub(super) struct Pending {
    conn: ClientConn,
    streams: AttachStreams,
}

/// Attach connections of one container, and whether its shim takes them directly.
#[derive(Default)]
pub(super) struct AttachQueue {
    waiting: Vec<Pending>,
    /// The shim has created the container: join new clients straight to it.
    live: bool,
}

impl AttachQueue {
    /// A queue for a container whose shim already runs (after a daemon restart).
    pub(super) fn live() -> AttachQueue {
        AttachQueue { waiting: Vec::new(), live: true }
    }
}

impl Engine {
    /// Checks that `name` can be attached to, before the connection is hijacked.
    pub fn attach_target(&self, name: &str) -> Result<Arc<Container>> {
        let c = self.container(name)?;
        let status = super::lock(&c.rec).state.status;
        match status {
            Status::Created | Status::Running => Ok(c),
            _ => Err(Error::Conflict("You cannot attach to a stopped container, start it first".into())),
        }
    }

    /// Joins a hijacked connection to the container, now or when it starts.
    pub async fn attach(&self, c: Arc<Container>, streams: AttachStreams, conn: ClientConn) {
        let pending = Pending { conn, streams };
        let join_now = {
            let mut queue = lock(&c.attach);
            if queue.live {
                Some(pending)
            } else {
                queue.waiting.push(pending);
                None
            }
        };
        if let Some(p) = join_now {
            let dir = self.paths.run_dir(&c.id());
            join(&dir, p).await;
        }
    }

    /// Called once the shim has created the container and before it starts: joins every
    /// waiting client.
    pub(super) async fn attach_waiting(&self, c: &Container) {
        let waiting = {
            let mut queue = lock(&c.attach);
            queue.live = true;
            std::mem::take(&mut queue.waiting)
        };
        let dir = self.paths.run_dir(&c.id());
        for p in waiting {
            // Each join is confirmed by the shim before we go on, so output cannot be missed.
            join(&dir, p).await;
        }
    }

    /// The container stopped: later clients wait for its next start.
    pub(super) fn attach_closed(&self, c: &Container) {
        let mut queue = lock(&c.attach);
        queue.live = false;
        queue.waiting.clear();
    }
}

/// Connects one client to the shim (confirmed on return) and copies both ways in the background.
async fn join(state_dir: &std::path::Path, mut p: Pending) {
    let req = Request::Attach { stdin: p.streams.stdin, stdout: p.streams.stdout, stderr: p.streams.stderr };
    let (reader, _) = match shim::request(state_dir, &req).await {
        Ok(ok) => ok,
        Err(e) => {
            tracing::warn!("attach: {e}");
            let _ = p.conn.shutdown().await;
            return;
        }
    };
    tokio::spawn(async move {
        // Output the shim sent along with its reply line is already buffered: pass it on first.
        let early = reader.buffer().to_vec();
        let mut shim_conn = reader.into_inner();
        if !early.is_empty() && p.conn.write_all(&early).await.is_err() {
            return;
        }
        if let Err(e) = tokio::io::copy_bidirectional(&mut p.conn, &mut shim_conn).await {
            tracing::debug!("attach stream ended: {e}");
        }
        let _ = p.conn.shutdown().await;
    });
}
