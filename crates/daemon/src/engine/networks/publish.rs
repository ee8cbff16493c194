//! Published ports: what a container asks for (`HostConfig.PortBindings`, and with
//! `PublishAllPorts` every exposed port), and choosing host ports for it.

use super::records::PublishedPort;
use berth_api::models::HostConfig;
use berth_net::ports::{self, Proto, Reservation};
use std::net::Ipv4Addr;

/// One binding asked for: container `port/proto` on `host_ip`, at a host port in `range`
/// (inclusive), or anywhere in the ephemeral range when `range` is None.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRequest {
    pub proto: Proto,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    pub range: Option<(u16, u16)>,
}

/// `80/tcp` → (80, tcp).
pub fn parse_port_key(key: &str) -> Result<(u16, Proto), String> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = Proto::parse(proto)
        .ok_or_else(|| format!("berth publishes tcp and udp ports only, not {proto}"))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port {key}"))?;
    Ok((port, proto))
}

/// The bindings a container asks for, checked.
pub fn requests(hc: &HostConfig, exposed: &[String]) -> Result<Vec<PortRequest>, String> {
    let mut out = Vec::new();
    let bindings = hc.port_bindings.clone().unwrap_or_default();
    let mut keys: Vec<&String> = bindings.keys().collect();
    keys.sort();
    for key in keys {
        let (container_port, proto) = parse_port_key(key)?;
        for b in bindings[key].iter().flatten() {
            let host_ip = match b.host_ip.as_deref().unwrap_or("") {
                "" => Ipv4Addr::UNSPECIFIED,
                ip => ip
                    .parse::<Ipv4Addr>()
                    .map_err(|_| format!("berth publishes on IPv4 addresses only, not {ip}"))?,
            };
            let range = match b.host_port.as_deref().unwrap_or("") {
                "" => None,
                p => Some(parse_range(p)?),
            };
            out.push(PortRequest {
                proto,
                container_port,
                host_ip,
                range,
            });
        }
    }
    if hc.publish_all_ports == Some(true) {
        for key in exposed {
            let (container_port, proto) = parse_port_key(key)?;
            if !out
                .iter()
                .any(|r| r.container_port == container_port && r.proto == proto)
            {
                out.push(PortRequest {
                    proto,
                    container_port,
                    host_ip: Ipv4Addr::UNSPECIFIED,
                    range: None,
                });
            }
        }
    }
    Ok(out)
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("invalid hostPort: {s}");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b) = (
        a.parse::<u16>().map_err(|_| bad())?,
        b.parse::<u16>().map_err(|_| bad())?,
    );
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// Whether two published ports collide: same protocol and port, and the same address or
/// either of them on every address.
pub fn collides(a: &PublishedPort, proto: Proto, ip: Ipv4Addr, port: u16) -> bool {
    a.proto == proto
        && a.host_port == port
        && (a.host_ip == ip || a.host_ip.is_unspecified() || ip.is_unspecified())
}

/// Picks and reserves host ports for `requests`, avoiding `taken` (ports other containers
/// publish). Errors read as Docker's: `Bind for 0.0.0.0:8080 failed: port is already
/// allocated` for a port berth gave out, Go's `listen tcp4 …` when another program has it.
pub fn allocate(
    requests: &[PortRequest],
    taken: &[PublishedPort],
) -> Result<(Vec<PublishedPort>, Vec<Reservation>), String> {
    let mut chosen: Vec<PublishedPort> = Vec::new();
    let mut held = Vec::new();
    let (eph_lo, eph_hi) = ports::ephemeral_range();
    for r in requests {
        let busy = |port: u16, chosen: &[PublishedPort]| {
            taken
                .iter()
                .chain(chosen.iter())
                .any(|p| collides(p, r.proto, r.host_ip, port))
        };
        match r.range {
            Some((lo, hi)) if lo == hi => {
                if busy(lo, &chosen) {
                    return Err(format!(
                        "Bind for {}:{lo} failed: port is already allocated",
                        r.host_ip
                    ));
                }
                held.push(ports::reserve(r.proto, r.host_ip, lo)?);
                chosen.push(PublishedPort {
                    proto: r.proto,
                    host_ip: r.host_ip,
                    host_port: lo,
                    container_port: r.container_port,
                });
            }
            range => {
                let (lo, hi) = range.unwrap_or((eph_lo, eph_hi));
                let found = (lo..=hi)
                    .filter(|p| !busy(*p, &chosen))
                    .find_map(|p| ports::reserve(r.proto, r.host_ip, p).ok().map(|h| (p, h)));
                let Some((port, h)) = found else {
                    return Err(if range.is_some() {
                        format!(
                            "Bind for {}:{lo}-{hi} failed: port is already allocated",
                            r.host_ip
                        )
                    } else {
                        "no available ports in the ephemeral range".to_string()
                    });
                };
                held.push(h);
                chosen.push(PublishedPort {
                    proto: r.proto,
                    host_ip: r.host_ip,
                    host_port: port,
                    container_port: r.container_port,
                });
            }
        }
    }
    Ok((chosen, held))
}

/// Reserves already chosen ports again (berthd restarted while the container ran).
pub fn reclaim(published: &[PublishedPort]) -> Vec<Reservation> {
    published
        .iter()
        .filter_map(|p| match ports::reserve(p.proto, p.host_ip, p.host_port) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!("re-reserving published port: {e}");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::PortBinding;
    use std::collections::HashMap;

    fn binding(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        }
    }

    #[test]
    fn reads_bindings_and_publish_all() {
        let hc = HostConfig {
            port_bindings: Some(HashMap::from([
                (
                    "80/tcp".to_string(),
                    Some(vec![binding("", "8080"), binding("127.0.0.1", "")]),
                ),
                ("53/udp".to_string(), Some(vec![binding("", "5300-5310")])),
            ])),
            publish_all_ports: Some(true),
            ..Default::default()
        };
        let reqs = requests(&hc, &["80/tcp".into(), "443/tcp".into()]).unwrap();
        assert_eq!(reqs.len(), 4);
        assert_eq!(
            reqs[0],
            PortRequest {
                proto: Proto::Udp,
                container_port: 53,
                host_ip: Ipv4Addr::UNSPECIFIED,
                range: Some((5300, 5310))
            }
        );
        assert_eq!(reqs[1].range, Some((8080, 8080)));
        assert_eq!(reqs[2].host_ip, Ipv4Addr::LOCALHOST);
        assert_eq!(
            reqs[3],
            PortRequest {
                proto: Proto::Tcp,
                container_port: 443,
                host_ip: Ipv4Addr::UNSPECIFIED,
                range: None
            }
        );
        let bad = HostConfig {
            port_bindings: Some(HashMap::from([("80/sctp".to_string(), None)])),
            ..Default::default()
        };
        assert!(requests(&bad, &[]).is_err());
    }

    #[test]
    fn a_port_given_out_is_refused_as_docker_does() {
        let taken = [PublishedPort {
            proto: Proto::Tcp,
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: 18080,
            container_port: 80,
        }];
        let req = PortRequest {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: Ipv4Addr::LOCALHOST,
            range: Some((18080, 18080)),
        };
        assert_eq!(
            allocate(&[req.clone()], &taken).unwrap_err(),
            "Bind for 127.0.0.1:18080 failed: port is already allocated"
        );
        // Another protocol is another port.
        let udp = PortRequest {
            proto: Proto::Udp,
            ..req
        };
        let (chosen, held) = allocate(&[udp], &taken).unwrap();
        assert_eq!(chosen[0].host_port, 18080);
        drop(held);
    }

    #[test]
    fn ephemeral_ports_skip_what_is_taken() {
        let (lo, _) = ports::ephemeral_range();
        let taken = [PublishedPort {
            proto: Proto::Tcp,
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: lo,
            container_port: 80,
        }];
        let req = PortRequest {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: Ipv4Addr::LOCALHOST,
            range: None,
        };
        let (chosen, _held) = allocate(&[req.clone(), req], &taken).unwrap();
        assert!(chosen[0].host_port > lo);
        assert!(chosen[1].host_port > chosen[0].host_port);
    }
}
