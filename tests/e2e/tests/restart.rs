//! Restart policies: on-failure with a limit, always, unless-stopped, the restarting state,
//! daemon restarts, and Docker's errors.

use berth_e2e::{eventually, Daemon};

fn inspect(d: &Daemon, name: &str, format: &str) -> String {
    d.ok(&["inspect", "-f", format, name])
}

#[test]
fn on_failure_stops_at_its_limit() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--restart", "on-failure:2", "--name", "flaky", "busybox", "sh", "-c", "exit 3"]);
    assert!(eventually(20, || inspect(&d, "flaky", "{{.RestartCount}} {{.State.Status}}") == "2 exited"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(inspect(&d, "flaky", "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}"), "2 exited 3");
    let starts = d.ok(&["events", "--since", "0", "--until", "0s", "-f", "container=flaky", "-f", "event=start"]);
    assert_eq!(starts.lines().count(), 3, "{starts}");

    // A clean exit is no failure.
    d.ok(&["run", "-d", "--restart", "on-failure", "--name", "clean", "busybox", "true"]);
    d.ok(&["wait", "clean"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(inspect(&d, "clean", "{{.RestartCount}} {{.State.Status}}"), "0 exited");
}

#[test]
fn always_restarts_until_stopped_and_backs_off() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--restart", "always", "--name", "loop", "busybox", "sh", "-c", "exit 1"]);
    // The delays double (0.1 s, 0.2 s, …), so the container is soon seen waiting. Each check
    // retries: the container may be between two runs or briefly up.
    assert!(eventually(30, || inspect(&d, "loop", "{{.State.Status}} {{.State.Restarting}} {{.State.Running}}")
        == "restarting true true"));
    assert!(eventually(30, || d.ok(&["ps", "--format", "{{.Names}} {{.Status}}"]).contains("loop Restarting (1)")));
    assert!(eventually(30, || d.docker(&["ps", "--format", "{{.Names}} {{.State}}"]).stdout.contains("loop restarting")));
    assert!(eventually(30, || d.berth(&["rm", "loop"]).stderr.contains("You cannot remove a restarting container")));
    // WINCH: harmless should the container be up at that moment.
    assert!(eventually(30, || d
        .berth(&["kill", "-s", "WINCH", "loop"])
        .stderr
        .contains("is restarting, wait until the container is running")));

    d.ok(&["stop", "loop"]);
    let count = inspect(&d, "loop", "{{.RestartCount}}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(inspect(&d, "loop", "{{.State.Status}} {{.RestartCount}}"), format!("exited {count}"));

    // A manual start begins afresh; rm -f ends it while it cycles.
    d.ok(&["start", "loop"]);
    assert!(eventually(10, || inspect(&d, "loop", "{{.RestartCount}}") != "0"));
    d.ok(&["rm", "-f", "loop"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(d.berth(&["inspect", "loop"]).code != 0);
}

#[test]
fn policies_across_daemon_restarts() {
    let mut d = Daemon::start();
    for (name, policy) in [("keep", "always"), ("stay", "unless-stopped"), ("dies", "always")] {
        d.ok(&["run", "-d", "--restart", policy, "--name", name, "busybox", "sleep", "300"]);
    }
    d.ok(&["stop", "-t", "0", "keep"]);
    d.ok(&["stop", "-t", "0", "stay"]);
    let pid = inspect(&d, "dies", "{{.State.Pid}}");
    d.kill_daemon(libc::SIGKILL);
    // The container dies while berthd is away.
    unsafe { libc::kill(pid.parse().unwrap(), libc::SIGKILL) };
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.spawn();
    // `always` comes back even after a stop; `unless-stopped` remembers it.
    assert!(eventually(20, || inspect(&d, "keep", "{{.State.Status}}") == "running"));
    assert!(eventually(20, || inspect(&d, "dies", "{{.State.Status}} {{.RestartCount}}") == "running 1"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(inspect(&d, "stay", "{{.State.Status}}"), "exited");
}

#[test]
fn bad_policies_are_refused() {
    let d = Daemon::start();
    let cases = [
        (vec!["--restart", "always:3"], "maximum retry count cannot be used with restart policy 'always'"),
        (vec!["--restart", "sometimes"], "invalid restart policy 'sometimes'"),
        (vec!["--restart", "on-failure:x"], "maximum retry count must be an integer"),
        (vec!["--rm", "--restart", "always"], "Conflicting options: --restart and --rm"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run", "--name", "bad"];
        args.extend(flags.iter());
        args.extend(["busybox", "true"]);
        for client in ["berth", "docker"] {
            let r = if client == "berth" { d.berth(&args) } else { d.docker(&args) };
            assert_eq!(r.code, 125, "{client} {args:?}: {}", r.stderr);
            assert!(r.stderr.contains(message), "{client} {args:?}: {}", r.stderr);
        }
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "", "nothing was created");
}

#[test]
fn update_changes_the_policy_of_a_running_container() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "upd", "busybox", "sleep", "300"]);
    for client in ["berth", "docker"] {
        let r = if client == "berth" {
            d.berth(&["update", "--restart", "on-failure:1", "upd"])
        } else {
            d.docker(&["update", "--restart", "on-failure:1", "upd"])
        };
        assert_eq!(r.code, 0, "{client}: {}", r.stderr);
    }
    assert_eq!(inspect(&d, "upd", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"), "on-failure:1");
    // The process dies of something other than a user's stop: the new policy applies.
    let pid: i32 = inspect(&d, "upd", "{{.State.Pid}}").parse().unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(eventually(20, || inspect(&d, "upd", "{{.State.Status}} {{.RestartCount}}") == "running 1"));
    let r = d.berth(&["update", "--restart", "always:2", "upd"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("maximum retry count cannot be used with restart policy 'always'"), "{}", r.stderr);
}
