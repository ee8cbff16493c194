//! The files Docker writes for every container and binds over the image's: `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname`. Pure functions of the container's settings and
//! the host's own files, so every rule is unit-tested; the daemon only reads and writes.

use std::net::{IpAddr, Ipv4Addr};

/// The embedded DNS server's address, as containers on user-defined networks see it.
pub const EMBEDDED_DNS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Docker's fallback when the host has no resolver a container can reach.
const DEFAULT_NAMESERVERS: &[&str] = &[
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
];

/// The lines every Docker `/etc/hosts` starts with.
const HOSTS_HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// What `/etc/hosts` is made from.
#[derive(Debug, Clone, Default)]
pub struct HostsInput<'a> {
    pub hostname: &'a str,
    pub domainname: &'a str,
    /// The container's address on its network; none under `--network none` and `host`.
    pub address: Option<IpAddr>,
    /// `--add-host` entries, already parsed: (name, address).
    pub extra: &'a [(String, IpAddr)],
}

/// `/etc/hosts`: Docker's header, the `--add-host` entries, then the container's own
/// address with its names.
pub fn hosts(input: &HostsInput) -> String {
    let mut out = String::from(HOSTS_HEADER);
    for (name, ip) in input.extra {
        out.push_str(&format!("{ip}\t{name}\n"));
    }
    if let Some(ip) = input.address {
        // The FQDN and the bare name, as Docker: `-h a.b --domainname c` is `a.b.c a`.
        let fqdn = match input.domainname {
            "" => input.hostname.to_string(),
            domain => format!("{}.{domain}", input.hostname),
        };
        match fqdn.split_once('.') {
            Some((bare, _)) => out.push_str(&format!("{ip}\t{fqdn} {bare}\n")),
            None => out.push_str(&format!("{ip}\t{fqdn}\n")),
        }
    }
    out
}

/// `/etc/hostname`: the hostname alone (the domain lives in the UTS namespace).
pub fn hostname(name: &str) -> String {
    format!("{name}\n")
}

/// Parses one `--add-host` entry, `name:address`; `host-gateway` stands for `gateway`
/// (the address the daemon resolves it to). The errors are dockerd's.
pub fn parse_extra_host(entry: &str, gateway: Option<IpAddr>) -> Result<(String, IpAddr), String> {
    // The address may be IPv6 and hold colons: the name ends at the first one.
    let (name, addr) = entry
        .split_once(':')
        .filter(|(n, a)| !n.is_empty() && !a.is_empty())
        .ok_or_else(|| format!("bad format for add-host: \"{entry}\""))?;
    let ip = match addr {
        "host-gateway" => {
            gateway.ok_or_else(|| "unable to derive the IP value for host-gateway".to_string())?
        }
        a => a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("invalid IP address in add-host: \"{a}\""))?,
    };
    Ok((name.to_string(), ip))
}

/// The DNS settings a container asks for (`--dns`, `--dns-search`, `--dns-option`).
#[derive(Debug, Clone, Default)]
pub struct DnsSettings<'a> {
    pub servers: &'a [String],
    pub search: &'a [String],
    pub options: &'a [String],
}

impl DnsSettings<'_> {
    fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.search.is_empty() && self.options.is_empty()
    }
}

/// A parsed `resolv.conf`: the three kinds of lines Docker keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Reads `nameserver`, `search`/`domain` and `options` lines; the last `search` wins,
    /// as in the resolver.
    pub fn parse(text: &str) -> ResolvConf {
        let mut rc = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => rc.nameservers.extend(words.next().map(str::to_string)),
                Some("search") | Some("domain") => rc.search = words.map(str::to_string).collect(),
                Some("options") => rc.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        rc
    }

    /// The file: `search`, `nameserver`s, `options`, in Docker's order.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // `--dns-search .` means no search domains.
        let search: Vec<&str> = self
            .search
            .iter()
            .map(String::as_str)
            .filter(|s| *s != ".")
            .collect();
        if !search.is_empty() {
            out.push_str(&format!("search {}\n", search.join(" ")));
        }
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }

    /// The nameservers as addresses, those that are not addresses skipped.
    pub fn nameserver_addrs(&self) -> Vec<IpAddr> {
        self.nameservers
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect()
    }
}

/// The host's resolver configuration as Docker picks it: `/etc/resolv.conf`, or
/// systemd-resolved's upstream list when that file only points at its local stub.
pub fn read_host_resolv_conf() -> String {
    let main = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if ResolvConf::parse(&main).nameservers == ["127.0.0.53"] {
        if let Ok(upstream) = std::fs::read_to_string("/run/systemd/resolve/resolv.conf") {
            return upstream;
        }
    }
    main
}

fn is_loopback(ns: &str) -> bool {
    ns.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host's settings with the container's `--dns*` flags laid over them.
fn merged(host: &str, dns: &DnsSettings) -> ResolvConf {
    let mut rc = ResolvConf::parse(host);
    if !dns.servers.is_empty() {
        rc.nameservers = dns.servers.to_vec();
    }
    if !dns.search.is_empty() {
        rc.search = dns.search.to_vec();
    }
    if !dns.options.is_empty() {
        rc.options = dns.options.to_vec();
    }
    rc
}

/// `/etc/resolv.conf` of a container in its own network namespace on Docker's default
/// bridge or `none`: the host's file with loopback resolvers removed (they are not
/// reachable from the container), Google's public servers when none are left, as Docker
/// does; with `--dns*` flags, a file built from them and the host's remaining values.
pub fn resolv_conf(host: &str, dns: &DnsSettings) -> String {
    if dns.is_empty() {
        let kept: String = host
            .lines()
            .filter(|l| {
                let mut w = l.split_whitespace();
                !(w.next() == Some("nameserver") && w.next().is_some_and(is_loopback))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        if ResolvConf::parse(&kept).nameservers.is_empty() {
            let defaults: String = DEFAULT_NAMESERVERS
                .iter()
                .map(|ns| format!("nameserver {ns}\n"))
                .collect();
            return format!("{kept}{defaults}");
        }
        return kept;
    }
    let mut rc = merged(host, dns);
    if dns.servers.is_empty() {
        rc.nameservers.retain(|ns| !is_loopback(ns));
        if rc.nameservers.is_empty() {
            rc.nameservers = DEFAULT_NAMESERVERS.iter().map(|s| s.to_string()).collect();
        }
    }
    rc.render()
}

/// `/etc/resolv.conf` under `--network host`: the host's own file unless `--dns*` flags
/// change it (the host's loopback resolvers are reachable there).
pub fn resolv_conf_host_mode(host: &str, dns: &DnsSettings) -> String {
    if dns.is_empty() {
        return host.to_string();
    }
    merged(host, dns).render()
}

/// `/etc/resolv.conf` on a user-defined network, and the upstream servers the embedded
/// DNS server forwards to. The container sees only 127.0.0.11 and `ndots:0` (unless it set
/// ndots itself); the upstreams keep the host's loopback resolvers, because the server
/// forwards from the host's namespace.
pub fn resolv_conf_embedded(host: &str, dns: &DnsSettings) -> (String, Vec<crate::dns::Upstream>) {
    let rc = merged(host, dns);
    // Only the host's own loopback resolvers are asked from the host; a `--dns 127.0.0.1`
    // means the container's loopback, as under Docker.
    let upstreams = rc
        .nameserver_addrs()
        .into_iter()
        .map(|ip| crate::dns::Upstream {
            addr: std::net::SocketAddr::new(ip, 53),
            host_loopback: dns.servers.is_empty() && ip.is_loopback(),
        })
        .collect();
    let mut options = rc.options.clone();
    if !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    let file = ResolvConf {
        nameservers: vec![EMBEDDED_DNS.to_string()],
        search: rc.search,
        options,
    }
    .render();
    (file, upstreams)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_LINES: usize = 6;

    #[test]
    fn hosts_like_docker_on_the_bridge() {
        let extra = vec![
            ("foo".to_string(), "1.2.3.4".parse().unwrap()),
            ("bar".to_string(), "172.17.0.1".parse().unwrap()),
        ];
        let text = hosts(&HostsInput {
            hostname: "35665458c4d0",
            domainname: "",
            address: Some("172.17.0.2".parse().unwrap()),
            extra: &extra,
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[1], "::1\tlocalhost ip6-localhost ip6-loopback");
        assert_eq!(
            &lines[HEADER_LINES..],
            [
                "1.2.3.4\tfoo",
                "172.17.0.1\tbar",
                "172.17.0.2\t35665458c4d0"
            ]
        );
    }

    #[test]
    fn hosts_with_domain_and_without_address() {
        let with_domain = hosts(&HostsInput {
            hostname: "myhost",
            domainname: "example.com",
            address: Some("172.17.0.2".parse().unwrap()),
            extra: &[],
        });
        assert!(with_domain.ends_with("\n172.17.0.2\tmyhost.example.com myhost\n"));
        let dotted = |hostname, domainname| {
            hosts(&HostsInput {
                hostname,
                domainname,
                address: Some("172.27.0.2".parse().unwrap()),
                extra: &[],
            })
        };
        assert!(dotted("foo.bar.baz", "").ends_with("\n172.27.0.2\tfoo.bar.baz foo\n"));
        assert!(dotted("foo.bar", "x.y").ends_with("\n172.27.0.2\tfoo.bar.x.y foo\n"));
        let none = hosts(&HostsInput {
            hostname: "x",
            ..Default::default()
        });
        assert_eq!(none, HOSTS_HEADER);
        assert_eq!(hostname("abc"), "abc\n");
    }

    #[test]
    fn extra_hosts_parse_like_dockerd() {
        let gw: IpAddr = "172.17.0.1".parse().unwrap();
        assert_eq!(
            parse_extra_host("foo:1.2.3.4", None).unwrap(),
            ("foo".into(), "1.2.3.4".parse().unwrap())
        );
        assert_eq!(
            parse_extra_host("v6:::1", None).unwrap().1,
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(parse_extra_host("gw:host-gateway", Some(gw)).unwrap().1, gw);
        assert_eq!(
            parse_extra_host("foo", None).unwrap_err(),
            "bad format for add-host: \"foo\""
        );
        assert_eq!(
            parse_extra_host("foo:bar", None).unwrap_err(),
            "invalid IP address in add-host: \"bar\""
        );
        assert!(parse_extra_host("gw:host-gateway", None).is_err());
    }

    #[test]
    fn resolv_conf_drops_loopback_and_falls_back() {
        let host =
            "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch lan\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, &DnsSettings::default()),
            "# generated\nnameserver 10.0.0.1\nsearch lan\noptions edns0\n"
        );
        let only_local = "nameserver 127.0.0.53\nsearch lan\n";
        assert_eq!(
            resolv_conf(only_local, &DnsSettings::default()),
            "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\nnameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\n"
        );
    }

    #[test]
    fn resolv_conf_flags_override_the_host() {
        let host = "nameserver 10.255.255.53\nsearch lan\n";
        let servers = vec!["8.8.8.8".to_string()];
        let search = vec!["a.com".to_string()];
        let options = vec!["ndots:2".to_string()];
        let dns = DnsSettings {
            servers: &servers,
            search: &search,
            options: &options,
        };
        assert_eq!(
            resolv_conf(host, &dns),
            "search a.com\nnameserver 8.8.8.8\noptions ndots:2\n"
        );
        let only_search = DnsSettings {
            search: &search,
            ..Default::default()
        };
        assert_eq!(
            resolv_conf(host, &only_search),
            "search a.com\nnameserver 10.255.255.53\n"
        );
        let dot = vec![".".to_string()];
        assert_eq!(
            resolv_conf(
                host,
                &DnsSettings {
                    search: &dot,
                    ..Default::default()
                }
            ),
            "nameserver 10.255.255.53\n"
        );
    }

    #[test]
    fn host_mode_copies_the_host_file() {
        let host = "nameserver 127.0.0.53\n";
        assert_eq!(resolv_conf_host_mode(host, &DnsSettings::default()), host);
        let servers = vec!["1.1.1.1".to_string()];
        assert_eq!(
            resolv_conf_host_mode(
                host,
                &DnsSettings {
                    servers: &servers,
                    ..Default::default()
                }
            ),
            "nameserver 1.1.1.1\n"
        );
    }

    #[test]
    fn embedded_dns_file_and_upstreams() {
        let host = "nameserver 127.0.0.53\nnameserver 10.0.0.1\n";
        let (file, up) = resolv_conf_embedded(host, &DnsSettings::default());
        assert_eq!(file, "nameserver 127.0.0.11\noptions ndots:0\n");
        let upstream = |a: &str, host_loopback| crate::dns::Upstream {
            addr: a.parse().unwrap(),
            host_loopback,
        };
        assert_eq!(
            up,
            [
                upstream("127.0.0.53:53", true),
                upstream("10.0.0.1:53", false)
            ]
        );
        let search = vec!["x.org".to_string()];
        let options = vec!["attempts:2".to_string()];
        let servers = vec!["9.9.9.9".to_string(), "127.0.0.1".to_string()];
        let dns = DnsSettings {
            servers: &servers,
            search: &search,
            options: &options,
        };
        let (file, up) = resolv_conf_embedded(host, &dns);
        assert_eq!(
            file,
            "search x.org\nnameserver 127.0.0.11\noptions attempts:2 ndots:0\n"
        );
        // A loopback `--dns` is the container's own loopback.
        assert_eq!(
            up,
            [
                upstream("9.9.9.9:53", false),
                upstream("127.0.0.1:53", false)
            ]
        );
        let ndots = vec!["ndots:3".to_string()];
        let (file, _) = resolv_conf_embedded(
            host,
            &DnsSettings {
                options: &ndots,
                ..Default::default()
            },
        );
        assert_eq!(file, "nameserver 127.0.0.11\noptions ndots:3\n");
    }
}
