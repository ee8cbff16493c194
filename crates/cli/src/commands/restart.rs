//! `berth restart`: restarts containers, printing each name.

use clap::Args;

use crate::client::{self, Client};
use crate::commands::{for_each_name, CmdResult};

/// `berth restart`
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Seconds to wait for stop before killing the container
    #[arg(
        short = 't',
        long = "time",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub time: Option<i64>,
    /// The containers to restart
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth restart`
pub async fn run(client: &Client, args: RestartArgs) -> CmdResult {
    let t = args.time.map(|t| format!("?t={t}")).unwrap_or_default();
    for_each_name(&args.containers, |name| {
        let path = format!("/containers/{}/restart{t}", client::enc(&name));
        async move { client.post(&path).await }
    })
    .await
}
