//! `berth stop`: stops containers, printing each name as it stops.

use clap::Args;

use crate::client::{self, Client};
use crate::commands::{for_each_name, CmdResult};

/// `berth stop`
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Seconds to wait for stop before killing it
    #[arg(
        short = 't',
        long = "time",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub time: Option<i64>,
    /// The containers to stop
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth stop`
pub async fn run(client: &Client, args: StopArgs) -> CmdResult {
    let t = args.time.map(|t| format!("?t={t}")).unwrap_or_default();
    for_each_name(&args.containers, |name| {
        let path = format!("/containers/{}/stop{t}", client::enc(&name));
        async move { client.post(&path).await }
    })
    .await
}
