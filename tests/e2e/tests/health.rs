//! Health checks (`--health-*`), `--init`, and `--stop-signal`, with both CLIs.

use berth_e2e::{eventually, Daemon};

fn inspect(d: &Daemon, name: &str, format: &str) -> String {
    d.ok(&["inspect", "-f", format, name])
}

#[test]
fn health_goes_from_starting_to_unhealthy_to_healthy() {
    let d = Daemon::start();
    d.ok(&[
        "run", "-d", "--name", "hc", "--health-cmd", "cat /tmp/ok", "--health-interval", "200ms",
        "--health-retries", "2", "busybox", "sh", "-c", "sleep 2; echo fine > /tmp/ok; sleep 300",
    ]);
    assert_eq!(inspect(&d, "hc", "{{.State.Health.Status}}"), "starting");
    assert!(eventually(20, || inspect(&d, "hc", "{{.State.Health.Status}}") == "unhealthy"));
    assert!(eventually(20, || inspect(&d, "hc", "{{.State.Health.Status}}") == "healthy"));
    assert_eq!(inspect(&d, "hc", "{{.State.Health.FailingStreak}}"), "0");
    let log = inspect(&d, "hc", "{{json .State.Health.Log}}");
    assert!(log.contains("\"ExitCode\":0") && log.contains("\"Output\":\"fine\\n\""), "{log}");
    assert!(d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]).contains("(healthy)"));
    let r = d.docker(&["ps", "--filter", "health=healthy", "--format", "{{.Names}} {{.Status}}"]);
    assert!(r.stdout.starts_with("hc Up ") && r.stdout.trim_end().ends_with("(healthy)"), "{}", r.stdout);
    assert_eq!(d.ok(&["ps", "-q", "--filter", "health=unhealthy"]), "");
    let events = d.ok(&["events", "--since", "0", "--until", "0s", "--filter", "event=health_status", "--format", "{{.Action}}"]);
    assert_eq!(events, "health_status: unhealthy\nhealth_status: healthy");

    // The monitor stops with the container, which Docker then reports unhealthy.
    d.ok(&["stop", "-t", "0", "hc"]);
    assert_eq!(inspect(&d, "hc", "{{.State.Health.Status}}"), "unhealthy");
}

#[test]
fn start_period_timeout_and_opt_out() {
    let d = Daemon::start();
    d.ok(&[
        "run", "-d", "--name", "slow", "--health-cmd", "sleep 5", "--health-timeout", "200ms",
        "--health-interval", "100ms", "--health-retries", "1", "busybox", "sleep", "300",
    ]);
    assert!(eventually(20, || inspect(&d, "slow", "{{.State.Health.Status}}") == "unhealthy"));
    let log = inspect(&d, "slow", "{{json .State.Health.Log}}");
    assert!(log.contains("\"ExitCode\":-1") && log.contains("Health check exceeded timeout (200ms)"), "{log}");

    d.ok(&[
        "run", "-d", "--name", "warming", "--health-cmd", "false", "--health-interval", "100ms",
        "--health-retries", "1", "--health-start-period", "1h", "busybox", "sleep", "300",
    ]);
    assert!(eventually(20, || inspect(&d, "warming", "{{len .State.Health.Log}}") == "3"));
    assert_eq!(inspect(&d, "warming", "{{.State.Health.Status}} {{.State.Health.FailingStreak}}"), "starting 0");
    assert!(d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]).contains("(health: starting)"));

    d.ok(&["run", "-d", "--name", "none", "--no-healthcheck", "busybox", "sleep", "300"]);
    assert_eq!(inspect(&d, "none", "{{if .State.Health}}checked{{else}}unchecked{{end}}"), "unchecked");
    assert_eq!(inspect(&d, "none", "{{json .Config.Healthcheck.Test}}"), "[\"NONE\"]");

    for client in ["berth", "docker"] {
        let args = ["run", "--health-cmd", "true", "--health-interval", "10us", "busybox", "true"];
        let r = if client == "berth" { d.berth(&args) } else { d.docker(&args) };
        assert_eq!(r.code, 125, "{client}");
        assert!(r.stderr.contains("Interval in Healthcheck cannot be less than 1ms"), "{client}: {}", r.stderr);
    }
    let r = d.berth(&["run", "--no-healthcheck", "--health-retries", "1", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("--no-healthcheck conflicts with --health-* options"), "{}", r.stderr);
}

#[test]
fn init_reaps_and_forwards_signals() {
    let d = Daemon::start();
    let ps = d.ok(&["run", "--rm", "--init", "busybox", "ps", "-o", "pid,comm"]);
    assert!(ps.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "docker-init"]), "{ps}");
    // An orphan is reparented to the init, which reaps it: no zombie is left.
    let ps = d.ok(&["run", "--rm", "--init", "busybox", "sh", "-c", "(sleep 0.1 &); sleep 1; ps -o stat,comm"]);
    assert!(!ps.lines().any(|l| l.trim_start().starts_with('Z')), "{ps}");

    // Without an init, `sleep` as PID 1 ignores SIGTERM and is killed (137); with one, the
    // init passes SIGTERM on and reports it (143).
    for (flags, code) in [(vec!["--init"], "143"), (vec![], "137")] {
        let mut args = vec!["run", "-d", "--name", "sleeper"];
        args.extend(flags);
        args.extend(["busybox", "sleep", "300"]);
        d.ok(&args);
        d.ok(&["stop", "-t", "2", "sleeper"]);
        assert_eq!(inspect(&d, "sleeper", "{{.State.ExitCode}}"), code);
        d.ok(&["rm", "sleeper"]);
    }

    let r = d.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/comm"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "docker-init\n"), "{}", r.stderr);
}

#[test]
fn stop_signal_is_used_and_checked() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "usr1", "--stop-signal", "USR1", "busybox", "sh", "-c",
        "trap 'exit 42' USR1; touch /tmp/ready; while :; do sleep 0.1; done"]);
    // A signal that comes before the trap is set would be ignored by PID 1.
    assert!(eventually(10, || d.berth(&["exec", "usr1", "ls", "/tmp/ready"]).code == 0));
    assert_eq!(inspect(&d, "usr1", "{{.Config.StopSignal}}"), "USR1");
    d.ok(&["stop", "usr1"]);
    assert_eq!(inspect(&d, "usr1", "{{.State.ExitCode}}"), "42");
    // `--stop-timeout`: how long `stop` waits before SIGKILL when not told.
    d.ok(&["run", "-d", "--name", "quick", "--stop-timeout", "1", "busybox", "sleep", "300"]);
    assert_eq!(inspect(&d, "quick", "{{.Config.StopTimeout}}"), "1");
    d.ok(&["stop", "quick"]);
    assert_eq!(inspect(&d, "quick", "{{.State.ExitCode}}"), "137");

    let r = d.berth(&["run", "--stop-signal", "NOPE", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("Invalid signal: NOPE"), "{}", r.stderr);
}
