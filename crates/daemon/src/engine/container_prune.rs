//! `POST /containers/prune`: removes every container that is not running, as moby's
//! `ContainersPrune` does. Anonymous volumes stay (prune removes as a plain `rm` does).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::images::parse_until;
use super::{blocking, lock, Engine, Error, Result};
use crate::state::{Record, Status};

/// Filter keys Docker accepts for a container prune.
const FILTERS: &[&str] = &["until", "label", "label!"];

/// One prune at a time, as Docker refuses a second one while the first runs.
static PRUNE_RUNNING: AtomicBool = AtomicBool::new(false);

/// What a container prune removed: ids, and the bytes of their writable layers.
#[derive(Debug, Default)]
pub struct ContainerPruneReport {
    pub deleted: Vec<String>,
    pub reclaimed: u64,
}

/// Clears the running flag however the prune ends.
struct RunningGuard;

impl Drop for RunningGuard {
    fn drop(&mut self) {
        PRUNE_RUNNING.store(false, Ordering::SeqCst);
    }
}

impl Engine {
    pub async fn prune_containers(
        self: &Arc<Self>,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<ContainerPruneReport> {
        if PRUNE_RUNNING.swap(true, Ordering::SeqCst) {
            return Err(Error::Conflict(
                "a prune operation is already running".into(),
            ));
        }
        let _guard = RunningGuard;
        if let Some(bad) = filters.keys().find(|k| !FILTERS.contains(&k.as_str())) {
            return Err(Error::InvalidParameter(format!("Invalid filter '{bad}'")));
        }
        let now = chrono::Utc::now().timestamp();
        // Docker keeps the last `until` it reads.
        let mut until = None;
        for v in filters.get("until").into_iter().flatten() {
            until = Some(parse_until(v, now)?);
        }
        let empty = Vec::new();
        let labels = filters.get("label").unwrap_or(&empty);
        let not_labels = filters.get("label!").unwrap_or(&empty);

        let candidates: Vec<Record> = self
            .all_containers()
            .iter()
            .map(|c| lock(&c.rec).clone())
            .filter(|r| !r.state.counts_as_running() && r.state.status != Status::Removing)
            .filter(|r| until.is_none_or(|u| !created_after(r, u)))
            .filter(|r| labels_selected(r, labels, not_labels))
            .collect();

        let mut report = ContainerPruneReport::default();
        for rec in candidates {
            // Measured before the layer goes; a failed measure counts as nothing, as in moby.
            let size = {
                let (this, rec) = (self.clone(), rec.clone());
                blocking(move || Ok(this.size_rw(&rec))).await.unwrap_or(0)
            };
            match self.remove(&rec.id, false).await {
                Ok(()) => {
                    report.reclaimed += size;
                    report.deleted.push(rec.id);
                }
                // Started or removed meanwhile: skipped, as moby logs and goes on.
                Err(e) => tracing::warn!("failed to prune container {}: {e}", rec.id),
            }
        }
        let attributes = BTreeMap::from([("reclaimed".to_string(), report.reclaimed.to_string())]);
        self.events.publish("container", "prune", "", attributes);
        Ok(report)
    }
}

/// Whether the container was created after `until` (unix seconds), which spares it.
fn created_after(rec: &Record, until: i64) -> bool {
    chrono::DateTime::parse_from_rfc3339(&rec.created)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .is_some_and(|created| i128::from(created) > i128::from(until) * 1_000_000_000)
}

/// moby's `matchLabels`: every `label` must match, and a container matching every `label!`
/// is spared.
fn labels_selected(rec: &Record, labels: &[String], not_labels: &[String]) -> bool {
    let have = rec.config.labels.clone().unwrap_or_default();
    let all_match = |wants: &[String]| {
        wants.iter().all(|w| match w.split_once('=') {
            Some((k, v)) => have.get(k).is_some_and(|x| x == v),
            None => have.contains_key(w.as_str()),
        })
    };
    all_match(labels) && (not_labels.is_empty() || !all_match(not_labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(labels: &[(&str, &str)], created: &str) -> Record {
        let mut r: Record = serde_json::from_value(serde_json::json!({
            "id": "c1", "name": "n", "created": created, "image": "busybox", "image_id": "sha256:x",
            "config": {}, "host_config": {}, "path": "sh", "args": [],
            "state": {"status": "exited", "pid": 0, "exit_code": 0, "error": "", "oom_killed": false,
                      "started_at": "", "finished_at": ""},
            "restart_count": 0
        }))
        .unwrap();
        r.config.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        r
    }

    #[test]
    fn labels_as_moby() {
        let r = rec(&[("a", "1"), ("b", "")], "2024-01-01T00:00:00Z");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(labels_selected(&r, &s(&[]), &s(&[])));
        assert!(labels_selected(&r, &s(&["a", "a=1"]), &s(&[])));
        assert!(!labels_selected(&r, &s(&["a=2"]), &s(&[])));
        assert!(!labels_selected(&r, &s(&[]), &s(&["a"])));
        // Spared only when every `label!` matches.
        assert!(labels_selected(&r, &s(&[]), &s(&["a", "c"])));
        assert!(!labels_selected(&r, &s(&[]), &s(&["a", "b"])));
    }

    #[test]
    fn until_spares_newer_containers() {
        let r = rec(&[], "2024-01-01T00:00:00.5Z");
        let t = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .unwrap()
            .timestamp();
        assert!(created_after(&r, t));
        assert!(!created_after(&r, t + 1));
    }
}
