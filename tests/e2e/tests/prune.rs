//! `container prune` / `POST /containers/prune`, `system prune`, the `container`, `image`
//! and `system` management groups, `info --format` and `system df --format`. Expected texts
//! are what Docker 20.10 (dockerd and its CLI) prints for the same steps.

use berth_e2e::Daemon;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

/// `berth ARGS` with `input` on stdin (a prompt's answer): (exit code, stdout, stderr).
fn berth_with_input(d: &Daemon, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = d
        .berth_cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// `curl -X POST` to the daemon's API: (HTTP status, body).
fn api_post(d: &Daemon, path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            "-w",
            "\n%{http_code}",
            "--unix-socket",
            d.socket.to_str().unwrap(),
        ])
        .arg(format!("http://localhost/v1.41{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_string(), body.to_string())
}

/// A second from now, in unix seconds: an `--until` that ends the replay after what happened.
fn now_plus_one() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (now.as_secs() + 1).to_string()
}

fn ids(d: &Daemon, args: &[&str]) -> BTreeSet<String> {
    d.ok(args).lines().map(String::from).collect()
}

#[test]
fn container_prune_removes_stopped_containers_only_and_keeps_their_volumes() {
    let d = Daemon::start();
    let created = d.ok(&["create", "busybox", "true"]);
    d.ok(&[
        "run",
        "--name",
        "exited",
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "head -c 3000 /dev/zero > /x",
    ]);
    let exited = d.ok(&["inspect", "-f", "{{.Id}}", "exited"]);
    let running = d.ok(&["run", "-d", "busybox", "sleep", "300"]);
    let paused = d.ok(&["run", "-d", "busybox", "sleep", "300"]);
    d.ok(&["pause", &paused]);
    let volumes = d.ok(&["volume", "ls", "-q"]);
    assert_eq!(volumes.lines().count(), 1, "{volumes}");

    // Declined: nothing goes, and docker 20.10 still prints the zero total.
    let (code, out, _) = berth_with_input(&d, &["container", "prune"], "n\n");
    assert_eq!(code, 0);
    assert_eq!(out, "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] Total reclaimed space: 0B\n");
    assert_eq!(ids(&d, &["ps", "-aq", "--no-trunc"]).len(), 4);

    let (code, out, _) = berth_with_input(&d, &["container", "prune"], "y\n");
    assert_eq!(code, 0, "{out}");
    let body = out.strip_prefix("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ").unwrap();
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("Deleted Containers:"));
    let deleted: BTreeSet<String> = lines
        .by_ref()
        .take_while(|l| !l.is_empty())
        .map(String::from)
        .collect();
    assert_eq!(deleted, BTreeSet::from([created, exited]));
    // The exited container's writable layer held the 3000-byte file.
    let total = lines.next().unwrap();
    assert!(
        total.starts_with("Total reclaimed space: ") && total != "Total reclaimed space: 0B",
        "{total}"
    );
    assert_eq!(lines.next(), None);

    assert_eq!(
        ids(&d, &["ps", "-aq", "--no-trunc"]),
        BTreeSet::from([running.clone(), paused.clone()])
    );
    // Prune removes as a plain `rm` does: the anonymous volume stays.
    assert_eq!(d.ok(&["volume", "ls", "-q"]), volumes);

    // Nothing left to prune, from both CLIs.
    assert_eq!(
        d.berth(&["container", "prune", "-f"]).stdout,
        "Total reclaimed space: 0B\n"
    );
    let r = d.docker(&["container", "prune", "-f"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Total reclaimed space: 0B\n"),
        "{}",
        r.stderr
    );

    // Each prune is a `container prune` event with the bytes it reclaimed.
    let until = now_plus_one();
    let events = d.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "event=prune",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.reclaimed}}",
    ]);
    let events: Vec<&str> = events.lines().collect();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(
        events.iter().all(|e| e.starts_with("container prune ")),
        "{events:?}"
    );
    assert_eq!(events[1..], ["container prune 0", "container prune 0"]);
}

#[test]
fn container_prune_filters_and_errors_as_docker() {
    let d = Daemon::start();
    let a = d.ok(&["create", "--label", "team=a", "busybox", "true"]);
    let b = d.ok(&[
        "create", "--label", "team=b", "--label", "keep", "busybox", "true",
    ]);
    let c = d.ok(&["create", "busybox", "true"]);

    // A container created after `until` stays.
    let r = d.berth(&["container", "prune", "-f", "--filter", "until=2000-01-01"]);
    assert_eq!(r.stdout, "Total reclaimed space: 0B\n");
    assert_eq!(ids(&d, &["ps", "-aq", "--no-trunc"]).len(), 3);

    // `label!` spares what carries the label.
    let r = d.docker(&[
        "container",
        "prune",
        "-f",
        "--filter",
        "label!=keep",
        "--filter",
        "label=team",
    ]);
    assert_eq!(
        r.stdout,
        format!("Deleted Containers:\n{a}\n\nTotal reclaimed space: 0B\n"),
        "{}",
        r.stderr
    );
    let r = d.berth(&["container", "prune", "-f", "--filter", "label=team=b"]);
    assert_eq!(
        r.stdout,
        format!("Deleted Containers:\n{b}\n\nTotal reclaimed space: 0B\n")
    );
    assert_eq!(ids(&d, &["ps", "-aq", "--no-trunc"]), BTreeSet::from([c]));

    for (filter, msg) in [
        (
            "foo=bar",
            "Error response from daemon: Invalid filter 'foo'\n",
        ),
        (
            "until=xx",
            "Error response from daemon: failed to parse value as time or duration: \"xx\"\n",
        ),
    ] {
        let r = d.berth(&["container", "prune", "-f", "--filter", filter]);
        assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (1, "", msg));
        let r = d.docker(&["container", "prune", "-f", "--filter", filter]);
        assert_eq!((r.code, r.stderr.as_str()), (1, msg));
    }
    assert_eq!(d.ok(&["ps", "-aq"]).lines().count(), 1);
}

#[test]
fn prune_api_answers_as_docker() {
    let d = Daemon::start();
    assert_eq!(
        api_post(&d, "/containers/prune"),
        (
            "200".into(),
            r#"{"ContainersDeleted":null,"SpaceReclaimed":0}"#.into()
        )
    );
    let id = d.ok(&["create", "busybox", "true"]);
    let (code, body) = api_post(
        &d,
        "/containers/prune?filters=%7B%22label%22%3A%7B%22nope%22%3Atrue%7D%7D",
    );
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", r#"{"ContainersDeleted":null,"SpaceReclaimed":0}"#)
    );
    assert_eq!(
        api_post(&d, "/containers/prune"),
        (
            "200".into(),
            format!(r#"{{"ContainersDeleted":["{id}"],"SpaceReclaimed":0}}"#)
        )
    );
    assert_eq!(
        api_post(
            &d,
            "/containers/prune?filters=%7B%22foo%22%3A%7B%22a%22%3Atrue%7D%7D"
        ),
        ("400".into(), r#"{"message":"Invalid filter 'foo'"}"#.into())
    );
    // berthd keeps no build cache; its prune checks filters as Docker's does.
    assert_eq!(
        api_post(&d, "/build/prune"),
        (
            "200".into(),
            r#"{"CachesDeleted":null,"SpaceReclaimed":0}"#.into()
        )
    );
    assert_eq!(
        api_post(
            &d,
            "/build/prune?filters=%7B%22foo%22%3A%7B%22a%22%3Atrue%7D%7D"
        ),
        (
            "400".into(),
            r#"{"message":"failed to prune build cache: Invalid filter 'foo'"}"#.into()
        )
    );
}

#[test]
fn system_prune_prompts_and_removes_as_docker() {
    let d = Daemon::start();
    let (code, out, _) = berth_with_input(&d, &["system", "prune"], "n\n");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  \
         - all dangling images\n  - all dangling build cache\n\nAre you sure you want to continue? [y/N] "
    );
    let args = [
        "system",
        "prune",
        "-a",
        "--volumes",
        "--filter",
        "label=a10",
        "--filter",
        "label!=b",
        "--filter",
        "label=a9",
    ];
    let (_, out, _) = berth_with_input(&d, &args, "n\n");
    assert_eq!(
        out,
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  \
         - all volumes not used by at least one container\n  - all images without at least one container associated to them\n  \
         - all build cache\n\n  Items to be pruned will be filtered with:\n  - label!=b\n  - label=a9\n  - label=a10\n\n\
         Are you sure you want to continue? [y/N] "
    );
    let r = d.berth(&["system", "prune", "--volumes", "--filter", "until=1h"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (
            1,
            "",
            "ERROR: The \"until\" filter is not supported with \"--volumes\"\n"
        )
    );

    let keep = d.ok(&["run", "-d", "busybox", "sleep", "300"]);
    let gone = d.ok(&["create", "-v", "vol1:/v", "busybox", "true"]);
    d.ok(&["network", "create", "pnet"]);
    d.ok(&["tag", "busybox", "bb:pruned"]);
    let r = d.berth(&["system", "prune", "-f", "-a", "--volumes"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!(
            "Deleted Containers:\n{gone}\n\nDeleted Networks:\npnet\n\nDeleted Volumes:\nvol1\n\n\
             Deleted Images:\nuntagged: bb:pruned\n\nTotal reclaimed space: 0B\n"
        )
    );
    assert_eq!(d.ok(&["ps", "-aq", "--no-trunc"]), keep);
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest"
    );

    // The docker CLI's system prune (which ends with the build cache) against berthd.
    d.ok(&["create", "busybox", "true"]);
    let r = d.docker(&["system", "prune", "-f"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("Deleted Containers:\n")
            && r.stdout.ends_with("\n\nTotal reclaimed space: 0B\n"),
        "{}",
        r.stdout
    );
}

#[test]
fn management_groups_reach_the_commands() {
    let d = Daemon::start();
    let id = d.ok(&["container", "create", "--name", "grp", "busybox", "true"]);
    assert_eq!(d.ok(&["container", "ls", "-aq", "--no-trunc"]), id);
    assert_eq!(d.ok(&["container", "list", "-aq", "--no-trunc"]), id);
    assert_eq!(d.ok(&["container", "ps", "-aq", "--no-trunc"]), id);
    assert_eq!(
        d.ok(&["container", "inspect", "-f", "{{.Name}}", "grp"]),
        "/grp"
    );
    // `container inspect` looks at containers only.
    for cli in ["berth", "docker"] {
        let r = if cli == "berth" {
            d.berth(&["container", "inspect", "busybox"])
        } else {
            d.docker(&["container", "inspect", "busybox"])
        };
        assert_eq!(
            (r.code, r.stdout.as_str(), r.stderr.as_str()),
            (1, "[]\n", "Error: No such container: busybox\n"),
            "{cli}"
        );
    }
    d.ok(&["container", "start", "-a", "grp"]);
    assert_eq!(d.ok(&["container", "wait", "grp"]), "0");
    assert_eq!(d.ok(&["container", "rm", "grp"]), "grp");

    // `image save` / `image load` round-trip through the group.
    let dir = berth_e2e::tempdir::TempDir::new();
    let tar = dir.path().join("bb.tar");
    d.ok(&["image", "tag", "busybox", "bb:grp"]);
    d.ok(&["image", "save", "-o", tar.to_str().unwrap(), "bb:grp"]);
    d.ok(&["image", "rm", "bb:grp"]);
    assert_eq!(
        d.ok(&["image", "load", "-i", tar.to_str().unwrap()]),
        "Loaded image: bb:grp"
    );

    let r = d.berth(&["system", "info", "--format", "{{.ServerVersion}}"]);
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout,
        d.berth(&["info", "--format", "{{.ServerVersion}}"]).stdout
    );
    let events = d.ok(&[
        "system",
        "events",
        "--since",
        "0",
        "--until",
        &now_plus_one(),
        "--filter",
        "event=tag",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(events, "tag\ntag");
}

#[test]
fn info_and_df_formats_as_docker() {
    let d = Daemon::start();
    d.ok(&["create", "busybox", "true"]);
    // Each template's output from berth and from docker 20.10's CLI, same daemon.
    for format in [
        "{{.Containers}} {{.ContainersStopped}} {{.Driver}} {{.ClientInfo.Context}} {{.ClientInfo.Debug}}",
        "{{.Swarm.LocalNodeState}}|{{.RegistryConfig}}|{{.HTTPProxy}}|{{.Warnings}}|{{.Runtimes}}",
        "{{json .ClientInfo}}",
    ] {
        let (b, k) = (d.berth(&["info", "--format", format]), d.docker(&["info", "--format", format]));
        assert_eq!((b.code, &b.stdout), (k.code, &k.stdout), "{format}: {}", k.stderr);
    }
    assert_eq!(d.ok(&["info", "--format", "{{.Containers}}"]), "1");
    let r = d.berth(&["info", "--format", "{{.Foo}}"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, "\n"));
    assert_eq!(
        r.stderr,
        "template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo in type system.info\n"
    );
    let r = d.berth(&["info", "--format", "{{"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            64,
            "template parsing error: template: :1: unclosed action\n"
        )
    );

    for format in [
        "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}",
        "table {{.Type}}\\t{{.Size}}",
        "{{json .}}",
        "table",
        "raw",
        "json",
    ] {
        let (b, k) = (
            d.berth(&["system", "df", "--format", format]),
            d.docker(&["system", "df", "--format", format]),
        );
        assert_eq!(
            (b.code, &b.stdout),
            (k.code, &k.stdout),
            "{format}: {}",
            k.stderr
        );
    }
    assert_eq!(
        d.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]),
        "Images 1\nContainers 1\nLocal Volumes 0\nBuild Cache 0"
    );
    for format in ["{{.Foo}}", "{{"] {
        let (b, k) = (
            d.berth(&["system", "df", "--format", format]),
            d.docker(&["system", "df", "--format", format]),
        );
        assert_eq!(
            (b.code, &b.stdout, &b.stderr),
            (k.code, &k.stdout, &k.stderr),
            "{format}"
        );
    }
}
