//! Bridge networking: the default bridge with NAT, published ports, user-defined networks,
//! isolation, `--internal`, connect/disconnect, and a clean teardown. Real namespaces and
//! real traffic, only between the host and this test's own containers. Driven with the real
//! docker CLI (and berth where it has the command).
//!
//! Requests go through `nc` from the busybox image: its static `wget` crashes in a rootfs
//! without glibc's NSS modules whatever the network (it does so under Docker too).

use berth_e2e::net::{dok, fetch_script, inspect, ports_of, web};
use berth_e2e::{eventually, Daemon};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;

/// Fetches /index.html from the host side.
fn http_get(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().last().unwrap_or_default().to_string()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .unwrap()
        .status
        .success()
}

fn ruleset() -> String {
    String::from_utf8_lossy(
        &Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .expect("nft")
            .stdout,
    )
    .into_owned()
}

fn default_bridge(d: &Daemon) -> String {
    dok(
        d,
        &[
            "network",
            "inspect",
            "-f",
            "{{index .Options \"com.docker.network.bridge.name\"}}",
            "bridge",
        ],
    )
}

#[test]
fn default_bridge_carries_traffic_and_published_ports() {
    let d = Daemon::start();
    let bridge = default_bridge(&d);
    let subnet = dok(
        &d,
        &[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
            "bridge",
        ],
    );
    let (subnet, gateway) = subnet.split_once(' ').unwrap();

    let id = web(
        &d,
        &["--name", "web", "-p", "127.0.0.1::80", "--expose", "443"],
        "hello-bridge",
    );
    let ip = inspect(&d, "web", "{{.NetworkSettings.IPAddress}}");
    let prefix: u32 = subnet.split('/').nth(1).unwrap().parse().unwrap();
    let net_of = |a: &str| {
        let v: u32 = a.parse::<std::net::Ipv4Addr>().unwrap().into();
        v & (u32::MAX << (32 - prefix))
    };
    assert_eq!(
        net_of(&ip),
        net_of(subnet.split('/').next().unwrap()),
        "{ip} not in {subnet}"
    );
    // Docker's MAC for the address, the gateway, the bridge network's entry.
    let octets: Vec<String> = ip
        .split('.')
        .map(|o| format!("{:02x}", o.parse::<u8>().unwrap()))
        .collect();
    assert_eq!(
        inspect(&d, "web", "{{.NetworkSettings.MacAddress}}"),
        format!("02:42:{}", octets.join(":"))
    );
    assert_eq!(
        inspect(
            &d,
            "web",
            "{{.NetworkSettings.Gateway}} {{.NetworkSettings.IPPrefixLen}}"
        ),
        format!("{gateway} {prefix}")
    );
    assert_eq!(
        inspect(&d, "web", "{{.NetworkSettings.Networks.bridge.IPAddress}} {{.NetworkSettings.Networks.bridge.Gateway}}"),
        format!("{ip} {gateway}")
    );
    let net_id = dok(&d, &["network", "inspect", "-f", "{{.Id}}", "bridge"]);
    assert_eq!(
        inspect(&d, "web", "{{.NetworkSettings.Networks.bridge.NetworkID}}"),
        net_id
    );
    let members = dok(
        &d,
        &[
            "network",
            "inspect",
            "-f",
            "{{range $k, $v := .Containers}}{{$k}} {{$v.IPv4Address}}{{end}}",
            "bridge",
        ],
    );
    assert_eq!(members, format!("{id} {ip}/{prefix}"));

    // Another container reaches it by address.
    let got = dok(
        &d,
        &["run", "--rm", "busybox", "sh", "-c", &fetch_script(&ip, 80)],
    );
    assert_eq!(got, "hello-bridge");

    // The published port answers on 127.0.0.1, as `port`, `ps` and inspect show it.
    let port = dok(&d, &["port", "web", "80"]);
    let host_port: u16 = port
        .strip_prefix("127.0.0.1:")
        .expect(&port)
        .parse()
        .unwrap();
    assert_eq!(http_get(&format!("127.0.0.1:{host_port}")), "hello-bridge");
    assert_eq!(
        d.ok(&["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{host_port}")
    );
    let ps = dok(&d, &["ps", "--format", "{{.Ports}}"]);
    // The CLI lists unpublished ports before mappings, as for Docker.
    assert_eq!(ps, format!("443/tcp, 127.0.0.1:{host_port}->80/tcp"));
    assert_eq!(inspect(&d, "web", "{{json .NetworkSettings.Ports}}"), format!(
        "{{\"443/tcp\":null,\"80/tcp\":[{{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"{host_port}\"}}]}}"
    ));

    // A port berth gave out: Docker's error, exit 125, nothing started or left behind.
    let veths_before = ports_of(&bridge);
    let taken = format!("127.0.0.1:{host_port}:80");
    let r = d.docker(&["run", "--name", "clash", "-p", &taken, "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains(&format!(
            "Bind for 127.0.0.1:{host_port} failed: port is already allocated"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(
        inspect(&d, "clash", "{{.State.Status}} {{.State.ExitCode}}"),
        "created 128"
    );
    assert!(
        eventually(5, || ports_of(&bridge) == veths_before),
        "no veth left by the failed start"
    );
    assert_eq!(inspect(&d, "clash", "{{.NetworkSettings.IPAddress}}"), "");
    dok(&d, &["rm", "clash"]);

    // A port another program holds: Go's listen error, as docker-proxy gives it.
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = holder.local_addr().unwrap().port();
    let r = d.docker(&[
        "run",
        "--rm",
        "-p",
        &format!("127.0.0.1:{held}:80"),
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains(&format!(
            "listen tcp4 127.0.0.1:{held}: bind: address already in use"
        )),
        "{}",
        r.stderr
    );
    drop(holder);

    // Removal takes the veth, the address and the DNAT rule away.
    dok(&d, &["rm", "-f", "web"]);
    assert!(
        eventually(5, || ports_of(&bridge).is_empty()),
        "veths left: {:?}",
        ports_of(&bridge)
    );
    assert!(
        !ruleset().contains(&format!("dport {host_port} dnat")),
        "DNAT rule left"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", host_port)).is_err()
            || http_get(&format!("127.0.0.1:{host_port}")) != "hello-bridge"
    );
}

#[test]
fn addresses_are_not_reused_across_daemon_restarts() {
    let mut d = Daemon::start();
    dok(
        &d,
        &["run", "-d", "--name", "first", "busybox", "sleep", "300"],
    );
    let first = inspect(&d, "first", "{{.NetworkSettings.IPAddress}}");
    d.kill_daemon(libc::SIGKILL);
    d.spawn();
    dok(
        &d,
        &["run", "-d", "--name", "second", "busybox", "sleep", "300"],
    );
    let second = inspect(&d, "second", "{{.NetworkSettings.IPAddress}}");
    assert_ne!(
        first, second,
        "the running container's address was handed out again"
    );
    assert_eq!(
        inspect(&d, "first", "{{.NetworkSettings.IPAddress}}"),
        first
    );
    // Once it stops, its address is free again and the lowest is handed out.
    dok(&d, &["stop", "-t", "0", "first"]);
    assert_eq!(inspect(&d, "first", "{{.NetworkSettings.IPAddress}}"), "");
    dok(
        &d,
        &["run", "-d", "--name", "third", "busybox", "sleep", "300"],
    );
    assert_eq!(
        inspect(&d, "third", "{{.NetworkSettings.IPAddress}}"),
        first
    );
}

#[test]
fn user_networks_are_created_inspected_removed_and_pruned() {
    let d = Daemon::start();
    let id = dok(
        &d,
        &[
            "network",
            "create",
            "--label",
            "team=a",
            "--subnet",
            "10.231.7.0/24",
            "--gateway",
            "10.231.7.254",
            "front",
        ],
    );
    assert_eq!(id.len(), 64);
    let shown = dok(&d, &["network", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{.Labels}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "front"]);
    assert_eq!(
        shown,
        "front bridge local false map[team:a] 10.231.7.0/24 10.231.7.254"
    );
    // Found by ID prefix too; the bridge is up with the gateway address.
    assert_eq!(
        dok(&d, &["network", "inspect", "-f", "{{.Name}}", &id[..6]]),
        "front"
    );
    let bridge = format!("br-{}", &id[..12]);
    let addr = Command::new("ip")
        .args(["-o", "addr", "show", &bridge])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&addr.stdout).contains("10.231.7.254/24"));

    // Docker's messages for the usual mistakes; nothing is made by them.
    let r = d.docker(&["network", "create", "front"]);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: network with name front already exists"
    );
    let r = d.docker(&[
        "network",
        "create",
        "--subnet",
        "10.231.7.128/25",
        "overlap",
    ]);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: Pool overlaps with other one on this address space"
    );
    let r = d.docker(&["network", "inspect", "nope"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("No such network: nope"), "{}", r.stderr);
    // As Docker: created, then the start fails.
    let r = d.docker(&[
        "run",
        "--name",
        "lost",
        "--network",
        "nope",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .contains("Error response from daemon: network nope not found"),
        "{}",
        r.stderr
    );
    assert_eq!(
        inspect(
            &d,
            "lost",
            "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}"
        ),
        "created 128 network nope not found"
    );
    dok(&d, &["rm", "lost"]);
    let r = d.docker(&["network", "rm", "bridge"]);
    assert!(
        r.stderr
            .contains("bridge is a pre-defined network and cannot be removed"),
        "{}",
        r.stderr
    );
    let names = dok(&d, &["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(
        names,
        ["bridge bridge", "front bridge", "host host", "none null"]
    );

    // In use: refused; --ip and aliases are recorded.
    dok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "member",
            "--network",
            "front",
            "--ip",
            "10.231.7.9",
            "--network-alias",
            "www",
            "busybox",
            "sleep",
            "300",
        ],
    );
    assert_eq!(
        inspect(
            &d,
            "member",
            "{{.NetworkSettings.Networks.front.IPAddress}}"
        ),
        "10.231.7.9"
    );
    assert_eq!(
        inspect(&d, "member", "{{.NetworkSettings.IPAddress}}"),
        "",
        "top-level fields are the default bridge's"
    );
    let aliases = inspect(&d, "member", "{{.NetworkSettings.Networks.front.Aliases}}");
    assert!(aliases.starts_with("[www "), "{aliases}");
    let r = d.docker(&["network", "rm", "front"]);
    assert!(
        r.stderr.contains(&format!(
            "error while removing network: network front id {id} has active endpoints"
        )),
        "{}",
        r.stderr
    );

    // Stopped, the network may go; prune takes unused ones and leaves the predefined.
    dok(&d, &["rm", "-f", "member"]);
    dok(&d, &["network", "create", "spare"]);
    let pruned = dok(&d, &["network", "prune", "-f"]);
    assert!(
        pruned.contains("front") && pruned.contains("spare"),
        "{pruned}"
    );
    assert!(!link_exists(&bridge), "bridge {bridge} left behind");
    let names = dok(&d, &["network", "ls", "-q"]);
    assert_eq!(names.lines().count(), 3);
    let expected = [
        "create front",
        "connect front",
        "disconnect front",
        "destroy front",
        "destroy spare",
    ];
    let mut events = String::new();
    // `--until` is inclusive of whole seconds only once they are over.
    let all_seen = eventually(5, || {
        events = dok(
            &d,
            &[
                "events",
                "--since",
                "0",
                "--until",
                "0s",
                "--filter",
                "type=network",
                "--format",
                "{{.Action}} {{.Actor.Attributes.name}}",
            ],
        );
        expected.iter().all(|e| events.contains(e))
    });
    assert!(all_seen, "missing network events in:\n{events}");
}

#[test]
fn networks_are_isolated_and_internal_ones_have_no_way_out() {
    let d = Daemon::start();
    dok(&d, &["network", "create", "blue"]);
    dok(&d, &["network", "create", "red"]);
    dok(&d, &["network", "create", "--internal", "vault"]);
    web(&d, &["--name", "site", "--network", "blue"], "hello-blue");
    let ip = inspect(&d, "site", "{{.NetworkSettings.Networks.blue.IPAddress}}");
    assert_eq!(
        dok(
            &d,
            &[
                "run",
                "--rm",
                "--network",
                "blue",
                "busybox",
                "sh",
                "-c",
                &fetch_script(&ip, 80)
            ]
        ),
        "hello-blue"
    );
    assert_eq!(
        dok(
            &d,
            &[
                "run",
                "--rm",
                "--network",
                "red",
                "busybox",
                "sh",
                "-c",
                &fetch_script(&ip, 80)
            ]
        ),
        ""
    );

    // A listener on the host, reached from a normal network through its gateway; from an
    // internal network there is no route beyond its own subnet.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let red_gateway = dok(
        &d,
        &[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "red",
        ],
    );
    // nc waits for the listener, which never answers: `timeout` ends it once connected.
    let probe = format!("timeout 3 nc {red_gateway} {port} </dev/null; [ $? = 143 ] && echo reached || echo blocked");
    assert_eq!(
        dok(
            &d,
            &[
                "run",
                "--rm",
                "--network",
                "blue",
                "busybox",
                "sh",
                "-c",
                &probe
            ]
        ),
        "reached"
    );
    assert_eq!(
        dok(
            &d,
            &[
                "run",
                "--rm",
                "--network",
                "vault",
                "busybox",
                "sh",
                "-c",
                &probe
            ]
        ),
        "blocked"
    );
    assert_eq!(
        dok(
            &d,
            &[
                "run",
                "--rm",
                "--network",
                "vault",
                "busybox",
                "ip",
                "route"
            ]
        )
        .lines()
        .count(),
        1,
        "no default route"
    );
    drop(listener);
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let d = Daemon::start();
    dok(&d, &["network", "create", "back"]);
    web(&d, &["--name", "api", "--network", "back"], "hello-back");
    let api = inspect(&d, "api", "{{.NetworkSettings.Networks.back.IPAddress}}");
    dok(
        &d,
        &["run", "-d", "--name", "client", "busybox", "sleep", "300"],
    );
    assert_eq!(
        dok(&d, &["exec", "client", "sh", "-c", &fetch_script(&api, 80)]),
        ""
    );

    dok(&d, &["network", "connect", "back", "client"]);
    let mac = inspect(
        &d,
        "client",
        "{{.NetworkSettings.Networks.back.MacAddress}}",
    );
    assert_eq!(
        dok(
            &d,
            &["exec", "client", "cat", "/sys/class/net/eth1/address"]
        ),
        mac
    );
    assert_eq!(
        dok(&d, &["exec", "client", "sh", "-c", &fetch_script(&api, 80)]),
        "hello-back"
    );
    let r = d.docker(&["network", "connect", "back", "client"]);
    assert!(
        r.stderr
            .contains("endpoint with name client already exists in network back"),
        "{}",
        r.stderr
    );

    dok(&d, &["network", "disconnect", "back", "client"]);
    assert!(eventually(5, || d
        .docker(&["exec", "client", "ls", "/sys/class/net/eth1"])
        .code
        != 0));
    assert_eq!(
        dok(&d, &["exec", "client", "sh", "-c", &fetch_script(&api, 80)]),
        ""
    );
    assert_eq!(
        inspect(&d, "client", "{{len .NetworkSettings.Networks}}"),
        "1"
    );
    let r = d.docker(&["network", "disconnect", "back", "client"]);
    assert!(
        r.stderr.contains("is not connected to network back"),
        "{}",
        r.stderr
    );

    // Connected while stopped: joined at the next start.
    dok(&d, &["stop", "-t", "0", "client"]);
    dok(&d, &["network", "connect", "back", "client"]);
    assert_eq!(
        inspect(&d, "client", "{{.NetworkSettings.Networks.back.IPAddress}}"),
        ""
    );
    dok(&d, &["start", "client"]);
    assert_eq!(
        dok(&d, &["exec", "client", "sh", "-c", &fetch_script(&api, 80)]),
        "hello-back"
    );
}

#[test]
fn stopping_berthd_removes_its_bridges_and_rules() {
    let mut d = Daemon::start();
    let id = dok(&d, &["network", "create", "temp"]);
    let user_bridge = format!("br-{}", &id[..12]);
    let bridge = default_bridge(&d);
    dok(&d, &["run", "--rm", "busybox", "true"]);
    assert!(link_exists(&bridge) && link_exists(&user_bridge));
    assert!(ruleset().contains(&format!("\"{bridge}\"")));
    d.kill_daemon(libc::SIGTERM);
    assert!(!link_exists(&bridge), "default bridge left");
    assert!(!link_exists(&user_bridge), "user bridge left");
    let rules = ruleset();
    assert!(
        !rules.contains(&bridge) && !rules.contains(&user_bridge),
        "rules left:\n{rules}"
    );
    // Back up, the network is still defined and its bridge returns.
    d.spawn();
    assert_eq!(
        dok(&d, &["network", "inspect", "-f", "{{.Id}}", "temp"]),
        id
    );
    assert!(link_exists(&user_bridge));
}
