//! Keeping the same-network fast path (`berth_net::fastpath`) in step with the endpoints,
//! off the start and exit paths: an `nft` run costs 10–20 ms, and until it is done a new
//! member's traffic simply takes the bridge. The one case that cannot wait is an address
//! (and so a MAC) taken over from a member whose entry is still installed: the table would
//! send that MAC to the old veth, so the start waits for the table to be replaced. A member
//! that leaves is taken out in the background too; until then its entry names a veth that is
//! gone, which drops what the bridge would have flooded to no one.

use super::{Networks, State};
use crate::engine::lock;
use berth_net::fastpath::{self, Segment};
use std::sync::{Mutex, MutexGuard};

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
    pub(super) fn hold_fast_path(&self) -> MutexGuard<'_, ()> {
        lock(&self.fast_path.applying)
    }

    /// After endpoints `joined` were plugged, or some left (`joined` empty): re-installs the
    /// fast path in the background, or at once when a joined MAC still leads to another
    /// veth. Must not be called with the state lock held when `joined` is not empty.
    pub(super) fn refresh_fast_path(&self, joined: &[fastpath::Member]) {
        let (state, table, fast_path) = (
            self.state.clone(),
            self.table.clone(),
            self.fast_path.clone(),
        );
        if self.stale(joined) {
            sync(&state, &table, &fast_path);
        } else {
            std::thread::spawn(move || sync(&state, &table, &fast_path));
        }
    }

    /// Whether the installed table sends one of `members`' MACs to another veth.
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

/// Installs the fast path for the current state, unless it is installed already.
fn sync(state: &Mutex<State>, table: &str, fast_path: &FastPathState) {
    let _in_order = lock(&fast_path.applying);
    let segments = lock(state).fast_path();
    if *lock(&fast_path.installed) == segments {
        return;
    }
    match fastpath::apply(table, &segments) {
        Ok(()) => *lock(&fast_path.installed) = segments,
        // A veth that went away meanwhile fails the transaction; the next change installs
        // the table again.
        Err(e) => tracing::warn!("same-network fast path: {e}"),
    }
}
