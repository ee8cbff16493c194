//! Live restore: at start-up, reconcile the records with the shims that kept running while
//! berthd was away, and finish what a crash interrupted.

use super::{lock, shim, Engine};
use crate::state::Status;
use std::sync::Arc;

impl Engine {
    /// Reattaches to running containers, records exits that happened while berthd was
    /// down, and completes interrupted removals.
    pub async fn restore(self: Arc<Self>) {
        for c in self.all_containers() {
            let rec = lock(&c.rec).clone();
            let dir = self.paths.run_dir(&rec.id);
            match rec.state.status {
                Status::Running if shim::alive(&dir).await => {
                    tracing::info!("restored running container {}", rec.id);
                    *lock(&c.attach) = super::attach::AttachQueue::live();
                    c.events.send_modify(|l| l.shim_active = true);
                    self.restore_paused(&c).await;
                    self.clone().monitor(c.clone());
                    self.monitor_health(&c, false);
                    // The old daemon's DNS sockets died with it; the namespace did not.
                    if let Err(e) = self.start_dns(&rec) {
                        tracing::warn!("container {}: {e}", rec.id);
                    }
                }
                Status::Running => {
                    let status = berth_runtime::read_exit(&dir).unwrap_or_else(|| {
                        tracing::warn!("container {}: shim gone without an exit record", rec.id);
                        berth_runtime::protocol::ExitStatus {
                            exit_code: 255,
                            oom_killed: false,
                            started_at: String::new(),
                            finished_at: super::create::now_rfc3339(),
                        }
                    });
                    self.exited(&c, status).await;
                }
                // A crash between creating the runtime container and starting it leaves a
                // shim waiting for a start that will never come.
                Status::Created if shim::alive(&dir).await => {
                    let kill = berth_runtime::protocol::Request::Kill { signal: libc::SIGKILL };
                    if let Err(e) = shim::call(&dir, &kill).await {
                        tracing::warn!("ending the unstarted shim of {}: {e}", rec.id);
                    }
                    // The container stays "created"; a start waits until the shim is gone.
                    c.events.send_modify(|l| l.shim_active = true);
                    let c = c.clone();
                    tokio::spawn(async move {
                        if let Ok((_, conn)) = shim::wait(&dir).await {
                            shim::cleaned_up(conn).await;
                        }
                        c.events.send_modify(|l| l.shim_active = false);
                    });
                }
                Status::Removing => {
                    if let Err(e) = self.purge(&rec).await {
                        tracing::warn!("finishing removal of {}: {e}", rec.id);
                    }
                    self.containers.write().unwrap_or_else(|p| p.into_inner()).remove(&rec.id);
                }
                Status::Exited => self.restart_at_boot(&c),
                _ => {}
            }
        }
        self.remove_orphans();
    }

    /// Container directories without a record come from a crash between making the files and
    /// saving the record: nobody can name them, so they go.
    fn remove_orphans(&self) {
        let known: std::collections::HashSet<String> =
            self.all_containers().iter().map(|c| c.id()).collect();
        let dir = self.paths.data_root.join("containers");
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.len() == 64 && !known.contains(&name) {
                tracing::info!("removing orphaned container files {name}");
                let _ = self.store.remove_rootfs(&name);
                let _ = std::fs::remove_dir_all(entry.path());
                let _ = std::fs::remove_dir_all(self.paths.run_dir(&name));
            }
        }
    }
}
