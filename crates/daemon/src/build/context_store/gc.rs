//! When and what the store frees: GC after each ingest or registration keeps a few
//! manifests per key and the store under its size limit; prune (`docker builder prune`)
//! empties it. Neither takes what a lease holds.

use super::lease::Lease;
use super::{now_ns, ContextStore, Meta, Result};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

/// Manifests kept per berth CLI key (a context directory + Dockerfile): the current one and
/// the one before it, so switching back and forth between two states stays cheap.
const KEEP_PER_KEY: usize = 2;
/// Manifests kept from docker CLI tars (they have no key).
const KEEP_TAR: usize = 3;
/// How long after its last use a context is safe from GC's size limit (not from prune).
const RECENT_NS: i64 = 10 * 60 * 1_000_000_000;

impl ContextStore {
    /// Runs `gc`, logging a failure: a GC that could not finish leaves a bigger store, not a
    /// broken one.
    pub(super) fn gc_logged(&self) {
        if let Err(e) = self.gc() {
            tracing::warn!("build context GC: {e}");
        }
    }

    /// Keeps the newest manifests of each key (and of tar ingests), then, while the store is
    /// over its maximum size, drops files no kept manifest uses and then the least recently
    /// used manifests. Never what a lease holds. Returns the bytes freed.
    pub fn gc(&self) -> Result<u64> {
        let _gc = crate::engine::lock(&self.gc_lock);
        let mut by_key: HashMap<String, Vec<(String, Meta)>> = HashMap::new();
        for (hex, meta) in self.manifests()? {
            by_key
                .entry(meta.key.clone())
                .or_default()
                .push((hex, meta));
        }
        let mut freed = 0;
        let mut kept: Vec<(String, Meta)> = Vec::new();
        for (key, mut list) in by_key {
            list.sort_by_key(|m| std::cmp::Reverse(m.1.last_used_ns));
            let keep = if key.is_empty() {
                KEEP_TAR
            } else {
                KEEP_PER_KEY
            };
            for (n, (hex, meta)) in list.into_iter().enumerate() {
                if n < keep || self.pins.held(&format!("m:{hex}")) {
                    kept.push((hex, meta));
                } else {
                    freed += self.remove_manifest(&hex);
                }
            }
        }
        let max = self.max_size.load(Ordering::Relaxed);
        // A context registered or used lately may be between its upload and its build (or a
        // context bigger than the limit): size alone never takes it.
        let recent_since = now_ns() - RECENT_NS;
        let recent: Vec<String> = kept
            .iter()
            .filter(|(_, m)| m.last_used_ns > recent_since)
            .map(|(hex, _)| hex.clone())
            .collect();
        let _recent = self.guard(&recent);
        // Least recently used first: the order manifests go in when files alone are not enough.
        kept.sort_by_key(|m| m.1.last_used_ns);
        freed += self.shrink(kept.into_iter().map(|(hex, _)| hex).collect(), max)?;
        Ok(freed)
    }

    /// A lease on manifests and all their files.
    fn guard(&self, hexes: &[String]) -> Lease {
        let lease = Lease::new(self.pins.clone());
        for hex in hexes {
            let mut keys: Vec<String> = self.manifest_blobs(hex).into_iter().collect();
            keys.push(format!("m:{hex}"));
            self.pins.pin(&lease, &keys);
        }
        lease
    }

    /// Frees space until the store is at most `limit` bytes: files no manifest of `manifests`
    /// (least recently used first) names, then those manifests in order with the files only
    /// they used. Leased manifests and files stay.
    fn shrink(&self, manifests: Vec<String>, limit: u64) -> Result<u64> {
        let mut total = self.size();
        if total <= limit {
            return Ok(0);
        }
        let mut users: HashMap<String, usize> = HashMap::new();
        let mut uses: Vec<(String, HashSet<String>)> = Vec::new();
        for hex in manifests {
            let blobs = self.manifest_blobs(&hex);
            for b in &blobs {
                *users.entry(b.clone()).or_default() += 1;
            }
            uses.push((hex, blobs));
        }
        let start = total;
        let blobs = self.blobs()?;
        let unused: Vec<(&String, &u64)> = blobs
            .iter()
            .filter(|(hex, _)| !users.contains_key(*hex))
            .collect();
        for (hex, len) in unused {
            if total <= limit {
                break;
            }
            if self.pins.remove_unless_held(hex, &self.blob_path(hex)) {
                total = total.saturating_sub(*len);
            }
        }
        for (hex, files) in uses {
            if total <= limit {
                break;
            }
            if self.pins.held(&format!("m:{hex}")) {
                continue;
            }
            total = total.saturating_sub(self.remove_manifest(&hex));
            for b in files {
                let n = users.get_mut(&b).expect("counted above");
                *n -= 1;
                if *n == 0 {
                    let len = blobs.get(&b).copied().unwrap_or(0);
                    if self.pins.remove_unless_held(&b, &self.blob_path(&b)) {
                        total = total.saturating_sub(len);
                    }
                }
            }
        }
        Ok(start - total)
    }

    /// `POST /build/prune`: empties the store but for what running builds hold, limited as
    /// `docker builder prune`'s options ask: only manifests not used since `unused_since_ns`
    /// (and files no remaining manifest names), stopping once the store is down to
    /// `keep_storage` bytes. Returns the bytes freed.
    pub fn prune_with(&self, unused_since_ns: Option<i64>, keep_storage: u64) -> Result<u64> {
        let _gc = crate::engine::lock(&self.gc_lock);
        let mut all = self.manifests()?;
        all.sort_by_key(|m| m.1.last_used_ns);
        let (old, recent): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|(_, m)| unused_since_ns.is_none_or(|t| m.last_used_ns < t));
        // Files of recent manifests count as used: a shrink over the old ones alone would
        // see them as unused; pin them for the duration instead.
        let guard = self.guard(&recent.into_iter().map(|(hex, _)| hex).collect::<Vec<_>>());
        let freed = self.shrink(old.into_iter().map(|(hex, _)| hex).collect(), keep_storage)?;
        drop(guard);
        let _ = std::fs::File::open(self.dir.join("manifests")).and_then(|d| d.sync_all());
        Ok(freed)
    }
}
