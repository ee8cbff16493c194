//! nftables: berth's rules live in one table of its own (`table ip berth`, one per daemon
//! instance), rendered whole from the daemon's state and replaced in a single `nft -f`
//! transaction, so the kernel never sees a half-written ruleset and deleting the table
//! deletes every rule. Other tables are never touched, with one documented exception:
//! [`sync_filter_forward`].
//!
//! Published ports are DNAT rules in the prerouting and output hooks, with no userland
//! proxy: a proxy costs a process (or task) and a copy per connection, where DNAT costs
//! nothing per packet. Reaching a port published on 127.0.0.1 from the host then needs
//! `route_localnet=1` on the bridge (set by [`crate::bridge`]) and a masquerade of
//! 127.0.0.0/8 towards the bridge, as Docker does with `userland-proxy: false`. The ports are
//! still reserved on the host with a bound socket ([`crate::ports`]) so that no other program
//! can take them and conflicts are reported as Docker reports them.

use crate::ipam::Subnet;
use crate::ports::Proto;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// A bridge network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Subnet,
    /// The bridge's own address.
    pub gateway: Ipv4Addr,
    /// `--internal`: no traffic in or out of the bridge, no masquerade.
    pub internal: bool,
}

/// One published port: host `host_ip:host_port` (any local address when `host_ip` is None)
/// to `container_ip:container_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRule {
    pub proto: Proto,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// Everything in one daemon's table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub bridges: Vec<BridgeRules>,
    pub ports: Vec<PortRule>,
}

/// What went wrong running `nft`.
#[derive(Debug, thiserror::Error)]
#[error("nftables: {0}")]
pub struct NftError(pub String);

impl Ruleset {
    /// The table's text, for `nft -f`.
    pub fn render(&self, table: &str) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "table ip {table} {{");
        t.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    fib daddr type local jump published\n  }\n");
        t.push_str("  chain output {\n    type nat hook output priority -100; policy accept;\n    fib daddr type local jump published\n  }\n");
        t.push_str("  chain published {\n");
        for p in &self.ports {
            let daddr = p
                .host_ip
                .map(|ip| format!("ip daddr {ip} "))
                .unwrap_or_default();
            let _ = writeln!(
                t,
                "    {daddr}{proto} dport {} dnat to {}:{}",
                p.host_port,
                p.container_ip,
                p.container_port,
                proto = p.proto.as_str()
            );
        }
        t.push_str("  }\n");
        t.push_str("  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
        for b in &self.bridges {
            if !b.internal {
                let _ = writeln!(
                    t,
                    "    ip saddr {} oifname != \"{}\" masquerade",
                    b.subnet, b.bridge
                );
                // Hairpin NAT: a container reaching a published port (its own or a neighbour's)
                // through a host address comes back into its bridge after DNAT. Its source
                // becomes the gateway, so the reply goes back through the host and is un-NATed
                // there; without it a neighbour would answer straight over the bridge, untracked
                // (see raw_prerouting), and a container cannot talk to its own address.
                let _ = writeln!(
                    t,
                    "    ip saddr {} oifname \"{}\" ct status dnat masquerade",
                    b.subnet, b.bridge
                );
            }
            // Host connections to a port published on 127.0.0.1, after DNAT.
            let _ = writeln!(
                t,
                "    ip saddr 127.0.0.0/8 oifname \"{}\" masquerade",
                b.bridge
            );
        }
        t.push_str("  }\n");
        // Traffic between two containers of one bridge is neither NATed nor filtered, but a
        // host with br_netfilter (dockerd loads it) passes bridged frames through the IP
        // hooks, where connection tracking halves throughput: such traffic is not tracked.
        // Traffic to the bridge's own address (the host) still is.
        t.push_str("  chain raw_prerouting {\n    type filter hook prerouting priority raw; policy accept;\n");
        for b in &self.bridges {
            let _ = writeln!(
                t,
                "    iifname \"{}\" ip saddr {1} ip daddr {1} ip daddr != {2} notrack",
                b.bridge, b.subnet, b.gateway
            );
        }
        t.push_str("  }\n");
        t.push_str(
            "  chain forward {\n    type filter hook forward priority filter; policy accept;\n",
        );
        for b in &self.bridges {
            if b.internal {
                let _ = writeln!(t, "    iifname \"{0}\" oifname != \"{0}\" drop", b.bridge);
                let _ = writeln!(t, "    oifname \"{0}\" iifname != \"{0}\" drop", b.bridge);
            }
            let others: Vec<String> = self
                .bridges
                .iter()
                .filter(|o| o.bridge != b.bridge)
                .map(|o| format!("\"{}\"", o.bridge))
                .collect();
            if !others.is_empty() {
                let _ = writeln!(
                    t,
                    "    iifname \"{}\" oifname {{ {} }} drop",
                    b.bridge,
                    others.join(", ")
                );
            }
        }
        t.push_str("  }\n}\n");
        t
    }

    /// Replaces the table with this ruleset in one transaction.
    pub fn apply(&self, table: &str) -> Result<(), NftError> {
        // `table` first so the `delete` never fails on a missing table.
        let script = format!(
            "table ip {table}\ndelete table ip {table}\n{}",
            self.render(table)
        );
        run_nft(&["-f", "-"], Some(&script)).map(drop)
    }
}

/// Deletes a table; a missing one is fine.
pub fn delete_table(table: &str) -> Result<(), NftError> {
    run_nft(
        &["-f", "-"],
        Some(&format!("table ip {table}\ndelete table ip {table}\n")),
    )
    .map(drop)
}

/// A drop anywhere at the forward hook drops the packet, whatever other tables accept: a
/// running dockerd sets `table ip filter`'s FORWARD chain to policy drop (through
/// iptables-nft). As Docker does with its own bridges, berth then needs accept rules for its
/// bridges in that chain. This inserts them (marked with a comment naming `table`) and
/// removes the ones for bridges no longer listed, only if that chain exists; it touches no
/// other rule. Our own table's forward chain still drops what isolation and `--internal`
/// forbid.
pub fn sync_filter_forward(table: &str, bridges: &[String]) -> Result<(), NftError> {
    let Ok(listing) = run_nft(&["-a", "list", "chain", "ip", "filter", "FORWARD"], None) else {
        return Ok(()); // no such chain: nothing drops our traffic there
    };
    let mark = format!("comment \"{table}\"");
    let mut script = String::new();
    for line in listing.lines().filter(|l| l.contains(&mark)) {
        if let Some(handle) = line
            .rsplit("# handle ")
            .next()
            .and_then(|h| h.trim().parse::<u64>().ok())
        {
            let _ = writeln!(script, "delete rule ip filter FORWARD handle {handle}");
        }
    }
    for b in bridges {
        let _ = writeln!(
            script,
            "insert rule ip filter FORWARD oifname \"{b}\" accept {mark}"
        );
        let _ = writeln!(
            script,
            "insert rule ip filter FORWARD iifname \"{b}\" accept {mark}"
        );
    }
    if script.is_empty() {
        return Ok(());
    }
    run_nft(&["-f", "-"], Some(&script)).map(drop)
}

pub(crate) fn run_nft(args: &[&str], stdin: Option<&str>) -> Result<String, NftError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NftError(format!("running nft: {e} (install the nftables package)")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| NftError(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NftError(e.to_string()))?;
    if !out.status.success() {
        return Err(NftError(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nat_isolation_and_ports() {
        let rules = Ruleset {
            bridges: vec![
                BridgeRules {
                    bridge: "berth0".into(),
                    subnet: "172.18.0.0/16".parse().unwrap(),
                    gateway: Ipv4Addr::new(172, 18, 0, 1),
                    internal: false,
                },
                BridgeRules {
                    bridge: "br-1".into(),
                    subnet: "10.9.0.0/24".parse().unwrap(),
                    gateway: Ipv4Addr::new(10, 9, 0, 1),
                    internal: true,
                },
            ],
            ports: vec![PortRule {
                proto: Proto::Tcp,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 8080,
                container_ip: Ipv4Addr::new(172, 18, 0, 2),
                container_port: 80,
            }],
        };
        let text = rules.render("berth");
        assert!(text.contains("ip saddr 172.18.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(
            !text.contains("ip saddr 10.9.0.0/24 oifname"),
            "internal networks are not masqueraded"
        );
        assert!(text.contains("iifname \"br-1\" oifname != \"br-1\" drop"));
        assert!(text.contains("iifname \"berth0\" oifname { \"br-1\" } drop"));
        assert!(text.contains("ip daddr 127.0.0.1 tcp dport 8080 dnat to 172.18.0.2:80"));
        assert!(
            text.contains("ip saddr 172.18.0.0/16 oifname \"berth0\" ct status dnat masquerade")
        );
        assert!(text.contains(
            "iifname \"berth0\" ip saddr 172.18.0.0/16 ip daddr 172.18.0.0/16 ip daddr != 172.18.0.1 notrack"
        ));
    }

    #[test]
    fn applies_and_deletes_a_table() {
        if std::process::Command::new("nft")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "nft missing under CI"
            );
            return;
        }
        let table = format!("berth_unit_{}", std::process::id());
        Ruleset::default()
            .apply(&table)
            .expect("apply (needs root)");
        let listed = run_nft(&["list", "tables"], None).unwrap();
        assert!(listed.contains(&table));
        delete_table(&table).unwrap();
        assert!(!run_nft(&["list", "tables"], None).unwrap().contains(&table));
        delete_table(&table).expect("deleting twice is fine");
    }
}
