//! `berth unpause`: thaws paused containers, printing each name.

use clap::Args;

use crate::client::{self, Client};
use crate::commands::{for_each_name, CmdResult};

/// `berth unpause`
#[derive(Debug, Clone, Args)]
pub struct UnpauseArgs {
    /// The containers to unpause
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth unpause`
pub async fn run(client: &Client, args: UnpauseArgs) -> CmdResult {
    for_each_name(&args.containers, |name| {
        let path = format!("/containers/{}/unpause", client::enc(&name));
        async move { client.post(&path).await }
    })
    .await
}
