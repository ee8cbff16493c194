//! `ps`: listing containers with Docker's filters.

use super::{lock, Engine, Error, ListOptions, Result};
use crate::state::{Record, Status};

/// Filter keys berth understands; others are refused as Docker refuses them.
const FILTERS: &[&str] = &["id", "name", "status", "label", "exited", "ancestor", "health"];

impl Engine {
    /// Containers matching `opts`, newest first.
    pub fn list(&self, opts: &ListOptions) -> Result<Vec<Record>> {
        if let Some(bad) = opts.filters.keys().find(|k| !FILTERS.contains(&k.as_str())) {
            return Err(Error::InvalidParameter(format!("invalid filter '{bad}'")));
        }
        let mut records: Vec<Record> = self.all_containers().iter().map(|c| lock(&c.rec).clone()).collect();
        let status_filtered = opts.filters.contains_key("status") || opts.filters.contains_key("exited");
        records.retain(|r| (opts.all || status_filtered || r.state.counts_as_running()) && matches(r, opts));
        records.sort_by(|a, b| b.created.cmp(&a.created));
        if let Some(limit) = opts.limit {
            records.truncate(limit);
        }
        Ok(records)
    }
}

/// Whether a record passes every filter. Values of one key are alternatives, except
/// `label`'s, which must all hold (Docker's `MatchKVList`: Compose finds a service's
/// containers by project, service and one-off labels together).
fn matches(r: &Record, opts: &ListOptions) -> bool {
    opts.filters.iter().all(|(key, values)| {
        if key == "label" {
            return values.iter().all(|v| has_label(r, v));
        }
        values.is_empty()
            || values.iter().any(|v| match key.as_str() {
                "id" => r.id.starts_with(v.as_str()),
                "name" => r.name.contains(v.trim_start_matches('/')),
                "status" => r.state.docker_status() == v,
                "health" => super::health_filter_value(r.state.health.as_ref()) == v,
                "exited" => r.state.status == Status::Exited && r.state.exit_code.to_string() == *v,
                "ancestor" => r.image == *v || r.image_id.trim_start_matches("sha256:").starts_with(v.trim_start_matches("sha256:")),
                _ => false,
            })
    })
}

/// `label=KEY` (present) or `label=KEY=VALUE` (equal).
fn has_label(r: &Record, filter: &str) -> bool {
    let Some(labels) = r.config.labels.as_ref() else { return false };
    match filter.split_once('=') {
        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
        None => labels.contains_key(filter),
    }
}

impl Engine {
    /// `ps -s`'s sizes of one container, as Docker's `SizeRw` and `SizeRootFs`: the bytes of
    /// its writable layer, and those plus its image's. Walks the disk: call it off the async workers.
    pub fn container_sizes(&self, rec: &Record) -> (i64, i64) {
        let size_rw = self.size_rw(rec);
        let image = self.store.container_image(&rec.image_id).map(|i| i.size).unwrap_or(0);
        (size_rw as i64, (image + size_rw) as i64)
    }
}
