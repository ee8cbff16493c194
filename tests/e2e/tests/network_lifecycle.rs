//! Networking across a container's life, as the real dockerd behaves (checked by hand
//! against dockerd 20.10): the embedded DNS server of a default-bridge container connected to
//! a user-defined network through restarts and daemon restarts, and `--network container:`
//! joiners whose joined container stopped or went away. Traffic only between this test's own
//! containers; forwarded DNS queries go to the host's loopback (`--dns 127.0.0.1`).

use berth_e2e::net::{dok, fetch_script, inspect, ports_of, web};
use berth_e2e::Daemon;

const EMBEDDED: &str = "nameserver 127.0.0.11\noptions timeout:2 ndots:0";
const OWN: &str = "nameserver 127.0.0.1\noptions timeout:2";

fn resolv_conf(d: &Daemon, c: &str) -> String {
    dok(d, &["exec", c, "cat", "/etc/resolv.conf"])
}

/// Asserts that `c` resolves `name` to `ip` through its embedded DNS server.
fn resolves(d: &Daemon, c: &str, name: &str, ip: &str, when: &str) {
    let r = d.docker(&["exec", c, "nslookup", "-type=a", name, "127.0.0.11"]);
    assert!(
        r.stdout.contains(&format!("Address: {ip}")),
        "{when}: {}{}\n--- daemon log ---\n{}",
        r.stdout,
        r.stderr,
        d.log()
    );
}

#[test]
fn a_connected_default_bridge_container_keeps_the_embedded_dns_across_starts() {
    let mut d = Daemon::start();
    dok(&d, &["network", "create", "h4dns"]);
    dok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "named",
            "--network",
            "h4dns",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let ip = dok(
        &d,
        &[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.h4dns.IPAddress}}",
            "named",
        ],
    );
    dok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "plain",
            "--dns",
            "127.0.0.1",
            "--dns-option",
            "timeout:2",
            "busybox",
            "sleep",
            "300",
        ],
    );
    assert_eq!(resolv_conf(&d, "plain"), OWN);
    dok(&d, &["network", "connect", "h4dns", "plain"]);
    assert_eq!(resolv_conf(&d, "plain"), EMBEDDED);
    resolves(&d, "plain", "named", &ip, "after connect");

    // It starts attached to a user-defined network, so every start brings the server back.
    dok(&d, &["restart", "-t", "0", "plain"]);
    assert_eq!(resolv_conf(&d, "plain"), EMBEDDED, "after restart");
    resolves(&d, "plain", "named", &ip, "after restart");
    dok(&d, &["stop", "-t", "0", "plain"]);
    dok(&d, &["start", "plain"]);
    assert_eq!(resolv_conf(&d, "plain"), EMBEDDED, "after stop and start");
    resolves(&d, "plain", "named", &ip, "after stop and start");

    // A new berthd with it running: the server comes back (live restore).
    d.kill_daemon(libc::SIGTERM);
    d.spawn();
    resolves(&d, "plain", "named", &ip, "after a daemon restart");
    // A new berthd with it stopped: its next start has the server.
    dok(&d, &["stop", "-t", "0", "plain"]);
    d.kill_daemon(libc::SIGTERM);
    d.spawn();
    dok(&d, &["start", "plain"]);
    assert_eq!(
        resolv_conf(&d, "plain"),
        EMBEDDED,
        "stopped across a daemon restart"
    );
    resolves(&d, "plain", "named", &ip, "stopped across a daemon restart");

    // Connected while stopped: the start brings it, too.
    dok(
        &d,
        &[
            "create",
            "--name",
            "late",
            "--dns",
            "127.0.0.1",
            "--dns-option",
            "timeout:2",
            "busybox",
            "sleep",
            "300",
        ],
    );
    dok(&d, &["network", "connect", "h4dns", "late"]);
    dok(&d, &["start", "late"]);
    assert_eq!(
        resolv_conf(&d, "late"),
        EMBEDDED,
        "connected before the start"
    );
    resolves(
        &d,
        "late",
        "plain",
        &dok(
            &d,
            &[
                "inspect",
                "-f",
                "{{.NetworkSettings.Networks.h4dns.IPAddress}}",
                "plain",
            ],
        ),
        "connected before the start",
    );

    // Disconnecting its last user-defined network leaves file and server as they are
    // (the server answers no names of that network any more); the next start drops them.
    dok(&d, &["network", "disconnect", "h4dns", "plain"]);
    assert_eq!(resolv_conf(&d, "plain"), EMBEDDED, "after disconnect");
    let r = d.docker(&[
        "exec",
        "plain",
        "nslookup",
        "-type=a",
        "named",
        "127.0.0.11",
    ]);
    assert!(
        r.stdout.contains("Server:") && r.stdout.contains("127.0.0.11"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert!(
        !r.stdout.contains(&format!("Address: {ip}")),
        "{}",
        r.stdout
    );
    dok(&d, &["restart", "-t", "0", "plain"]);
    assert_eq!(
        resolv_conf(&d, "plain"),
        OWN,
        "restarted without a user network"
    );

    dok(&d, &["rm", "-f", "plain", "named", "late"]);
    dok(&d, &["network", "rm", "h4dns"]);
}

#[test]
fn a_container_mode_joiner_whose_joined_container_stopped_or_went() {
    let d = Daemon::start();
    let host = dok(
        &d,
        &["run", "-d", "--name", "host1", "busybox", "sleep", "300"],
    );
    let joiner = dok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "joiner",
            "--network",
            "container:host1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let never = dok(
        &d,
        &[
            "create",
            "--name",
            "never",
            "--network",
            "container:host1",
            "busybox",
            "true",
        ],
    );
    let paths = "{{.HostsPath}}|{{.ResolvConfPath}}|{{.HostnamePath}}";
    let host_paths = inspect(&d, "host1", paths);
    assert!(host_paths.contains(&host), "{host_paths}");
    assert_eq!(dok(&d, &["inspect", "-f", paths, "joiner"]), host_paths);
    assert_eq!(dok(&d, &["inspect", "-f", paths, "never"]), "||");

    // Stopping the joined container leaves the joiner running; starting it again then fails.
    dok(&d, &["stop", "-t", "0", "host1"]);
    assert_eq!(
        dok(&d, &["inspect", "-f", "{{.State.Status}}", "joiner"]),
        "running"
    );
    dok(&d, &["stop", "-t", "0", "joiner"]);
    let refused = format!("cannot join network of a non running container: {host}");
    for (c, exit_code) in [("joiner", "137"), ("never", "128")] {
        for r in [d.docker(&["start", c]), d.berth(&["start", c])] {
            assert_eq!(r.code, 1, "{}", r.stderr);
            assert_eq!(
                r.stderr,
                format!("Error response from daemon: {refused}\nError: failed to start containers: {c}\n")
            );
        }
        // The error is recorded; an exit code already there stays, else 128, as Docker.
        assert_eq!(
            dok(
                &d,
                &[
                    "inspect",
                    "-f",
                    "{{.State.Status}}|{{.State.Error}}|{{.State.ExitCode}}",
                    c
                ]
            ),
            format!(
                "{}|{refused}|{exit_code}",
                if c == "never" { "created" } else { "exited" }
            )
        );
    }

    // Removed: the joiner still names the files it last shared, and its start says the
    // container is gone.
    dok(&d, &["rm", "host1"]);
    assert_eq!(dok(&d, &["inspect", "-f", paths, "joiner"]), host_paths);
    assert_eq!(dok(&d, &["inspect", "-f", paths, "never"]), "||");
    let gone = format!("No such container: {host}");
    for c in ["joiner", "never"] {
        let r = d.docker(&["start", c]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(
            r.stderr,
            format!("Error response from daemon: {gone}\nError: failed to start containers: {c}\n")
        );
        assert_eq!(dok(&d, &["inspect", "-f", "{{.State.Error}}", c]), gone);
    }
    dok(&d, &["rm", &joiner, &never]);
}

/// A raw POST of a JSON `body` to `d`'s socket; the whole reply.
fn post(d: &Daemon, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What berthd may leave on the host that names one of `names`: links (bridges, veths),
/// addresses, nftables tables of any family and rules in other tables.
fn leftovers(names: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let links = run("ip", &["-o", "link"]);
    let addrs = run("ip", &["-o", "addr"]);
    let tables = run("nft", &["list", "tables"]);
    let ruleset = run("nft", &["list", "ruleset"]);
    for name in names {
        for (what, text) in [
            ("link", &links),
            ("address", &addrs),
            ("table", &tables),
            ("rule", &ruleset),
        ] {
            for line in text.lines().filter(|l| l.contains(name.as_str())) {
                found.push(format!("{what} naming {name}: {}", line.trim()));
            }
        }
    }
    found
}

/// Every kernel object a berthd made goes when it stops with no container running: after
/// default-bridge, published-port, user-network, internal-network, fast-path, connect and
/// disconnect traffic, and also after a stop with containers running (live restore) and a
/// new berthd that saw them removed.
#[test]
fn a_stopped_berthd_leaves_no_link_address_or_table() {
    let mut d = Daemon::start();
    let default = dok(
        &d,
        &[
            "network",
            "inspect",
            "-f",
            "{{index .Options \"com.docker.network.bridge.name\"}}",
            "bridge",
        ],
    );
    // berthd's nftables tables are named after its default bridge's tag.
    let tag = default
        .strip_prefix("berth0-")
        .expect("a tagged test instance");
    let table = format!("berth_{tag}");
    let mut names = vec![default.clone(), table.clone()];
    for net in ["h4a", "h4b"] {
        let id = dok(&d, &["network", "create", net]);
        names.push(format!("br-{}", &id[..12]));
    }
    let id = dok(&d, &["network", "create", "--internal", "h4i"]);
    names.push(format!("br-{}", &id[..12]));
    web(
        &d,
        &["--name", "web", "--network", "h4a", "-p", "127.0.0.1::80"],
        "hi",
    );
    dok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "peer",
            "--network",
            "h4a",
            "busybox",
            "sleep",
            "300",
        ],
    );
    web(&d, &["--name", "plain", "-p", "80"], "hi");
    dok(&d, &["network", "connect", "h4b", "plain"]);
    dok(&d, &["network", "connect", "h4i", "peer"]);
    dok(&d, &["network", "disconnect", "h4b", "plain"]);
    let fetch = fetch_script("web", 80);
    assert_eq!(dok(&d, &["exec", "peer", "sh", "-c", &fetch]), "hi");
    for (c, net) in [
        ("web", "h4a"),
        ("peer", "h4a"),
        ("peer", "h4i"),
        ("plain", "bridge"),
    ] {
        let format = format!("{{{{.NetworkSettings.Networks.{net}.IPAddress}}}}");
        names.push(format!("{}/", inspect(&d, c, &format)));
    }
    let bridges: Vec<String> = names
        .iter()
        .filter(|n| n.starts_with("br-") || **n == default)
        .cloned()
        .collect();
    for bridge in bridges {
        names.extend(ports_of(&bridge).into_iter().map(|n| format!("{n}@")));
    }
    assert!(names.len() > 10, "{names:?}");
    assert!(!leftovers(&names).is_empty());

    // Stopped with containers running: everything stays for the next berthd.
    d.kill_daemon(libc::SIGTERM);
    assert!(
        !leftovers(&[default.clone()]).is_empty(),
        "live restore needs the bridge"
    );
    d.spawn();
    assert_eq!(dok(&d, &["exec", "peer", "sh", "-c", &fetch]), "hi");
    dok(&d, &["rm", "-f", "web", "peer", "plain"]);
    d.kill_daemon(libc::SIGTERM);
    let left = leftovers(&names);
    assert!(left.is_empty(), "left behind:\n{}", left.join("\n"));
    assert!(
        !std::path::Path::new("/run/berth-net").join(&table).exists(),
        "the instance is still registered"
    );
}

/// berth has no IPv6 yet: what Docker would place on an IPv6 subnet is refused with a
/// message that says so, and what Docker itself refuses on networks without one (`--ip6`,
/// any `--ip` on the default bridge) gets Docker's message and exit code; nothing is left.
#[test]
fn ipv6_and_misplaced_addresses_are_refused_leaving_nothing() {
    let d = Daemon::start();
    let networks_before = dok(&d, &["network", "ls", "-q"]);
    for args in [
        vec![
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "fd00:db8:41::/64",
            "v6",
        ],
        vec![
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "172.31.41.0/24",
            "--subnet",
            "fd00:db8:41::/64",
            "v6",
        ],
        vec!["network", "create", "--subnet", "fd00:db8:41::/64", "v6"],
    ] {
        let r = d.docker(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("IPv4 only"), "{args:?}: {}", r.stderr);
    }
    assert_eq!(dok(&d, &["network", "ls", "-q"]), networks_before);

    dok(
        &d,
        &["network", "create", "--subnet", "172.31.42.0/24", "v4"],
    );
    let predefined = "Error response from daemon: user specified IP address is supported on user defined networks only";
    let no_subnet = "Error response from daemon: user specified IP address is supported only when connecting to networks with user configured subnets";
    for (flags, refusal) in [
        // Without `--network` docker's CLI sends no address at all.
        (vec!["--ip6", "fd00:db8:41::5"], None),
        (vec!["--ip", "172.17.0.9"], None),
        (
            vec!["--network", "bridge", "--ip", "172.17.0.9"],
            Some(predefined),
        ),
        (
            vec!["--network", "none", "--ip6", "fd00:db8:41::5"],
            Some(predefined),
        ),
        (
            vec!["--network", "v4", "--ip6", "fd00:db8:41::5"],
            Some(no_subnet),
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(&flags);
        args.extend(["busybox", "true"]);
        for (who, r) in [("docker", d.docker(&args)), ("berth", d.berth(&args))] {
            let code = if refusal.is_some() { 125 } else { 0 };
            assert_eq!(r.code, code, "{who} {flags:?}: {}{}", r.stdout, r.stderr);
            if let Some(message) = refusal {
                assert!(r.stderr.contains(message), "{who} {flags:?}: {}", r.stderr);
            }
        }
    }
    // What the CLI leaves out, the API still refuses (as a newer docker CLI sends it).
    let body = r#"{"Image":"busybox","HostConfig":{"NetworkMode":"default"},"NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":{"IPv6Address":"fd00:db8:41::5"}}}}}"#;
    let reply = post(&d, "/containers/create", body);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(
        reply.contains(&predefined["Error response from daemon: ".len()..]),
        "{reply}"
    );
    dok(&d, &["create", "--name", "later", "busybox", "true"]);
    let r = d.docker(&[
        "network",
        "connect",
        "--ip6",
        "fd00:db8:41::5",
        "v4",
        "later",
    ]);
    assert_eq!((r.code, r.stderr.trim()), (1, no_subnet));
    assert_eq!(
        dok(&d, &["ps", "-aq"]).lines().count(),
        1,
        "refused containers left"
    );
    assert_eq!(
        dok(
            &d,
            &[
                "inspect",
                "-f",
                "{{len .NetworkSettings.Networks}}",
                "later"
            ]
        ),
        "1"
    );
}
