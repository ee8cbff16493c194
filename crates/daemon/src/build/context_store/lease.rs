//! Leases: what an ingest, an upload or a build is using (file hexes and `m:<hex>` manifest
//! keys), counted, so GC and prune leave it alone. A file is pinned *before* the store is
//! checked for it and removed only under the same lock, so "it exists, I use it" cannot race
//! with its deletion.

use crate::engine::lock;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub(crate) struct Pins {
    pub(super) counts: Mutex<HashMap<String, usize>>,
}

/// A set of pins, released when dropped.
pub(crate) struct Lease {
    pins: Arc<Pins>,
    keys: Mutex<Vec<String>>,
}

impl Lease {
    pub(crate) fn new(pins: Arc<Pins>) -> Lease {
        Lease {
            pins,
            keys: Mutex::new(Vec::new()),
        }
    }
}

impl Pins {
    /// Adds `keys` to `lease`.
    pub(crate) fn pin(&self, lease: &Lease, keys: &[String]) {
        let mut counts = lock(&self.counts);
        for k in keys {
            *counts.entry(k.clone()).or_default() += 1;
        }
        lock(&lease.keys).extend(keys.iter().cloned());
    }

    pub(crate) fn held(&self, key: &str) -> bool {
        lock(&self.counts).contains_key(key)
    }

    /// Removes the file `path` (named by `key`) unless a lease holds it; whether it went.
    pub(crate) fn remove_unless_held(&self, key: &str, path: &Path) -> bool {
        let counts = lock(&self.counts);
        !counts.contains_key(key) && std::fs::remove_file(path).is_ok()
    }

    fn release(&self, keys: &[String]) {
        let mut counts = lock(&self.counts);
        for k in keys {
            if let Some(n) = counts.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(k);
                }
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let keys = std::mem::take(&mut *lock(&self.keys));
        self.pins.release(&keys);
    }
}
