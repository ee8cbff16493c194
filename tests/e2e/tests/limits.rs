//! cgroup limits are enforced, on this host's cgroup version.

use berth_e2e::{eventually, Daemon};
use std::path::PathBuf;

/// The container's cgroup file for a controller, on v1 or v2.
fn cgroup_file(id: &str, v1_controller: &str, v1_file: &str, v2_file: &str) -> PathBuf {
    let v2 = PathBuf::from("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        PathBuf::from(format!("/sys/fs/cgroup/berth/{id}/{v2_file}"))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/{v1_controller}/berth/{id}/{v1_file}"))
    }
}

#[test]
fn memory_hog_is_oom_killed_with_137() {
    let d = Daemon::start();
    let r = d.berth(&[
        "run", "--name", "hog", "-m", "32m", "busybox", "sh", "-c",
        "x=0123456789abcdef; while true; do x=$x$x; done",
    ]);
    assert_eq!(r.code, 137, "{}", r.stderr);
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.OOMKilled}}", "hog"]), "true");
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "hog"]);
    d.ok(&["rm", "hog"]);
    let cg = cgroup_file(&id, "memory", "", "");
    assert!(!cg.exists(), "cgroup {} left behind", cg.display());
}

#[test]
fn cpu_pids_and_memory_limits_reach_the_cgroup() {
    let d = Daemon::start();
    let id = d.ok(&[
        "run", "-d", "-m", "64m", "--cpus", "0.5", "--cpu-shares", "512", "--pids-limit", "16",
        "busybox", "sleep", "60",
    ]);
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).trim().to_string();
    let v2 = PathBuf::from("/sys/fs/cgroup/cgroup.controllers").exists();
    if v2 {
        assert_eq!(read(cgroup_file(&id, "", "", "memory.max")), (64u64 << 20).to_string());
        assert_eq!(read(cgroup_file(&id, "", "", "cpu.max")), "50000 100000");
        assert_eq!(read(cgroup_file(&id, "", "", "pids.max")), "16");
    } else {
        assert_eq!(read(cgroup_file(&id, "memory", "memory.limit_in_bytes", "")), (64u64 << 20).to_string());
        assert_eq!(read(cgroup_file(&id, "cpu", "cpu.cfs_quota_us", "")), "50000");
        assert_eq!(read(cgroup_file(&id, "cpu", "cpu.cfs_period_us", "")), "100000");
        assert_eq!(read(cgroup_file(&id, "cpu", "cpu.shares", "")), "512");
        assert_eq!(read(cgroup_file(&id, "pids", "pids.max", "")), "16");
    }
    // The pids limit holds: the shell cannot fork 20 background sleeps.
    d.ok(&["rm", "-f", &id]);
    let r = d.berth(&[
        "run", "--rm", "--pids-limit", "8", "busybox", "sh", "-c",
        "i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); echo $i; done",
    ]);
    let started: u32 = r.stdout.lines().last().and_then(|l| l.parse().ok()).unwrap_or(99);
    assert!(started < 8, "pids limit not enforced: {started} started");
    assert!(r.stderr.contains("can't fork"), "{}", r.stderr);
    assert!(eventually(5, || d.ok(&["ps", "-aq"]).is_empty()));
}

/// `--ulimit`s are the process's rlimits, as dockerd sets them: for run (and exec, which
/// inherits the container's) and for a build's RUN steps. Checked against dockerd 20.10.
#[test]
fn ulimits_reach_run_exec_and_build() {
    let d = Daemon::start();
    let limits = "echo $(ulimit -n) $(ulimit -Hn) $(ulimit -u) $(ulimit -Hu)";
    let r = d.docker(&[
        "run", "--rm", "--ulimit", "nofile=512:1024", "--ulimit", "nproc=100:200", "busybox",
        "sh", "-c", limits,
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "512 1024 100 200\n"), "{}", r.stderr);
    let id = d.docker(&["run", "-d", "--ulimit", "nofile=300:400", "busybox", "sleep", "60"]).stdout;
    let r = d.docker(&["exec", id.trim(), "sh", "-c", "echo $(ulimit -n) $(ulimit -Hn)"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "300 400\n"), "{}", r.stderr);
    d.ok(&["rm", "-f", id.trim()]);

    // The berth CLI: docker's `--ulimit` for run and create (one per name, the last given,
    // sorted by name as docker sends them), and its flag errors (exit 125).
    let r = d.berth(&[
        "run", "--rm", "--ulimit", "nofile=512:1024", "--ulimit", "nproc=100:200", "busybox",
        "sh", "-c", limits,
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "512 1024 100 200\n"), "{}", r.stderr);
    let id = d.ok(&[
        "create", "--ulimit", "nproc=3:4", "--ulimit", "nofile=1:2", "--ulimit", "nofile=+300:400",
        "--ulimit", "core=-1", "busybox", "sleep", "60",
    ]);
    // As docker's CLI shows them (berth's keeps the daemon's key order: Name, Soft, Hard).
    let r = d.docker(&["inspect", "-f", "{{json .HostConfig.Ulimits}}", &id]);
    assert_eq!(
        r.stdout.trim(),
        r#"[{"Name":"core","Hard":-1,"Soft":-1},{"Name":"nofile","Hard":400,"Soft":300},{"Name":"nproc","Hard":4,"Soft":3}]"#,
        "{}", r.stderr
    );
    d.ok(&["start", &id]);
    let r = d.berth(&["exec", &id, "sh", "-c", "echo $(ulimit -n) $(ulimit -Hn) $(ulimit -c)"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "300 400 unlimited\n"), "{}", r.stderr);
    d.ok(&["rm", "-f", &id]);
    let id = d.ok(&["create", "busybox", "true"]);
    assert_eq!(d.docker(&["inspect", "-f", "{{json .HostConfig.Ulimits}}", &id]).stdout, "null\n");
    d.ok(&["rm", &id]);
    for (cmd, value, why) in [
        ("run", "nofile", "invalid ulimit argument: nofile"),
        ("create", "as=1", "invalid ulimit type: as"),
        ("run", "nofile=a:b", "strconv.ParseInt: parsing \"b\": invalid syntax"),
        ("create", "nofile=1:2:3", "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"),
        ("run", "nofile=5:3", "ulimit soft limit must be less than or equal to hard limit: 5 > 3"),
    ] {
        let r = d.berth(&[cmd, "--ulimit", value, "busybox", "true"]);
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (125, format!("invalid argument \"{value}\" for \"--ulimit\" flag: {why}\nSee 'berth {cmd} --help'.\n").as_str()),
        );
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");

    let ctx = berth_e2e::tempdir::TempDir::new();
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM busybox\nRUN {limits}\n")).unwrap();
    let r: berth_e2e::Run = std::process::Command::new(berth_e2e::docker_cli())
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "--ulimit", "nofile=512:512"])
        .arg(ctx.path())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let unlimited_procs = d.docker(&["run", "--rm", "busybox", "sh", "-c", "ulimit -u; ulimit -Hu"]).stdout;
    let procs = unlimited_procs.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(r.stdout.contains(&format!("\n512 512 {procs}\n")), "{}", r.stdout);
}
