//! berth-registry: an OCI Distribution Spec registry (the API Docker's `push` and `pull`
//! speak, answered as Distribution 2.8 answers it) whose blobs live in berth's content store.
//!
//! Layout under the root: `blobs/sha256/<hex>` (the content store: every blob and manifest,
//! verified on write), `repositories/<name>/…` (which blobs, manifests and tags each
//! repository has; see `repos`), `uploads/<id>/` (sessions in progress; see `uploads`).

mod auth;
mod blobs;
mod error;
mod http;
mod listing;
mod manifests;
mod names;
mod repos;
mod route;
mod server;
mod tls;
mod uploads;

pub use server::{serve, Config};
