//! berth-distribution: the registry client (OCI Distribution / Docker Registry API v2).
//!
//! - [`endpoint`]: which URLs serve a registry (Docker Hub, insecure registries, mirrors);
//! - [`auth`]: credentials, challenges, bearer tokens;
//! - [`client`]: the HTTP client and repository sessions;
//! - [`pull`]: resolving a reference to an image and pulling it into the store;
//! - [`push`]: pushing an image's layers, config and manifest;
//! - [`retry`]: Docker's retry policy for layer transfers.

pub mod auth;
pub mod client;
pub mod endpoint;
mod error;
pub mod progress;
pub mod pull;
pub mod push;
mod push_compress;
pub mod push_upload;
pub mod retry;

pub use auth::Credentials;
pub use client::{Client, Repository};
pub use endpoint::{Endpoint, RegistryConfig};
pub use error::{Error, Result};
