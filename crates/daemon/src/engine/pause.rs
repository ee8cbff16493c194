//! `pause` and `unpause`: freezing a running container's processes with the cgroup freezer.
//!
//! The shim does the freezing (it owns the container's cgroup and libcontainer's state, and a
//! frozen container needs no help from us to stay frozen); the daemon keeps Docker's rules and
//! the `paused` flag of the record. Docker keeps a paused container "running" and marks it
//! paused on the side, and so do we: `Status::Running` plus `RunState::paused`.

use super::{lock, shim, Container, Engine, Error, Result};
use crate::state::Status;
use berth_runtime::protocol::{Request, StateReply};

impl Engine {
    /// `POST /containers/{id}/pause`.
    pub async fn pause(&self, name: &str) -> Result<()> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        if rec.state.restarting {
            return Err(Error::Conflict(format!(
                "Container {} is restarting, wait until the container is running",
                rec.id
            )));
        }
        if rec.state.status != Status::Running {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                rec.id
            )));
        }
        if rec.state.paused {
            return Err(Error::Conflict(format!(
                "Container {} is already paused",
                rec.id
            )));
        }
        shim::call(&self.paths.run_dir(&rec.id), &Request::Pause)
            .await
            .map_err(|e| Error::Internal(format!("Cannot pause container {}: {e}", rec.id)))?;
        self.set_paused(&c, true)?;
        self.container_event(&rec, "pause", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause(&self, name: &str) -> Result<()> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        if !rec.state.is_paused() {
            // Docker answers this one with a plain error, hence a 500.
            return Err(Error::Internal(format!(
                "Container {} is not paused",
                rec.id
            )));
        }
        shim::call(&self.paths.run_dir(&rec.id), &Request::Resume)
            .await
            .map_err(|e| Error::Internal(format!("Cannot unpause container {}: {e}", rec.id)))?;
        self.set_paused(&c, false)?;
        self.container_event(&rec, "unpause", &[]);
        Ok(())
    }

    /// Called after `signal` was sent to the container. A frozen process acts on no signal
    /// (on cgroup v1 not even SIGKILL), so as Docker does, a signal meant to end the
    /// container thaws it: SIGKILL, its stop signal, or any signal when it has none.
    pub(super) async fn thaw_after_signal(&self, c: &Container, signal: i32) {
        let rec = c.snapshot();
        if !rec.state.is_paused() || !signal_thaws(rec.config.stop_signal.as_deref(), signal) {
            return;
        }
        match shim::call(&self.paths.run_dir(&rec.id), &Request::Resume).await {
            Ok(()) => {
                if let Err(e) = self.set_paused(c, false) {
                    tracing::warn!("recording the unpause of {}: {e}", rec.id);
                }
            }
            Err(e) => tracing::warn!("cannot unpause container {}: {e}", rec.id),
        }
    }

    /// At start-up: takes whether a restored container is frozen from the kernel (through
    /// its shim), in case berthd died between freezing or thawing it and recording that.
    pub(super) async fn restore_paused(&self, c: &Container) {
        let dir = self.paths.run_dir(&c.id());
        let Ok((_, line)) = shim::request(&dir, &Request::State).await else {
            return;
        };
        let Ok(state) = serde_json::from_str::<StateReply>(&line) else {
            return;
        };
        if state.paused != lock(&c.rec).state.paused {
            tracing::info!(
                "container {}: paused is {} after restore",
                c.id(),
                state.paused
            );
            if let Err(e) = self.set_paused(c, state.paused) {
                tracing::warn!("recording the paused state of {}: {e}", c.id());
            }
        }
    }

    /// Records the flag on the current record, under its lock, so a concurrent exit is never
    /// overwritten by an older copy; a container that no longer runs is left alone.
    fn set_paused(&self, c: &Container, paused: bool) -> Result<()> {
        let mut current = lock(&c.rec);
        if current.state.status != Status::Running || current.state.paused == paused {
            return Ok(());
        }
        let mut rec = current.clone();
        rec.state.paused = paused;
        self.records.save(&rec)?;
        *current = rec;
        Ok(())
    }
}

/// Docker's rule for when a signal sent to a paused container also unpauses it.
fn signal_thaws(stop_signal: Option<&str>, signal: i32) -> bool {
    match stop_signal.filter(|s| !s.is_empty()) {
        Some(stop) if signal != libc::SIGKILL => {
            super::containers::parse_signal(stop) == Some(signal)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_meant_to_end_the_container_thaw_it() {
        // Without a stop signal, any signal thaws (Docker's rule, even for SIGUSR1).
        assert!(signal_thaws(None, libc::SIGTERM));
        assert!(signal_thaws(None, libc::SIGUSR1));
        assert!(signal_thaws(Some(""), libc::SIGHUP));
        // With one, only it and SIGKILL do; another signal waits in the frozen process.
        assert!(signal_thaws(Some("SIGUSR2"), libc::SIGUSR2));
        assert!(signal_thaws(Some("USR2"), libc::SIGKILL));
        assert!(!signal_thaws(Some("SIGUSR2"), libc::SIGUSR1));
        assert!(!signal_thaws(Some("SIGUSR2"), libc::SIGTERM));
    }
}
