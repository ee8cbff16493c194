//! `pause`/`unpause` (the cgroup freezer) and `update` (live cgroup limits), with berth and
//! with the docker CLI, checked in the container's cgroup files and in what it can still do.

use berth_e2e::{eventually, Daemon};
use std::path::{Path, PathBuf};
use std::time::Duration;

const MB: u64 = 1 << 20;

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's cgroup file: `v1` is `controller/file`, `v2` the unified file name.
fn cgroup_file(id: &str, v1: &str, v2_file: &str) -> PathBuf {
    if v2() {
        PathBuf::from(format!("/sys/fs/cgroup/berth/{id}/{v2_file}"))
    } else {
        let (controller, file) = v1.split_once('/').expect("controller/file");
        PathBuf::from(format!("/sys/fs/cgroup/{controller}/berth/{id}/{file}"))
    }
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Whether the kernel has the container's cgroup frozen.
fn frozen(id: &str) -> bool {
    let state = read(cgroup_file(id, "freezer/freezer.state", "cgroup.freeze"));
    state == if v2() { "1" } else { "FROZEN" }
}

/// The counter's last value, from the container's log (readable while it is paused).
fn count(d: &Daemon, name: &str) -> u64 {
    d.ok(&["logs", name])
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

const COUNTER: &str = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.05; done";

#[test]
fn pause_freezes_the_container_and_unpause_resumes_it() {
    let d = Daemon::start();
    let id = d.ok(&[
        "run", "-d", "--name", "counter", "busybox", "sh", "-c", COUNTER,
    ]);
    assert!(
        eventually(10, || count(&d, "counter") > 2),
        "the counter never ran"
    );
    assert_eq!(d.ok(&["pause", "counter"]), "counter");
    assert!(frozen(&id), "the cgroup is not frozen");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Running}} {{.State.Paused}}",
            "counter"
        ]),
        "paused true true"
    );
    // Frozen, it counts no further: ten of its sleeps later the log has not grown.
    let before = count(&d, "counter");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count(&d, "counter"),
        before,
        "a paused container kept counting"
    );

    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.State}} {{.Status}}"]);
    assert!(
        ps.starts_with("counter paused Up ") && ps.ends_with(" (Paused)"),
        "{ps}"
    );
    assert_eq!(d.ok(&["ps", "-q", "--no-trunc", "-f", "status=paused"]), id);
    assert_eq!(d.ok(&["ps", "-q", "-f", "status=running"]), "");
    let info = d.ok(&["info"]);
    assert!(info.contains("  Running: 0\n  Paused: 1\n"), "{info}");
    // A paused container can still be looked into from outside.
    assert!(d.ok(&["top", "counter"]).contains("sh -c"));

    assert_eq!(d.ok(&["unpause", "counter"]), "counter");
    assert!(!frozen(&id), "the cgroup is still frozen");
    assert!(
        eventually(10, || count(&d, "counter") > before + 2),
        "the counter did not resume"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "counter"
        ]),
        "running false"
    );
    assert_eq!(
        d.ok(&["ps", "-q", "--no-trunc", "-f", "status=running"]),
        id
    );
}

#[test]
fn pause_errors_match_docker() {
    let d = Daemon::start();
    let created = d.ok(&["create", "--name", "fresh", "busybox", "true"]);
    let r = d.berth(&["pause", "fresh"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            format!("Error response from daemon: Container {created} is not running").as_str()
        )
    );
    let r = d.berth(&["unpause", "fresh"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            format!("Error response from daemon: Container {created} is not paused").as_str()
        )
    );

    let id = d.ok(&["run", "-d", "--name", "pz", "busybox", "sleep", "300"]);
    let r = d.berth(&["unpause", "pz"]);
    assert_eq!(
        r.stderr.trim(),
        format!("Error response from daemon: Container {id} is not paused")
    );
    // Each name is tried; the failures are reported and make the exit code 1.
    let r = d.berth(&["pause", "pz", "nope"]);
    assert_eq!((r.code, r.stdout.trim()), (1, "pz"));
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: No such container: nope"
    );
    let r = d.berth(&["pause", "pz"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            format!("Error response from daemon: Container {id} is already paused").as_str()
        )
    );

    let r = d.berth(&["exec", "pz", "true"]);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: Container pz is paused, unpause the container before exec"
    );
    assert_ne!(r.code, 0);
    let r = d.berth(&["start", "pz"]);
    assert!(
        r.stderr
            .contains("cannot start a paused container, try unpause instead"),
        "{}",
        r.stderr
    );
    let r = d.berth(&["rm", "pz"]);
    assert!(
        r.stderr.contains(&format!(
            "You cannot remove a paused container {id}. Unpause and then stop the container before attempting removal or force remove"
        )),
        "{}",
        r.stderr
    );
    assert!(frozen(&id), "a refused command changed the container");
    let r = d.berth(&["pause"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
}

#[test]
fn kill_stop_and_rm_force_end_a_paused_container() {
    let d = Daemon::start();
    // kill: SIGKILL is held by a frozen process until the cgroup is thawed.
    d.ok(&["run", "-d", "--name", "kz", "busybox", "sleep", "300"]);
    d.ok(&["pause", "kz"]);
    assert_eq!(d.ok(&["kill", "kz"]), "kz");
    assert_eq!(d.ok(&["wait", "kz"]), "137");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Running}} {{.State.Paused}}",
            "kz"
        ]),
        "exited false false"
    );

    // stop: the stop signal reaches the process once thawed (exit 3 is its TERM handler,
    // not the SIGKILL that follows an ignored stop signal).
    let trapper = "trap 'exit 3' TERM; while :; do sleep 0.1; done";
    d.ok(&["run", "-d", "--name", "sz", "busybox", "sh", "-c", trapper]);
    d.ok(&["pause", "sz"]);
    assert_eq!(d.ok(&["stop", "sz"]), "sz");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Paused}}",
            "sz"
        ]),
        "exited 3 false"
    );

    // A signal other than the stop signal leaves it paused, as in Docker.
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "uz",
        "--stop-signal",
        "USR2",
        "busybox",
        "sleep",
        "300",
    ]);
    d.ok(&["pause", "uz"]);
    assert_eq!(d.ok(&["kill", "-s", "USR1", "uz"]), "uz");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "uz"]),
        "paused"
    );
    assert!(frozen(&id));

    // rm -f: gone, and so is its cgroup.
    assert_eq!(d.ok(&["rm", "-f", "uz"]), "uz");
    assert_eq!(d.ok(&["ps", "-aq", "-f", "name=uz"]), "");
    let cg = cgroup_file(&id, "freezer/", "");
    assert!(
        eventually(10, || !cg.exists()),
        "cgroup {} left behind",
        cg.display()
    );
}

#[test]
fn paused_state_survives_a_daemon_restart() {
    let mut d = Daemon::start();
    let id = d.ok(&[
        "run", "-d", "--name", "frozen", "busybox", "sh", "-c", COUNTER,
    ]);
    d.ok(&["pause", "frozen"]);
    d.kill_daemon(libc::SIGKILL);
    d.spawn();
    assert!(frozen(&id), "the restart thawed the container");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "frozen"
        ]),
        "paused true"
    );
    let before = count(&d, "frozen");
    d.ok(&["unpause", "frozen"]);
    assert!(
        eventually(10, || count(&d, "frozen") > before + 2),
        "the counter did not resume"
    );

    // A freeze berthd did not record (it died first) is found at the next start.
    d.kill_daemon(libc::SIGKILL);
    std::fs::write(
        cgroup_file(&id, "freezer/freezer.state", "cgroup.freeze"),
        if v2() { "1" } else { "FROZEN" },
    )
    .unwrap();
    assert!(eventually(10, || frozen(&id)));
    d.spawn();
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "frozen"]),
        "paused"
    );
    d.ok(&["unpause", "frozen"]);
    assert!(!frozen(&id));
}

#[test]
fn update_changes_a_running_containers_cgroup() {
    let d = Daemon::start();
    let id = d.ok(&[
        "run", "-d", "--name", "uz", "-m", "64m", "busybox", "sleep", "300",
    ]);
    let out = d.ok(&[
        "update",
        "-m",
        "100m",
        "--memory-swap",
        "200m",
        "--pids-limit",
        "5",
        "--cpus",
        "0.5",
        "uz",
    ]);
    assert_eq!(out, "uz");
    if v2() {
        assert_eq!(
            read(cgroup_file(&id, "", "memory.max")),
            (100 * MB).to_string()
        );
        assert_eq!(
            read(cgroup_file(&id, "", "memory.swap.max")),
            (100 * MB).to_string()
        );
        assert_eq!(read(cgroup_file(&id, "", "cpu.max")), "50000 100000");
    } else {
        assert_eq!(
            read(cgroup_file(&id, "memory/memory.limit_in_bytes", "")),
            (100 * MB).to_string()
        );
        if Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                read(cgroup_file(&id, "memory/memory.memsw.limit_in_bytes", "")),
                (200 * MB).to_string()
            );
        }
        assert_eq!(read(cgroup_file(&id, "cpu/cpu.cfs_quota_us", "")), "50000");
    }
    assert_eq!(read(cgroup_file(&id, "pids/pids.max", "pids.max")), "5");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}", "uz"]),
        format!("{} {} 5 500000000", 100 * MB, 200 * MB)
    );

    // The new pids limit holds for processes started from now on.
    // (The sleeps let go of the exec's output, so it ends with the shell.)
    let forks = "i=0; while [ $i -lt 10 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); echo $i; done";
    let r = d.berth(&["exec", "uz", "sh", "-c", forks]);
    let started: u32 = r
        .stdout
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!(started < 5, "pids limit not enforced: {started} started");
    assert!(r.stderr.contains("can't fork"), "{}", r.stderr);

    // -1 lifts it; a paused container takes updates too.
    d.ok(&["pause", "uz"]);
    assert_eq!(d.ok(&["update", "--pids-limit", "-1", "uz"]), "uz");
    assert_eq!(read(cgroup_file(&id, "pids/pids.max", "pids.max")), "max");
    d.ok(&["unpause", "uz"]);

    // Docker's refusals: memory above the swap limit already set, and bad values.
    let r = d.berth(&["update", "-m", "300m", "uz"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!("Error response from daemon: Cannot update container {id}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time")
    );
    let r = d.berth(&["update", "--cpus", "0.5", "--cpu-period", "1000", "uz"]);
    assert_eq!(r.stderr.trim(), "Error response from daemon: Conflicting options: Nano CPUs and CPU Period cannot both be set");
    let r = d.berth(&["update", "--cpu-quota", "50000", "uz"]);
    assert!(
        r.stderr.contains(
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        read(cgroup_file(
            &id,
            "memory/memory.limit_in_bytes",
            "memory.max"
        )),
        (100 * MB).to_string()
    );
}

#[test]
fn update_of_a_stopped_container_applies_at_its_next_start() {
    let d = Daemon::start();
    let id = d.ok(&[
        "create", "--name", "later", "-m", "64m", "busybox", "sleep", "300",
    ]);
    let out = d.ok(&[
        "update",
        "-m",
        "100m",
        "--memory-swap",
        "300m",
        "--pids-limit",
        "7",
        "--cpuset-cpus",
        "0",
        "--memory-reservation",
        "32m",
        "later",
    ]);
    assert_eq!(out, "later");
    d.ok(&["start", "later"]);
    assert_eq!(read(cgroup_file(&id, "pids/pids.max", "pids.max")), "7");
    assert_eq!(
        read(cgroup_file(
            &id,
            "memory/memory.limit_in_bytes",
            "memory.max"
        )),
        (100 * MB).to_string()
    );
    assert_eq!(
        read(cgroup_file(
            &id,
            "memory/memory.soft_limit_in_bytes",
            "memory.low"
        )),
        (32 * MB).to_string()
    );
    assert_eq!(
        read(cgroup_file(&id, "cpuset/cpuset.cpus", "cpuset.cpus")),
        "0"
    );

    // An exited one too.
    d.ok(&["stop", "-t", "0", "later"]);
    assert_eq!(d.ok(&["update", "--pids-limit", "9", "later"]), "later");
    d.ok(&["start", "later"]);
    assert_eq!(read(cgroup_file(&id, "pids/pids.max", "pids.max")), "9");
}

#[test]
fn update_input_errors_match_docker() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "vz", "busybox", "sleep", "300"]);
    let r = d.berth(&["update", "vz"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "you must provide one or more flags when using this command"
        )
    );
    let r = d.berth(&["update", "-m", "abc", "vz"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .starts_with("invalid argument \"abc\" for \"-m, --memory\" flag: invalid size: 'abc'"),
        "{}",
        r.stderr
    );
    let r = d.berth(&["update", "-m", "4m", "vz"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: Minimum memory limit allowed is 6MB"
        )
    );
    let r = d.berth(&["update", "--cpus", "1000", "vz"]);
    assert!(
        r.stderr.contains("Range of CPUs is from 0.01 to "),
        "{}",
        r.stderr
    );
    let r = d.berth(&["update", "--cpuset-cpus", "a", "vz"]);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: Invalid value a for cpuset cpus: invalid format: a"
    );
    let r = d.berth(&["update", "--cpuset-cpus", "4000", "vz"]);
    assert!(
        r.stderr
            .contains("Requested CPUs are not available - requested 4000, available: "),
        "{}",
        r.stderr
    );
    let r = d.berth(&["update", "--kernel-memory", "1m", "vz"]);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: Minimum kernel memory limit allowed is 6MB"
    );
    let r = d.berth(&["update", "--restart", "sometimes", "vz"]);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: invalid restart policy 'sometimes'"
    );
    // Warnings follow the names on stdout; each failure is reported and makes exit 1.
    let r = d.berth(&["update", "--kernel-memory", "10m", "vz", "nope"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "vz\nSpecifying a kernel memory limit is deprecated and will be removed in a future release.\n");
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: No such container: nope"
    );
    // The restart policy is stored.
    assert_eq!(d.ok(&["update", "--restart", "on-failure:3", "vz"]), "vz");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.RestartPolicy}}", "vz"]),
        r#"{"Name":"on-failure","MaximumRetryCount":3}"#
    );
}

#[test]
fn docker_cli_pauses_unpauses_and_updates() {
    let d = Daemon::start();
    let id = d.ok(&["run", "-d", "--name", "dk", "busybox", "sleep", "300"]);
    let r = d.docker(&["pause", "dk"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "dk"), "{}", r.stderr);
    assert!(frozen(&id));
    let r = d.docker(&["ps", "--format", "{{.Status}}"]);
    assert!(r.stdout.trim().ends_with("(Paused)"), "{}", r.stdout);
    let r = d.docker(&["exec", "dk", "true"]);
    assert!(
        r.stderr
            .contains("Container dk is paused, unpause the container before exec"),
        "{}",
        r.stderr
    );
    let r = d.docker(&["pause", "dk"]);
    assert!(
        r.stderr
            .contains(&format!("Container {id} is already paused")),
        "{}",
        r.stderr
    );
    let r = d.docker(&["unpause", "dk"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "dk"), "{}", r.stderr);
    assert!(!frozen(&id));

    let r = d.docker(&[
        "update",
        "--pids-limit",
        "12",
        "-m",
        "80m",
        "--memory-swap",
        "160m",
        "dk",
    ]);
    assert_eq!((r.code, r.stdout.trim()), (0, "dk"), "{}", r.stderr);
    assert_eq!(read(cgroup_file(&id, "pids/pids.max", "pids.max")), "12");
    assert_eq!(
        read(cgroup_file(
            &id,
            "memory/memory.limit_in_bytes",
            "memory.max"
        )),
        (80 * MB).to_string()
    );
    let r = d.docker(&["update", "-m", "500m", "dk"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Memory limit should be smaller than already set memoryswap limit"),
        "{}",
        r.stderr
    );
    let r = d.docker(&["update", "--restart", "bogus", "dk"]);
    assert!(
        r.stderr.contains("invalid restart policy 'bogus'"),
        "{}",
        r.stderr
    );
    let r = d.docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.PidsLimit}} {{.HostConfig.Memory}}",
        "dk",
    ]);
    assert_eq!(r.stdout.trim(), format!("12 {}", 80 * MB));
}
