//! Registries for the push and pull tests, each on a free loopback port with a root of its
//! own and stopped on drop: `berth registry serve` and Debian's `docker-registry`
//! (Distribution 2.8) with no auth, htpasswd basic auth or token auth; and the small TCP
//! servers the tests put in front of them (proxies, token servers).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::tempdir::TempDir;
use crate::{bin_dir, eventually, Daemon, Dockerd, Run};

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How a Distribution registry authenticates its clients.
pub enum Auth<'a> {
    None,
    /// htpasswd basic auth for one user.
    Basic {
        user: &'a str,
        password: &'a str,
    },
    /// Bearer tokens from `realm`, signed by the key of `cert`.
    Token {
        realm: &'a str,
        service: &'a str,
        issuer: &'a str,
        cert: &'a Path,
    },
}

/// A registry process on a loopback port, killed (and reaped) on drop. Its stderr goes to
/// `registry.log` in its directory.
pub struct Registry {
    pub addr: String,
    child: Child,
    _dir: TempDir,
}

impl Registry {
    /// `berth registry serve` with a fresh root.
    pub fn berth() -> Registry {
        let dir = TempDir::new();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(bin_dir().join("berth"));
        cmd.args(["registry", "serve", "--addr", &addr, "--root"])
            .arg(dir.path().join("root"));
        Registry::spawn(cmd, addr, dir, "berth registry serve")
    }

    /// Debian's docker-registry (Distribution 2.8) with a fresh root and `auth`.
    pub fn distribution(auth: Auth) -> Registry {
        let dir = TempDir::new();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("root").display()
        );
        match auth {
            Auth::None => {}
            Auth::Basic { user, password } => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, password])
                    .output()
                    .expect("htpasswd (apache2-utils)");
                assert!(out.status.success());
                std::fs::write(dir.path().join("htpasswd"), out.stdout).unwrap();
                config += &format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    dir.path().join("htpasswd").display()
                );
            }
            Auth::Token {
                realm,
                service,
                issuer,
                cert,
            } => {
                config += &format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                    cert.display()
                );
            }
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(dir.path().join("config.yml"));
        Registry::spawn(
            cmd,
            addr,
            dir,
            "docker-registry (scripts/deps.sh --test installs it)",
        )
    }

    fn spawn(mut cmd: Command, addr: String, dir: TempDir, what: &str) -> Registry {
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let r = Registry {
            addr,
            child,
            _dir: dir,
        };
        assert!(
            eventually(30, || TcpStream::connect(&r.addr).is_ok()),
            "{what} did not start on {}",
            r.addr
        );
        r
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback TCP server that hands every connection to `handle` on a thread of its own,
/// until dropped.
pub struct TcpServer {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl TcpServer {
    pub fn start(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> TcpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = Arc::new(handle);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handle = handle.clone();
                std::thread::spawn(move || handle(conn));
            }
        });
        TcpServer { addr, stop }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag and lets the listener go.
        let _ = TcpStream::connect(&self.addr);
    }
}

/// `berth ARGS` with a docker config directory (`DOCKER_CONFIG`).
pub fn berth_with_config(d: &Daemon, config: &Path, args: &[&str]) -> Run {
    d.berth_cmd(args)
        .env("DOCKER_CONFIG", config)
        .output()
        .expect("run berth")
        .into()
}

/// The docker CLI against a private dockerd with its own config directory.
pub fn docker_with_config(dockerd: &Dockerd, config: &Path, args: &[&str]) -> Run {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    dockerd.docker(&all)
}

/// Asserts that a CLI call succeeded, showing its output when it did not.
pub fn assert_ok(r: &Run, what: &str) {
    assert_eq!(r.code, 0, "{what} failed:\n{}{}", r.stdout, r.stderr);
}
