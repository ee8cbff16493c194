//! Two paths traffic takes besides plain bridging: the same-network fast path (frames
//! between two containers of one network go from veth to veth, see
//! crates/net/src/fastpath.rs) and hairpin NAT (a container reaching a published port, its
//! own or a neighbour's, through the host's address). Real namespaces and real traffic, only
//! between the host and this test's own containers; host addresses used are the bridge
//! gateways.

use berth_e2e::net::{dok, fetch_script, inspect, ports_of, web};
use berth_e2e::{eventually, Daemon};
use std::process::Command;

fn nft(args: &[&str]) -> String {
    String::from_utf8_lossy(&Command::new("nft").args(args).output().expect("nft").stdout)
        .into_owned()
}

/// The fast-path table (`table netdev …`) whose rules name `mac`, with its text.
fn fast_path_naming(mac: &str) -> Option<(String, String)> {
    nft(&["list", "tables", "netdev"])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .map(|t| {
            let text = nft(&["list", "table", "netdev", &t]);
            (t, text)
        })
        .find(|(_, text)| text.contains(mac))
}

/// A network's Linux bridge: the name option (the default bridge has one), else `br-` and
/// the ID's first 12 digits, as Docker names them.
fn bridge_of(d: &Daemon, network: &str) -> String {
    let named = dok(
        d,
        &[
            "network",
            "inspect",
            "-f",
            "{{index .Options \"com.docker.network.bridge.name\"}}",
            network,
        ],
    );
    if !named.is_empty() && named != "<no value>" {
        return named;
    }
    let id = dok(d, &["network", "inspect", "-f", "{{.Id}}", network]);
    format!("br-{}", &id[..12])
}

#[test]
fn containers_of_one_network_talk_through_the_fast_path_and_only_they() {
    let d = Daemon::start();
    dok(&d, &["network", "create", "fast"]);
    dok(&d, &["network", "create", "other"]);
    let bridge = bridge_of(&d, "fast");
    web(&d, &["--name", "site", "--network", "fast"], "hello-fast");
    let site_mac = inspect(&d, "site", "{{.NetworkSettings.Networks.fast.MacAddress}}");
    let site_ip = inspect(&d, "site", "{{.NetworkSettings.Networks.fast.IPAddress}}");
    assert!(
        fast_path_naming(&site_mac).is_none(),
        "a network with one member has nothing to shortcut"
    );

    // A second member: the chain names both veths and both MACs, and traffic flows.
    dok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "peer",
            "--network",
            "fast",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let peer_mac = inspect(&d, "peer", "{{.NetworkSettings.Networks.fast.MacAddress}}");
    let veths = ports_of(&bridge);
    assert_eq!(veths.len(), 2, "{veths:?}");
    // Installed off the start path: a moment after the start at most.
    let names_all = |names: &[&String]| {
        fast_path_naming(&site_mac)
            .is_some_and(|(_, text)| names.iter().all(|n| text.contains(n.as_str())))
    };
    assert!(
        eventually(5, || names_all(&[
            &veths[0], &veths[1], &site_mac, &peer_mac
        ])),
        "{veths:?} {site_mac} {peer_mac} not all in:\n{:?}",
        fast_path_naming(&site_mac)
    );
    let (table, _) = fast_path_naming(&site_mac).unwrap();
    assert_eq!(
        dok(
            &d,
            &["exec", "peer", "sh", "-c", &fetch_script("site", "80")]
        ),
        "hello-fast"
    );

    // A container of another network that sends frames straight to the site's MAC (a static
    // neighbour entry and a route on its own link, set from the host) still cannot reach it:
    // its network's fast path knows only its own members, and its bridge does not lead
    // there. (`o2` makes that network two members strong, so it has a fast path of its own.)
    for name in ["o1", "o2"] {
        dok(
            &d,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "other",
                "busybox",
                "sleep",
                "300",
            ],
        );
    }
    let o1_mac = inspect(&d, "o1", "{{.NetworkSettings.Networks.other.MacAddress}}");
    assert!(
        eventually(5, || fast_path_naming(&o1_mac).is_some()),
        "no fast path for the other network"
    );
    let netns = inspect(&d, "o1", "{{.NetworkSettings.SandboxKey}}");
    let in_o1 = |args: &[&str]| {
        let out = Command::new("nsenter")
            .arg(format!("--net={netns}"))
            .args(args)
            .output()
            .expect("nsenter");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    in_o1(&[
        "ip",
        "route",
        "add",
        &format!("{site_ip}/32"),
        "dev",
        "eth0",
    ]);
    in_o1(&[
        "ip",
        "neigh",
        "replace",
        &site_ip,
        "lladdr",
        &site_mac,
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
    assert_eq!(
        dok(
            &d,
            &["exec", "o1", "sh", "-c", &fetch_script(&site_ip, "80")]
        ),
        "",
        "another network reached the site"
    );
    // Not even one way: a SYN that got through would sit in the site's table as SYN_RECV,
    // its answer lost on the way back.
    let o1_ip = inspect(&d, "o1", "{{.NetworkSettings.Networks.other.IPAddress}}");
    let sockets = dok(&d, &["exec", "site", "netstat", "-tn"]);
    assert!(
        !sockets.contains(&format!("{o1_ip}:")),
        "a packet from another network reached the site:\n{sockets}"
    );

    // A restarted member comes back on a new veth, which the fast path follows.
    dok(&d, &["restart", "-t", "0", "peer"]);
    assert_eq!(
        dok(
            &d,
            &["exec", "peer", "sh", "-c", &fetch_script("site", "80")]
        ),
        "hello-fast"
    );
    assert!(
        eventually(5, || ports_of(&bridge).len() == 2),
        "{:?}",
        ports_of(&bridge)
    );
    let veths = ports_of(&bridge);
    assert!(
        eventually(5, || names_all(&[&veths[0], &veths[1]])),
        "{veths:?} not both in:\n{:?}",
        fast_path_naming(&site_mac)
    );

    // With no container left, stopping berthd takes the table away with the rest.
    for c in ["site", "peer", "o1", "o2"] {
        dok(&d, &["rm", "-f", c]);
    }
    drop(d);
    assert!(
        !nft(&["list", "tables", "netdev"]).contains(&table),
        "fast-path table {table} left behind"
    );
}

#[test]
fn containers_reach_published_ports_through_the_gateway() {
    let d = Daemon::start();
    web(&d, &["--name", "site", "-p", "80"], "hello-hairpin");
    let gateway = inspect(&d, "site", "{{.NetworkSettings.Gateway}}");
    let host_port = inspect(
        &d,
        "site",
        "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}",
    );
    let bridge = bridge_of(&d, "bridge");
    for v in ports_of(&bridge) {
        let mode = std::fs::read_to_string(format!("/sys/class/net/{v}/brport/hairpin_mode"))
            .unwrap_or_default();
        assert_eq!(mode.trim(), "1", "hairpin mode on {v}");
    }
    // Its own published port, through the host.
    assert_eq!(
        dok(
            &d,
            &[
                "exec",
                "site",
                "sh",
                "-c",
                &fetch_script(&gateway, &host_port)
            ]
        ),
        "hello-hairpin"
    );
    // A neighbour's, through the host: the answer comes back the same way.
    assert_eq!(
        dok(
            &d,
            &[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                &fetch_script(&gateway, &host_port)
            ]
        ),
        "hello-hairpin"
    );
    // With the neighbour holding an established connection: the server sees the host (the
    // gateway) as its client, as behind Docker's userland proxy.
    dok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "client",
            "busybox",
            "sh",
            "-c",
            &format!("sleep 30 | nc {gateway} {host_port}"),
        ],
    );
    let seen = |c: &str| {
        let r = d.docker(&["exec", c, "netstat", "-tn"]);
        r.stdout
    };
    assert!(
        eventually(10, || seen("site").lines().any(|l| l
            .contains("ESTABLISHED")
            && l.contains(&format!("{gateway}:")))),
        "{}",
        seen("site")
    );
    dok(&d, &["rm", "-f", "site", "client"]);
}
