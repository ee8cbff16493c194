//! Health checks: the container's `HEALTHCHECK` probe run as an exec every interval, its
//! results kept in `State.Health`, and `health_status` events when the status changes. The
//! rules are Docker's (moby's daemon/health.go).

use super::{Container, Engine, Error, Result};
use berth_api::frame;
use berth_api::models::{ExecConfig, Health, HealthConfig, HealthStatusEnum, HealthcheckResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
/// Results kept in `State.Health.Log`.
const MAX_LOG_ENTRIES: usize = 5;
/// Output kept per result.
const MAX_OUTPUT: usize = 4096;

/// The command a probe runs, or `None` when health checks are off (`NONE`, or no test).
fn probe_command(hc: Option<&HealthConfig>) -> Option<Vec<String>> {
    let test = hc?.test.as_ref()?;
    match test.split_first()? {
        (kind, args) if kind == "CMD" && !args.is_empty() => Some(args.to_vec()),
        (kind, [shell]) if kind == "CMD-SHELL" => Some(vec!["/bin/sh".into(), "-c".into(), shell.clone()]),
        _ => None,
    }
}

fn duration_or(nanos: Option<i64>, default: Duration) -> Duration {
    match nanos {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

/// Docker's create-time checks of a health config.
pub fn validate(hc: Option<&HealthConfig>) -> Result<()> {
    let Some(hc) = hc else { return Ok(()) };
    let below_1ms = |v: Option<i64>| v.is_some_and(|n| n != 0 && n < 1_000_000);
    for (name, value) in [("Interval", hc.interval), ("Timeout", hc.timeout), ("StartPeriod", hc.start_period)] {
        if below_1ms(value) {
            return Err(Error::InvalidParameter(format!("{name} in Healthcheck cannot be less than 1ms")));
        }
    }
    if hc.retries.is_some_and(|r| r < 0) {
        return Err(Error::InvalidParameter("Retries in Healthcheck cannot be negative".into()));
    }
    Ok(())
}

/// The container's health check: the request's settings, with the image's where the
/// request leaves them out.
pub fn merge(given: Option<HealthConfig>, image: Option<HealthConfig>) -> Option<HealthConfig> {
    let Some(mut given) = given else { return image };
    let Some(image) = image else { return Some(given) };
    if given.test.as_ref().is_none_or(|t| t.is_empty()) {
        given.test = image.test;
    }
    let zero = |v: Option<i64>| v.unwrap_or(0) == 0;
    if zero(given.interval) {
        given.interval = image.interval;
    }
    if zero(given.timeout) {
        given.timeout = image.timeout;
    }
    if zero(given.start_period) {
        given.start_period = image.start_period;
    }
    if zero(given.retries) {
        given.retries = image.retries;
    }
    Some(given)
}

/// Applies one probe result to the health state; returns whether the status changed.
fn record_result(health: &mut Health, result: HealthcheckResult, hc: &HealthConfig, in_start_period: bool) -> bool {
    let before = health.status;
    if result.exit_code == Some(0) {
        health.failing_streak = Some(0);
        health.status = Some(HealthStatusEnum::HEALTHY);
    } else if !(before == Some(HealthStatusEnum::STARTING) && in_start_period) {
        // Failures while starting, within the start period, do not count.
        let streak = health.failing_streak.unwrap_or(0) + 1;
        health.failing_streak = Some(streak);
        if streak >= hc.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES) {
            health.status = Some(HealthStatusEnum::UNHEALTHY);
        }
    }
    let log = health.log.get_or_insert_with(Vec::new);
    log.push(result);
    if log.len() > MAX_LOG_ENTRIES {
        log.remove(0);
    }
    health.status != before
}

fn status_name(h: &Health) -> &'static str {
    match h.status {
        Some(HealthStatusEnum::HEALTHY) => "healthy",
        Some(HealthStatusEnum::UNHEALTHY) => "unhealthy",
        Some(HealthStatusEnum::STARTING) => "starting",
        _ => "none",
    }
}

/// `ps`'s suffix: ` (healthy)`, ` (health: starting)`, ` (unhealthy)`.
pub fn status_suffix(h: Option<&Health>) -> String {
    match h.map(status_name) {
        Some("starting") => " (health: starting)".into(),
        Some(s @ ("healthy" | "unhealthy")) => format!(" ({s})"),
        _ => String::new(),
    }
}

/// `ps -f health=…`: `starting`, `healthy`, `unhealthy` or `none`.
pub fn filter_value(h: Option<&Health>) -> &'static str {
    h.map(status_name).unwrap_or("none")
}

impl Engine {
    /// Starts probing a container that just started (or was restored running), if it has
    /// a health check. `fresh`: a new run, whose health starts over as `starting`.
    pub(super) fn monitor_health(self: &Arc<Self>, c: &Arc<Container>, fresh: bool) {
        let rec = c.snapshot();
        let hc = rec.config.healthcheck.clone();
        let Some(command) = probe_command(hc.as_ref()) else { return };
        let hc = hc.unwrap_or_default();
        if fresh || rec.state.health.is_none() {
            let mut rec = rec.clone();
            rec.state.health = Some(Health { status: Some(HealthStatusEnum::STARTING), failing_streak: Some(0), log: Some(Vec::new()) });
            if let Err(e) = self.commit(c, rec) {
                tracing::warn!("health of {}: {e}", c.id());
            }
        }
        let exits = c.events.borrow().exits;
        let (engine, c) = (self.clone(), c.clone());
        tokio::spawn(async move {
            let mut lifecycle = c.events.subscribe();
            let interval = duration_or(hc.interval, DEFAULT_INTERVAL);
            let start_period = duration_or(hc.start_period, Duration::ZERO);
            let started = tokio::time::Instant::now();
            loop {
                let exited = lifecycle.wait_for(|l| l.exits != exits || l.removed);
                if tokio::time::timeout(interval, exited).await.is_ok() {
                    break;
                }
                let in_start_period = started.elapsed() < start_period;
                let result = engine.probe(&c, &command, duration_or(hc.timeout, DEFAULT_TIMEOUT)).await;
                if c.events.borrow().exits != exits {
                    break;
                }
                engine.record_health(&c, result, &hc, in_start_period);
            }
            engine.health_stopped(&c);
        });
    }

    fn record_health(&self, c: &Container, result: HealthcheckResult, hc: &HealthConfig, in_start_period: bool) {
        // Changed in place, not from a snapshot: an exit recorded meanwhile must not be undone.
        let mut outcome = None;
        let updated = self.update_record(c, true, |rec| {
            let health = rec.state.health.get_or_insert_with(Default::default);
            let changed = record_result(health, result, hc, in_start_period);
            outcome = Some((changed, status_name(health)));
        });
        match (updated, outcome) {
            (Ok(rec), Some((true, status))) => {
                self.container_event(&rec, &format!("health_status: {status}"), &[])
            }
            (Err(e), _) => tracing::warn!("health of {}: {e}", c.id()),
            _ => {}
        }
    }

    /// The monitor stops with the container; Docker then reports it unhealthy.
    fn health_stopped(&self, c: &Container) {
        if super::lock(&c.rec).state.health.is_none() {
            return;
        }
        let updated = self.update_record(c, true, |rec| {
            if let Some(h) = rec.state.health.as_mut() {
                h.status = Some(HealthStatusEnum::UNHEALTHY);
            }
        });
        if let Err(e) = updated {
            tracing::warn!("health of {}: {e}", c.id());
        }
    }

    /// Runs the probe as an exec and collects its result.
    async fn probe(&self, c: &Container, command: &[String], timeout: Duration) -> HealthcheckResult {
        let start = super::create::now_rfc3339();
        let finish = |code: i64, output: String| HealthcheckResult {
            start: Some(start.clone()),
            end: Some(super::create::now_rfc3339()),
            exit_code: Some(code),
            output: Some(output),
        };
        let config = ExecConfig {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let exec = match self.exec_create(&c.id(), config).and_then(|id| self.exec_claim(&id)) {
            Ok(e) => e,
            Err(e) => return finish(-1, e.to_string()),
        };
        let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
        if let Err(e) = self.exec_start(exec.clone(), Some(Box::new(theirs))).await {
            return finish(-1, e.to_string());
        }
        let run = async {
            let mut raw = Vec::new();
            let _ = ours.read_to_end(&mut raw).await;
            raw
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(raw) => {
                let code = exec.exit_code().unwrap_or(-1);
                finish(code, demux_capped(&raw))
            }
            Err(_) => {
                exec.kill();
                finish(-1, format!("Health check exceeded timeout ({})", go_duration(timeout)))
            }
        }
    }
}

/// Go's `time.Duration.String()`: `30s`, `1.5s`, `500ms`, `1m30s`.
fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (value, unit) = match nanos {
            n if n < 1_000 => (n as f64, "ns"),
            n if n < 1_000_000 => (n as f64 / 1e3, "µs"),
            n => (n as f64 / 1e6, "ms"),
        };
        return format!("{value}{unit}");
    }
    let secs = d.as_secs_f64() % 60.0;
    let minutes = d.as_secs() / 60 % 60;
    let hours = d.as_secs() / 3600;
    match (hours, minutes) {
        (0, 0) => format!("{secs}s"),
        (0, m) => format!("{m}m{secs}s"),
        (h, m) => format!("{h}h{m}m{secs}s"),
    }
}

/// The probe's stdout and stderr together, in order, cut at Docker's limit.
fn demux_capped(raw: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.len() >= frame::HEADER_LEN {
        let header: &[u8; frame::HEADER_LEN] = rest[..frame::HEADER_LEN].try_into().unwrap_or(&[0; frame::HEADER_LEN]);
        let Some((_, len)) = frame::parse_header(header) else { break };
        let end = (frame::HEADER_LEN + len).min(rest.len());
        out.extend_from_slice(&rest[frame::HEADER_LEN..end]);
        rest = &rest[end..];
    }
    out.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64) -> HealthcheckResult {
        HealthcheckResult { exit_code: Some(code), ..Default::default() }
    }

    #[test]
    fn reads_probe_commands() {
        let hc = |test: &[&str]| HealthConfig { test: Some(test.iter().map(|s| s.to_string()).collect()), ..Default::default() };
        assert_eq!(probe_command(Some(&hc(&["CMD", "true"]))), Some(vec!["true".to_string()]));
        assert_eq!(probe_command(Some(&hc(&["CMD-SHELL", "exit 1"]))).unwrap(), ["/bin/sh", "-c", "exit 1"]);
        assert_eq!(probe_command(Some(&hc(&["NONE"]))), None);
        assert_eq!(probe_command(None), None);
    }

    #[test]
    fn counts_failures_like_docker() {
        let hc = HealthConfig { retries: Some(2), ..Default::default() };
        let mut h = Health { status: Some(HealthStatusEnum::STARTING), failing_streak: Some(0), log: None };
        assert!(!record_result(&mut h, result(1), &hc, true), "ignored in the start period");
        assert_eq!(h.failing_streak, Some(0));
        assert!(!record_result(&mut h, result(1), &hc, false));
        assert!(record_result(&mut h, result(1), &hc, false));
        assert_eq!(h.status, Some(HealthStatusEnum::UNHEALTHY));
        assert!(record_result(&mut h, result(0), &hc, false));
        assert_eq!((h.status, h.failing_streak), (Some(HealthStatusEnum::HEALTHY), Some(0)));
        for _ in 0..10 {
            record_result(&mut h, result(0), &hc, false);
        }
        assert_eq!(h.log.as_ref().unwrap().len(), MAX_LOG_ENTRIES);
    }

    #[test]
    fn merges_with_the_image() {
        let image = HealthConfig { test: Some(vec!["CMD".into(), "true".into()]), interval: Some(5), ..Default::default() };
        let given = HealthConfig { retries: Some(7), ..Default::default() };
        let m = merge(Some(given), Some(image)).unwrap();
        assert_eq!((m.test.unwrap()[1].as_str(), m.interval, m.retries), ("true", Some(5), Some(7)));
        assert!(validate(Some(&HealthConfig { interval: Some(10), ..Default::default() })).is_err());
    }

    #[test]
    fn prints_durations_like_go() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn demuxes_probe_output() {
        let mut raw = Vec::new();
        frame::encode(frame::Stream::Stdout, b"out\n", &mut raw);
        frame::encode(frame::Stream::Stderr, b"err\n", &mut raw);
        assert_eq!(demux_capped(&raw), "out\nerr\n");
    }
}
