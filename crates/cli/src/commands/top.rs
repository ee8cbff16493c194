//! `berth top`: the processes of a running container, as the host's `ps` shows them.

use berth_api::models::ContainerTopResponse;
use clap::Args;

use crate::client::{self, Client};
use crate::commands::CmdResult;
use crate::format::Table;

/// `berth top`
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Options for ps (default -ef)
    #[arg(value_name = "ps OPTIONS", trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `berth top`
pub async fn run(client: &Client, args: TopArgs) -> CmdResult {
    let query = if args.ps_args.is_empty() {
        String::new()
    } else {
        client::query(&[("ps_args", args.ps_args.join(" "))])
    };
    let path = format!("/containers/{}/top{query}", client::enc(&args.container));
    let top: ContainerTopResponse = client.get(&path).await?;
    // docker's tabwriter for top: min width 20, padding 3.
    let mut table = Table::with_min_width(20);
    table.row(top.titles.unwrap_or_default());
    for process in top.processes.unwrap_or_default() {
        table.row(process);
    }
    print!("{}", table.render());
    Ok(0)
}
