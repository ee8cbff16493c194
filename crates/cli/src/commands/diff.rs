//! `berth diff`: the files a container added (A), changed (C) and deleted (D).

use berth_api::models::{ChangeType, FilesystemChange};
use clap::Args;
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::CmdResult;

/// `berth diff`
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth diff`
pub async fn run(client: &Client, args: DiffArgs) -> CmdResult {
    let path = format!("/containers/{}/changes", client::enc(&args.container));
    // The daemon answers `null` when nothing changed.
    let changes: Option<Vec<FilesystemChange>> =
        client.json(Method::GET, &path, client::empty()).await?;
    let mut out = String::new();
    for change in changes.unwrap_or_default() {
        let kind = match change.kind {
            ChangeType::_0 => 'C',
            ChangeType::_1 => 'A',
            ChangeType::_2 => 'D',
        };
        out.push_str(&format!("{kind} {}\n", change.path));
    }
    print!("{out}");
    Ok(0)
}
