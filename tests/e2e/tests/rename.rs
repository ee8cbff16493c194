//! `rename`, with the berth and docker CLIs.

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
