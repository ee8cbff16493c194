//! Log streaming: what is in the json-file log, then (when following) what the shim
//! appends, until the container stops.

use super::{lock, Container, Engine};
use crate::io::logs::{self, Entry, Options};
use std::io::{BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a follower looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

impl Engine {
    /// Streams encoded log chunks; the channel closes at the end of the log (or, when
    /// following, once the container has stopped and its last lines are sent).
    pub fn follow_logs(&self, c: &Arc<Container>, opts: Options, tail: Option<usize>, follow: bool) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(64);
        let path = self.paths.log_path(&c.id());
        let events = c.events.subscribe();
        std::thread::spawn(move || {
            let send_all = |entries: Vec<Entry>| {
                entries.iter().filter_map(|e| opts.encode(e)).all(|chunk| tx.blocking_send(chunk).is_ok())
            };
            let (entries, offset) = logs::read(&path, tail);
            if !send_all(entries) || !follow {
                return;
            }
            let mut current = open_at(&path, offset);
            loop {
                // Read the running state before the file, so the last lines are never missed.
                let running = events.borrow().running && !events.borrow().removed;
                let mut fresh = Vec::new();
                if let Some((reader, inode)) = current.as_mut() {
                    logs::read_from(reader, &mut fresh);
                    let rotated = std::fs::metadata(&path).map(|m| m.ino() != *inode).unwrap_or(false);
                    if rotated {
                        logs::read_from(reader, &mut fresh);
                        current = open_at(&path, 0);
                    }
                } else {
                    current = open_at(&path, 0);
                }
                // Following ends with the container, or once `until` has passed.
                let past_until = opts.until.is_some_and(|u| chrono::Utc::now() > u);
                if !send_all(fresh) || !running || past_until || tx.is_closed() {
                    return;
                }
                std::thread::sleep(FOLLOW_POLL);
            }
        });
        rx
    }

    /// Sets the container's terminal size.
    pub async fn resize(&self, name: &str, height: u16, width: u16) -> super::Result<()> {
        let c = self.container(name)?;
        if lock(&c.rec).state.status != crate::state::Status::Running {
            return Err(super::Error::Conflict(format!("Container {} is not running", c.id())));
        }
        super::shim::call(&self.paths.run_dir(&c.id()), &berth_runtime::protocol::Request::Resize { width, height }).await
    }
}

fn open_at(path: &std::path::Path, offset: u64) -> Option<(BufReader<std::fs::File>, u64)> {
    let mut f = std::fs::File::open(path).ok()?;
    let inode = f.metadata().ok()?.ino();
    f.seek(SeekFrom::Start(offset)).ok()?;
    Some((BufReader::new(f), inode))
}
