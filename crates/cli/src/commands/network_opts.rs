//! The `run`/`create` flags about a container's network: names and resolvers
//! (`--add-host`, `--dns*`, `--domainname`), its endpoint (`--network-alias`, `--ip`) and
//! ports (`-p`, `-P`, `--expose`), parsed and checked as docker's CLI does.

use std::collections::HashMap;
use std::net::IpAddr;

use berth_api::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, NetworkingConfig, PortBinding,
};
use clap::Args;

use crate::commands::create::flag_error;
use crate::commands::Failure;

#[derive(Debug, Clone, Default, Args)]
pub struct NetworkOpts {
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns", value_name = "list")]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", value_name = "list")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_name = "list")]
    pub dns_search: Vec<String>,
    /// Container NIS domain name
    #[arg(long = "domainname", value_name = "string")]
    pub domainname: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", value_name = "list")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long = "ip", value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long = "ip6", value_name = "string")]
    pub ip6: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose", value_name = "list")]
    pub expose: Vec<String>,
}

/// A usage error as `docker run` prints one that is not about a single flag's value.
fn usage_error(cmd: &str, msg: &str) -> Failure {
    Failure::new(
        125,
        format!("berth: {msg}\n\nRun 'berth {cmd} --help' for more information"),
    )
}

impl NetworkOpts {
    /// Writes these settings into `body`; `network` is the `--network` value.
    pub fn apply(
        &self,
        cmd: &str,
        network: Option<&str>,
        body: &mut ContainerCreateBody,
    ) -> Result<(), Failure> {
        for h in &self.add_host {
            validate_extra_host(h).map_err(|e| flag_error(cmd, h, "--add-host", &e))?;
        }
        for d in &self.dns {
            if d.parse::<IpAddr>().is_err() {
                return Err(flag_error(
                    cmd,
                    d,
                    "--dns",
                    &format!("IP address is not correctly formatted: {d}"),
                ));
            }
        }
        let mut exposed: Vec<String> = Vec::new();
        for e in &self.expose {
            exposed.extend(expose_ports(e).map_err(|why| usage_error(cmd, &why))?);
        }
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &self.publish {
            for (port, binding) in parse_publish(p).map_err(|why| usage_error(cmd, &why))? {
                exposed.push(port.clone());
                bindings
                    .entry(port)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(binding);
            }
        }
        exposed.sort();
        exposed.dedup();

        let user_network = !matches!(
            network.unwrap_or("default"),
            "" | "default" | "bridge" | "host" | "none"
        ) && !network.is_some_and(|n| n.starts_with("container:"));
        // As docker 20.10's CLI: endpoint settings go with any `--network` but the default
        // (an `--ip` or `--ip6` without one is dropped, not sent).
        let default_mode = matches!(network.unwrap_or("default"), "" | "default");
        let addressed = self.ip.is_some() || self.ip6.is_some();
        let endpoint =
            (!default_mode && (!self.network_alias.is_empty() || addressed)).then(|| {
                EndpointSettings {
                    aliases: (!self.network_alias.is_empty()).then(|| self.network_alias.clone()),
                    ipam_config: addressed.then(|| EndpointIpamConfig {
                        ipv4_address: self.ip.clone(),
                        ipv6_address: self.ip6.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            });
        if !self.network_alias.is_empty() && !user_network {
            return Err(usage_error(
                cmd,
                "network-scoped aliases are only supported for user-defined networks",
            ));
        }
        if let Some(endpoint) = endpoint {
            let name = network
                .filter(|n| !n.is_empty())
                .unwrap_or("default")
                .to_string();
            body.networking_config = Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(name, endpoint)])),
            });
        }

        // As docker's CLI sends them: the DNS lists and port map always (empty when unset),
        // the extra hosts only when given.
        body.domainname = Some(self.domainname.clone().unwrap_or_default());
        if !exposed.is_empty() {
            body.exposed_ports = Some(exposed);
        }
        let hc = body.host_config.get_or_insert_with(Default::default);
        hc.network_mode.get_or_insert_with(|| "default".into());
        hc.extra_hosts = (!self.add_host.is_empty()).then(|| self.add_host.clone());
        hc.dns = Some(self.dns.clone());
        hc.dns_search = Some(self.dns_search.clone());
        hc.dns_options = Some(self.dns_option.clone());
        hc.publish_all_ports = Some(self.publish_all);
        hc.port_bindings = Some(bindings);
        Ok(())
    }
}

/// `name:ip` (docker's `ValidateExtraHost`); `host-gateway` is the daemon's to resolve.
pub fn validate_extra_host(h: &str) -> Result<(), String> {
    let Some((name, ip)) = h.split_once(':').filter(|(n, _)| !n.is_empty()) else {
        return Err(format!("bad format for add-host: \"{h}\""));
    };
    let _ = name;
    if ip == "host-gateway"
        || ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
    {
        Ok(())
    } else {
        Err(format!("invalid IP address in add-host: \"{ip}\""))
    }
}

/// A port or range, `80` or `8000-8010`.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let (lo, hi): (u16, u16) = (lo.parse().ok()?, hi.parse().ok()?);
    (lo <= hi).then_some((lo, hi))
}

/// `--expose 80`, `--expose 80-82/udp`: the `port/proto` keys.
fn expose_ports(e: &str) -> Result<Vec<String>, String> {
    let (range, proto) = e.split_once('/').unwrap_or((e, "tcp"));
    let (lo, hi) = port_range(range).ok_or_else(|| {
        let bad = range.split('-').find(|p| p.parse::<u16>().is_err()).unwrap_or(range);
        format!("invalid range format for --expose: {e}, error: strconv.ParseUint: parsing \"{bad}\": invalid syntax")
    })?;
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// One `-p`: `[ip:][hostPort:]containerPort[/proto]`, with ranges; returns the
/// `port/proto` keys and their bindings, as docker's `nat.ParsePortSpec`.
fn parse_publish(spec: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    // The IP may be IPv6 in brackets: split the ports off the end.
    let (ip, host, container) = match rest.rsplitn(3, ':').collect::<Vec<_>>()[..] {
        [c] => ("", "", c),
        [c, h] => ("", h, c),
        [c, h, ip] => (ip, h, c),
        _ => return Err(format!("invalid port format: {spec}")),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (c_lo, c_hi) =
        port_range(container).ok_or_else(|| format!("invalid containerPort: {container}"))?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(port_range(host).ok_or_else(|| format!("invalid hostPort: {host}"))?)
    };
    let count = c_hi - c_lo;
    if let Some((h_lo, h_hi)) = host_range {
        // A host range for one container port lets the daemon pick from it.
        if count != 0 && h_hi - h_lo != count {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host}"
            ));
        }
    }
    Ok((0..=count)
        .map(|i| {
            let host_port = match host_range {
                None => String::new(),
                Some((lo, hi)) if count == 0 && lo != hi => format!("{lo}-{hi}"),
                Some((lo, _)) => (lo + i).to_string(),
            };
            (
                format!("{}/{proto}", c_lo + i),
                PortBinding {
                    host_ip: Some(ip.to_string()),
                    host_port: Some(host_port),
                },
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        }
    }

    #[test]
    fn publish_specs_parse_like_docker() {
        assert_eq!(
            parse_publish("80").unwrap(),
            [("80/tcp".to_string(), binding("", ""))]
        );
        assert_eq!(
            parse_publish("8080:80/udp").unwrap(),
            [("80/udp".to_string(), binding("", "8080"))]
        );
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            [("80/tcp".to_string(), binding("127.0.0.1", ""))]
        );
        assert_eq!(
            parse_publish("[::1]:80:80").unwrap(),
            [("80/tcp".to_string(), binding("::1", "80"))]
        );
        assert_eq!(
            parse_publish("80-81:90-91").unwrap(),
            [
                ("90/tcp".to_string(), binding("", "80")),
                ("91/tcp".to_string(), binding("", "81"))
            ]
        );
        assert_eq!(
            parse_publish("8000-8001:80").unwrap(),
            [("80/tcp".to_string(), binding("", "8000-8001"))]
        );
        assert_eq!(
            parse_publish("abc").unwrap_err(),
            "invalid containerPort: abc"
        );
        assert_eq!(
            parse_publish("80:abc").unwrap_err(),
            "invalid containerPort: abc"
        );
        assert_eq!(
            parse_publish("1.2.3.4:80:80/xyz").unwrap_err(),
            "invalid proto: xyz"
        );
        assert_eq!(
            parse_publish("300.1.1.1:80:80").unwrap_err(),
            "invalid IP address: 300.1.1.1"
        );
    }

    #[test]
    fn expose_and_add_host() {
        assert_eq!(
            expose_ports("80-82/udp").unwrap(),
            ["80/udp", "81/udp", "82/udp"]
        );
        assert_eq!(
            expose_ports("abc").unwrap_err(),
            "invalid range format for --expose: abc, error: strconv.ParseUint: parsing \"abc\": invalid syntax"
        );
        assert!(validate_extra_host("a:host-gateway").is_ok());
        assert_eq!(
            validate_extra_host("foo").unwrap_err(),
            "bad format for add-host: \"foo\""
        );
        assert_eq!(
            validate_extra_host("foo:bar").unwrap_err(),
            "invalid IP address in add-host: \"bar\""
        );
    }
}
