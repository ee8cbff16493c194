//! Live restore: containers outlive berthd, and a new berthd picks them up.

use berth_e2e::{eventually, Daemon};

#[test]
fn containers_survive_a_killed_daemon() {
    let mut d = Daemon::start();
    let long = d.ok(&["run", "-d", "--name", "long", "busybox", "sh", "-c", "echo started; sleep 300"]);
    d.ok(&["run", "-d", "--name", "short", "busybox", "sh", "-c", "sleep 1; echo bye; exit 7"]);
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "long"]);
    d.kill_daemon(libc::SIGKILL);
    // While berthd is away, `short` exits and `long` keeps running.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists(), "container died with the daemon");
    d.spawn();
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "short"]), "exited 7");
    assert_eq!(d.ok(&["logs", "short"]), "bye");
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "long"]), format!("running {pid}"));
    assert_eq!(d.ok(&["ps", "-q", "--no-trunc"]), long);
    assert_eq!(d.ok(&["logs", "long"]), "started");
    // Still controllable after the restart.
    d.ok(&["stop", "-t", "1", "long"]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Status}}", "long"]), "exited");
    assert!(eventually(5, || !std::path::Path::new(&format!("/proc/{pid}")).exists()));
}

#[test]
fn graceful_daemon_stop_keeps_containers_running() {
    let mut d = Daemon::start();
    d.ok(&["run", "-d", "--name", "calm", "busybox", "sleep", "300"]);
    d.kill_daemon(libc::SIGTERM);
    d.spawn();
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Running}}", "calm"]), "true");
    assert_eq!(d.ok(&["kill", "calm"]), "calm");
    assert_eq!(d.ok(&["wait", "calm"]), "137");
}
