//! Turning a reaped init into Docker's exit record.

use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use nix::sys::wait::WaitStatus;

/// Docker's zero time, used for `started_at` when the container never started.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Now, as Docker prints it: RFC 3339, nanoseconds, UTC with `Z`.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// exited(n) → n; killed by signal s → 128+s; anything else is not an exit.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Candidate files holding the `oom_kill` counter for the cgroup at `cgroups_path`.
fn oom_files(cgroups_path: &Path) -> Vec<PathBuf> {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        // Pure cgroup v2.
        return vec![base.join(rel).join("memory.events")];
    }
    vec![
        base.join("memory").join(rel).join("memory.oom_control"),
        base.join("unified").join(rel).join("memory.events"),
    ]
}

/// Whether the kernel OOM-killed something in the container's memory cgroup.
/// Must be read before the cgroup is deleted.
pub fn oom_killed(cgroups_path: &Path) -> bool {
    oom_files(cgroups_path).iter().any(|f| {
        std::fs::read_to_string(f)
            .map(|text| parse_oom_kill(&text) > 0)
            .unwrap_or(false)
    })
}

/// The `oom_kill N` line of `memory.oom_control` / `memory.events`.
fn parse_oom_kill(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::Signal;
    use nix::unistd::Pid;

    #[test]
    fn codes_and_oom_parse() {
        let p = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(p, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            2
        );
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 1\noom 1\noom_kill 0\n"),
            0
        );
        let t = now_rfc3339();
        assert!(
            t.ends_with('Z') && t.len() == "2026-11-22T05:00:00.123456789Z".len(),
            "{t}"
        );
    }
}
