//! `berth wait`: blocks until containers stop and prints each exit code.

use berth_api::models::ContainerWaitResponse;
use clap::Args;
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::{CmdResult, Failure};

/// `berth wait`
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// The containers to wait for
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth wait`
pub async fn run(client: &Client, args: WaitArgs) -> CmdResult {
    let mut failed = false;
    for name in &args.containers {
        let path = format!("/containers/{}/wait", client::enc(name));
        match client
            .json::<ContainerWaitResponse>(Method::POST, &path, client::empty())
            .await
        {
            Ok(r) => println!("{}", r.status_code),
            Err(e @ ClientError::Connect { .. }) => return Err(Failure::from(e)),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
