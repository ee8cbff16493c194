//! `berth run` and the container lifecycle, driven by the berth CLI.

use berth_e2e::{eventually, Daemon};

#[test]
fn run_prints_output_and_leaves_nothing_with_rm() {
    let d = Daemon::start();
    let r = d.berth(&["run", "--rm", "busybox", "echo", "hello from berth"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hello from berth\n"), "{}", r.stderr);
    assert!(eventually(5, || d.ok(&["ps", "-aq"]).is_empty()), "--rm left a container");
}

#[test]
fn exit_codes_follow_docker() {
    let d = Daemon::start();
    assert_eq!(d.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]).code, 3);
    let missing = d.berth(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(missing.code, 127, "{}", missing.stderr);
    assert!(missing.stderr.contains("executable file not found"), "{}", missing.stderr);
    let not_exec = d.berth(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(not_exec.code, 126, "{}", not_exec.stderr);
    assert!(not_exec.stderr.contains("permission denied"), "{}", not_exec.stderr);
    let killed = d.berth(&["run", "--rm", "busybox", "sh", "-c", "sleep 30 & kill -9 $!; wait $!"]);
    assert_eq!(killed.code, 137, "the shell reports its child's signal as 128+9");
    assert!(eventually(5, || d.ok(&["ps", "-aq"]).is_empty()));
}

#[test]
fn container_is_isolated_with_docker_defaults() {
    let d = Daemon::start();
    let script = "echo pid=$$; hostname; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' | sort | xargs; \
                  grep -E '^(CapEff|Seccomp):' /proc/self/status | tr -d '\\t'; \
                  wc -c < /proc/timer_list; echo 1 > /proc/sys/vm/drop_caches && echo sys-writable; \
                  ls /dev | tr '\\n' ' '";
    let id = d.ok(&["run", "-d", "busybox", "sh", "-c", script]);
    assert_eq!(d.ok(&["wait", &id]), "0");
    let out = d.ok(&["logs", &id]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], &id[..12], "hostname is the short ID");
    assert_eq!(lines[2], "eth0 lo", "loopback and the default bridge's eth0, as in Docker");
    assert_eq!(lines[3], "CapEff:00000000a80425fb", "Docker's default capabilities");
    assert_eq!(lines[4], "Seccomp:2", "seccomp filter active");
    assert_eq!(lines[5], "0", "/proc/timer_list is masked");
    assert!(!out.contains("sys-writable"), "/proc/sys must be read-only");
    for dev in ["null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"] {
        assert!(lines[6].split(' ').any(|e| e == dev), "/dev/{dev} missing: {}", lines[6]);
    }
    // Every signal at its default, whatever berthd and the shim ignore or block: a pipeline
    // such as `yes | head` must end.
    let sigs = d.ok(&["run", "--rm", "busybox", "grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]);
    assert_eq!(sigs, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000");
    assert_eq!(d.ok(&["run", "--rm", "busybox", "sh", "-c", "yes | head -c 4"]), "y\ny");
}

#[test]
fn run_flags_shape_the_process() {
    let d = Daemon::start();
    let env_file = d.root.path().join("env");
    std::fs::write(&env_file, "# comment\nFROM_FILE=yes\n").unwrap();
    let out = d.ok(&[
        "run", "--rm", "-e", "A=1", "--env-file", env_file.to_str().unwrap(), "-w", "/tmp",
        "-u", "nobody", "--hostname", "box", "busybox", "sh", "-c",
        "echo $A $FROM_FILE; pwd; id -u; hostname",
    ]);
    assert_eq!(out, "1 yes\n/tmp\n65534\nbox");
    let out = d.ok(&["run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint"]);
    assert_eq!(out, "from entrypoint");
    let id = d.ok(&["create", "-l", "team=infra", "--name", "labelled", "busybox", "true"]);
    let label = d.ok(&["inspect", "-f", "{{.Config.Labels.team}}", "labelled"]);
    assert_eq!(label, "infra");
    let listed = d.ok(&["ps", "-a", "-q", "--no-trunc", "-f", "label=team=infra"]);
    assert_eq!(listed, id);
}

#[test]
fn lifecycle_create_start_stop_restart_kill_rm() {
    let d = Daemon::start();
    let id = d.ok(&["create", "--name", "life", "busybox", "sh", "-c", "trap 'exit 42' TERM; echo up; while true; do sleep 0.1; done"]);
    assert_eq!(id.len(), 64);
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Status}}", "life"]), "created");
    assert_eq!(d.ok(&["start", "life"]), "life");
    assert!(eventually(5, || d.ok(&["logs", "life"]) == "up"));
    assert_eq!(d.ok(&["ps", "-q"]), &id[..12]);
    let ps = d.ok(&["ps"]);
    assert!(ps.starts_with("CONTAINER ID   IMAGE     COMMAND"), "{ps}");
    assert!(ps.contains("Up "), "{ps}");
    assert_eq!(d.ok(&["stop", "-t", "5", "life"]), "life");
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "life"]), "42", "trap ran: SIGTERM first");
    assert!(d.ok(&["ps", "-a"]).contains("Exited (42)"));
    assert_eq!(d.ok(&["restart", "-t", "1", "life"]), "life");
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Running}}", "life"]), "true");
    assert_eq!(d.ok(&["kill", "-s", "KILL", "life"]), "life");
    assert_eq!(d.ok(&["wait", "life"]), "137");
    assert_eq!(d.ok(&["logs", "--tail", "1", "life"]), "up");
    assert_eq!(d.ok(&["logs", "life"]), "up\nup", "restart appends to the same log");
    d.ok(&["start", "life"]);
    let rm = d.berth(&["rm", "life"]);
    assert_eq!(rm.code, 1);
    assert!(rm.stderr.contains("You cannot remove a running container"), "{}", rm.stderr);
    assert_eq!(d.ok(&["rm", "-f", "life"]), "life");
    assert!(d.ok(&["ps", "-aq"]).is_empty());
    assert!(!d.exec_root.join("containers").join(&id).exists(), "run dir removed");
    assert!(!d.data_root.join("containers").join(&id).exists(), "container dir removed");
}

#[test]
fn start_attach_and_follow_logs() {
    let d = Daemon::start();
    d.ok(&["create", "--name", "att", "busybox", "sh", "-c", "echo out; echo err >&2; exit 5"]);
    let r = d.berth(&["start", "-a", "att"]);
    assert_eq!(r.code, 5);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    let id = d.ok(&["run", "-d", "busybox", "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"]);
    let followed = d.ok(&["logs", "-f", &id]);
    assert_eq!(followed, "1\n2\n3", "follow ends when the container stops");
}

#[test]
fn piped_stdin_reaches_the_container() {
    use std::io::Write;
    let d = Daemon::start();
    let mut child = d
        .berth_cmd(&["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"through stdin\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\ndone\n");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn logs_since_and_until_select_by_time() {
    let d = Daemon::start();
    let id = d.ok(&["run", "-d", "busybox", "sh", "-c", "echo early; sleep 2; echo late"]);
    assert_eq!(d.ok(&["wait", &id]), "0");
    let stamped = d.ok(&["logs", "-t", &id]);
    let time_of = |n: usize| stamped.lines().nth(n).and_then(|l| l.split(' ').next()).unwrap().to_string();
    let (early_time, late_time) = (time_of(0), time_of(1));
    for client in ["berth", "docker"] {
        let run = |args: &[&str]| if client == "berth" { d.berth(args) } else { d.docker(args) };
        let r = run(&["logs", "--since", &late_time, &id]);
        assert_eq!(r.stdout, "late\n", "{client}: {}", r.stderr);
        let r = run(&["logs", "--until", &early_time, &id]);
        assert_eq!(r.stdout, "early\n", "{client}: {}", r.stderr);
        let r = run(&["logs", "--since", "1h", &id]);
        assert_eq!(r.stdout, "early\nlate\n", "{client}: {}", r.stderr);
        let r = run(&["logs", "--since", "xyz", &id]);
        assert_eq!(r.code, 1, "{client}");
        assert!(
            r.stderr.contains("invalid value for \"since\": failed to parse value as time or duration: \"xyz\""),
            "{client}: {}",
            r.stderr
        );
    }
}
