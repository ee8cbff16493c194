//! `berth rename`: gives a container a new name.

use clap::Args;

use crate::client::{self, Client, ClientError};
use crate::commands::{CmdResult, Failure};

/// `berth rename`
#[derive(Debug, Clone, Args)]
pub struct RenameArgs {
    /// The container to rename
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Its new name
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

/// `berth rename`
pub async fn run(client: &Client, args: RenameArgs) -> CmdResult {
    let old = args.container.trim();
    let new = args.new_name.trim();
    if old.is_empty() || new.is_empty() {
        return Err(Failure::new(1, "Error: Neither old nor new names may be empty"));
    }
    let path = format!("/containers/{}/rename{}", client::enc(old), client::query(&[("name", new.to_string())]));
    match client.post(&path).await {
        Ok(()) => Ok(0),
        Err(e @ ClientError::Connect { .. }) => Err(e.into()),
        Err(e) => Err(Failure::new(1, format!("{e}\nError: failed to rename container named {old}"))),
    }
}
