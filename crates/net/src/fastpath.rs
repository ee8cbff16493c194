//! The same-network fast path: a frame a container sends to another container of the same
//! bridge network goes from the sender's host veth straight to the receiver's, at the
//! sender veth's ingress hook (`table netdev <table>`, one chain per network, `fwd` by the
//! destination MAC), instead of through the bridge.
//!
//! Why: dockerd turns `bridge-nf-call-iptables` on host-wide (br_netfilter), and then every
//! bridged frame walks the IPv4 prerouting, forward and postrouting hooks of every table on
//! the host (Docker's `filter FORWARD` with its policy drop, other daemons' tables, ours),
//! which costs a tenth or more of the throughput between two containers. Traffic between two
//! containers of one network is never filtered (neither by Docker nor by berth), so skipping
//! those hooks loses nothing; isolation holds because each network's chain only knows its
//! own members' MACs and veths. Everything else (broadcasts, ARP, frames to the gateway and
//! so to the host, other networks, published ports) still takes the bridge.
//!
//! The fast path is an optimisation only: when it cannot be installed, the bridge carries
//! the traffic as before.

use crate::nft::{run_nft, NftError};
use std::fmt::Write as _;

/// One container's interface on a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `02:42:ac:11:00:02`
    pub mac: String,
    /// The host end of its veth pair.
    pub host_ifname: String,
}

/// The running containers of one bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub bridge: String,
    pub members: Vec<Member>,
}

/// The table's text. Segments with fewer than two members have nothing to shortcut and get
/// no chain.
pub fn render(table: &str, segments: &[Segment]) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "table netdev {table} {{");
    for s in segments.iter().filter(|s| s.members.len() > 1) {
        let devices: Vec<String> = s
            .members
            .iter()
            .map(|m| format!("\"{}\"", m.host_ifname))
            .collect();
        let map: Vec<String> = s
            .members
            .iter()
            .map(|m| format!("{} : \"{}\"", m.mac, m.host_ifname))
            .collect();
        let _ = writeln!(
            t,
            "  chain {} {{\n    type filter hook ingress devices = {{ {} }} priority 0; policy accept;\n    fwd to ether daddr map {{ {} }}\n  }}",
            chain_name(&s.bridge),
            devices.join(", "),
            map.join(", ")
        );
    }
    t.push_str("}\n");
    t
}

/// nft identifiers: letters, digits and `_` are safe whatever the bridge is called.
fn chain_name(bridge: &str) -> String {
    let safe: String = bridge
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("net_{safe}")
}

/// Replaces the fast-path table in one transaction (or deletes it when no network has two
/// members). A veth that vanished meanwhile fails the whole transaction: the previous table
/// stays, and a stale entry only names an interface that no longer exists.
pub fn apply(table: &str, segments: &[Segment]) -> Result<(), NftError> {
    let mut script = format!("table netdev {table}\ndelete table netdev {table}\n");
    if segments.iter().any(|s| s.members.len() > 1) {
        script.push_str(&render(table, segments));
    }
    run_nft(&["-f", "-"], Some(&script)).map(drop)
}

/// Deletes the fast-path table; a missing one is fine.
pub fn delete(table: &str) -> Result<(), NftError> {
    apply(table, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(mac: &str, veth: &str) -> Member {
        Member {
            mac: mac.into(),
            host_ifname: veth.into(),
        }
    }

    #[test]
    fn renders_one_chain_per_network_with_two_members() {
        let text = render(
            "berth",
            &[
                Segment {
                    bridge: "berth0-ab12".into(),
                    members: vec![
                        member("02:42:ac:11:00:02", "veth1"),
                        member("02:42:ac:11:00:03", "veth2"),
                    ],
                },
                Segment {
                    bridge: "br-alone".into(),
                    members: vec![member("02:42:0a:00:00:02", "veth3")],
                },
            ],
        );
        assert!(text.contains("chain net_berth0_ab12 {"), "{text}");
        assert!(
            text.contains("devices = { \"veth1\", \"veth2\" }"),
            "{text}"
        );
        assert!(text.contains(
            "fwd to ether daddr map { 02:42:ac:11:00:02 : \"veth1\", 02:42:ac:11:00:03 : \"veth2\" }"
        ));
        assert!(!text.contains("veth3"), "a lone member needs no chain");
    }

    /// Two namespaces whose veths are then taken off the bridge (with static neighbour
    /// entries, so no ARP is needed): only the fast path can carry their traffic.
    #[test]
    fn forwards_between_members_of_one_bridge() {
        let tag = std::process::id() % 100000;
        let bridge = format!("bf{tag}");
        let subnet: crate::ipam::Subnet = "10.250.9.0/24".parse().unwrap();
        crate::bridge::ensure_bridge(&bridge, subnet.first_host(), subnet)
            .expect("bridge (needs root)");
        let dir = std::env::temp_dir().join(format!("berth-fastpath-test-{tag}"));
        let mut members = Vec::new();
        let mut namespaces = Vec::new();
        for i in 2..4u8 {
            let ns = dir.join(format!("ns{i}"));
            crate::create_netns(&ns).unwrap();
            let addr = std::net::Ipv4Addr::new(10, 250, 9, i);
            let veth = format!("vf{tag}{i}");
            crate::bridge::attach(&crate::bridge::Endpoint {
                netns: &ns,
                bridge: &bridge,
                host_ifname: &veth,
                ifname: "eth0",
                addr,
                prefix: 24,
                mac: crate::ipam::mac_for(addr),
                gateway: None,
            })
            .unwrap();
            members.push(member(
                &crate::ipam::format_mac(crate::ipam::mac_for(addr)),
                &veth,
            ));
            namespaces.push(ns);
        }
        let sh = |args: &[&str]| {
            std::process::Command::new(args[0])
                .args(&args[1..])
                .output()
                .expect(args[0])
        };
        for (i, m) in members.iter().enumerate() {
            sh(&["ip", "link", "set", &m.host_ifname, "nomaster"]);
            let peer = &members[1 - i];
            let peer_ip = format!("10.250.9.{}", 3 - i);
            sh(&[
                "nsenter",
                &format!("--net={}", namespaces[i].display()),
                "ip",
                "neigh",
                "replace",
                &peer_ip,
                "lladdr",
                &peer.mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ]);
        }
        let ping = || {
            sh(&[
                "nsenter",
                &format!("--net={}", namespaces[0].display()),
                "busybox",
                "ping",
                "-c1",
                "-W1",
                "10.250.9.3",
            ])
        };
        let before = ping();
        let table = format!("berth_fp_{tag}");
        let segment = Segment {
            bridge: bridge.clone(),
            members: members.clone(),
        };
        apply(&table, std::slice::from_ref(&segment)).expect("apply");
        let after = ping();
        let listed = run_nft(&["list", "table", "netdev", &table], None).unwrap();
        delete(&table).unwrap();
        delete(&table).expect("deleting twice is fine");
        for (ns, m) in namespaces.iter().zip(&members) {
            crate::bridge::detach(&m.host_ifname).unwrap();
            crate::remove_netns(ns).unwrap();
        }
        crate::bridge::remove_link(&bridge).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            !before.status.success(),
            "off the bridge and without the fast path, nothing should pass"
        );
        assert!(
            after.status.success(),
            "no reply through the fast path: {}",
            String::from_utf8_lossy(&after.stdout)
        );
        assert!(listed.contains("fwd to ether daddr map"), "{listed}");
    }
}
