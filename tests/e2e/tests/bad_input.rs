//! Bad input gets Docker's message and exit code, and leaves nothing behind.

use berth_e2e::Daemon;

/// Everything a container could leave: records, dirs, mounts, cgroups.
fn assert_nothing_left(d: &Daemon) {
    assert_eq!(d.ok(&["ps", "-aq"]), "", "a container record was left");
    for dir in [d.exec_root.join("containers"), d.data_root.join("containers")] {
        let left: Vec<_> = std::fs::read_dir(&dir).map(|r| r.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{} has {left:?}", dir.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = d.root.path().to_string_lossy().to_string();
    assert!(!mounts.contains(&root), "a mount under {root} was left");
}

#[test]
fn unknown_image_is_refused() {
    let d = Daemon::start();
    let r = d.berth(&["run", "--rm", "nosuchimage"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("Unable to find image 'nosuchimage:latest' locally"), "{}", r.stderr);
    // docker exits 1 (not 125) when the daemon refuses a create.
    let r = d.berth(&["create", "nosuchimage"]);
    assert_eq!(r.code, 1);
    assert_nothing_left(&d);
}

#[test]
fn unknown_container_is_refused() {
    let d = Daemon::start();
    for cmd in [vec!["stop", "ghost"], vec!["start", "ghost"], vec!["rm", "ghost"], vec!["logs", "ghost"], vec!["kill", "ghost"], vec!["wait", "ghost"], vec!["inspect", "ghost"]] {
        let r = d.berth(&cmd);
        assert_eq!(r.code, 1, "{cmd:?}: {}", r.stderr);
        assert!(r.stderr.contains("No such container: ghost") || r.stderr.contains("No such object: ghost"), "{cmd:?}: {}", r.stderr);
    }
}

#[test]
fn name_in_use_is_a_conflict() {
    let d = Daemon::start();
    let first = d.ok(&["create", "--name", "dup", "busybox", "true"]);
    let r = d.berth(&["create", "--name", "dup", "busybox", "true"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("Conflict. The container name \"/dup\" is already in use by container \"{first}\"")),
        "{}",
        r.stderr
    );
    let r = d.berth(&["create", "--name", "bad name", "busybox", "true"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Invalid container name"), "{}", r.stderr);
    d.ok(&["rm", "dup"]);
    assert_nothing_left(&d);
}

#[test]
fn bad_memory_values_are_refused() {
    let d = Daemon::start();
    let r = d.berth(&["run", "--rm", "-m", "1k", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("Minimum memory limit allowed is 6MB"), "{}", r.stderr);
    let r = d.berth(&["run", "--rm", "-m", "lots", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("invalid size"), "{}", r.stderr);
    assert_nothing_left(&d);
}

#[test]
fn missing_command_leaves_no_shim_mount_or_netns() {
    let d = Daemon::start();
    let r = d.berth(&["run", "--name", "nocmd", "busybox", "nosuchcmd"]);
    assert_eq!(r.code, 127);
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "nocmd"]), "127");
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "nocmd"]);
    assert!(!d.exec_root.join("netns").join(&id).exists(), "netns left");
    assert!(!d.exec_root.join("containers").join(&id).join("shim.sock").exists(), "shim left");
    d.ok(&["rm", "nocmd"]);
    assert_nothing_left(&d);
}

#[test]
fn daemon_restart_between_create_and_start_loses_nothing() {
    let mut d = Daemon::start();
    let id = d.ok(&["create", "--name", "kept", "busybox", "echo", "survived"]);
    d.kill_daemon(libc::SIGKILL);
    d.spawn();
    assert_eq!(d.ok(&["ps", "-aq", "--no-trunc"]), id);
    let r = d.berth(&["start", "-a", "kept"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "survived\n"), "{}\n{}", r.stderr, d.log());
    d.ok(&["rm", "kept"]);
    assert_nothing_left(&d);
}

/// The container's cgroup directories that still exist, in every hierarchy.
fn cgroups_of(id: &str) -> Vec<std::path::PathBuf> {
    let hierarchies = std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten().map(|e| e.path());
    let mut found = Vec::new();
    for h in hierarchies {
        // v1 and hybrid hosts nest berth's containers under `berth/`; a pure v2 host the same.
        for dir in [h.join("berth").join(id), h.join(id)] {
            if dir.is_dir() {
                found.push(dir);
            }
        }
    }
    found
}

#[test]
fn a_container_whose_shim_was_killed_is_removed_without_leftovers() {
    let d = Daemon::start();
    let id = d.ok(&["run", "-d", "busybox", "sleep", "1000"]);
    assert!(!cgroups_of(&id).is_empty(), "the running container has no cgroup to look for");
    let shim_pid: i32 = std::fs::read_to_string(d.exec_root.join("containers").join(&id).join("shim.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) with plain integers, on the shim this test's daemon started.
    unsafe { libc::kill(shim_pid, libc::SIGKILL) };
    assert!(
        berth_e2e::eventually(10, || d.ok(&["inspect", "-f", "{{.State.Running}}", &id]) == "false"),
        "the daemon did not notice its shim's death"
    );
    d.ok(&["rm", "-f", &id]);
    assert_eq!(cgroups_of(&id), Vec::<std::path::PathBuf>::new(), "cgroups were left");
    assert!(!d.exec_root.join("runtime").join(&id).exists(), "runtime state was left");
    assert_nothing_left(&d);
}
