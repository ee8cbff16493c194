//! The real docker CLI (Debian's docker.io) works against berthd unchanged.

use berth_e2e::{eventually, Daemon};

#[test]
fn docker_cli_runs_and_manages_containers() {
    let d = Daemon::start();
    let v = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(v.stdout.trim(), "1.41", "{}", v.stderr);
    let r = d.docker(&["run", "--rm", "busybox", "echo", "hello from docker"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "hello from docker\n"), "{}", r.stderr);
    assert_eq!(d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 4"]).code, 4);
    let missing = d.docker(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(missing.code, 127, "{}", missing.stderr);

    let id = d.docker(&["run", "-d", "--name", "svc", "-e", "GREETING=hi", "busybox", "sh", "-c", "echo $GREETING; sleep 300"]).stdout.trim().to_string();
    assert_eq!(id.len(), 64);
    let ps = d.docker(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.stdout.starts_with("svc Up"), "{}{}", ps.stdout, ps.stderr);
    assert!(eventually(5, || d.docker(&["logs", "svc"]).stdout == "hi\n"));
    assert_eq!(d.docker(&["inspect", "-f", "{{.State.Running}} {{.Name}}", "svc"]).stdout.trim(), "true /svc");
    assert_eq!(d.docker(&["stop", "-t", "1", "svc"]).code, 0);
    assert_eq!(d.docker(&["wait", "svc"]).stdout.trim(), "137");
    assert_eq!(d.docker(&["start", "svc"]).code, 0);
    assert_eq!(d.docker(&["restart", "-t", "1", "svc"]).code, 0);
    // PID 1 ignores signals it has no handler for (SIGTERM here), as under Docker.
    assert_eq!(d.docker(&["kill", "-s", "SIGKILL", "svc"]).code, 0);
    assert!(eventually(10, || d.docker(&["inspect", "-f", "{{.State.Running}}", "svc"]).stdout.trim() == "false"));
    assert_eq!(d.docker(&["rm", "svc"]).stdout.trim(), "svc");

    let conflict = d.docker(&["rm", "ghost"]);
    assert_eq!(conflict.code, 1);
    assert!(conflict.stderr.contains("No such container: ghost"), "{}", conflict.stderr);

    // Images: list, tag, inspect, remove.
    let images = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]).stdout;
    assert_eq!(images.trim(), "busybox:latest");
    assert_eq!(d.docker(&["tag", "busybox", "mybox:1"]).code, 0);
    let tags = d.docker(&["image", "inspect", "-f", "{{len .RepoTags}}", "mybox:1"]).stdout;
    assert_eq!(tags.trim(), "2");
    let rmi = d.docker(&["rmi", "mybox:1"]);
    assert_eq!(rmi.stdout.trim(), "Untagged: mybox:1", "{}", rmi.stderr);
    assert_eq!(d.docker(&["run", "--rm", "-m", "64m", "--cpus", "0.5", "busybox", "true"]).code, 0);
    assert!(eventually(5, || d.docker(&["ps", "-aq"]).stdout.trim().is_empty()));
}

#[test]
fn docker_cli_streams_stdin() {
    use std::io::Write;
    let d = Daemon::start();
    let mut child = std::process::Command::new(berth_e2e::docker_cli())
        .args(["run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"shout\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");
}
