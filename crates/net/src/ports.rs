//! Host port reservations for published ports. Traffic reaches the container through DNAT
//! (see [`crate::nft`]); the daemon also binds each published port on the host and holds
//! the socket, so another program cannot take the port while it is published and a port
//! some program already holds is refused up front, with the error Docker's proxy gives.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A transport protocol a port can be published for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// `tcp`/`udp`; Docker also knows `sctp`, which berth does not publish.
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" | "" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// A bound host socket holding a port.
#[derive(Debug)]
pub struct Reservation(#[allow(dead_code)] OwnedFd);

/// Binds `ip:port` without SO_REUSEADDR (and, for TCP, without listening: the DNAT rule
/// catches connections before they could reach it). The error reads as Go's `net.Listen`
/// error does: `listen tcp4 0.0.0.0:8080: bind: address already in use`.
pub fn reserve(proto: Proto, ip: Ipv4Addr, port: u16) -> Result<Reservation, String> {
    let addr = SocketAddrV4::new(ip, port);
    let kind = match proto {
        Proto::Tcp => libc::SOCK_STREAM,
        Proto::Udp => libc::SOCK_DGRAM,
    };
    let fail = |e: io::Error| {
        let reason = e.to_string();
        let reason = reason
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_lowercase();
        format!("listen {}4 {addr}: bind: {reason}", proto.as_str())
    };
    // SAFETY: plain socket(2); the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sa is a valid sockaddr_in and its size is passed with it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    Ok(Reservation(fd))
}

/// The kernel's ephemeral port range, where Docker picks ports for `-p 80` and `-P`.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|n| n.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Whether something on the host already listens on `port` (used by tests and checks).
pub fn in_use(proto: Proto, ip: Ipv4Addr, port: u16) -> bool {
    match proto {
        Proto::Tcp => TcpListener::bind((ip, port)).is_err(),
        Proto::Udp => UdpSocket::bind((ip, port)).is_err(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_port_cannot_be_taken_and_is_freed_on_drop() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let err = reserve(Proto::Tcp, Ipv4Addr::LOCALHOST, port).unwrap_err();
        assert_eq!(
            err,
            format!("listen tcp4 127.0.0.1:{port}: bind: address already in use")
        );
        drop(held);
        let r = reserve(Proto::Tcp, Ipv4Addr::LOCALHOST, port).unwrap();
        assert!(in_use(Proto::Tcp, Ipv4Addr::LOCALHOST, port));
        drop(r);
        assert!(!in_use(Proto::Tcp, Ipv4Addr::LOCALHOST, port));
    }
}
