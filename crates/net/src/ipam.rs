//! IPv4 address management: subnets, Docker's default address pools, and picking free
//! addresses. Pure functions over the addresses in use; the daemon persists what they pick
//! (before using it) so nothing is handed out twice across restarts.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 subnet, kept normalised (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// The subnet of `addr/prefix`, host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Subnet {
        let prefix = prefix.min(32);
        Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        }
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask(self.prefix) == u32::from(self.network)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.network) || other.contains(self.network)
    }

    /// The first usable address: Docker's default gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + u32::from(self.prefix < 31))
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// The first address neither the network, the broadcast address nor in `used`.
    pub fn first_free(&self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        let (first, last) = (u32::from(self.network), u32::from(self.broadcast()));
        let (first, last) = if self.prefix < 31 {
            (first + 1, last - 1)
        } else {
            (first, last)
        };
        (first..=last)
            .map(Ipv4Addr::from)
            .find(|a| !used.contains(a))
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - prefix as u32).unwrap_or(0)
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Parse error, worded as Docker's: `invalid CIDR address: x`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR address: {0}")]
pub struct BadCidr(pub String);

impl FromStr for Subnet {
    type Err = BadCidr;
    fn from_str(s: &str) -> Result<Subnet, BadCidr> {
        let bad = || BadCidr(s.to_string());
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(bad)?;
        Ok(Subnet::new(addr, prefix))
    }
}

/// Docker's default local address pools: 172.17–31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn default_pools() -> impl Iterator<Item = Subnet> {
    let big = (17u8..=31).map(|b| Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16));
    let small = (0u8..16).map(|i| Subnet::new(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    big.chain(small)
}

/// The first default pool that overlaps neither a network already defined nor a route of
/// the host (a running dockerd's docker0 holds 172.17.0.0/16, for instance).
pub fn pick_pool(taken: &[Subnet]) -> Option<Subnet> {
    default_pools().find(|pool| !taken.iter().any(|t| t.overlaps(pool)))
}

/// Docker's MAC for an address: 02:42 followed by the four bytes of the IPv4 address.
pub fn mac_for(addr: Ipv4Addr) -> [u8; 6] {
    let o = addr.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `02:42:ac:11:00:02`
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Subnet {
        x.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(s("10.1.2.3/16").to_string(), "10.1.0.0/16");
        assert_eq!(
            "10.0.0.0".parse::<Subnet>(),
            Err(BadCidr("10.0.0.0".into()))
        );
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
        assert!(s("10.0.0.0/8").overlaps(&s("10.5.0.0/16")));
        assert!(!s("10.0.0.0/16").overlaps(&s("10.1.0.0/16")));
    }

    #[test]
    fn allocates_lowest_free_address_after_gateway() {
        let net = s("172.18.0.0/16");
        let mut used = BTreeSet::from([net.first_host()]);
        assert_eq!(net.first_host(), Ipv4Addr::new(172, 18, 0, 1));
        let a = net.first_free(&used).unwrap();
        assert_eq!(a, Ipv4Addr::new(172, 18, 0, 2));
        used.insert(a);
        used.insert(Ipv4Addr::new(172, 18, 0, 3));
        assert_eq!(net.first_free(&used), Some(Ipv4Addr::new(172, 18, 0, 4)));
        // A released address is handed out again.
        used.remove(&a);
        assert_eq!(net.first_free(&used), Some(a));
    }

    #[test]
    fn full_subnet_has_no_free_address() {
        let net = s("10.0.0.0/30");
        let used = BTreeSet::from([Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(net.first_free(&used), None);
        assert_eq!(net.broadcast(), Ipv4Addr::new(10, 0, 0, 3));
    }

    #[test]
    fn picks_pools_as_docker_does() {
        assert_eq!(pick_pool(&[]), Some(s("172.17.0.0/16")));
        // docker0 of a running dockerd takes the first pool.
        assert_eq!(
            pick_pool(&[s("172.17.0.0/16"), s("172.18.5.0/24")]),
            Some(s("172.19.0.0/16"))
        );
        let all_big: Vec<Subnet> = (17..=31)
            .map(|b| Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16))
            .collect();
        assert_eq!(pick_pool(&all_big), Some(s("192.168.0.0/20")));
        let mut with_small = all_big.clone();
        with_small.push(s("192.168.1.0/24"));
        assert_eq!(pick_pool(&with_small), Some(s("192.168.16.0/20")));
        // A host route covering everything leaves nothing.
        assert_eq!(pick_pool(&[s("0.0.0.0/0")]), None);
    }

    #[test]
    fn mac_follows_the_address() {
        assert_eq!(
            format_mac(mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }
}
