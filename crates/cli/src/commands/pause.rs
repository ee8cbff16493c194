//! `berth pause`: freezes every process of containers, printing each name.

use clap::Args;

use crate::client::{self, Client};
use crate::commands::{for_each_name, CmdResult};

/// `berth pause`
#[derive(Debug, Clone, Args)]
pub struct PauseArgs {
    /// The containers to pause
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth pause`
pub async fn run(client: &Client, args: PauseArgs) -> CmdResult {
    for_each_name(&args.containers, |name| {
        let path = format!("/containers/{}/pause", client::enc(&name));
        async move { client.post(&path).await }
    })
    .await
}
