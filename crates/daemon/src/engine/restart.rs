//! Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`) with Docker's
//! backoff: 100 ms after the first exit, doubling up to a minute, back to 100 ms once a run
//! lasted 10 s.

use super::{lock, Container, Engine, Error, Result};
use crate::state::{Record, Status};
use berth_api::models::{RestartPolicy, RestartPolicyNameEnum};
use std::sync::Arc;
use std::time::Duration;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the backoff.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// The policy's name as Docker spells it (`""` for none).
fn policy_name(p: Option<&RestartPolicy>) -> &'static str {
    match p.and_then(|p| p.name) {
        Some(RestartPolicyNameEnum::ALWAYS) => "always",
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => "unless-stopped",
        Some(RestartPolicyNameEnum::ON_FAILURE) => "on-failure",
        Some(RestartPolicyNameEnum::NO) => "no",
        Some(RestartPolicyNameEnum::EMPTY) | None => "",
    }
}

fn is_none(p: Option<&RestartPolicy>) -> bool {
    matches!(policy_name(p), "" | "no")
}

/// Docker's checks of a restart policy, at create and update.
pub fn validate(p: Option<&RestartPolicy>, auto_remove: bool) -> Result<()> {
    let count = p.and_then(|p| p.maximum_retry_count).unwrap_or(0);
    match policy_name(p) {
        name @ ("always" | "unless-stopped" | "no") if count != 0 => {
            return Err(Error::InvalidParameter(format!(
                "maximum retry count cannot be used with restart policy '{name}'"
            )))
        }
        "on-failure" if count < 0 => {
            return Err(Error::InvalidParameter("maximum retry count cannot be negative".into()))
        }
        _ => {}
    }
    if auto_remove && !is_none(p) {
        return Err(Error::InvalidParameter("can't create 'AutoRemove' container with restart policy".into()));
    }
    Ok(())
}

/// The API models only know the valid names, so an unknown one is caught in the raw JSON
/// (`{"HostConfig":{"RestartPolicy":{"Name":…}}}` or, for update, `{"RestartPolicy":…}`)
/// to give Docker's message rather than a parser's.
pub fn check_raw_name(body: &[u8]) -> Result<()> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return Ok(()) };
    let policy = v.pointer("/HostConfig/RestartPolicy/Name").or_else(|| v.pointer("/RestartPolicy/Name"));
    match policy.and_then(|n| n.as_str()) {
        Some(name) if !matches!(name, "" | "no" | "always" | "unless-stopped" | "on-failure") => {
            Err(Error::InvalidParameter(format!("invalid restart policy '{name}'")))
        }
        _ => Ok(()),
    }
}

/// A container's restart bookkeeping, in memory as in Docker's restart manager.
#[derive(Debug, Default)]
pub struct RestartState {
    /// The delay before the next restart; zero until the first one.
    delay: Duration,
    /// Bumped by every user action that cancels a pending restart; a restart that was
    /// scheduled under an older generation does not happen.
    pub(super) generation: u64,
    /// The next exit is the user's doing (stop, kill): no restart for it.
    exit_requested: bool,
}

impl RestartState {
    /// Cancels the pending restart and any for the next exit.
    pub fn cancel(&mut self) {
        self.generation += 1;
        self.exit_requested = true;
    }

    /// A user started the container: a fresh restart manager.
    pub fn reset(&mut self) {
        *self = RestartState { generation: self.generation + 1, ..Default::default() };
    }

    /// Whether (and after what delay) the exit recorded in `rec` restarts the container.
    fn decide(&mut self, rec: &Record, ran: Duration) -> Option<(Duration, u64)> {
        let policy = rec.host_config.restart_policy.as_ref();
        if is_none(policy) || std::mem::take(&mut self.exit_requested) {
            return None;
        }
        let restart = match policy_name(policy) {
            "always" => true,
            "unless-stopped" => !rec.state.manually_stopped,
            "on-failure" => {
                let max = policy.and_then(|p| p.maximum_retry_count).unwrap_or(0);
                rec.state.exit_code != 0 && (max == 0 || rec.restart_count < max)
            }
            _ => false,
        };
        if !restart {
            return None;
        }
        self.delay = if ran >= STABLE_RUN || self.delay.is_zero() {
            FIRST_DELAY
        } else {
            (self.delay * 2).min(MAX_DELAY)
        };
        Some((self.delay, self.generation))
    }
}

/// Whether a container that is stopped when berthd starts should be started, as Docker
/// decides at daemon start-up (the retry limit does not apply there).
fn restarts_at_boot(rec: &Record) -> bool {
    if rec.state.status != Status::Exited && !rec.state.restarting {
        return false;
    }
    match policy_name(rec.host_config.restart_policy.as_ref()) {
        "always" => true,
        "unless-stopped" => !rec.state.manually_stopped,
        "on-failure" => rec.state.exit_code != 0,
        _ => false,
    }
}

impl Engine {
    /// Part of recording an exit (`rec` already says how it ended): whether the policy
    /// restarts the container, marked "restarting" in the same update as the exit, as
    /// Docker's SetRestarting, so no one (a `rm` without `-f`) sees it stopped in between.
    pub(super) fn plan_restart(c: &Container, rec: &mut Record) -> Option<(Duration, u64)> {
        let ran = run_time(&rec.state.started_at, &rec.state.finished_at);
        let planned = lock(&c.restart).decide(rec, ran)?;
        rec.state.restarting = true;
        Some(planned)
    }

    /// Restarts the container after the delay `plan_restart` chose, unless a user action
    /// cancelled it meanwhile.
    pub(super) fn schedule_restart(self: &Arc<Self>, c: &Arc<Container>, (delay, generation): (Duration, u64)) {
        let (engine, c) = (self.clone(), c.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            engine.restart_by_policy(&c, generation).await;
        });
    }

    async fn restart_by_policy(self: &Arc<Self>, c: &Arc<Container>, generation: u64) {
        if lock(&c.restart).generation != generation || c.events.borrow().removed {
            return;
        }
        let mut rec = c.snapshot();
        rec.restart_count += 1;
        if let Err(e) = self.commit(c, rec) {
            tracing::error!("restarting {}: {e}", c.id());
            return;
        }
        if let Err(e) = self.start_container(c, Some(generation)).await {
            tracing::warn!("restart policy could not start {}: {e}", c.id());
            let mut rec = c.snapshot();
            rec.state.restarting = false;
            let _ = self.commit(c, rec);
        }
    }

    /// At start-up: starts the stopped containers whose policy says so.
    pub(super) fn restart_at_boot(self: &Arc<Self>, c: &Arc<Container>) {
        if !restarts_at_boot(&c.snapshot()) {
            return;
        }
        let (engine, c) = (self.clone(), c.clone());
        tokio::spawn(async move {
            let generation = lock(&c.restart).generation;
            if let Err(e) = engine.start_container(&c, Some(generation)).await {
                tracing::warn!("restart policy could not start {} at start-up: {e}", c.id());
            }
        });
    }
}

/// How long a run lasted, from the recorded start and finish times.
fn run_time(started: &str, finished: &str) -> Duration {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    match (parse(started), parse(finished)) {
        (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(policy: &str, count: i64, exit_code: i64) -> Record {
        let name = match policy {
            "always" => RestartPolicyNameEnum::ALWAYS,
            "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
            "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
            _ => RestartPolicyNameEnum::NO,
        };
        let mut rec: Record = serde_json::from_value(serde_json::json!({
            "id": "x", "name": "x", "created": "", "image": "", "image_id": "",
            "config": {}, "host_config": {}, "path": "true", "args": [],
            "state": {"status": "exited", "pid": 0, "exit_code": exit_code, "error": "", "oom_killed": false,
                      "started_at": "", "finished_at": ""},
            "restart_count": 0
        }))
        .unwrap();
        rec.host_config.restart_policy = Some(RestartPolicy { name: Some(name), maximum_retry_count: Some(count) });
        rec
    }

    #[test]
    fn backs_off_like_docker() {
        let rec = record("always", 0, 0);
        let mut s = RestartState::default();
        let delays: Vec<u128> = (0..4).map(|_| s.decide(&rec, Duration::ZERO).unwrap().0.as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800]);
        assert_eq!(s.decide(&rec, STABLE_RUN).unwrap().0, FIRST_DELAY);
        for _ in 0..20 {
            s.decide(&rec, Duration::ZERO);
        }
        assert_eq!(s.decide(&rec, Duration::ZERO).unwrap().0, MAX_DELAY);
    }

    #[test]
    fn follows_each_policy() {
        let mut s = RestartState::default();
        assert!(s.decide(&record("no", 0, 1), Duration::ZERO).is_none());
        assert!(s.decide(&record("on-failure", 0, 0), Duration::ZERO).is_none());
        assert!(s.decide(&record("on-failure", 0, 1), Duration::ZERO).is_some());
        let mut limited = record("on-failure", 2, 1);
        limited.restart_count = 2;
        assert!(s.decide(&limited, Duration::ZERO).is_none());
        let mut stopped = record("unless-stopped", 0, 0);
        stopped.state.manually_stopped = true;
        assert!(s.decide(&stopped, Duration::ZERO).is_none());
        assert!(restarts_at_boot(&record("always", 0, 0)));
        assert!(!restarts_at_boot(&stopped));
        s.cancel();
        assert!(s.decide(&record("always", 0, 0), Duration::ZERO).is_none(), "a requested exit");
        assert!(s.decide(&record("always", 0, 0), Duration::ZERO).is_some(), "only the next exit");
    }

    #[test]
    fn validates_like_docker() {
        let p = |name, count| Some(RestartPolicy { name: Some(name), maximum_retry_count: Some(count) });
        assert!(validate(p(RestartPolicyNameEnum::ALWAYS, 3).as_ref(), false).is_err());
        assert!(validate(p(RestartPolicyNameEnum::ON_FAILURE, -1).as_ref(), false).is_err());
        assert!(validate(p(RestartPolicyNameEnum::ON_FAILURE, 3).as_ref(), false).is_ok());
        assert!(validate(p(RestartPolicyNameEnum::ALWAYS, 0).as_ref(), true).is_err());
        assert!(check_raw_name(br#"{"HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#).is_err());
        assert!(check_raw_name(br#"{"HostConfig":{"RestartPolicy":{"Name":"always"}}}"#).is_ok());
    }
}
