//! `exec` with the berth and docker CLIs: output, exit codes, env/user/cwd, namespaces,
//! stdin, a real terminal through tmux, detached execs, and cleanup when the container stops.

use berth_e2e::{eventually, Daemon, Run, Tmux};
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `exec` through `client` ("berth" or "docker") against `d`.
fn exec(d: &Daemon, client: &str, args: &[&str]) -> Run {
    let mut full = vec!["exec"];
    full.extend_from_slice(args);
    if client == "docker" {
        d.docker(&full)
    } else {
        d.berth(&full)
    }
}

fn common_behaviour(client: &str) {
    let d = Daemon::start();
    let name = format!("{client}-exec");
    d.ok(&["run", "-d", "--name", &name, "--hostname", "boxy", "busybox", "sleep", "1000"]);

    let r = exec(&d, client, &[&name, "echo", "hi"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hi\n"), "{}", r.stderr);

    let r = exec(&d, client, &[&name, "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(r.code, 7, "{}", r.stderr);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");

    let r = exec(&d, client, &["-e", "GREETING=hello", &name, "sh", "-c", "echo $GREETING $PATH"]);
    assert_eq!(r.stdout, "hello /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n", "{}", r.stderr);

    let r = exec(&d, client, &["-u", "nobody", "-w", "/tmp", &name, "sh", "-c", "id -u; pwd"]);
    assert_eq!(r.stdout, "65534\n/tmp\n", "{}", r.stderr);

    // Same namespaces as the container: its PID 1, its hostname.
    let r = exec(&d, client, &[&name, "ps", "-o", "pid,args"]);
    assert!(r.stdout.lines().any(|l| l.trim() == "1 sleep 1000"), "{}", r.stdout);
    assert_eq!(exec(&d, client, &[&name, "hostname"]).stdout, "boxy\n");

    let r = exec(&d, client, &[&name, "nosuchcmd"]);
    // dockerd 20.10 answers 126 for any exec that cannot start.
    assert_eq!(r.code, 126, "{}{}", r.stdout, r.stderr);
    assert!(
        (r.stdout.clone() + &r.stderr).contains("exec: \"nosuchcmd\": executable file not found in $PATH"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(exec(&d, client, &[&name, "/etc/passwd"]).code, 126);

    // Detached: returns at once, the command carries on.
    let r = exec(&d, client, &["-d", &name, "sh", "-c", "sleep 0.2; touch /tmp/detached"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert!(eventually(10, || exec(&d, client, &[&name, "ls", "/tmp/detached"]).code == 0));

    // A container that is not running.
    d.ok(&["create", "--name", &format!("{name}-stopped"), "busybox", "true"]);
    let r = exec(&d, client, &[&format!("{name}-stopped"), "echo", "hi"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Error response from daemon: Container ") && r.stderr.contains(" is not running"), "{}", r.stderr);
    let r = exec(&d, client, &["no-such-container", "echo", "hi"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("No such container: no-such-container"), "{}", r.stderr);
}

#[test]
fn berth_exec() {
    common_behaviour("berth");
}

#[test]
fn docker_cli_exec() {
    common_behaviour("docker");
}

#[test]
fn exec_i_pipes_stdin_and_sees_eof() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "stdin-exec", "busybox", "sleep", "1000"]);
    let mut child = d
        .berth_cmd(&["exec", "-i", "stdin-exec", "sh", "-c", "wc -l; echo end"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a\nb\nc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\nend\n");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn exec_runs_confined_like_the_container_unless_privileged() {
    let d = Daemon::start();
    d.ok(&["run", "-d", "--name", "caps-exec", "busybox", "sleep", "1000"]);
    let status = |args: &[&str]| {
        let mut full = vec!["exec"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["caps-exec", "grep", "-E", "^(CapEff|Seccomp):", "/proc/self/status"]);
        d.ok(&full)
    };
    let init = d.ok(&["exec", "caps-exec", "grep", "-E", "^(CapEff|Seccomp):", "/proc/1/status"]);
    let plain = status(&[]);
    // The same capabilities and seccomp filter as the container's init (SYS_ADMIN, lent to
    // load the filter, is gone again).
    assert_eq!(plain, init);
    assert!(plain.contains("Seccomp:\t2"), "{plain}");
    let privileged = status(&["--privileged"]);
    assert_ne!(privileged.lines().next(), plain.lines().next(), "{privileged}");
}

#[test]
fn execs_end_with_their_container_and_leave_nothing_behind() {
    let d = Daemon::start();
    let id = d.ok(&["run", "-d", "--name", "end-exec", "busybox", "sleep", "1000"]);
    let shim_pid = std::fs::read_to_string(d.exec_root.join("containers").join(&id).join("shim.pid")).unwrap();
    let shim_pid = shim_pid.trim().to_string();
    let fds = || std::fs::read_dir(format!("/proc/{shim_pid}/fd")).map(|r| r.count()).unwrap_or(0);
    d.ok(&["exec", "end-exec", "true"]);
    let before = fds();
    for _ in 0..5 {
        d.ok(&["exec", "end-exec", "true"]);
        d.ok(&["exec", "-d", "end-exec", "true"]);
        assert_eq!(d.berth(&["exec", "end-exec", "nosuchcmd"]).code, 126);
    }
    assert!(eventually(10, || fds() == before), "shim fds grew: {before} -> {}", fds());
    let zombies = Command::new("ps").args(["--ppid", &shim_pid, "-o", "stat="]).output().unwrap();
    assert!(!String::from_utf8_lossy(&zombies.stdout).contains('Z'), "zombie exec left");

    // A long-running attached exec ends (with SIGKILL's code) when the container stops.
    let mut long = d.berth_cmd(&["exec", "end-exec", "sleep", "1000"]).stdout(Stdio::null()).spawn().unwrap();
    assert!(eventually(10, || d.ok(&["exec", "end-exec", "ps", "-o", "args"]).contains("sleep 1000\nsleep 1000")));
    d.ok(&["kill", "end-exec"]);
    let status = long.wait().unwrap();
    assert_eq!(status.code(), Some(137));
}

fn interactive_exec(d: &Daemon, client: &str, session: &str) {
    d.ok(&["run", "-d", "--name", session, "busybox", "sleep", "1000"]);
    let marker = d.exec_root.parent().unwrap().join(format!("{session}.code"));
    let cmd = format!(
        "{client_env}={host} {client} exec -it {session} sh; echo $? > {marker}",
        client_env = if client.ends_with("docker") { "DOCKER_HOST" } else { "BERTH_HOST" },
        host = d.host(),
        marker = marker.display(),
    );
    let t = Tmux::start(session, &cmd);
    assert!(eventually(10, || t.screen().contains("/ #")), "no prompt: {}", t.screen());
    t.send("stty size; tty; echo term=$TERM");
    assert!(eventually(5, || t.screen().contains("term=xterm")), "{}", t.screen());
    let screen = t.screen();
    assert!(screen.contains("30 100"), "window size: {screen}");
    assert!(screen.contains("/dev/pts/"), "{screen}");
    t.send("exit 3");
    assert!(eventually(10, || std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == "3")), "{}", t.screen());
    // The container carries on.
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Status}}", session]), "running");
}

#[test]
fn berth_exec_it_gives_a_real_terminal() {
    let d = Daemon::start();
    let berth = berth_e2e::bin_dir().join("berth");
    interactive_exec(&d, berth.to_str().unwrap(), "berth-exec-tty");
}

#[test]
fn docker_exec_it_gives_a_real_terminal() {
    let d = Daemon::start();
    let docker = berth_e2e::docker_cli();
    interactive_exec(&d, docker.to_str().unwrap(), "docker-exec-tty");
}
