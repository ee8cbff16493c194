//! A build's step containers (engine/build_step.rs) seen from outside, driven by the docker
//! CLI's classic builder: the events dockerd 20.10 emits for them, nothing left in `ps -a`,
//! and RUN containers getting the build's network mode and resources as Docker gives them.

use berth_e2e::{docker_cli, tempdir::TempDir, Daemon, Run};
use std::process::{Command, Stdio};

fn docker(d: &Daemon, args: &[&str]) -> Run {
    Command::new(docker_cli())
        .args(args)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
        .into()
}

/// `docker build <extra> <context with this Dockerfile>`, asserting success.
fn build(d: &Daemon, dockerfile: &str, extra: &[&str]) -> String {
    let ctx = TempDir::new();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    let dir = ctx.path().to_str().unwrap().to_string();
    let mut args = vec!["build"];
    args.extend_from_slice(extra);
    args.push(&dir);
    let r = docker(d, &args);
    assert_eq!(
        r.code,
        0,
        "build failed: {}{}\n--- daemon log ---\n{}",
        r.stdout,
        r.stderr,
        d.log()
    );
    r.stdout
}

/// The RUN's own output: the lines between ` ---> Running in` and `Removing intermediate`.
fn run_output(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .skip_while(|l| !l.starts_with(" ---> Running in"))
        .skip(1)
        .take_while(|l| !l.starts_with("Removing intermediate container"))
        .map(String::from)
        .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Now as `docker events --since` takes it, to the nanosecond: what happened before is out.
fn now_nanos() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

#[test]
fn step_containers_come_and_go_with_dockers_events() {
    let d = Daemon::start();
    let busybox = d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let since = now_nanos();
    build(
        &d,
        "FROM busybox\nENV A=1\nRUN echo hi && echo err >&2\nLABEL x=y\n",
        &["-t", "h5step:v1"],
    );
    // Past the build's last second: `--until` in the past makes `events` return at once.
    let until = (now() + 1).to_string();
    let events = docker(
        &d,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{.Type}} {{.Action}} {{json .Actor.Attributes}}",
        ],
    );
    assert_eq!(events.code, 0, "{}", events.stderr);
    let lines: Vec<&str> = events.stdout.lines().collect();
    let actions: Vec<String> = lines
        .iter()
        .map(|l| l.splitn(3, ' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    // What dockerd 20.10.24 emits for this Dockerfile (recorded with `docker events`): ENV and
    // LABEL containers are created and destroyed, never started; the RUN's is attached before
    // its start; committing emits nothing.
    assert_eq!(
        actions,
        [
            "container create",
            "container destroy",
            "container create",
            "container attach",
            "network connect",
            "container start",
            "container die",
            "network disconnect",
            "container destroy",
            "container create",
            "container destroy",
            "image tag",
        ],
        "{}",
        events.stdout
    );
    // Containers are made from image IDs, as Docker's builder names them.
    assert!(
        lines[0].contains(&format!("\"image\":\"{busybox}\"")),
        "{}",
        lines[0]
    );
    assert!(lines[2].contains("\"image\":\"sha256:"), "{}", lines[2]);
    assert!(lines[6].contains("\"exitCode\":\"0\""), "{}", lines[6]);
    // The LABEL step's container carries the new label, as its config does.
    assert!(lines[9].contains("\"x\":\"y\""), "{}", lines[9]);
    assert_eq!(d.ok(&["ps", "-aq"]), "", "intermediate containers left");
    // The image records the RUN container as Docker does: `container` is its full ID.
    let container = d.ok(&["image", "inspect", "-f", "{{.Container}}", "h5step:v1"]);
    assert_eq!(container.len(), 64, "{container}");
}

#[test]
fn run_steps_get_the_builds_network_mode() {
    let d = Daemon::start();
    let dockerfile = "FROM busybox\nRUN ls /sys/class/net | tr '\\n' ' '; echo; hostname\n";
    let none = run_output(&build(&d, dockerfile, &["--no-cache", "--network", "none"]));
    assert_eq!(none[0].trim(), "lo", "{none:?}");

    let host = run_output(&build(&d, dockerfile, &["--no-cache", "--network", "host"]));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        host[1],
        hostname.trim(),
        "under --network host the step has the host's name"
    );

    let bridge = build(&d, dockerfile, &["--no-cache"]);
    let short_id = bridge
        .lines()
        .find_map(|l| l.strip_prefix(" ---> Running in "))
        .unwrap()
        .to_string();
    let out = run_output(&bridge);
    assert_eq!(out[0].trim(), "eth0 lo");
    assert_eq!(
        out[1], short_id,
        "the step's hostname is its container's short ID"
    );

    d.ok(&["network", "create", "h5buildnet"]);
    let since = now_nanos();
    let user = run_output(&build(
        &d,
        dockerfile,
        &["--no-cache", "--network", "h5buildnet"],
    ));
    assert_eq!(user[0].trim(), "eth0 lo");
    let until = (now() + 1).to_string();
    let connects = docker(
        &d,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=connect",
            "--format",
            "{{.Actor.Attributes.name}}",
        ],
    );
    assert_eq!(connects.stdout.trim(), "h5buildnet");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn run_steps_get_the_builds_resources_and_hosts() {
    let d = Daemon::start();
    // cgroup v2 files first, else v1's.
    let dockerfile = "FROM busybox\nRUN cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
                      df -k /dev/shm | tail -1 | awk '{print $2}'; grep myhost /etc/hosts\n";
    let out = run_output(&build(
        &d,
        dockerfile,
        &[
            "--no-cache",
            "--memory",
            "64m",
            "--shm-size",
            "32m",
            "--add-host",
            "myhost:10.1.2.3",
        ],
    ));
    assert_eq!(
        out,
        ["67108864", "32768", "10.1.2.3\tmyhost"],
        "what dockerd 20.10 gives the same build"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn scratch_steps_have_no_image_attribute_and_tags_carry_the_labels() {
    let d = Daemon::start();
    let since = now_nanos();
    build(
        &d,
        "FROM scratch\nLABEL h5=yes name=lab\n",
        &["-t", "h5scratch:v1"],
    );
    d.ok(&["tag", "h5scratch:v1", "h5scratch:v2"]);
    let until = (now() + 1).to_string();
    let events = docker(
        &d,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{json .}}",
        ],
    );
    assert_eq!(events.code, 0, "{}", events.stderr);
    let events: Vec<serde_json::Value> = events
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary: Vec<String> = events
        .iter()
        .map(|e| format!("{} {}", e["Type"], e["Action"]))
        .collect();
    assert_eq!(
        summary,
        [
            r#""container" "create""#,
            r#""container" "destroy""#,
            r#""image" "tag""#,
            r#""image" "tag""#
        ],
        "{events:?}"
    );
    // What dockerd 20.10.24 sends for this build: a container on scratch has no `image`
    // attribute and no `from`; its name wins over a `name` label.
    for e in &events[..2] {
        assert!(e.get("from").is_none(), "{e}");
        let attrs = e["Actor"]["Attributes"].as_object().unwrap();
        assert_eq!(attrs.keys().collect::<Vec<_>>(), ["h5", "name"], "{e}");
        assert_ne!(attrs["name"], "lab");
    }
    // Image events carry the image's labels, then `name` (the tag) over a `name` label.
    assert_eq!(
        events[2]["Actor"]["Attributes"],
        serde_json::json!({"h5": "yes", "name": "h5scratch:v1"})
    );
    assert_eq!(
        events[3]["Actor"]["Attributes"],
        serde_json::json!({"h5": "yes", "name": "h5scratch:v2"})
    );
}
