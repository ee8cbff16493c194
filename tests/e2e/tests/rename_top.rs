//! `rename` and `top`, with the berth and docker CLIs.

use berth_e2e::Daemon;

#[test]
fn rename_moves_the_name_and_refuses_taken_ones() {
    let d = Daemon::start();
    let id = d.ok(&["run", "-d", "--name", "old", "busybox", "sleep", "300"]);
    d.ok(&["create", "--name", "other", "busybox", "true"]);
    assert_eq!(d.ok(&["rename", "old", "new"]), "");
    assert_eq!(d.ok(&["inspect", "-f", "{{.Name}} {{.State.Running}}", &id]), "/new true");
    assert!(d.berth(&["inspect", "old"]).code != 0, "the old name is free");

    let r = d.berth(&["rename", "new", "other"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Conflict. The container name \"/other\" is already in use"), "{}", r.stderr);
    assert!(r.stderr.contains("Error: failed to rename container named new"), "{}", r.stderr);
    let r = d.berth(&["rename", "new", "bad name"]);
    assert!(r.stderr.contains("Invalid container name (bad name)"), "{}", r.stderr);
    let r = d.berth(&["rename", "ghost", "x1"]);
    assert!(r.stderr.contains("No such container: ghost"), "{}", r.stderr);

    let r = d.docker(&["rename", "new", "viadocker"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.ok(&["inspect", "-f", "{{.Name}}", &id]), "/viadocker");
    // The renamed container is still controllable, and its name survives a daemon restart.
    let mut d = d;
    d.kill_daemon(libc::SIGKILL);
    d.spawn();
    assert_eq!(d.ok(&["stop", "-t", "1", "viadocker"]), "viadocker");
}

#[test]
fn top_lists_the_containers_processes() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "busy", "busybox", "sh", "-c", "sleep 300 & sleep 301"]);
    for client in ["berth", "docker"] {
        let r = if client == "berth" { d.berth(&["top", "busy"]) } else { d.docker(&["top", "busy"]) };
        assert_eq!(r.code, 0, "{}", r.stderr);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert!(lines[0].starts_with("UID "), "{}", r.stdout);
        assert!(lines[0].contains("PID") && lines[0].ends_with("CMD"), "{}", r.stdout);
        // sh execs its last command, so the two sleeps are all there is; nothing of the host.
        assert_eq!(lines.len(), 3, "{}", r.stdout);
        assert!(lines.iter().any(|l| l.ends_with("sleep 300")), "{}", r.stdout);
        assert!(lines.iter().any(|l| l.ends_with("sleep 301")), "{}", r.stdout);
    }
    let custom = d.ok(&["top", "busy", "-o", "pid,comm"]);
    assert!(custom.lines().next().is_some_and(|l| l.trim_end() == "PID                 COMMAND"), "{custom}");
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    let r = d.berth(&["top", "idle"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is not running"), "{}", r.stderr);
}

#[test]
fn port_reports_no_published_ports() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "noports", "busybox", "sleep", "300"]);
    for client in ["berth", "docker"] {
        let run = |args: &[&str]| if client == "berth" { d.berth(args) } else { d.docker(args) };
        let r = run(&["port", "noports"]);
        assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{client}: {}", r.stderr);
        let r = run(&["port", "noports", "80"]);
        assert_eq!(r.code, 1, "{client}");
        assert!(r.stderr.contains("No public port '80/tcp' published for noports"), "{client}: {}", r.stderr);
    }
}
