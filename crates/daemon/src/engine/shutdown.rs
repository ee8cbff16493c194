//! Stopping the daemon in bounded time, as dockerd's `--shutdown-timeout` does. Containers
//! keep running (live restore); what can hold the daemon is a start in progress, whose shim
//! may never report: the runtime resolves the user's HOME inside the container before the
//! container is created (runc and youki both read the image's /etc/passwd there), and an
//! image whose /etc/passwd is a FIFO blocks that read forever — Docker hangs on it as well.

use super::Engine;
use std::time::Duration;
use tokio::sync::watch;

/// How long the starts whose processes were ended get to record their failure (dockerd's
/// grace period on top of its shutdown timeout).
const GRACE: Duration = Duration::from_secs(5);

/// The containers being started right now (one entry per start in progress).
pub(super) struct Starts(watch::Sender<Vec<String>>);

impl Default for Starts {
    fn default() -> Starts {
        Starts(watch::channel(Vec::new()).0)
    }
}

impl Starts {
    /// Counts a start of `id` as in progress until the returned guard is dropped (the start
    /// finished, failed or was abandoned).
    pub(super) fn begin(&self, id: &str) -> Starting<'_> {
        self.0.send_modify(|s| s.push(id.to_string()));
        Starting {
            starts: self,
            id: id.to_string(),
        }
    }
}

pub(super) struct Starting<'a> {
    starts: &'a Starts,
    id: String,
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        self.starts.0.send_modify(|s| {
            if let Some(i) = s.iter().position(|id| *id == self.id) {
                s.swap_remove(i);
            }
        });
    }
}

impl Engine {
    /// Called once the API no longer accepts requests. The starts in progress get `timeout`
    /// (`None`: however long they take) to finish; the processes of those still stuck then
    /// are killed, so their shim's create fails, the shim unmounts and removes what it made,
    /// and the start records its failure (the container stays "created", as after any failed
    /// start) instead of a half-made container outliving the daemon.
    pub async fn shutdown(&self, timeout: Option<Duration>) {
        let mut starts = self.starts.0.subscribe();
        let Some(timeout) = timeout else {
            let _ = starts.wait_for(Vec::is_empty).await;
            return;
        };
        let finished = tokio::time::timeout(timeout, starts.wait_for(Vec::is_empty))
            .await
            .is_ok();
        if finished {
            return;
        }
        let stuck = starts.borrow().clone();
        for id in &stuck {
            tracing::warn!(
                "container {id}: still starting after the shutdown timeout; ending its processes"
            );
            self.kill_container_processes(id);
        }
        let recorded = tokio::time::timeout(GRACE, starts.wait_for(Vec::is_empty))
            .await
            .is_ok();
        if !recorded {
            // dockerd's words; what is left, restore finds.
            tracing::error!("Force shutdown daemon");
        }
    }

    /// SIGKILLs every process in the container's cgroup (not its shim, which is outside it).
    fn kill_container_processes(&self, id: &str) {
        let Ok(c) = self.container(id) else { return };
        let rec = c.snapshot();
        let cgroup =
            crate::cgroup_path::container_cgroup(id, rec.host_config.cgroup_parent.as_deref());
        for pid in super::top::container_pids(id, &cgroup).unwrap_or_default() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_counts_until_its_guard_goes() {
        let starts = Starts::default();
        let watch = starts.0.subscribe();
        let a = starts.begin("a");
        let b = starts.begin("b");
        assert_eq!(*watch.borrow(), ["a", "b"]);
        drop(a);
        assert_eq!(*watch.borrow(), ["b"]);
        drop(b);
        assert!(watch.borrow().is_empty());
    }
}
