//! Container networking. For now: a private network namespace per container with only
//! loopback up (Docker's `--network none` plus `lo`). Bridges, veths, NAT and DNS come later
//! and will build on the same pinned namespace.

mod netns;

pub use netns::{create_netns, remove_netns};

/// What can go wrong setting up a container's network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network namespace {path}: {source}")]
    Netns { path: String, source: std::io::Error },
}
