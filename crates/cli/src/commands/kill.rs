//! `berth kill`: sends a signal (SIGKILL by default) to containers, printing each name.

use clap::Args;

use crate::client::{self, Client};
use crate::commands::{for_each_name, CmdResult};

/// `berth kill`
#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long = "signal", value_name = "string")]
    pub signal: Option<String>,
    /// The containers to kill
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth kill`
pub async fn run(client: &Client, args: KillArgs) -> CmdResult {
    // Without -s the daemon picks SIGKILL, as docker leaves it to the daemon too.
    let q = args
        .signal
        .as_ref()
        .map(|s| client::query(&[("signal", s.clone())]))
        .unwrap_or_default();
    for_each_name(&args.containers, |name| {
        let path = format!("/containers/{}/kill{q}", client::enc(&name));
        async move { client.post(&path).await }
    })
    .await
}
