//! A build context as both sides of `berth build` see it: the entries of a directory
//! (walked with the `.dockerignore` rules the docker CLI applies), their manifest (what the
//! berth CLI sends instead of a tar), and Docker 20.10's per-file `tarsum`, which the classic
//! builder's cache keys (`COPY file:<h> in /x`) are made of.

pub mod checksum_cache;
pub mod dockerignore;
pub mod manifest;
pub mod path;
pub mod tarsum;
pub mod walk;

pub use dockerignore::Ignore;
pub use manifest::{Entry, EntryKind, Manifest};
pub use walk::walk;
