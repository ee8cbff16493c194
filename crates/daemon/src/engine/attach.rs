//! Attach: a client connection joined to the container's stdio through its own shim
//! connection, so every client sees all output (framed as Docker frames it, or raw with a
//! TTY). Connections made before the container starts wait here and are joined before the
//! process runs, so they miss nothing.
//!
//! As in Docker, with a TTY the daemon watches each client's stdin for the detach keys and
//! ends that client's session on them, and a client leaving never closes the container's
//! stdin (the shim is started without `stdin_once` then); without a TTY, `StdinOnce` closes
//! it when the client's stdin ends.

use super::events::EventLog;
use super::{lock, shim, Container, Engine, Error, Result};
use crate::state::Status;
use berth_api::detach;
use berth_runtime::protocol::Request;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;

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

/// A client's attach request, checked.
pub struct AttachRequest {
    pub streams: AttachStreams,
    /// The detach sequence (`detachKeys`); empty for Docker's default.
    pub detach_keys: Vec<u8>,
}

struct Pending {
    conn: ClientConn,
    req: AttachRequest,
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

/// Parses `detachKeys` as the attach and exec APIs take it: empty means the default.
pub fn parse_detach_keys(spec: &str) -> std::result::Result<Vec<u8>, String> {
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    detach::parse(spec)
}

impl Engine {
    /// Checks that `name` can be attached to, before the connection is hijacked. A created
    /// or stopped container is fine: the client waits for its (next) start, as in Docker.
    pub fn attach_target(&self, name: &str, detach_keys: &str) -> Result<(Arc<Container>, Vec<u8>)> {
        let keys = parse_detach_keys(detach_keys)
            .map_err(|_| Error::InvalidParameter(format!("Invalid detach keys ({detach_keys}) provided")))?;
        let c = self.container(name)?;
        let state = lock(&c.rec).state.clone();
        if state.is_paused() {
            return Err(Error::Conflict(format!("container {name} is paused, unpause the container before attach")));
        }
        if state.restarting {
            return Err(Error::Conflict(format!("container {name} is restarting, wait until the container is running")));
        }
        match state.status {
            Status::Created | Status::Running | Status::Exited => Ok((c, keys)),
            Status::Removing | Status::Dead => {
                Err(Error::Conflict("You cannot attach to a stopped container, start it first".into()))
            }
        }
    }

    /// Joins a hijacked connection to the container, now or when it starts.
    pub async fn attach(&self, c: Arc<Container>, req: AttachRequest, conn: ClientConn) {
        self.container_event(&c.snapshot(), "attach", &[]);
        let pending = Pending { conn, req };
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
            join(&self.paths.run_dir(&c.id()), &c, p, self.events.clone()).await;
        }
    }

    /// Called once the shim has created the container and before it starts: joins every
    /// waiting client.
    pub(super) async fn attach_waiting(&self, c: &Arc<Container>) {
        let waiting = {
            let mut queue = lock(&c.attach);
            queue.live = true;
            std::mem::take(&mut queue.waiting)
        };
        let dir = self.paths.run_dir(&c.id());
        for p in waiting {
            // Each join is confirmed by the shim before we go on, so output cannot be missed.
            join(&dir, c, p, self.events.clone()).await;
        }
    }

    /// The container stopped: later clients wait for its next start.
    pub(super) fn attach_closed(&self, c: &Container) {
        let mut queue = lock(&c.attach);
        queue.live = false;
        queue.waiting.clear();
    }
}

/// How a client's input ended.
enum InputEnd {
    /// End of input (or the client went away).
    Eof,
    /// The client typed the detach keys.
    Detached,
    /// The container's stdin is gone (the shim went away).
    StdinGone,
}

/// Connects one client to the shim (confirmed on return) and runs its session in the
/// background.
async fn join(dir: &Path, c: &Arc<Container>, p: Pending, events: Arc<EventLog>) {
    let Pending { mut conn, req } = p;
    let config = c.snapshot().config;
    let tty = config.tty == Some(true);
    // Docker never reads a client's stdin when the container's is not open.
    let stdin = req.streams.stdin && config.open_stdin == Some(true);
    // Without a TTY, `StdinOnce` closes the container's stdin when the client's ends; in
    // every other case the end of the client's stdin ends its session.
    let close_stdin_at_eof = config.stdin_once == Some(true) && !tty;
    let escape = tty.then(|| detach::Scanner::new(&req.detach_keys));
    let shim_req = Request::Attach { stdin, stdout: req.streams.stdout, stderr: req.streams.stderr };
    let output = match shim::request(dir, &shim_req).await {
        Ok((reader, _)) => reader,
        Err(e) => {
            tracing::warn!("attach: {e}");
            let _ = conn.shutdown().await;
            return;
        }
    };
    let c = c.clone();
    tokio::spawn(async move {
        let early = output.buffer().to_vec();
        let (mut shim_out, shim_in) = output.into_inner().into_split();
        let (client_in, mut client_out) = tokio::io::split(conn);
        {
            let copy_output = async {
                if !early.is_empty() {
                    client_out.write_all(&early).await?;
                }
                tokio::io::copy(&mut shim_out, &mut client_out).await
            };
            tokio::pin!(copy_output);
            let input = async {
                match stdin {
                    true => forward_input(client_in, shim_in, escape).await,
                    // Hold our side open: its end would mean the end of our input.
                    false => {
                        let _hold = shim_in;
                        std::future::pending().await
                    }
                }
            };
            let ended = tokio::select! {
                _ = &mut copy_output => None,
                end = input => Some(end),
            };
            match ended {
                None => {}
                Some(InputEnd::Detached) => events.container(&c.snapshot(), "detach", &[]),
                Some(InputEnd::Eof) if !close_stdin_at_eof => {}
                // The container's stdin is closed: its output goes on until it ends.
                Some(InputEnd::Eof | InputEnd::StdinGone) => {
                    let _ = copy_output.as_mut().await;
                }
            }
        }
        let _ = client_out.shutdown().await;
    });
}

/// Copies a client's input to the container's stdin, watching for the detach keys when
/// `escape` is set. Returning drops `shim_in`, which ends our input to the shim: at the end
/// of the client's it closes the container's stdin if the shim keeps `stdin_once`.
async fn forward_input(
    mut client_in: impl AsyncRead + Unpin,
    mut shim_in: OwnedWriteHalf,
    mut escape: Option<detach::Scanner>,
) -> InputEnd {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = client_in.read(&mut buf).await.unwrap_or(0);
        let scanned = match escape.as_mut() {
            Some(s) if n > 0 => s.feed(&buf[..n]),
            Some(s) => detach::Scanned { forward: s.finish(), detach: false },
            None => detach::Scanned { forward: buf[..n].to_vec(), detach: false },
        };
        if !scanned.forward.is_empty() && shim_in.write_all(&scanned.forward).await.is_err() {
            return InputEnd::StdinGone;
        }
        if scanned.detach {
            return InputEnd::Detached;
        }
        if n == 0 {
            let _ = shim_in.shutdown().await;
            return InputEnd::Eof;
        }
    }
}
