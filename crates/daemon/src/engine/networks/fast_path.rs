//! Keeping the same-network fast path (`berth_net::fastpath`) in step with the endpoints,
//! off the start path: an `nft` run costs 10–20 ms, and until it is done a new member's
//! traffic simply takes the bridge. The one case that cannot wait is an address (and so a
//! MAC) taken over from a member that left: the table still sends that MAC to the old veth,
//! so the start waits for the table to be replaced. Nothing is re-applied when a member
//! leaves: its entry names a veth that is gone, which drops what the bridge would have
//! flooded to no one.

use super::{Networks, State};
use crate::engine::{lock, Engine};
use berth_net::fastpath::{self, Segment};
use std::sync::{Arc, Mutex};

/// What was last installed, and a lock that keeps installs in order.
#[derive(Default)]
pub(super) struct FastPathState {
    /// Held while one install takes the state and applies it, so a later state is never
    /// overwritten by an earlier one.
    applying: Mutex<()>,
    installed: Mutex<Vec<Segment>>,
}

impl Networks {
    /// Installs the fast path for `state` at once (start-up, with the state lock held).
    /// A failure only costs speed, so it is logged.
    pub(super) fn install_fast_path(&self, state: &State) {
        let segments = state.fast_path();
        match fastpath::apply(&self.table, &segments) {
            Ok(()) => *lock(&self.fast_path.installed) = segments,
            Err(e) => tracing::warn!("same-network fast path: {e}"),
        }
    }

    /// Holds installs off (take it before the state lock): berthd's stop removes the table,
    /// which an install already under way must not bring back.
    pub(super) fn hold_fast_path(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.fast_path.applying)
    }

    /// Whether the installed table sends one of `macs` to a veth other than the one given.
    fn stale(&self, members: &[fastpath::Member]) -> bool {
        lock(&self.fast_path.installed).iter().any(|s| {
            s.members.iter().any(|old| {
                members
                    .iter()
                    .any(|m| m.mac == old.mac && m.host_ifname != old.host_ifname)
            })
        })
    }
}

impl Engine {
    /// After endpoints `joined` were plugged (and the state lock released): re-installs the
    /// fast path, waiting for it only when a joined MAC still leads to a departed veth.
    pub(super) fn refresh_fast_path(self: &Arc<Self>, joined: Vec<fastpath::Member>) {
        if self.networks.stale(&joined) {
            self.sync_fast_path();
        } else {
            let engine = self.clone();
            std::thread::spawn(move || engine.sync_fast_path());
        }
    }

    /// Installs the fast path for the current state, unless it is installed already.
    fn sync_fast_path(&self) {
        let _in_order = lock(&self.networks.fast_path.applying);
        let segments = self.nets().fast_path();
        if *lock(&self.networks.fast_path.installed) == segments {
            return;
        }
        match fastpath::apply(&self.networks.table, &segments) {
            Ok(()) => *lock(&self.networks.fast_path.installed) = segments,
            // A veth that went away meanwhile fails the transaction; the next change
            // installs the table again.
            Err(e) => tracing::warn!("same-network fast path: {e}"),
        }
    }
}
