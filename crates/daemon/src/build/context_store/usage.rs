//! The store as `system df` lists Build Cache: one `source.local` record per context
//! (manifest), BuildKit's type for a local context, and one `regular` record per stored file
//! no manifest names any more (kept for reuse until GC needs the space). Every stored byte is
//! in exactly one record, so the records add up to the store's size: a file several contexts
//! share counts in the most recently used of them.

use super::{ContextStore, Result};
use std::collections::HashSet;

/// One Build Cache record.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextUsage {
    /// A manifest's or a file's hex digest.
    pub id: String,
    /// "source.local" or "regular".
    pub kind: &'static str,
    pub description: String,
    pub size: u64,
    /// A build or upload is using it.
    pub in_use: bool,
    pub created_ns: i64,
    pub last_used_ns: Option<i64>,
    pub usage_count: u64,
}

pub(super) fn usage(store: &ContextStore) -> Result<Vec<ContextUsage>> {
    let blobs = store.blobs()?;
    let mut manifests = store.manifests()?;
    manifests.sort_by_key(|m| std::cmp::Reverse(m.1.last_used_ns));
    let mut counted: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (hex, meta) in manifests {
        let mut size: u64 = [store.manifest_path(&hex), store.meta_path(&hex)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        for b in store.manifest_blobs(&hex) {
            if let Some(len) = blobs.get(&b) {
                if counted.insert(b) {
                    size += len;
                }
            }
        }
        let what = if meta.key.is_empty() {
            "docker CLI upload"
        } else {
            "berth CLI sync"
        };
        out.push(ContextUsage {
            in_use: store.pins.held(&format!("m:{hex}")),
            id: hex,
            kind: "source.local",
            description: format!("local source for context ({what})"),
            size,
            created_ns: meta.created_ns,
            last_used_ns: (meta.uses > 0).then_some(meta.last_used_ns),
            usage_count: meta.uses,
        });
    }
    for (hex, len) in blobs {
        if counted.contains(&hex) {
            continue;
        }
        let created_ns = std::fs::metadata(store.blob_path(&hex))
            .ok()
            .and_then(|m| {
                std::os::unix::fs::MetadataExt::ctime_nsec(&m)
                    .checked_add(std::os::unix::fs::MetadataExt::ctime(&m) * 1_000_000_000)
            })
            .unwrap_or(0);
        out.push(ContextUsage {
            in_use: store.pins.held(&hex),
            id: hex,
            kind: "regular",
            description: "context file no kept context uses".into(),
            size: len,
            created_ns,
            last_used_ns: None,
            usage_count: 0,
        });
    }
    Ok(out)
}
