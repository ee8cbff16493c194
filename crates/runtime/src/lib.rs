//! berth-runtime: the `berth-shim` binary (one per container, built on youki's libcontainer)
//! and the daemon's side of its protocol.
//!
//! The daemon writes a [`ShimConfig`] with [`write_config`], launches the shim with [`spawn`],
//! and then talks to it over `<state_dir>/shim.sock` with the helpers in [`client`].
//! The shim outlives the daemon; a new daemon reconnects with the same helpers or reads
//! `exit.json` with [`read_exit`].

pub mod cgroup_stats;
pub mod cgroup_warmup;
pub mod client;
mod fsutil;
pub mod protocol;
#[doc(hidden)]
pub mod shim;
pub mod teardown;

pub use client::{
    attach, connect, kill, read_exit, resize, spawn, start, state, wait, with_socket_path,
    write_config, Error,
};
pub use protocol::{
    ExecExit, ExecReply, ExitStatus, Mount, Request, ShimConfig, StartErrorKind, StartReport, StateReply, Status,
};
