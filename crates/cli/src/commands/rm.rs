//! `berth rm`: removes containers, printing each name.

use clap::Args;
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::{for_each_name, CmdResult};

/// `berth rm`
#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// The containers to remove
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth rm`
pub async fn run(client: &Client, args: RmArgs) -> CmdResult {
    let mut q = Vec::new();
    if args.force {
        q.push(("force", "1".to_string()));
    }
    if args.volumes {
        q.push(("v", "1".to_string()));
    }
    let q = client::query(&q);
    for_each_name(&args.containers, |name| {
        let path = format!("/containers/{}{q}", client::enc(&name));
        async move {
            client
                .bytes(Method::DELETE, &path, client::empty())
                .await
                .map(|_| ())
        }
    })
    .await
}
