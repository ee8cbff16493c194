//! `-H`/`--host` values parsed as dockerd 20.10's `opts.ParseHost` parses them, with its
//! error messages (scripts and tests grep them).

/// One address to listen on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A UNIX socket path.
    Unix(std::path::PathBuf),
    /// `host:port` for TCP (`localhost` when the host was left out, as dockerd).
    Tcp(String),
    /// A systemd-activated socket (`fd://` or `fd://N`).
    Fd(String),
}

/// dockerd's default when only a port or nothing is given after `tcp://`.
const DEFAULT_TCP_HOST: &str = "localhost";
const DEFAULT_TCP_PORT: &str = "2375";

/// Parses one `-H` value; `default_socket` is what a bare `unix://` means.
pub fn parse_host(value: &str, default_socket: &str) -> Result<Host, String> {
    let value = value.trim();
    let (proto, addr) = match value.split_once("://") {
        Some((p, a)) => (p, a),
        // A bare address is TCP, as in dockerd.
        None if !value.is_empty() => ("tcp", value),
        None => ("", ""),
    };
    match proto {
        "tcp" => parse_tcp(addr, value).map(Host::Tcp),
        "unix" => {
            if addr.contains("://") {
                return Err(format!("Invalid proto, expected unix: {addr}"));
            }
            let path = if addr.is_empty() {
                default_socket
            } else {
                addr
            };
            Ok(Host::Unix(path.into()))
        }
        "fd" => Ok(Host::Fd(addr.to_string())),
        _ => Err(format!("Invalid bind address format: {value}")),
    }
}

/// dockerd's `ParseTCPAddr`: fills in `localhost` and port 2375.
fn parse_tcp(addr: &str, original: &str) -> Result<String, String> {
    if addr.is_empty() {
        return Ok(format!("{DEFAULT_TCP_HOST}:{DEFAULT_TCP_PORT}"));
    }
    if addr.contains("://") {
        return Err(format!("Invalid proto, expected tcp: {original}"));
    }
    // A path after the address is kept by dockerd for the client's sake; a listener ignores it.
    let authority = addr.split('/').next().unwrap_or_default();
    let (host, port) = split_host_port(authority)
        .ok_or_else(|| format!("Invalid bind address format: {original}"))?;
    if !port.is_empty() && !port.bytes().all(|b| b.is_ascii_digit()) {
        // Go's url.Parse rejects it first, with these words.
        return Err(format!(
            "parse \"tcp://{addr}\": invalid port \":{port}\" after host"
        ));
    }
    let host = if host.is_empty() {
        DEFAULT_TCP_HOST
    } else {
        host
    };
    let port = if port.is_empty() {
        DEFAULT_TCP_PORT
    } else {
        port
    };
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Splits `host:port`, `[v6]:port`, `host` or `[v6]` (no port: empty).
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, "")),
            _ => Some((host, after.strip_prefix(':')?)),
        };
    }
    match s.rsplit_once(':') {
        Some((h, _)) if h.contains(':') => None,
        Some((h, p)) => Some((h, p)),
        None => Some((s, "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(s: &str) -> Result<Host, String> {
        parse_host(s, "/run/berth.sock")
    }

    #[test]
    fn tcp_hosts_get_dockerds_defaults() {
        assert_eq!(
            tcp("tcp://127.0.0.1:2376"),
            Ok(Host::Tcp("127.0.0.1:2376".into()))
        );
        assert_eq!(tcp("tcp://:2376"), Ok(Host::Tcp("localhost:2376".into())));
        assert_eq!(
            tcp("tcp://127.0.0.1"),
            Ok(Host::Tcp("127.0.0.1:2375".into()))
        );
        assert_eq!(tcp("tcp://"), Ok(Host::Tcp("localhost:2375".into())));
        assert_eq!(tcp("127.0.0.1:99"), Ok(Host::Tcp("127.0.0.1:99".into())));
        assert_eq!(tcp("tcp://[::1]:5"), Ok(Host::Tcp("[::1]:5".into())));
    }

    #[test]
    fn unix_and_fd_hosts() {
        assert_eq!(tcp("unix:///x.sock"), Ok(Host::Unix("/x.sock".into())));
        assert_eq!(tcp("unix://"), Ok(Host::Unix("/run/berth.sock".into())));
        assert_eq!(tcp("fd://"), Ok(Host::Fd(String::new())));
    }

    #[test]
    fn errors_as_dockerd() {
        assert_eq!(
            tcp("bogus://x").unwrap_err(),
            "Invalid bind address format: bogus://x"
        );
        assert_eq!(
            tcp("tcp://127.0.0.1:abc").unwrap_err(),
            "parse \"tcp://127.0.0.1:abc\": invalid port \":abc\" after host"
        );
        assert_eq!(
            tcp("tcp://a://b").unwrap_err(),
            "Invalid proto, expected tcp: tcp://a://b"
        );
    }
}
