//! Log streaming: what is in the json-file log, then (when following) what the shim
//! appends, until the container stops. And the log driver a new container gets.

use super::{lock, Container, Engine, Error, Result};
use crate::io::logs::{self, driver, Entry, Follower, Options};
use berth_api::models::HostConfig;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a follower waits for a change before it looks anyway (and checks whether the
/// container still runs).
const FOLLOW_POLL: Duration = Duration::from_millis(50);
/// Encoded entries are sent in chunks of about this size: one chunk per line would cost a
/// channel message and an HTTP chunk per line; the channel's bound times this caps memory.
const CHUNK: usize = 32 << 10;
/// Chunks in flight between the reading thread and the HTTP response.
const CHANNEL_CHUNKS: usize = 16;

impl Engine {
    /// The log driver a new container gets: the request's, completed with the daemon's
    /// defaults as dockerd does, and checked; kept in the HostConfig so inspect shows it.
    pub(super) fn with_log_config(&self, mut hc: HostConfig) -> Result<HostConfig> {
        let cfg = driver::merge(hc.log_config.as_ref(), &self.log_defaults);
        driver::validate(&cfg).map_err(Error::InvalidParameter)?;
        hc.log_config = Some(cfg);
        Ok(hc)
    }

    /// Streams encoded log chunks; the channel closes at the end of the log (or, when
    /// following, once the container has stopped and its last lines are sent).
    pub fn follow_logs(
        &self,
        c: &Arc<Container>,
        opts: Options,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<mpsc::Receiver<Vec<u8>>> {
        if !driver::readable(&c.snapshot()) {
            return Err(Error::NotImplemented(
                "configured logging driver does not support reading".into(),
            ));
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let path = self.paths.log_path(&c.id());
        let events = c.events.subscribe();
        std::thread::spawn(move || {
            let mut out = Chunks {
                tx,
                buf: Vec::with_capacity(CHUNK),
                opts,
            };
            let mut files = logs::open_tail(&path, tail);
            let current = files.pop();
            for mut f in files {
                if !f.read_entries(&mut |e| out.push(&e)) {
                    return;
                }
            }
            let mut follower = Follower::new(&path, current);
            loop {
                // Read the running state before the file, so the last lines are never missed.
                let running = follow && events.borrow().running && !events.borrow().removed;
                let mut read = 0usize;
                let more = follower.poll(&mut |e| {
                    read += 1;
                    out.push(&e)
                });
                if !more || !out.flush() {
                    return;
                }
                // Following ends with the container, or once `until` has passed.
                let past_until = opts.until.is_some_and(|u| chrono::Utc::now() > u);
                if !running || past_until || out.tx.is_closed() {
                    return;
                }
                // Only an idle log is waited on: a busy one is read again at once, so the
                // follower keeps up with rotation rather than lose the files it removes.
                if read == 0 {
                    follower.wait(FOLLOW_POLL);
                }
            }
        });
        Ok(rx)
    }

    /// Sets the container's terminal size.
    pub async fn resize(&self, name: &str, height: u16, width: u16) -> super::Result<()> {
        let c = self.container(name)?;
        if lock(&c.rec).state.status != crate::state::Status::Running {
            return Err(super::Error::Conflict(format!(
                "Container {} is not running",
                c.id()
            )));
        }
        super::shim::call(
            &self.paths.run_dir(&c.id()),
            &berth_runtime::protocol::Request::Resize { width, height },
        )
        .await
    }
}

/// Encodes entries into chunks and sends each full one; sending blocks while the client
/// is behind, which is what keeps a fast log from piling up in memory.
struct Chunks {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
    opts: Options,
}

impl Chunks {
    /// False once the client has gone.
    fn push(&mut self, e: &Entry) -> bool {
        self.opts.encode_into(e, &mut self.buf);
        self.buf.len() < CHUNK || self.flush()
    }

    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.blocking_send(chunk).is_ok()
    }
}
