//! Bridges and the veth pairs that join containers to them.

use crate::ipam::Subnet;
use crate::netlink::Netlink;
use crate::Error;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

fn link_err(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Link(format!("{what}: {e}"))
}

/// Makes sure bridge `name` exists, up, with `gateway/prefix` as its address. Also turns on
/// what a bridge network needs from the host: IPv4 forwarding, and `route_localnet` on the
/// bridge so ports published on 127.0.0.1 can be DNATed to it (see [`crate::nft`]).
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, subnet: Subnet) -> Result<(), Error> {
    let mut nl = Netlink::open().map_err(link_err("netlink".into()))?;
    let index = match nl
        .link_index(name)
        .map_err(link_err(format!("looking up {name}")))?
    {
        Some(i) => i,
        None => {
            match nl.add_bridge(name) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                other => other.map_err(link_err(format!("creating bridge {name}")))?,
            }
            nl.link_index(name)
                .map_err(link_err(format!("looking up {name}")))?
                .ok_or_else(|| Error::Link(format!("bridge {name} vanished")))?
        }
    };
    nl.add_address(index, gateway, subnet.prefix)
        .map_err(link_err(format!("address of {name}")))?;
    nl.set_up(index)
        .map_err(link_err(format!("setting {name} up")))?;
    write_sysctl(
        &format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"),
        "1",
    )?;
    enable_forwarding()
}

/// `net.ipv4.ip_forward=1`, as dockerd sets it.
pub fn enable_forwarding() -> Result<(), Error> {
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")
}

fn write_sysctl(path: &str, value: &str) -> Result<(), Error> {
    std::fs::write(path, value).map_err(|e| Error::Link(format!("{path}: {e}")))
}

/// Deletes a bridge (or any link); a missing one is fine.
pub fn remove_link(name: &str) -> Result<(), Error> {
    let mut nl = Netlink::open().map_err(link_err("netlink".into()))?;
    nl.delete_link(name)
        .map_err(link_err(format!("deleting {name}")))
}

/// Whether link `name` exists in the host namespace.
pub fn link_exists(name: &str) -> Result<bool, Error> {
    let mut nl = Netlink::open().map_err(link_err("netlink".into()))?;
    Ok(nl
        .link_index(name)
        .map_err(link_err(format!("looking up {name}")))?
        .is_some())
}

/// The subnets the host routes to (the default route aside): a new network must not
/// overlap them, or its traffic would go astray.
pub fn host_routes() -> Result<Vec<Subnet>, Error> {
    let mut nl = Netlink::open().map_err(link_err("netlink".into()))?;
    let routes = nl
        .ipv4_routes()
        .map_err(link_err("listing routes".into()))?;
    Ok(routes
        .into_iter()
        .filter(|(_, prefix, _)| *prefix > 0)
        .map(|(dst, prefix, _)| Subnet::new(dst, prefix))
        .collect())
}

/// A container's interface on a bridge network.
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    /// The container's pinned network namespace.
    pub netns: &'a Path,
    pub bridge: &'a str,
    /// The host end's name (`veth…`); deleting it deletes the pair.
    pub host_ifname: &'a str,
    /// The name inside the container: eth0, eth1…
    pub ifname: &'a str,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    /// The default route's gateway, for the container's first network only.
    pub gateway: Option<Ipv4Addr>,
}

/// Creates the veth pair, the container end straight inside its namespace, addressed and up,
/// with the default route when asked. On failure nothing is left.
pub fn attach(ep: &Endpoint) -> Result<(), Error> {
    let ns = std::fs::File::open(ep.netns).map_err(|source| Error::Netns {
        path: ep.netns.display().to_string(),
        source,
    })?;
    let mut nl = Netlink::open().map_err(link_err("netlink".into()))?;
    let master = nl
        .link_index(ep.bridge)
        .map_err(link_err(format!("looking up {}", ep.bridge)))?
        .ok_or_else(|| Error::Link(format!("bridge {} not found", ep.bridge)))?;
    nl.add_veth(ep.host_ifname, master, ep.ifname, ns.as_raw_fd(), ep.mac)
        .map_err(link_err(format!("creating veth {}", ep.host_ifname)))?;
    let result = set_hairpin(ep.host_ifname).and_then(|()| configure_inside(ns, ep));
    if result.is_err() {
        let _ = remove_link(ep.host_ifname);
    }
    result
}

/// Hairpin mode on the container's bridge port, as Docker sets it when it has no userland
/// proxy (berth never has one): a container reaching its own published port through a host
/// address is DNATed back to itself, and with br_netfilter on (dockerd turns it on) that
/// frame is bridged back out of the port it came in by, which a bridge refuses otherwise.
fn set_hairpin(host_ifname: &str) -> Result<(), Error> {
    write_sysctl(
        &format!("/sys/class/net/{host_ifname}/brport/hairpin_mode"),
        "1",
    )
}

/// Addresses the container end and adds its route, from inside its namespace.
fn configure_inside(ns: std::fs::File, ep: &Endpoint) -> Result<(), Error> {
    let (ifname, addr, prefix, gateway) = (ep.ifname.to_string(), ep.addr, ep.prefix, ep.gateway);
    // setns(2) moves only the calling thread; a short-lived one keeps the daemon's threads
    // in the host namespace.
    std::thread::spawn(move || -> Result<(), Error> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::Link(format!("setns: {e}")))?;
        let mut nl = Netlink::open().map_err(link_err("netlink".into()))?;
        let index = nl
            .link_index(&ifname)
            .map_err(link_err(format!("looking up {ifname}")))?
            .ok_or_else(|| Error::Link(format!("{ifname} not found in the container")))?;
        nl.add_address(index, addr, prefix)
            .map_err(link_err(format!("address of {ifname}")))?;
        nl.set_up(index)
            .map_err(link_err(format!("setting {ifname} up")))?;
        if let Some(gw) = gateway {
            nl.add_default_route(index, gw)
                .map_err(link_err("default route".into()))?;
        }
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err(Error::Link("netns thread panicked".into())))
}

/// Removes a container's interface by its host end; a missing one is fine.
pub fn detach(host_ifname: &str) -> Result<(), Error> {
    remove_link(host_ifname)
}

/// Serialises subnet choice and bridge creation between berthd instances on one host (tests
/// run several): each picks a range no route covers, then creates the bridge that routes it.
pub fn host_lock() -> Result<std::fs::File, Error> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/berth-net.lock")
        .map_err(|e| Error::Link(format!("/run/berth-net.lock: {e}")))?;
    // SAFETY: flock(2) on a descriptor we own; released when the file is dropped.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } < 0 {
        return Err(Error::Link(format!(
            "/run/berth-net.lock: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_and_veth_round_trip() {
        let tag = std::process::id() % 100000;
        let bridge = format!("bt{tag}");
        let veth = format!("vt{tag}");
        let subnet: Subnet = "10.250.7.0/24".parse().unwrap();
        ensure_bridge(&bridge, subnet.first_host(), subnet).expect("bridge (needs root)");
        ensure_bridge(&bridge, subnet.first_host(), subnet).expect("idempotent");
        assert!(host_routes().unwrap().contains(&subnet));
        let dir = std::env::temp_dir().join(format!("berth-bridge-test-{tag}"));
        let ns = dir.join("ns");
        crate::create_netns(&ns).unwrap();
        let ep = Endpoint {
            netns: &ns,
            bridge: &bridge,
            host_ifname: &veth,
            ifname: "eth0",
            addr: "10.250.7.2".parse().unwrap(),
            prefix: 24,
            mac: crate::ipam::mac_for("10.250.7.2".parse().unwrap()),
            gateway: Some(subnet.first_host()),
        };
        attach(&ep).unwrap();
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["ip", "-o", "addr", "show", "eth0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("10.250.7.2/24"), "{text}");
        let ping = std::process::Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["busybox", "ping", "-c1", "-W2", "10.250.7.1"])
            .output()
            .expect("nsenter");
        assert!(
            ping.status.success(),
            "gateway unreachable: {}",
            String::from_utf8_lossy(&ping.stdout)
        );
        assert!(attach(&ep).is_err(), "a second veth of the same name fails");
        assert!(
            link_exists(&veth).unwrap(),
            "a failed attach removes only what it made"
        );
        detach(&veth).unwrap();
        assert!(!link_exists(&veth).unwrap());
        crate::remove_netns(&ns).unwrap();
        remove_link(&bridge).unwrap();
        assert!(!link_exists(&bridge).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
