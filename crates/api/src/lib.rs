//! The Docker Engine API as berth speaks it: wire types, the supported version range,
//! the error body, and the framing of attach/log streams.
//!
//! Wire types come from `bollard-stubs` (generated from moby's swagger); nothing here
//! re-declares a type that it already has.

pub mod detach;
pub mod duration;
pub mod frame;
pub mod version;

pub use bollard_stubs::models;
use serde::{Deserialize, Serialize};

/// Docker's error body: every non-2xx answer carries `{"message": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub message: String,
}

/// Body of `POST /containers/create`'s answer (`Id` and `Warnings`).
pub use bollard_stubs::models::ContainerCreateResponse;
