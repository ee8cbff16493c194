//! dockerd's syslog log driver: each line of output becomes one message, formatted as
//! dockerd's syslog library (srslog) formats it, sent on a non-blocking socket.
//!
//! The shim's poll loop must never wait on a syslog server: datagrams the socket cannot take
//! now are dropped, and a stream socket keeps at most `MAX_PENDING` bytes for later (the rest
//! is dropped) and sends them before the next message.

use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Duration;

use crate::protocol::SyslogTarget;

/// Bytes a stream socket may hold back while the server is not reading.
const MAX_PENDING: usize = 1 << 20;
/// How long the shim waits for a TCP server to accept, at start only.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Where srslog looks for the local syslog daemon when no address is given.
const LOCAL_SOCKETS: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];

/// syslog severities dockerd uses: stdout is `info`, stderr `err`.
const SEVERITY_INFO: u8 = 6;
const SEVERITY_ERR: u8 = 3;

enum Conn {
    Datagram(UnixDatagram),
    Udp(UdpSocket),
    Stream(Box<dyn Write>),
}

/// A connected syslog writer.
pub struct Syslog {
    conn: Conn,
    target: SyslogTarget,
    hostname: String,
    pid: u32,
    /// Bytes of a stream socket not sent yet.
    pending: Vec<u8>,
}

impl Syslog {
    /// Connects as dockerd does at container start; the error reads like Go's dial errors.
    pub fn connect(target: &SyslogTarget) -> io::Result<Syslog> {
        let conn = match target.network.as_str() {
            "" => local_conn()?,
            network => dial(network, &target.address).map_err(|e| {
                // Go's words: `dial unixgram /dev/log: connect: connection refused`.
                let why = match e.raw_os_error() {
                    Some(n) => format!(
                        "connect: {}",
                        nix::errno::Errno::from_raw(n).desc().to_lowercase()
                    ),
                    None => e.to_string(),
                };
                io::Error::new(
                    e.kind(),
                    format!("dial {network} {}: {why}", target.address),
                )
            })?,
        };
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        Ok(Syslog {
            conn,
            target: target.clone(),
            hostname,
            pid: std::process::id(),
            pending: Vec::new(),
        })
    }

    /// Sends one line (without its newline) from `stream`. Never blocks.
    pub fn send(&mut self, stream: &str, line: &[u8]) -> io::Result<()> {
        let severity = if stream == "stderr" {
            SEVERITY_ERR
        } else {
            SEVERITY_INFO
        };
        let mut msg = format_message(
            &self.target,
            self.target.facility | severity,
            &self.hostname,
            self.pid,
            &String::from_utf8_lossy(line),
            chrono::Local::now(),
        );
        // srslog ends every message with a newline.
        if !msg.ends_with('\n') {
            msg.push('\n');
        }
        match &mut self.conn {
            Conn::Datagram(s) => ignore_full(s.send(msg.as_bytes())),
            Conn::Udp(s) => ignore_full(s.send(msg.as_bytes())),
            Conn::Stream(s) => {
                flush_pending(s.as_mut(), &mut self.pending)?;
                if self.pending.is_empty() {
                    let n = match s.write(msg.as_bytes()) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                        Err(e) => return Err(e),
                    };
                    keep_bounded(&mut self.pending, &msg.as_bytes()[n..]);
                } else {
                    keep_bounded(&mut self.pending, msg.as_bytes());
                }
                Ok(())
            }
        }
    }
}

/// A datagram the socket has no room for is dropped, as is one nobody listens to any more.
fn ignore_full(r: io::Result<usize>) -> io::Result<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionRefused
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Sends what the stream socket takes of `pending` now.
fn flush_pending(s: &mut dyn Write, pending: &mut Vec<u8>) -> io::Result<()> {
    while !pending.is_empty() {
        match s.write(pending) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                pending.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Keeps `bytes` for later, unless that would pass the bound: then the message is dropped
/// whole, so the stream never carries half a message.
fn keep_bounded(pending: &mut Vec<u8>, bytes: &[u8]) {
    if pending.len() + bytes.len() <= MAX_PENDING || pending.is_empty() {
        pending.extend_from_slice(bytes);
    }
}

fn dial(network: &str, address: &str) -> io::Result<Conn> {
    Ok(match network {
        "unixgram" => {
            let s = UnixDatagram::unbound()?;
            s.connect(address)?;
            s.set_nonblocking(true)?;
            Conn::Datagram(s)
        }
        "unix" => {
            let s = UnixStream::connect(address)?;
            s.set_nonblocking(true)?;
            Conn::Stream(Box::new(s))
        }
        "udp" => {
            let addr = resolve(address)?;
            let s = UdpSocket::bind(if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            })?;
            s.connect(addr)?;
            s.set_nonblocking(true)?;
            Conn::Udp(s)
        }
        "tcp" => {
            let s = TcpStream::connect_timeout(&resolve(address)?, CONNECT_TIMEOUT)?;
            s.set_nonblocking(true)?;
            Conn::Stream(Box::new(s))
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("berth does not support syslog over {other} yet"),
            ))
        }
    })
}

fn resolve(address: &str) -> io::Result<std::net::SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
}

/// srslog's `unixSyslog`: the first local socket that takes a datagram or stream connection.
fn local_conn() -> io::Result<Conn> {
    for path in LOCAL_SOCKETS {
        for network in ["unixgram", "unix"] {
            if let Ok(c) = dial(network, path) {
                return Ok(c);
            }
        }
    }
    Err(io::Error::other("Unix syslog delivery error"))
}

/// One message as srslog's formatters (and dockerd's rfc5424 ones, which put the tag in the
/// app-name too) write it, without the trailing newline.
fn format_message(
    target: &SyslogTarget,
    priority: u8,
    hostname: &str,
    pid: u32,
    content: &str,
    now: chrono::DateTime<chrono::Local>,
) -> String {
    let tag = &target.tag;
    match target.format.as_str() {
        "rfc3164" => format!(
            "<{priority}>{} {hostname} {tag}[{pid}]: {content}",
            now.format("%b %e %H:%M:%S")
        ),
        "rfc5424" | "rfc5424micro" => {
            let secs = if target.format == "rfc5424" {
                "%Y-%m-%dT%H:%M:%S"
            } else {
                "%Y-%m-%dT%H:%M:%S%.6f"
            };
            // Go's time format writes `Z` for UTC, an offset otherwise.
            let zone = if now.offset().local_minus_utc() == 0 {
                "Z".to_string()
            } else {
                now.format("%:z").to_string()
            };
            format!(
                "<{priority}>1 {}{zone} {hostname} {tag} {pid} {tag} - {content}",
                now.format(secs)
            )
        }
        // dockerd's default: srslog's UnixFormatter, which leaves the hostname out.
        _ => format!(
            "<{priority}>{} {tag}[{pid}]: {content}",
            now.format("%b %e %H:%M:%S")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn target(format: &str) -> SyslogTarget {
        SyslogTarget {
            network: "udp".into(),
            address: "127.0.0.1:514".into(),
            facility: 3 << 3,
            format: format.into(),
            tag: "0123456789ab".into(),
        }
    }

    #[test]
    fn formats_as_srslog() {
        let now = chrono::Local.with_ymd_and_hms(2026, 3, 5, 7, 8, 9).unwrap();
        let msg = |f: &str| format_message(&target(f), 30, "host", 42, "hi there", now);
        let stamp = now.format("%b %e %H:%M:%S").to_string();
        assert!(stamp.starts_with("Mar  5 "), "{stamp}");
        assert_eq!(msg(""), format!("<30>{stamp} 0123456789ab[42]: hi there"));
        assert_eq!(
            msg("rfc3164"),
            format!("<30>{stamp} host 0123456789ab[42]: hi there")
        );
        let m = msg("rfc5424");
        assert!(m.starts_with("<30>1 2026-03-05T07:08:09"), "{m}");
        assert!(
            m.ends_with(" host 0123456789ab 42 0123456789ab - hi there"),
            "{m}"
        );
        assert!(msg("rfc5424micro").starts_with("<30>1 2026-03-05T07:08:09.000000"));
    }

    #[test]
    fn a_stalled_datagram_reader_never_blocks_the_writer() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("log.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut t = target("");
        t.network = "unixgram".into();
        t.address = path.to_string_lossy().into_owned();
        let mut log = Syslog::connect(&t).unwrap();
        log.send("stderr", b"first").unwrap();
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with("<27>"), "{got}");
        assert!(got.ends_with("]: first\n"), "{got}");
        // Nobody reads from here on: the socket's queue fills, and sends go on returning.
        for _ in 0..10_000 {
            log.send("stdout", b"more").unwrap();
        }
    }

    #[test]
    fn a_stalled_stream_reader_keeps_a_bounded_backlog() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = target("rfc3164");
        t.network = "tcp".into();
        t.address = listener.local_addr().unwrap().to_string();
        let mut log = Syslog::connect(&t).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let line = vec![b'x'; 1000];
        for _ in 0..20_000 {
            log.send("stdout", &line).unwrap();
        }
        assert!(log.pending.len() <= MAX_PENDING);
    }
}
