//! Which URLs serve a registry domain: Docker Hub's conventions, insecure registries and
//! mirrors.
//!
//! - `docker.io` is served by `https://registry-1.docker.io`.
//! - HTTPS always comes first. A registry is *insecure* when its host is in an
//!   `--insecure-registry` entry (a host[:port], or a CIDR its addresses fall in) or resolves
//!   into 127.0.0.0/8, as dockerd decides; for those the certificate is not checked and plain
//!   HTTP is tried when HTTPS fails.
//! - Mirrors (`registry-mirrors` in daemon.json, `--registry-mirror` on the command line) are
//!   tried before the registry itself, for pulls only. A bare URL mirrors Docker Hub, as in
//!   Docker; berth also takes `<domain>=<url>` to mirror any registry, e.g.
//!   `"registry-mirrors": ["https://hub-cache.local", "ghcr.io=http://127.0.0.1:5001"]`.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::error::{Error, Result};

/// Docker Hub's canonical domain and the host that serves its API.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// One place to send a repository's requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Scheme and authority, no trailing slash: "https://registry-1.docker.io".
    pub base: String,
    /// The certificate is not verified (insecure registries and their mirrors).
    pub skip_verify: bool,
    /// A mirror, tried before the registry itself; its failures fall through to the next.
    pub mirror: bool,
}

/// The registry settings of the daemon.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    insecure_hosts: Vec<String>,
    insecure_nets: Vec<(IpAddr, u8)>,
    /// Mirror base URLs by the domain they mirror.
    mirrors: HashMap<String, Vec<String>>,
}

impl RegistryConfig {
    /// From `--insecure-registry` and `--registry-mirror` values (daemon.json's
    /// `insecure-registries` and `registry-mirrors`). Errors name the bad entry as dockerd does.
    pub fn new(insecure: &[String], mirrors: &[String]) -> Result<RegistryConfig> {
        let mut cfg = RegistryConfig::default();
        for entry in insecure {
            let e = entry
                .trim_start_matches("http://")
                .trim_start_matches("https://");
            if entry.contains("://") && e == entry {
                return Err(Error::InvalidArgument(format!(
                    "insecure registry {entry} should not contain '://'"
                )));
            }
            match parse_cidr(e) {
                Some(net) => cfg.insecure_nets.push(net),
                None => cfg.insecure_hosts.push(e.trim_end_matches('/').to_string()),
            }
        }
        for entry in mirrors {
            let (domain, url) = match entry.split_once('=') {
                Some((d, u)) => (d.to_string(), u),
                None => (DOCKER_HUB.to_string(), entry.as_str()),
            };
            let url = url.trim_end_matches('/');
            let authority = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"))
                .unwrap_or("");
            if authority.is_empty() || authority.contains('/') {
                return Err(Error::InvalidArgument(format!(
                    "invalid mirror: \"{url}\" is not a valid URI: unsupported scheme or path"
                )));
            }
            cfg.mirrors.entry(domain).or_default().push(url.to_string());
        }
        Ok(cfg)
    }

    /// Whether `domain` (host[:port]) is an insecure registry.
    pub async fn is_insecure(&self, domain: &str) -> bool {
        if self.insecure_hosts.iter().any(|h| h == domain) {
            return true;
        }
        let host = host_of(domain);
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, 0))
                .await
                .map(|it| it.map(|a| a.ip()).collect())
                .unwrap_or_default(),
        };
        addrs.iter().any(|ip| {
            (matches!(ip, IpAddr::V4(v4) if v4.octets()[0] == 127))
                || self.insecure_nets.iter().any(|net| in_net(*ip, *net))
        })
    }

    /// The endpoints to pull `domain`'s repositories from, in order: its mirrors, then itself.
    pub async fn pull_endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let mut out = Vec::new();
        for m in self.mirrors.get(domain).into_iter().flatten() {
            let mhost = m.split("://").nth(1).unwrap_or(m);
            out.push(Endpoint {
                base: m.clone(),
                skip_verify: self.is_insecure(mhost).await,
                mirror: true,
            });
        }
        out.extend(self.endpoints(domain).await);
        out
    }

    /// The registry's own endpoints: HTTPS, then plain HTTP for an insecure one.
    pub async fn endpoints(&self, domain: &str) -> Vec<Endpoint> {
        let authority = if domain == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            domain
        };
        let insecure = self.is_insecure(domain).await;
        let mut out = vec![Endpoint {
            base: format!("https://{authority}"),
            skip_verify: insecure,
            mirror: false,
        }];
        if insecure {
            out.push(Endpoint {
                base: format!("http://{authority}"),
                skip_verify: true,
                mirror: false,
            });
        }
        out
    }
}

/// The host of "host", "host:port", "[v6]:port".
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match domain.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => domain,
    }
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn in_net(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn docker_hub_and_insecure_rules() {
        let cfg = RegistryConfig::new(
            &["10.1.0.0/16".into(), "myreg:5000".into()],
            &[
                "https://hub-mirror.local".into(),
                "ghcr.io=http://127.0.0.1:5001".into(),
            ],
        )
        .unwrap();
        let hub = cfg.pull_endpoints("docker.io").await;
        assert_eq!(hub[0].base, "https://hub-mirror.local");
        assert!(hub[0].mirror);
        assert_eq!(hub[1].base, "https://registry-1.docker.io");
        assert_eq!(hub.len(), 2, "docker.io is secure: no http fallback");
        let local = cfg.endpoints("127.0.0.1:5000").await;
        assert_eq!(
            local.iter().map(|e| e.base.as_str()).collect::<Vec<_>>(),
            ["https://127.0.0.1:5000", "http://127.0.0.1:5000"]
        );
        assert!(cfg.is_insecure("myreg:5000").await);
        assert!(cfg.is_insecure("10.1.2.3:443").await);
        assert!(!cfg.is_insecure("10.2.0.1").await);
        let gh = cfg.pull_endpoints("ghcr.io").await;
        assert_eq!(gh[0].base, "http://127.0.0.1:5001");
        assert!(gh[0].skip_verify);
        assert!(RegistryConfig::new(&[], &["ftp://x".into()]).is_err());
    }
}
