//! Daemon-wide facts for `/info` and `/version`.

use super::{lock, Engine};
use crate::state::Status;
use std::path::Path;

/// Counts of containers by state, for `/info`.
#[derive(Debug, Default)]
pub struct ContainerCounts {
    pub total: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
}

impl Engine {
    pub fn container_counts(&self) -> ContainerCounts {
        let mut counts = ContainerCounts::default();
        for c in self.all_containers() {
            counts.total += 1;
            let state = lock(&c.rec).state.clone();
            match state.status {
                Status::Running if state.paused => counts.paused += 1,
                Status::Running => counts.running += 1,
                _ => counts.stopped += 1,
            }
        }
        counts
    }
}

/// A stable identity for this daemon, made once and kept in the data root.
pub fn daemon_id(data_root: &Path) -> std::io::Result<String> {
    let path = data_root.join("engine-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let mut bytes = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
            let id = hex::encode(bytes);
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &id)?;
            std::fs::rename(tmp, &path)?;
            Ok(id)
        }
    }
}

/// `1` or `2`: which cgroup hierarchy this host runs containers under.
pub fn cgroup_version() -> &'static str {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}
