//! `berth logs`: prints a container's logs, demultiplexed unless it has a TTY.

use berth_api::models::ContainerInspectResponse;
use clap::Args;
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::{CmdResult, Failure};
use crate::stream;

/// `berth logs`
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Show extra details provided to logs
    #[arg(long = "details")]
    pub details: bool,
    /// Follow log output
    #[arg(short = 'f', long = "follow")]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(
        short = 'n',
        long = "tail",
        value_name = "string",
        default_value = "all"
    )]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long = "timestamps")]
    pub timestamps: bool,
    /// Show logs since timestamp or relative (e.g. 42m)
    #[arg(long = "since", value_name = "string")]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m)
    #[arg(long = "until", value_name = "string")]
    pub until: Option<String>,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth logs`
pub async fn run(client: &Client, args: LogsArgs) -> CmdResult {
    // The stream is framed only for containers without a TTY, so ask which it is.
    let info: ContainerInspectResponse = client
        .get(&format!(
            "/containers/{}/json",
            client::enc(&args.container)
        ))
        .await?;
    let tty = info.config.and_then(|c| c.tty).unwrap_or(false);
    let id = info.id.unwrap_or(args.container.clone());
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let mut q = vec![
        ("stdout", "1".to_string()),
        ("stderr", "1".to_string()),
        ("follow", flag(args.follow)),
        ("tail", args.tail.clone()),
        ("timestamps", flag(args.timestamps)),
    ];
    if args.details {
        q.push(("details", "1".to_string()));
    }
    // docker's CLI turns relative and calendar times into Unix time before asking.
    let now = chrono::Utc::now();
    for (flag, value) in [("since", &args.since), ("until", &args.until)] {
        if let Some(v) = value {
            let t =
                crate::timestamp::api_timestamp(flag, v, now).map_err(|e| Failure::new(1, e))?;
            if !t.is_empty() {
                q.push((flag, t));
            }
        }
    }
    let path = format!("/containers/{}/logs{}", client::enc(&id), client::query(&q));
    let resp = client.send(Method::GET, &path, client::empty()).await?;
    stream::copy_body(resp.into_body(), tty)
        .await
        .map_err(|e| Failure::new(1, e))?;
    Ok(0)
}
