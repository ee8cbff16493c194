//! Harness for the end-to-end tests: a real `berthd` on a throwaway socket, data root and
//! exec root, with the project's busybox image imported, driven by the `berth` binary or the
//! `docker` CLI. Dropping the daemon stops it and removes every container it left.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod net;
pub mod registry;

/// Where cargo put the workspace's binaries (`target/debug` unless overridden).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BERTH_BIN_DIR") {
        return dir.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug")
}

/// The repository root (for scripts/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running test daemon.
pub struct Daemon {
    pub root: tempdir::TempDir,
    pub socket: PathBuf,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// More berthd arguments, given on every (re)start.
    pub extra_args: Vec<String>,
    child: Option<Child>,
}

/// The outcome of a CLI call.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Daemon {
    /// Starts a daemon and imports busybox:latest into it.
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// Starts a daemon with more berthd arguments (e.g. `--config-file`), and imports
    /// busybox:latest into it.
    pub fn start_with(extra_args: &[&str]) -> Daemon {
        require_root();
        let root = tempdir::TempDir::new();
        let mut d = Daemon {
            socket: root.path().join("berth.sock"),
            data_root: root.path().join("data"),
            exec_root: root.path().join("run"),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            root,
            child: None,
        };
        d.spawn();
        let import = Command::new("bash")
            .arg(repo_root().join("scripts/import-busybox.sh"))
            .env("BERTH", bin_dir().join("berth"))
            .env("BERTH_HOST", d.host())
            .output()
            .expect("run import-busybox.sh");
        assert!(import.status.success(), "import failed: {}", String::from_utf8_lossy(&import.stderr));
        d
    }

    /// `unix://…` for BERTH_HOST / DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Starts (or restarts) the berthd process.
    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.root.path().join("berthd.log")).expect("log file");
        let child = Command::new(bin_dir().join("berthd"))
            .args(["-H", &self.host(), "--data-root"])
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn berthd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if answers_ping(&self.socket) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("berthd did not come up: {}", self.log());
    }

    /// Kills berthd with `signal` (containers keep running) and waits for it to go.
    pub fn kill_daemon(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, signal) };
            let _ = child.wait();
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("berthd.log")).unwrap_or_default()
    }

    /// Runs `berth ARGS` against this daemon.
    pub fn berth(&self, args: &[&str]) -> Run {
        self.berth_cmd(args).output().expect("run berth").into()
    }

    /// A `berth` command set up for this daemon, for custom stdin/stdout.
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin_dir().join("berth"));
        cmd.args(args).env("BERTH_HOST", self.host()).env_remove("DOCKER_HOST").stdin(Stdio::null());
        cmd
    }

    /// Runs the real `docker` CLI (Debian's docker.io) against this daemon.
    pub fn docker(&self, args: &[&str]) -> Run {
        let docker = docker_cli();
        Command::new(docker)
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.root.path().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
            .into()
    }

    /// `berth ARGS`, asserting success; returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.berth(args);
        assert_eq!(r.code, 0, "berth {args:?} failed: {}{}\n--- daemon log ---\n{}", r.stdout, r.stderr, self.log());
        r.stdout.trim().to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Remove what the test left, then stop the daemon.
        if self.child.is_some() {
            let ids = self.berth(&["ps", "-aq", "--no-trunc"]).stdout;
            for id in ids.split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]);
            }
        }
        self.kill_daemon(libc::SIGTERM);
        // Shims outlive daemons by design; end any this test left so nothing leaks.
        let containers = self.exec_root.join("containers");
        for entry in std::fs::read_dir(&containers).into_iter().flatten().flatten() {
            if let Ok(pid) = std::fs::read_to_string(entry.path().join("shim.pid")) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    // SAFETY: kill(2) of a shim this test's daemon started.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        unmount_below(self.root.path());
    }
}

/// Lazily unmounts every mount at or below `root`, deepest first: a shim killed above
/// cannot unmount its container's rootfs itself.
fn unmount_below(root: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut targets: Vec<&str> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|target| Path::new(target).starts_with(root))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for target in targets {
        let _ = Command::new("umount").arg("-l").arg(target).output();
    }
}

/// The docker CLI to compare with: Debian's docker.io client.
pub fn docker_cli() -> PathBuf {
    for candidate in ["/usr/bin/docker", "/usr/local/bin/docker"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("the docker CLI is missing: scripts/deps.sh --test installs docker.io");
}

/// These tests need root (namespaces, cgroups, mounts). Under CI they must fail, not skip.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the end-to-end tests need root");
}

/// Whether berthd answers `GET /_ping` on `socket`. Its sockets are bound (as dockerd's)
/// before the data root is opened and restored: a connection alone does not mean it is up,
/// while a request waits in the backlog until it is.
fn answers_ping(socket: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    let mut answer = [0u8; 12];
    s.write_all(b"GET /_ping HTTP/1.0\r\nHost: berthd\r\n\r\n").is_ok()
        && s.read(&mut answer).is_ok_and(|n| answer[..n].starts_with(b"HTTP/1."))
}

/// Polls `f` until it returns true, for up to `secs` seconds (state changes, not timing).
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A tmux session running one command, for terminal tests typed as a person would; torn
/// down on drop.
pub struct Tmux(String);

impl Tmux {
    pub fn start(name: &str, command: &str) -> Tmux {
        let _ = Command::new("tmux").args(["kill-session", "-t", name]).output();
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", name, "-x", "100", "-y", "30", command])
            .status()
            .expect("tmux is installed by scripts/deps.sh --test");
        assert!(ok.success());
        Tmux(name.to_string())
    }

    pub fn send(&self, keys: &str) {
        Command::new("tmux").args(["send-keys", "-t", &self.0, keys, "Enter"]).status().unwrap();
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux").args(["capture-pane", "-p", "-t", &self.0]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn resize(&self, cols: u16, rows: u16) {
        Command::new("tmux")
            .args(["resize-window", "-t", &self.0, "-x", &cols.to_string(), "-y", &rows.to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["kill-session", "-t", &self.0]).output();
    }
}

/// A minimal temporary directory (the harness avoids extra dependencies).
pub mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> TempDir {
            static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let path = std::env::temp_dir().join(format!("berth-e2e-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A private Docker Engine (Debian's docker.io) on its own socket and directories, for
/// interoperability tests; stopped and cleaned up on drop.
pub struct Dockerd {
    root: tempdir::TempDir,
    child: Child,
    bridge: String,
}

/// Creates the private dockerd's own default bridge, with an address outside Docker's and
/// berth's address pools. `--bridge none` would be simpler, but dockerd then deletes the
/// host's `docker0`, breaking the host's Docker.
fn private_bridge() -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pid = std::process::id();
    let name = format!("bdk{}x{n}", pid % 100_000);
    let subnet = format!("10.254.{}.1/24", (pid + n) % 250 + 1);
    for args in [
        vec!["link", "add", "name", &name, "type", "bridge"],
        vec!["addr", "add", &subnet, "dev", &name],
        vec!["link", "set", &name, "up"],
    ] {
        let status = Command::new("ip").args(&args).status().expect("ip");
        assert!(status.success(), "ip {args:?} failed");
    }
    name
}

impl Dockerd {
    pub fn start() -> Dockerd {
        require_root();
        let root = tempdir::TempDir::new();
        let log = std::fs::File::create(root.path().join("dockerd.log")).expect("dockerd log");
        let bridge = private_bridge();
        let child = Command::new("dockerd")
            .arg("-H")
            .arg(format!("unix://{}", root.path().join("docker.sock").display()))
            .arg("--data-root")
            .arg(root.path().join("data"))
            .arg("--exec-root")
            .arg(root.path().join("exec"))
            .arg("--pidfile")
            .arg(root.path().join("dockerd.pid"))
            .args(["--bridge", &bridge, "--iptables=false", "--ip6tables=false", "--ip-masq=false"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd (scripts/deps.sh --test installs docker.io)");
        let d = Dockerd { root, child, bridge };
        assert!(eventually(60, || d.docker(&["version"]).code == 0), "dockerd did not start");
        d
    }

    /// Runs the docker CLI against this dockerd.
    pub fn docker(&self, args: &[&str]) -> Run {
        let out = Command::new(docker_cli())
            .arg("-H")
            .arg(format!("unix://{}", self.root.path().join("docker.sock").display()))
            .args(args)
            .output()
            .expect("run docker");
        Run::from(out)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let ids = self.docker(&["ps", "-aq"]).stdout;
        for id in ids.split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        // SIGTERM lets dockerd stop its containerd; then whatever is left is unmounted.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        unmount_below(self.root.path());
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
    }
}

/// A shell loop printing `line-0` .. `line-{n-1}` (for log tests).
pub fn count_to(n: u32) -> String {
    format!("i=0; while [ $i -lt {n} ]; do echo line-$i; i=$((i+1)); done")
}

/// The numbers of `line-N` lines, checking they are consecutive.
pub fn consecutive(out: &str) -> Vec<u32> {
    let nums: Vec<u32> = out
        .lines()
        .map(|l| {
            l.strip_prefix("line-")
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected line {l:?}"))
        })
        .collect();
    for w in nums.windows(2) {
        assert_eq!(w[1], w[0] + 1, "lines out of order or missing: {nums:?}");
    }
    nums
}
