//! `berth tag`: gives an image another name.

use clap::Args;

use crate::client::{self, Client};
use crate::commands::create::split_image;
use crate::commands::CmdResult;

/// `berth tag`
#[derive(Debug, Clone, Args)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

/// `berth tag`
pub async fn run(client: &Client, args: TagArgs) -> CmdResult {
    let (repo, tag) = split_image(&args.target);
    let path = format!(
        "/images/{}/tag{}",
        client::enc_path(&args.source),
        client::query(&[("repo", repo), ("tag", tag)])
    );
    client.post(&path).await?;
    Ok(0)
}
