//! Network modes and the files Docker writes per container (`/etc/hosts`,
//! `/etc/resolv.conf`, `/etc/hostname`), against berthd; and the `berth network` commands'
//! output against a private real dockerd, so the CLI is checked against Docker itself.

use berth_e2e::{Daemon, Dockerd};

/// The lines every Docker `/etc/hosts` starts with.
const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The network namespace of `pid` as the kernel names it (`net:[4026531840]`).
fn netns_of(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn files_follow_the_flags() {
    let d = Daemon::start();
    let out = d.ok(&[
        "run", "--rm", "--network", "none", "-h", "myhost", "--domainname", "example.com",
        "--add-host", "foo:1.2.3.4", "--add-host", "v6:::1",
        "--dns", "8.8.8.8", "--dns-search", "a.com", "--dns-option", "ndots:2",
        "busybox", "sh", "-c",
        "cat /etc/hosts; echo --; cat /etc/resolv.conf; echo --; cat /etc/hostname; hostname; cat /proc/sys/kernel/domainname",
    ]);
    let expected = format!(
        "{HOSTS_HEADER}1.2.3.4\tfoo\n::1\tv6\n--\nsearch a.com\nnameserver 8.8.8.8\noptions ndots:2\n--\nmyhost\nmyhost\nexample.com"
    );
    assert_eq!(out, expected);

    // The files are Docker's paths, bound read-write, and inspect shows the settings.
    let id = d.ok(&[
        "create",
        "--add-host",
        "foo:1.2.3.4",
        "--dns",
        "1.1.1.1",
        "--dns-search",
        "x.org",
        "--dns-option",
        "attempts:2",
        "busybox",
        "true",
    ]);
    // The file paths are empty until the first start, as Docker records them then.
    let fmt = "{{json .HostConfig.ExtraHosts}} {{json .HostConfig.Dns}} {{json .HostConfig.DnsSearch}} {{json .HostConfig.DnsOptions}} [{{.HostsPath}}]";
    assert_eq!(
        d.ok(&["inspect", "-f", fmt, &id]),
        "[\"foo:1.2.3.4\"] [\"1.1.1.1\"] [\"x.org\"] [\"attempts:2\"] []"
    );
    d.ok(&["start", "-a", &id]);
    let dir = d.data_root.join("containers").join(&id);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostsPath}} {{.HostnamePath}} {{.ResolvConfPath}}",
            &id
        ]),
        format!(
            "{} {} {}",
            dir.join("hosts").display(),
            dir.join("hostname").display(),
            dir.join("resolv.conf").display()
        )
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo 10.0.0.9 extra >> /etc/hosts && tail -1 /etc/hosts",
    ]);
    assert_eq!(out, "10.0.0.9 extra");
}

/// IPv4 addresses only, as in dockerd 20.10's sandboxes when the network has no IPv6 (berth's
/// never do): `lo` has no `::1`, `eth0` no link-local `fe80::`.
#[test]
fn containers_have_no_ipv6_addresses() {
    let d = Daemon::start();
    let inet = "ip addr | grep inet | awk '{print $1, $NF}'";
    assert_eq!(d.ok(&["run", "--rm", "--network", "none", "busybox", "sh", "-c", inet]), "inet lo");
    assert_eq!(d.ok(&["run", "--rm", "busybox", "sh", "-c", inet]), "inet lo\ninet eth0");
}

#[test]
fn resolv_conf_keeps_the_hosts_reachable_resolvers() {
    let d = Daemon::start();
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let got = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    let servers = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("nameserver"))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .collect()
    };
    let reachable: Vec<String> = servers(&host)
        .into_iter()
        .filter(|s| !s.starts_with("127.") && s != "::1")
        .collect();
    if reachable.is_empty() {
        // Docker's fallback when only loopback resolvers are configured.
        assert_eq!(servers(&got)[..2], ["8.8.8.8", "8.8.4.4"]);
    } else {
        assert_eq!(servers(&got), reachable);
    }
    // The default hostname is the short ID, in the file and the UTS namespace.
    let id = d.ok(&["run", "-d", "--network", "none", "busybox", "sleep", "60"]);
    assert_eq!(d.ok(&["exec", &id, "cat", "/etc/hostname"]), id[..12]);
    assert_eq!(d.ok(&["exec", &id, "hostname"]), id[..12]);
    // --network none has no address line for the hostname.
    assert_eq!(
        d.ok(&["exec", &id, "cat", "/etc/hosts"]),
        HOSTS_HEADER.trim_end()
    );
    d.ok(&["rm", "-f", &id]);
}

#[test]
fn host_mode_shares_the_hosts_network_and_name() {
    let d = Daemon::start();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let id = d.ok(&["run", "-d", "--network", "host", "busybox", "sleep", "60"]);
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
    assert_eq!(
        netns_of(&pid),
        netns_of("self"),
        "the host's network namespace"
    );
    assert_eq!(d.ok(&["exec", &id, "hostname"]), host_name);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Config.Hostname}}", &id]),
        host_name
    );
    let hosts = d.ok(&["exec", &id, "cat", "/etc/hosts"]);
    assert_eq!(
        hosts,
        std::fs::read_to_string("/etc/hosts").unwrap().trim_end()
    );
    let resolv = d.ok(&["exec", &id, "cat", "/etc/resolv.conf"]);
    assert_eq!(
        resolv,
        std::fs::read_to_string("/etc/resolv.conf")
            .unwrap()
            .trim_end()
    );
    d.ok(&["rm", "-f", &id]);
    // Its own UTS namespace still: --hostname names only the container.
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--network",
            "host",
            "-h",
            "inside",
            "busybox",
            "hostname"
        ]),
        "inside"
    );
    // --add-host gives it a hosts file of its own, without an address line.
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--add-host",
        "a:1.1.1.1",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert_eq!(out, format!("{HOSTS_HEADER}1.1.1.1\ta"));
    // Published ports mean nothing on the host's network: Docker's warning, and it runs.
    let r = d.berth(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-p",
        "8080:80",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        "WARNING: Published ports are discarded when using host network mode"
    );
}

#[test]
fn container_mode_joins_a_running_container() {
    let d = Daemon::start();
    let c1 = d.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "-h",
        "c1host",
        "--add-host",
        "zz:2.2.2.2",
        "busybox",
        "sleep",
        "60",
    ]);
    let pid1 = d.ok(&["inspect", "-f", "{{.State.Pid}}", "c1"]);
    let c2 = d.ok(&[
        "run",
        "-d",
        "--network",
        "container:c1",
        "busybox",
        "sleep",
        "60",
    ]);
    // The name is kept as the ID, as Docker does.
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.NetworkMode}}", &c2]),
        format!("container:{c1}")
    );
    let pid2 = d.ok(&["inspect", "-f", "{{.State.Pid}}", &c2]);
    assert_eq!(netns_of(&pid1), netns_of(&pid2));
    assert_ne!(netns_of(&pid1), netns_of("self"));
    assert_eq!(d.ok(&["exec", &c2, "hostname"]), "c1host");
    assert_eq!(
        d.ok(&["exec", &c2, "cat", "/etc/hosts"]),
        d.ok(&["exec", "c1", "cat", "/etc/hosts"])
    );
    assert!(d
        .ok(&["exec", &c2, "cat", "/etc/hosts"])
        .contains("\n2.2.2.2\tzz\n"));
    // A file changed in one is changed in both: they share it.
    d.ok(&[
        "exec",
        "c1",
        "sh",
        "-c",
        "echo 10.1.1.1 shared >> /etc/hosts",
    ]);
    assert!(d
        .ok(&["exec", &c2, "cat", "/etc/hosts"])
        .ends_with("10.1.1.1 shared"));
    // Inspect names the files it shares: the other container's, as Docker shows them.
    let paths = "{{.HostsPath}} {{.HostnamePath}} {{.ResolvConfPath}}";
    let c1_paths = d.ok(&["inspect", "-f", paths, "c1"]);
    assert!(c1_paths.contains(&c1), "{c1_paths}");
    assert_eq!(d.ok(&["inspect", "-f", paths, &c2]), c1_paths);
    d.ok(&["rm", "-f", &c2]);

    // Docker's refusals, from the daemon, with `docker run`'s exit code.
    for (flags, message) in [
        (
            vec!["-h", "x"],
            "conflicting options: hostname and the network mode",
        ),
        (
            vec!["--dns", "1.1.1.1"],
            "conflicting options: dns and the network mode",
        ),
        (
            vec!["--add-host", "a:1.1.1.1"],
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
        (
            vec!["--expose", "80"],
            "conflicting options: port exposing and the container type network mode",
        ),
        (
            vec!["-p", "8080:80"],
            "conflicting options: port publishing and the container type network mode",
        ),
    ] {
        let mut args = vec!["run", "--rm", "--network", "container:c1"];
        args.extend(flags.iter());
        args.extend(["busybox", "true"]);
        let r = d.berth(&args);
        assert_eq!(r.code, 125, "{flags:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("Error response from daemon: {message}")),
            "{flags:?}: {}",
            r.stderr
        );
    }
    let r = d.docker(&["run", "--rm", "--network", "container:", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .contains("Invalid network mode: invalid container format container:<name|id>"),
        "{}",
        r.stderr
    );
    let r = d.berth(&[
        "run",
        "--rm",
        "--network",
        "container:nope",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("No such container: nope"), "{}", r.stderr);
    let stopped = d.ok(&["create", "--name", "stopped", "busybox", "true"]);
    let r = d.berth(&[
        "run",
        "--rm",
        "--network",
        "container:stopped",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains(&format!(
            "cannot join network of a non running container: {stopped}"
        )),
        "{}",
        r.stderr
    );
    // --rm removed the refused containers; c1 and `stopped` are all that is left.
    assert_eq!(d.ok(&["ps", "-aq"]).lines().count(), 2);
}

#[test]
fn bad_network_flags_are_refused_by_the_cli() {
    let d = Daemon::start();
    for (flags, message) in [
        (vec!["--add-host", "foo"], "invalid argument \"foo\" for \"--add-host\" flag: bad format for add-host: \"foo\""),
        (vec!["--add-host", "foo:bar"], "invalid argument \"foo:bar\" for \"--add-host\" flag: invalid IP address in add-host: \"bar\""),
        (vec!["--dns", "bad"], "invalid argument \"bad\" for \"--dns\" flag: IP address is not correctly formatted: bad"),
        (vec!["-p", "abc"], "invalid containerPort: abc"),
        (vec!["--network-alias", "x"], "network-scoped aliases are only supported for user-defined networks"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter());
        args.extend(["busybox", "true"]);
        let r = d.berth(&args);
        assert_eq!(r.code, 125, "{flags:?}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{flags:?}: {}", r.stderr);
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

/// `berth -H <private dockerd>`: the CLI checked against Docker itself.
fn berth_on(docker: &Dockerd, args: &[&str]) -> berth_e2e::Run {
    let root = docker
        .docker(&["info", "--format", "{{.DockerRootDir}}"])
        .stdout;
    let socket = std::path::Path::new(root.trim()).with_file_name("docker.sock");
    std::process::Command::new(berth_e2e::bin_dir().join("berth"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(args)
        .env_remove("BERTH_HOST")
        .env_remove("DOCKER_HOST")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run berth")
        .into()
}

/// Removes the test's networks from the private dockerd even when the test fails: their
/// bridges would outlive the dockerd otherwise.
struct RemoveNetworks<'a>(&'a Dockerd);

impl Drop for RemoveNetworks<'_> {
    fn drop(&mut self) {
        let _ = self.0.docker(&["rm", "-f", "h5c"]);
        for net in ["h5net1", "h5net2", "h5keep", "h5bad"] {
            let _ = self.0.docker(&["network", "rm", net]);
        }
    }
}

#[test]
fn network_commands_print_what_docker_prints() {
    let docker = Dockerd::start();
    let _cleanup = RemoveNetworks(&docker);
    let berth = |args: &[&str]| berth_on(&docker, args);

    let r = berth(&[
        "network",
        "create",
        "--subnet",
        "10.99.0.0/24",
        "--gateway",
        "10.99.0.254",
        "--ip-range",
        "10.99.0.128/25",
        "--internal",
        "--label",
        "team=a",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "--attachable",
        "h5net1",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let id = r.stdout.trim().to_string();
    assert_eq!(id.len(), 64);
    let r = berth(&["network", "create", "h5net1"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: network with name h5net1 already exists"
        )
    );
    let r = berth(&["network", "create", "--gateway", "10.1.1.1", "h5bad"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "every ip-range or gateway must have a corresponding subnet"
        )
    );
    let r = berth(&[
        "network",
        "create",
        "--subnet",
        "10.98.0.0/24",
        "--gateway",
        "10.97.0.1",
        "h5bad",
    ]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "no matching subnet for gateway 10.97.0.1")
    );
    assert_eq!(berth(&["network", "create", "h5net2"]).code, 0);

    // ls, in every form, is byte for byte docker's.
    for args in [
        vec!["network", "ls"],
        vec!["network", "ls", "-q"],
        vec!["network", "ls", "--no-trunc"],
        vec!["network", "ls", "-f", "name=h5", "--format", "{{.ID}}|{{.Name}}|{{.Driver}}|{{.Scope}}|{{.IPv6}}|{{.Internal}}|{{.Labels}}|{{.CreatedAt}}|{{.Label \"team\"}}"],
        vec!["network", "ls", "--format", "table {{.Name}}\t{{.Internal}}\t{{.Labels}}"],
        vec!["network", "ls", "-f", "label=team=a", "-q", "--no-trunc"],
        vec!["network", "inspect", "h5net1"],
        vec!["network", "inspect", "-f", "{{.Name}} {{.Internal}} {{range .IPAM.Config}}{{.Gateway}}{{end}}", "h5net1", "h5net2"],
    ] {
        let (ours, theirs) = (berth(&args), docker.docker(&args));
        assert_eq!(theirs.code, 0, "{args:?}: {}", theirs.stderr);
        assert_eq!((ours.code, &ours.stdout), (0, &theirs.stdout), "{args:?}: {}", ours.stderr);
    }
    assert!(berth(&["network", "ls", "-q"]).stdout.contains(&id[..12]));
    let r = berth(&["network", "ls", "-f", "bogus=1"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error response from daemon: Invalid filter 'bogus'")
    );
    let r = berth(&["network", "inspect", "nope"]);
    assert_eq!(
        (r.code, r.stdout.trim(), r.stderr.trim()),
        (
            1,
            "[]",
            "Error response from daemon: network nope not found"
        )
    );

    // connect and disconnect: silent on success, docker's errors otherwise.
    let rootfs = std::env::temp_dir().join(format!("berth-h5-rootfs-{}.tar", std::process::id()));
    let tar = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&rootfs)
        .args(["-C", "/", "bin/busybox"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    assert_eq!(
        docker
            .docker(&["import", rootfs.to_str().unwrap(), "h5img"])
            .code,
        0
    );
    let _ = std::fs::remove_file(&rootfs);
    // `run`/`create`'s network flags make the request docker's CLI makes.
    let flags = [
        "-p",
        "127.0.0.1::80",
        "-p",
        "8080:80/udp",
        "-p",
        "90",
        "-p",
        "8000-8001:81",
        "--expose",
        "70-71",
        "-P",
        "--add-host",
        "a:1.1.1.1",
        "--dns",
        "1.1.1.1",
        "--dns-search",
        "x.org",
        "--domainname",
        "x.y",
    ];
    let fmt = "{{json .HostConfig.PortBindings}} {{json .Config.ExposedPorts}} {{json .HostConfig.PublishAllPorts}} \
               {{json .HostConfig.ExtraHosts}} {{json .HostConfig.Dns}} {{json .HostConfig.DnsSearch}} \
               {{json .HostConfig.DnsOptions}} {{json .Config.Domainname}} {{.HostConfig.NetworkMode}}";
    let mut shown = Vec::new();
    for by_berth in [true, false] {
        let mut args = vec!["create", "--network", "none"];
        args.extend(flags);
        args.extend(["h5img", "/bin/busybox", "true"]);
        let r = if by_berth {
            berth(&args)
        } else {
            docker.docker(&args)
        };
        assert_eq!(r.code, 0, "{}", r.stderr);
        shown.push(
            docker
                .docker(&["inspect", "-f", fmt, r.stdout.trim()])
                .stdout,
        );
        assert_eq!(docker.docker(&["rm", r.stdout.trim()]).code, 0);
    }
    assert_eq!(shown[0], shown[1]);
    let r = docker.docker(&[
        "create",
        "--name",
        "h5c",
        "--network",
        "h5net2",
        "h5img",
        "/bin/busybox",
        "true",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = berth(&[
        "network",
        "connect",
        "--alias",
        "web",
        "--ip",
        "10.99.0.130",
        "h5net1",
        "h5c",
    ]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    let fmt = "{{json .NetworkSettings.Networks.h5net1.IPAMConfig.IPv4Address}} {{json .NetworkSettings.Networks.h5net1.Aliases}}";
    // dockerd adds the short ID as a second alias.
    let aliases = docker.docker(&["inspect", "-f", fmt, "h5c"]).stdout;
    assert!(
        aliases.starts_with("\"10.99.0.130\" [\"web\","),
        "{aliases}"
    );
    let r = berth(&["network", "connect", "h5net1", "nope"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error response from daemon: No such container: nope")
    );
    assert_eq!(berth(&["network", "disconnect", "h5net1", "h5c"]).code, 0);
    let r = berth(&["network", "disconnect", "h5net1", "h5c"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("is not connected to") && r.stderr.contains("h5net1"),
        "{}",
        r.stderr
    );

    // rm: names on stdout, errors on stderr, exit 1 when any failed; -f ignores missing ones.
    let r = berth(&["network", "rm", "nope", "h5net1"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.trim()),
        (
            1,
            "h5net1\n",
            "Error response from daemon: network nope not found"
        )
    );
    assert_eq!(berth(&["network", "rm", "-f", "nope"]).code, 0);

    // prune: unused networks only, docker's report.
    assert_eq!(docker.docker(&["rm", "h5c"]).code, 0);
    assert_eq!(
        berth(&["network", "create", "--label", "keep=1", "h5keep"]).code,
        0
    );
    let r = berth(&["network", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "Deleted Networks:\nh5net2\n\n"),
        "{}",
        r.stderr
    );
    let r = berth(&["network", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    assert_eq!(
        berth(&["network", "ls", "-q", "-f", "name=h5"])
            .stdout
            .lines()
            .count(),
        1
    );
}

#[test]
fn user_network_names_resolve_through_the_embedded_dns() {
    let d = Daemon::start();
    d.ok(&["network", "create", "h5dns"]);
    // Upstream resolvers on the host's loopback: a forwarded query never leaves the machine.
    let dns = ["--dns", "127.0.0.1", "--dns-search", "."];
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "h5dns",
        "--network-alias",
        "www",
    ];
    args.extend(dns);
    args.extend(["busybox", "sleep", "60"]);
    let web = d.ok(&args);
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.h5dns.IPAddress}}",
        "web",
    ]);
    assert!(!ip.is_empty());
    assert_eq!(
        d.ok(&["exec", "web", "cat", "/etc/resolv.conf"]),
        "nameserver 127.0.0.11\noptions ndots:0"
    );
    assert_eq!(
        d.ok(&["exec", "web", "cat", "/etc/hosts"]),
        format!("{HOSTS_HEADER}{ip}\t{}", &web[..12])
    );

    for name in ["web", "www", "WEB."] {
        let mut args = vec!["run", "--rm", "--network", "h5dns"];
        args.extend(dns);
        args.extend(["busybox", "nslookup", "-type=a", name]);
        let out = d.ok(&args);
        assert!(
            out.contains("Server:\t\t127.0.0.11") || out.contains("127.0.0.11"),
            "{out}"
        );
        assert!(out.contains(&format!("Address: {ip}")), "{name}: {out}");
    }
    // The default bridge has no embedded DNS server, as in Docker.
    let out = d.ok(&["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
    assert!(!out.contains("127.0.0.11"), "{out}");
    // Live restore: the DNS sockets died with the old daemon; the new one serves again.
    let mut d = d;
    d.kill_daemon(libc::SIGKILL);
    d.spawn();
    let out = d.ok(&["exec", "web", "nslookup", "-type=a", "www"]);
    assert!(
        out.contains(&format!("Address: {ip}")),
        "after a daemon restart: {out}"
    );
    // The server goes with the container: its namespace is gone, and nothing is left bound.
    d.ok(&["rm", "-f", "web"]);
    assert!(!d.exec_root.join("netns").join(&web).exists());
    d.ok(&["network", "rm", "h5dns"]);
}

/// A fake resolver on `addr` (the host side of a test network): answers every query
/// NXDOMAIN and reports who asked what, so no query ever leaves the machine.
fn fake_resolver(addr: &str) -> std::sync::mpsc::Receiver<(std::net::SocketAddr, Vec<u8>)> {
    let sock = std::net::UdpSocket::bind(addr).expect("bind the fake resolver");
    sock.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let mut reply = buf[..n].to_vec();
            if reply.len() < 12 {
                continue;
            }
            reply[2] |= 0x80; // a response
            reply[3] = (reply[3] & 0xf0) | 3; // NXDOMAIN
            let _ = sock.send_to(&reply, peer);
            if tx.send((peer, buf[12..n].to_vec())).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn unknown_names_are_forwarded_from_the_containers_namespace() {
    let d = Daemon::start();
    d.ok(&[
        "network",
        "create",
        "--subnet",
        "10.231.0.0/24",
        "--gateway",
        "10.231.0.1",
        "h5fwd",
    ]);
    // The resolver listens on the network's gateway, as a `--dns` the container reaches
    // through its own route (Docker asks non-loopback upstreams from the container).
    let asked = fake_resolver("10.231.0.1:53");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "probe",
        "--network",
        "h5fwd",
        "--dns",
        "10.231.0.1",
        "--dns-search",
        ".",
        "busybox",
        "sleep",
        "60",
    ]);
    let r = d.berth(&["exec", "probe", "nslookup", "-type=a", "elsewhere.example"]);
    assert!(
        r.stdout.contains("NXDOMAIN") || r.stderr.contains("NXDOMAIN"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let (from, query) = asked
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the query reached the upstream");
    assert!(query.windows(9).any(|w| w == b"elsewhere"), "{query:?}");
    // Sent from the container's address, not the host's.
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.h5fwd.IPAddress}}",
        "probe",
    ]);
    assert_eq!(from.ip().to_string(), ip);
    d.ok(&["rm", "-f", "probe"]);
    d.ok(&["network", "rm", "h5fwd"]);
}

/// A container started on the default bridge (no embedded DNS server) that is connected to
/// a user-defined network gets the server then, as under Docker: its resolv.conf is rebuilt
/// around 127.0.0.11 (its options kept, `ndots:0` added) and names on the new network
/// resolve, also after a daemon restart.
#[test]
fn connecting_a_default_bridge_container_brings_the_embedded_dns() {
    let d = Daemon::start();
    d.ok(&["network", "create", "h3dns"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "named",
        "--network",
        "h3dns",
        "busybox",
        "sleep",
        "60",
    ]);
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.h3dns.IPAddress}}",
        "named",
    ]);
    // Upstreams on the host's loopback: a forwarded query never leaves the machine.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--dns",
        "127.0.0.1",
        "--dns-search",
        ".",
        "--dns-option",
        "timeout:2",
        "busybox",
        "sleep",
        "60",
    ]);
    let before = d.ok(&["exec", "plain", "cat", "/etc/resolv.conf"]);
    assert!(!before.contains("127.0.0.11"), "{before}");
    let r = d.docker(&["network", "connect", "h3dns", "plain"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        d.ok(&["exec", "plain", "cat", "/etc/resolv.conf"]),
        "nameserver 127.0.0.11\noptions timeout:2 ndots:0"
    );
    let out = d.ok(&["exec", "plain", "nslookup", "-type=a", "named"]);
    assert!(out.contains(&format!("Address: {ip}")), "{out}");
    // Live restore: the server died with the old daemon; the new one serves again.
    let mut d = d;
    d.kill_daemon(libc::SIGKILL);
    d.spawn();
    let out = d.ok(&["exec", "plain", "nslookup", "-type=a", "named"]);
    assert!(
        out.contains(&format!("Address: {ip}")),
        "after a daemon restart: {out}"
    );
    d.ok(&["rm", "-f", "plain", "named"]);
    d.ok(&["network", "rm", "h3dns"]);
}
