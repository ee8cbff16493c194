//! Attaching to containers: detaching with the detach keys and attaching again, several
//! clients at once, `start -ai`, detaching from `exec -it`, the daemon's own detach-key
//! watch, stdin that ends, signal proxying, and the errors. Terminal sessions are typed
//! through tmux as a person would, with the berth and the docker CLI.

use berth_e2e::{eventually, Daemon, Tmux};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A shell in tmux with the client pointed at the daemon, for typing CLI commands.
struct Term {
    tmux: Tmux,
    session: String,
}

impl Term {
    fn start(d: &Daemon, session: &str) -> Term {
        let tmux = Tmux::start(session, "bash --norc");
        let t = Term { tmux, session: session.to_string() };
        t.tmux.send(&format!("export BERTH_HOST={h} DOCKER_HOST={h} DOCKER_CONFIG={}", d.root.path().join("docker-config").display(), h = d.host()));
        t
    }

    /// Types a line.
    fn line(&self, text: &str) {
        self.tmux.send(text);
    }

    /// Presses keys (tmux key names such as `C-p`), without Enter.
    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux").args(["send-keys", "-t", &self.session]).args(keys).status().unwrap();
        assert!(status.success());
    }

    /// Waits until the screen shows `text`.
    fn expect(&self, text: &str) {
        assert!(eventually(15, || self.tmux.screen().contains(text)), "{text:?} not shown:\n{}", self.tmux.screen());
    }

    /// Types a command for the container's shell and waits for its output, which also
    /// tells that the client is attached (and its terminal raw, so keys pass unchanged).
    fn shell(&self, tag: &str) {
        self.line(&format!("echo {tag}-$((40+2))"));
        self.expect(&format!("{tag}-42"));
    }
}

/// The CLI binary for `client` ("berth" or "docker").
fn cli(client: &str) -> String {
    match client {
        "docker" => berth_e2e::docker_cli().display().to_string(),
        _ => berth_e2e::bin_dir().join("berth").display().to_string(),
    }
}

fn status(d: &Daemon, name: &str) -> String {
    d.ok(&["inspect", "-f", "{{.State.Status}}", name])
}

/// `run -it`, detach, attach again (twice), and the end of the container ends `attach`.
fn detach_and_reattach(client: &str) {
    let d = Daemon::start();
    let cli = cli(client);
    let name = format!("{client}-reattach");
    let t = Term::start(&d, &name);
    t.line(&format!("{cli} run -it --name {name} busybox sh; echo run-code=$?"));
    t.shell("first");
    t.keys(&["C-p", "C-q"]);
    // docker run says nothing on a detach, and exits 0.
    t.expect("run-code=0");
    assert!(!t.tmux.screen().contains("read escape sequence"), "{}", t.tmux.screen());
    assert_eq!(status(&d, &name), "running");

    for round in 1..=2 {
        t.line(&format!("clear; {cli} attach {name}; echo attach-code=$?"));
        t.shell(&format!("round{round}"));
        t.keys(&["C-p", "C-q"]);
        t.expect("read escape sequence");
        t.expect("attach-code=1");
        assert_eq!(status(&d, &name), "running");
    }

    t.line(&format!("clear; {cli} attach {name}; echo attach-code=$?"));
    t.shell("last");
    t.line("exit 4");
    t.expect("attach-code=4");
    assert_eq!(status(&d, &name), "exited");
}

#[test]
fn berth_detaches_and_reattaches() {
    detach_and_reattach("berth");
}

#[test]
fn docker_cli_detaches_and_reattaches() {
    detach_and_reattach("docker");
}

/// `--detach-keys`, and the config file's `detachKeys`: other keys pass through.
#[test]
fn custom_detach_keys() {
    let d = Daemon::start();
    let t = Term::start(&d, "keys");
    let berth = cli("berth");
    t.line(&format!("{berth} run -it --detach-keys=ctrl-a,x --name keys busybox sh; echo run-code=$?"));
    t.shell("one");
    // The default keys, and half of the custom ones, reach the shell.
    t.keys(&["C-p", "C-q", "C-a"]);
    t.shell("two");
    t.keys(&["C-a", "x"]);
    t.expect("run-code=0");
    assert_eq!(status(&d, "keys"), "running");

    let config = d.root.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"detachKeys": "ctrl-x,ctrl-y"}"#).unwrap();
    for client in ["berth", "docker"] {
        t.line(&format!("clear; {} attach keys; echo attach-code=$?", cli(client)));
        t.shell(client);
        t.keys(&["C-x", "C-y"]);
        t.expect("attach-code=1");
    }
    assert_eq!(status(&d, "keys"), "running");
}

/// `exec -it` detaches; the process runs on.
fn exec_detach(client: &str) {
    let d = Daemon::start();
    let name = format!("{client}-execdetach");
    d.ok(&["run", "-d", "--name", &name, "busybox", "sleep", "1000"]);
    let t = Term::start(&d, &name);
    t.line(&format!("{} exec -it {name} sh -c 'echo $$ > /exec.pid; exec sh'; echo exec-code=$?", cli(client)));
    t.shell("inexec");
    t.keys(&["C-p", "C-q"]);
    t.expect("read escape sequence");
    t.expect("exec-code=1");
    let pid = d.ok(&["exec", &name, "cat", "/exec.pid"]);
    assert!(d.berth(&["exec", &name, "kill", "-0", &pid]).code == 0, "the exec'd shell is gone");
}

#[test]
fn berth_exec_detaches() {
    exec_detach("berth");
}

#[test]
fn docker_cli_exec_detaches() {
    exec_detach("docker");
}

/// `start -ai` attaches again to a stopped `-it` container; detaching from it exits 0.
fn start_ai(client: &str) {
    let d = Daemon::start();
    let cli = cli(client);
    let name = format!("{client}-startai");
    let t = Term::start(&d, &name);
    t.line(&format!("{cli} run -it --name {name} busybox sh; echo run-code=$?"));
    t.shell("run");
    t.line("exit 3");
    t.expect("run-code=3");
    t.line(&format!("clear; {cli} start -ai {name}; echo start-code=$?"));
    t.shell("again");
    t.keys(&["C-p", "C-q"]);
    t.expect("start-code=0");
    assert_eq!(status(&d, &name), "running");
    d.ok(&["stop", "-t", "1", &name]);
    t.line(&format!("clear; {cli} start -ai {name}; echo start-code=$?"));
    t.shell("third");
    t.line("exit 6");
    t.expect("start-code=6");
}

#[test]
fn berth_start_ai_reattaches() {
    start_ai("berth");
}

#[test]
fn docker_cli_start_ai_reattaches() {
    start_ai("docker");
}

/// Two clients attached at once both see everything; one leaving does not end the other.
#[test]
fn two_clients_see_the_same_output() {
    let d = Daemon::start();
    d.ok(&["run", "-dit", "--name", "shared", "busybox", "sh"]);
    let a = Term::start(&d, "shared-a");
    let b = Term::start(&d, "shared-b");
    a.line(&format!("{} attach shared; echo a-code=$?", cli("berth")));
    a.shell("readya");
    b.line(&format!("{} attach shared; echo b-code=$?", cli("docker")));
    b.shell("readyb");
    // Each typed line is echoed by the container's terminal to every client.
    a.shell("froma");
    b.expect("froma-42");
    b.shell("fromb");
    a.expect("fromb-42");
    a.keys(&["C-p", "C-q"]);
    a.expect("a-code=1");
    b.shell("stillb");
    b.line("exit 2");
    b.expect("b-code=2");
}

/// Piped stdin reaches the container, and its end closes the container's stdin.
#[test]
fn piped_stdin_ends() {
    let d = Daemon::start();
    for client in ["berth", "docker"] {
        let mut child = Command::new(cli(client))
            .args(["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"])
            .env("BERTH_HOST", d.host())
            .env("DOCKER_HOST", d.host())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\ndone\n", "{client}");
        assert_eq!(out.status.code(), Some(0), "{client}");
    }
}

/// A raw API client: the request line and headers, then the hijacked stream.
fn hijack(d: &Daemon, method_path: &str, body: &str) -> UnixStream {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "{method_path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed in the headers");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads until `want` shows up in the stream; returns everything read.
fn read_until(s: &mut UnixStream, want: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(want.len()).any(|w| w == want) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended before {:?}: {:?}", String::from_utf8_lossy(want), String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    seen
}

/// Reads until the daemon ends the stream.
fn read_to_end(s: &mut UnixStream) {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("the daemon did not end the stream");
}

/// The daemon itself watches stdin for the keys given by any client: a partial sequence
/// passes through, the whole one ends the stream, and the container's stdin stays open.
#[test]
fn daemon_detaches_api_clients() {
    let d = Daemon::start();
    d.ok(&["run", "-dit", "--name", "raw", "busybox", "cat"]);
    let attach = "POST /v1.41/containers/raw/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-a,x";
    let mut s = hijack(&d, attach, "");
    s.write_all(b"ab\x01").unwrap();
    s.write_all(b"y\n").unwrap();
    // cat's copy of the line, after the terminal's echo of it.
    read_until(&mut s, b"ab\x01y\r\n");
    s.write_all(b"\x01x").unwrap();
    read_to_end(&mut s);
    assert_eq!(status(&d, "raw"), "running");
    let mut s = hijack(&d, attach, "");
    s.write_all(b"again\n").unwrap();
    read_until(&mut s, b"again\r\nagain\r\n");

    // An exec's keys are given when it is created, and shown base64-encoded, as Docker does.
    let create = r#"{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true,"DetachKeys":"ctrl-a,x","Cmd":["sh"]}"#;
    let out = Command::new("curl")
        .args(["-s", "--unix-socket", d.socket.to_str().unwrap(), "-H", "Content-Type: application/json", "-d", create])
        .arg("http://berth/v1.41/containers/raw/exec")
        .output()
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = created["Id"].as_str().unwrap().to_string();
    let mut s = hijack(&d, &format!("POST /v1.41/exec/{id}/start"), r#"{"Tty":true}"#);
    s.write_all(b"echo $((6*7))\n").unwrap();
    read_until(&mut s, b"42");
    s.write_all(b"\x01x").unwrap();
    read_to_end(&mut s);
    let inspect = Command::new("curl")
        .args(["-s", "--unix-socket", d.socket.to_str().unwrap()])
        .arg(format!("http://berth/v1.41/exec/{id}/json"))
        .output()
        .unwrap();
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Running"], true, "{inspect}");
    assert_eq!(inspect["DetachKeys"], "AXg=", "{inspect}");

    // Attaching and detaching with the keys are events, as in Docker.
    let until = format!("{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1);
    let events = d.ok(&["events", "--since", "0", "--until", &until, "--filter", "container=raw", "--format", "{{.Action}}"]);
    let actions: Vec<&str> = events.lines().filter(|a| a.contains("attach") || a.contains("detach")).collect();
    assert_eq!(actions, ["attach", "detach", "attach", "exec_detach"], "{events}");
}

/// Bad keys and bad targets get Docker's errors, and leave nothing behind.
#[test]
fn attach_errors() {
    let d = Daemon::start();
    d.ok(&["run", "-dit", "--name", "up", "busybox", "sh"]);
    d.ok(&["create", "--name", "idle", "busybox"]);

    let r = d.berth(&["run", "-i", "--detach-keys=foo", "--name", "never", "busybox"]);
    assert_eq!(r.code, 125, "{}", r.stderr);
    assert!(r.stderr.contains("Invalid detach keys (foo) provided"), "{}", r.stderr);
    assert!(d.berth(&["inspect", "never"]).code != 0, "run left a container behind");

    let r = d.berth(&["attach", "--no-stdin", "--detach-keys=ctrl-", "up"]);
    assert_eq!((r.code, r.stderr.trim()), (1, "Error response from daemon: Invalid detach keys (ctrl-) provided"));
    for r in [d.berth(&["exec", "--detach-keys=foo", "up", "true"]), d.docker(&["exec", "--detach-keys=foo", "up", "true"])] {
        assert_eq!((r.code, r.stderr.trim()), (1, "Error response from daemon: Invalid escape keys (foo) provided"));
    }

    for r in [d.berth(&["attach", "idle"]), d.docker(&["attach", "idle"])] {
        assert_eq!((r.code, r.stderr.trim()), (1, "You cannot attach to a stopped container, start it first"));
    }
    for r in [d.berth(&["attach", "nope"]), d.docker(&["attach", "nope"])] {
        assert_eq!((r.code, r.stderr.trim()), (1, "Error: No such container: nope"));
    }
    d.ok(&["pause", "up"]);
    for r in [d.berth(&["attach", "up"]), d.docker(&["attach", "up"])] {
        assert_eq!((r.code, r.stderr.trim()), (1, "You cannot attach to a paused container, unpause it first"));
    }
    d.ok(&["unpause", "up"]);
    // A TTY container needs a terminal to take our stdin.
    let r = d.berth(&["attach", "up"]);
    assert_eq!((r.code, r.stderr.trim()), (1, "the input device is not a TTY"));
}

/// The CLI's output, line by line, as it comes.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_for_line(rx: &std::sync::mpsc::Receiver<String>, want: &str) {
    loop {
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(line) if line == want => return,
            Ok(_) => {}
            Err(e) => panic!("no {want:?} line: {e}"),
        }
    }
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

const TRAPS: &str = "trap 'echo got USR1' USR1; trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done";

/// `run` and `attach` pass the signals they receive on to the container.
#[test]
fn signals_are_proxied() {
    let d = Daemon::start();
    let mut run = d.berth_cmd(&["run", "--name", "traps", "busybox", "sh", "-c", TRAPS]).stdout(Stdio::piped()).spawn().unwrap();
    let lines = lines_of(&mut run);
    wait_for_line(&lines, "ready");
    signal(&run, libc::SIGUSR1);
    wait_for_line(&lines, "got USR1");
    signal(&run, libc::SIGTERM);
    wait_for_line(&lines, "got TERM");
    assert_eq!(run.wait().unwrap().code(), Some(3));

    // attach, with the berth and the docker CLI.
    d.ok(&["run", "-d", "--name", "ticker", "busybox", "sh", "-c", "trap 'echo got USR1' USR1; while :; do echo tick; sleep 0.2; done"]);
    for client in ["berth", "docker"] {
        let mut attach = Command::new(cli(client))
            .args(["attach", "ticker"])
            .env("BERTH_HOST", d.host())
            .env("DOCKER_HOST", d.host())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(&mut attach);
        wait_for_line(&lines, "tick");
        signal(&attach, libc::SIGUSR1);
        wait_for_line(&lines, "got USR1");
        signal(&attach, libc::SIGKILL);
        let _ = attach.wait();
    }

    // Without the proxy the signal is the CLI's own: USR1 ends it, the container runs on.
    let mut run = d
        .berth_cmd(&["run", "--sig-proxy=false", "--name", "noproxy", "busybox", "sh", "-c", TRAPS])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut run);
    wait_for_line(&lines, "ready");
    signal(&run, libc::SIGUSR1);
    assert_eq!(run.wait().unwrap().signal(), Some(libc::SIGUSR1));
    assert_eq!(status(&d, "noproxy"), "running");
}

/// A client attached when berthd dies loses its session, not the container: with a TTY its
/// stdin stays open, and after a restart the container can be attached to again.
#[test]
fn reattach_after_daemon_restart() {
    let mut d = Daemon::start();
    let berth = cli("berth");
    let t = Term::start(&d, "restarted");
    t.line(&format!("{berth} run -it --name restarted busybox sh; echo run-code=$?"));
    t.shell("before");
    d.kill_daemon(libc::SIGKILL);
    t.expect("run-code=");
    d.spawn();
    assert_eq!(status(&d, "restarted"), "running");
    t.line(&format!("clear; {berth} attach restarted; echo attach-code=$?"));
    t.shell("after");
    t.line("exit 5");
    t.expect("attach-code=5");
}

/// The exec path installs the container's seccomp filter compiled once by the shim: an
/// exec'd process is refused what the profile refuses (a user namespace), as the
/// container's own process is, where the host allows it.
#[test]
fn exec_processes_get_the_containers_seccomp_filter() {
    let d = Daemon::start();
    let host = Command::new("unshare").args(["-U", "true"]).status().unwrap();
    assert!(host.success(), "this host refuses user namespaces: the test cannot tell");
    d.ok(&["run", "-d", "--name", "filtered", "busybox", "sleep", "1000"]);
    for _ in 0..2 {
        let r = d.berth(&["exec", "filtered", "unshare", "-U", "true"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("Operation not permitted"), "{}", r.stderr);
    }
    let r = d.berth(&["run", "--rm", "busybox", "unshare", "-U", "true"]);
    assert!(r.stderr.contains("Operation not permitted"), "{}", r.stderr);
    assert_eq!(d.ok(&["exec", "filtered", "sh", "-c", "echo $((6*7))"]), "42");
}
