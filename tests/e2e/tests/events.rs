//! `events`: history with --since/--until, filters, a live stream, and the docker CLI.

use berth_e2e::{eventually, Daemon};
use std::io::Read;
use std::process::Stdio;

fn unix_now() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// The events between `since` and now, formatted by `format`, through `client`.
fn history(d: &Daemon, client: &str, since: &str, extra: &[&str]) -> Vec<String> {
    let until = unix_now();
    let mut args = vec!["events", "--since", since, "--until", &until, "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"];
    args.extend_from_slice(extra);
    let r = if client == "docker" { d.docker(&args) } else { d.berth(&args) };
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout.lines().map(String::from).collect()
}

#[test]
fn lifecycle_events_are_recorded_and_filtered() {
    let d = Daemon::start();
    let t0 = unix_now();
    let id = d.ok(&["run", "-d", "--name", "ev1", "-l", "tier=front", "busybox", "sleep", "300"]);
    d.ok(&["stop", "-t", "0", "ev1"]);
    d.ok(&["rename", "ev1", "ev2"]);
    d.ok(&["rm", "ev2"]);
    d.ok(&["volume", "create", "evvol"]);
    d.ok(&["volume", "rm", "evvol"]);
    d.ok(&["tag", "busybox", "evimage:1"]);

    for client in ["berth", "docker"] {
        let all = history(&d, client, &t0, &[]);
        let expected = [
            "container create ev1",
            "network connect bridge",
            "container start ev1",
            "container kill ev1",
            "container kill ev1",
            "container die ev1",
            "network disconnect bridge",
            "container stop ev1",
            "container rename ev2",
            "container destroy ev2",
            "volume create <no value>",
            "volume destroy <no value>",
            "image tag evimage:1",
        ];
        assert_eq!(all, expected, "{client}");
        assert_eq!(history(&d, client, &t0, &["--filter", "event=die"]), ["container die ev1"]);
        assert_eq!(history(&d, client, &t0, &["--filter", "type=volume"]).len(), 2);
        assert_eq!(history(&d, client, &t0, &["--filter", "container=ev1", "--filter", "event=start"]), ["container start ev1"]);
        assert_eq!(history(&d, client, &t0, &["--filter", &format!("container={}", &id[..12]), "--filter", "event=create"]).len(), 1);
        assert_eq!(history(&d, client, &t0, &["--filter", "label=tier=front", "--filter", "event=start"]).len(), 1);
        assert_eq!(history(&d, client, &t0, &["--filter", "image=busybox", "--filter", "type=container"]).len(), 8);
    }

    // The default line: time, type, action, ID and the sorted attributes.
    let until = unix_now();
    let plain = d.ok(&["events", "--since", &t0, "--until", &until, "--filter", "event=die"]);
    assert!(
        plain.contains(&format!("container die {id} (exitCode=137, image=busybox, name=ev1, tier=front)")),
        "{plain}"
    );
    // `die` carries the exit code; the JSON has Docker's fields.
    let json = d.ok(&["events", "--since", &t0, "--until", &until, "--filter", "event=start", "--format", "{{json .}}"]);
    for field in ["\"status\":\"start\"", &format!("\"id\":\"{id}\""), "\"from\":\"busybox\"", "\"Type\":\"container\"", "\"scope\":\"local\"", "\"timeNano\":"] {
        assert!(json.contains(field), "{field} in {json}");
    }

    let r = d.berth(&["events", "--until", "0s", "--filter", "bogus=1"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("invalid filter 'bogus'"), "{}", r.stderr);
}

#[test]
fn events_stream_live() {
    let d = Daemon::start();
    // `--since`: events from before the subscription is registered are replayed, not lost.
    let since = unix_now();
    let mut follower = d
        .berth_cmd(&["events", "--since", &since, "--filter", "container=live", "--format", "{{.Action}}"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = follower.stdout.take().unwrap();
    assert_eq!(d.berth(&["run", "--name", "live", "busybox", "sh", "-c", "exit 3"]).code, 3);
    d.ok(&["run", "--name", "other", "busybox", "true"]);
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut buf = [0u8; 256];
        while !seen.contains("die") {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        seen
    });
    assert!(eventually(20, || reader.is_finished()), "no die event");
    let seen = reader.join().unwrap();
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(seen.starts_with("create\n"), "{seen}");
    assert!(seen.contains("start\n") && seen.contains("die"), "{seen}");
}
