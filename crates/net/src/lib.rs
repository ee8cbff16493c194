//! Container networking: pinned network namespaces, Linux bridges and veth pairs (over
//! rtnetlink), IPv4 address management, nftables NAT/filtering and published ports, and a
//! veth-to-veth fast path between containers of one network.
//! IPv4 only: berth's bridge networks have no IPv6.

pub mod bridge;
pub mod dns;
pub mod etc_files;
pub mod fastpath;
pub mod instances;
pub mod ipam;
pub mod mode;
mod netlink;
mod netns;
pub mod nft;
pub mod ports;

pub use netns::{create_netns, remove_netns};

/// What can go wrong setting up a container's network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network namespace {path}: {source}")]
    Netns { path: String, source: std::io::Error },
    /// A link, address or route request failed.
    #[error("{0}")]
    Link(String),
}
