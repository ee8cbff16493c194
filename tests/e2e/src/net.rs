//! Set-up shared by the networking tests: web servers in busybox containers, requests to
//! them from other containers, and the host side of a bridge.

use std::fmt::Display;
use std::process::Command;

use crate::Daemon;

/// `docker ARGS` against `d`, asserting success; trimmed stdout.
pub fn dok(d: &Daemon, args: &[&str]) -> String {
    let r = d.docker(args);
    assert_eq!(
        r.code,
        0,
        "docker {args:?}: {}{}\n--- daemon log ---\n{}",
        r.stdout,
        r.stderr,
        d.log()
    );
    r.stdout.trim().to_string()
}

/// Starts busybox httpd serving `body` at /index.html; returns the container's ID.
pub fn web(d: &Daemon, extra: &[&str], body: &str) -> String {
    let script = format!("echo {body} > /tmp/index.html; exec httpd -f -p 80 -h /tmp");
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", &script]);
    dok(d, &args)
}

/// A shell line fetching /index.html from `host:port` with nc; prints the body's last line.
pub fn fetch_script(host: &str, port: impl Display) -> String {
    format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc -w 3 {host} {port} | tail -n 1")
}

/// `docker inspect -f FORMAT WHAT`, asserting success.
pub fn inspect(d: &Daemon, what: &str, format: &str) -> String {
    dok(d, &["inspect", "-f", format, what])
}

/// The host ends of veths enslaved to `bridge`.
pub fn ports_of(bridge: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show", "master", bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .collect()
}
