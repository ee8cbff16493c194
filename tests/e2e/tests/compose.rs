//! Docker Compose (Debian's docker-compose 1.29, on docker-py) against berthd: a web
//! service serving a file from a named volume on a user network, a client fetching it by
//! service name, and the commands a Compose user runs, down to `down -v` leaving nothing.

use berth_e2e::{eventually, Daemon, Run};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

const PROJECT: &str = "berthcompose";

/// `${PORT}` is filled with a free loopback port, so parallel runs do not collide.
const COMPOSE_FILE: &str = r#"version: "3.8"
services:
  web:
    image: busybox:latest
    command: ["sh", "-c", "echo hello-from-volume > /www/index.html && exec httpd -f -p 8080 -h /www"]
    volumes:
      - www:/www
    networks:
      - back
    ports:
      - "127.0.0.1:${PORT}:8080"
    environment:
      GREETING: hi
    restart: unless-stopped
    labels:
      berth.test.role: server
  client:
    image: busybox:latest
    command: ["sh", "-c", "while true; do wget -q -O - http://web:8080/index.html; sleep 1; done"]
    depends_on:
      - web
    networks:
      - back
    environment:
      - TARGET=web
    restart: on-failure
    labels:
      berth.test.role: client
networks:
  back:
    labels:
      berth.test.net: "yes"
volumes:
  www:
    labels:
      berth.test.vol: "yes"
"#;

/// Where docker-compose is, or None (then the test skips, except under CI).
fn docker_compose() -> Option<PathBuf> {
    let found = ["/usr/bin/docker-compose", "/usr/local/bin/docker-compose"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "docker-compose is missing: scripts/deps.sh --test installs it"
        );
        eprintln!("skipping: docker-compose is not installed (scripts/deps.sh --test installs it)");
    }
    found
}

struct Compose<'a> {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    d: &'a Daemon,
}

impl Compose<'_> {
    /// `docker-compose -p PROJECT ARGS` in the project directory, against the test daemon.
    /// `run` shells out to the docker CLI, which finds the daemon the same way.
    fn run(&self, args: &[&str]) -> Run {
        Command::new(&self.bin)
            .args(["-p", PROJECT])
            .args(args)
            .current_dir(&self.dir)
            .env("DOCKER_HOST", self.d.host())
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("PORT", self.port.to_string())
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .stdin(Stdio::null())
            .output()
            .expect("run docker-compose")
            .into()
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code,
            0,
            "docker-compose {args:?}: {}{}\n--- daemon log ---\n{}",
            r.stdout,
            r.stderr,
            self.d.log()
        );
        r
    }

    /// `ps`'s rows (after the header and rule), each as its whitespace-separated words.
    fn ps_rows(&self) -> Vec<Vec<String>> {
        let out = self.ok(&["ps"]).stdout;
        out.lines()
            .skip(2)
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    }

    /// The state word (`Up`, `Exit`, …) of each container `ps` lists, by name: the
    /// (truncated) commands here hold none of those words.
    fn states(&self) -> Vec<(String, String)> {
        const STATES: &[&str] = &["Up", "Exit", "Paused", "Restarting"];
        self.ps_rows()
            .into_iter()
            .map(|row| {
                let state = row
                    .iter()
                    .find(|w| STATES.contains(&w.as_str()))
                    .cloned()
                    .unwrap_or_default();
                (row[0].clone(), state)
            })
            .collect()
    }
}

/// A port nothing listens on now (the kernel picks it; released before Compose asks).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// GET `path` from 127.0.0.1:`port`, returning the whole response, or None on any failure.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Compose's progress line `VERB NAME ... done` (names padded to the longest).
fn reported_done(stderr: &str, verb: &str, name: &str) -> bool {
    stderr.lines().any(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words == [verb, name, "...", "done"]
    })
}

fn inspect(d: &Daemon, kind: &str, name: &str) -> serde_json::Value {
    let out = d.ok(&[kind, "inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect JSON");
    v[0].clone()
}

#[test]
fn compose_project_runs_and_goes_away() {
    let Some(bin) = docker_compose() else { return };
    let d = Daemon::start();
    let dir = d.root.path().join("project");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), COMPOSE_FILE).unwrap();
    let c = Compose {
        bin,
        dir,
        port: free_port(),
        d: &d,
    };
    let web = format!("{PROJECT}_web_1");
    let client = format!("{PROJECT}_client_1");

    let up = c.ok(&["up", "-d"]);
    assert!(
        up.stderr
            .contains(&format!("Creating network \"{PROJECT}_back\"")),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains(&format!("Creating {web} ... done")),
        "{}",
        up.stderr
    );
    // The client is number 1 of its service: Compose counted only the client's containers
    // (all label filters hold together, as dockerd applies them).
    assert!(
        up.stderr.contains(&format!("Creating {client} ... done")),
        "{}",
        up.stderr
    );
    // Unchanged: nothing is recreated (the config-hash label came back as sent).
    let again = c.ok(&["up", "-d"]);
    assert!(
        again.stderr.contains(&format!("{web} is up-to-date")),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains(&format!("{client} is up-to-date")),
        "{}",
        again.stderr
    );

    // ps: exactly the two containers, running, with the published port.
    let rows = c.ps_rows();
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(names, [client.as_str(), web.as_str()], "{rows:?}");
    let port = format!("127.0.0.1:{}->8080/tcp", c.port);
    assert_eq!(
        rows[1].last().map(String::as_str),
        Some(port.as_str()),
        "{rows:?}"
    );
    assert_eq!(
        c.states(),
        [
            (client.clone(), "Up".to_string()),
            (web.clone(), "Up".to_string())
        ]
    );

    // The client reached the web service by name over the user network...
    let fetched = || {
        c.ok(&["logs", "--no-color", "client"])
            .stdout
            .contains("client_1  | hello-from-volume")
    };
    assert!(
        eventually(30, fetched),
        "{}",
        c.run(&["logs", "--no-color"]).stdout
    );
    // ...and the published port reaches it from the host.
    assert!(eventually(10, || http_get(c.port, "/index.html")
        .is_some_and(|r| r.ends_with("hello-from-volume\n"))));

    // What Compose stored comes back: labels, network and volume labels, aliases, hostname.
    let w = inspect(&d, "container", &web);
    let labels = &w["Config"]["Labels"];
    assert_eq!(labels["com.docker.compose.project"], PROJECT);
    assert_eq!(labels["com.docker.compose.service"], "web");
    assert_eq!(labels["com.docker.compose.container-number"], "1");
    assert_eq!(labels["berth.test.role"], "server");
    let id = w["Id"].as_str().unwrap();
    assert_eq!(w["Config"]["Hostname"], &id[..12]);
    assert_eq!(w["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
    let aliases = &w["NetworkSettings"]["Networks"][format!("{PROJECT}_back")]["Aliases"];
    assert!(
        aliases
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "web")),
        "{aliases}"
    );
    let net = inspect(&d, "network", &format!("{PROJECT}_back"));
    assert_eq!(net["Labels"]["com.docker.compose.network"], "back");
    assert_eq!(net["Labels"]["berth.test.net"], "yes");
    assert_eq!(net["Attachable"], true);
    let vol = inspect(&d, "volume", &format!("{PROJECT}_www"));
    assert_eq!(vol["Labels"]["com.docker.compose.volume"], "www");
    assert_eq!(vol["Labels"]["berth.test.vol"], "yes");

    // exec -T: the service's environment and hostname; the command's exit code.
    let r = c.ok(&[
        "exec",
        "-T",
        "web",
        "sh",
        "-c",
        "echo $GREETING; hostname; cat /www/index.html",
    ]);
    assert_eq!(r.stdout, format!("hi\n{}\nhello-from-volume\n", &id[..12]));
    assert_eq!(c.run(&["exec", "-T", "web", "sh", "-c", "exit 3"]).code, 3);

    // run --rm: a one-off container on the same network, gone afterwards.
    let r = c.ok(&[
        "run",
        "--rm",
        "client",
        "wget",
        "-q",
        "-O",
        "-",
        "http://web:8080/index.html",
    ]);
    assert_eq!(r.stdout, "hello-from-volume\n", "{}", r.stderr);
    let r = c.run(&[
        "run",
        "--rm",
        "-T",
        "client",
        "sh",
        "-c",
        "echo $TARGET; exit 4",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (4, "web\n"), "{}", r.stderr);
    assert_eq!(
        d.ok(&["ps", "-aq"]).lines().count(),
        2,
        "{}",
        d.ok(&["ps", "-a"])
    );

    // stop, start, restart.
    let r = c.ok(&["stop"]);
    assert!(reported_done(&r.stderr, "Stopping", &web), "{}", r.stderr);
    assert!(
        c.states().iter().all(|(_, s)| s == "Exit"),
        "{:?}",
        c.states()
    );
    let r = c.ok(&["start"]);
    assert!(reported_done(&r.stderr, "Starting", "web"), "{}", r.stderr);
    assert!(
        c.states().iter().all(|(_, s)| s == "Up"),
        "{:?}",
        c.states()
    );
    let r = c.ok(&["restart", "web"]);
    assert!(reported_done(&r.stderr, "Restarting", &web), "{}", r.stderr);
    assert!(eventually(10, || http_get(c.port, "/index.html")
        .is_some_and(|r| r.ends_with("hello-from-volume\n"))));

    // down -v: no container, network or volume is left.
    let r = c.ok(&["down", "-v"]);
    assert!(
        r.stderr.contains(&format!("Removing volume {PROJECT}_www")),
        "{}",
        r.stderr
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert!(!d
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .contains(PROJECT));
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
}
