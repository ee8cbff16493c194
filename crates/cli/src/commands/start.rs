//! `berth start`: starts containers, or with `-a` attaches to one and exits with its code.

use berth_api::models::ContainerInspectResponse;
use clap::Args;

use crate::client::{self, Client};
use crate::commands::run::{self, Session};
use crate::commands::{CmdResult, Failure};
use crate::stream::{self, AttachStreams};

/// `berth start`
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long = "attach")]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// The containers to start
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth start`
pub async fn run(client: &Client, args: StartArgs) -> CmdResult {
    if args.attach || args.interactive {
        let [name] = args.containers.as_slice() else {
            return Err(Failure::new(
                1,
                "you cannot start and attach multiple containers at once",
            ));
        };
        let info: ContainerInspectResponse = client
            .get(&format!("/containers/{}/json", client::enc(name)))
            .await?;
        let id = info.id.clone().unwrap_or_else(|| name.clone());
        let config = info.config.unwrap_or_default();
        let tty = config.tty.unwrap_or(false);
        let stdin = args.interactive && config.open_stdin.unwrap_or(false);
        let auto_remove = info
            .host_config
            .and_then(|h| h.auto_remove)
            .unwrap_or(false);
        let session = Session {
            id,
            streams: AttachStreams {
                stdin,
                stdout: true,
                stderr: true,
                tty,
            },
            auto_remove,
            // As docker start: signals are passed on only without a TTY.
            sig_proxy: !tty,
            detach_keys: stream::detach_keys(args.detach_keys.as_deref()),
        };
        // `docker start -a` reports a refused start as a plain daemon error, exit 1.
        return run::attached_start(client, session, |_| 1)
            .await
            .map_err(|mut f| {
                if let Some(rest) = f.message.strip_prefix("berth: ") {
                    f.message = rest.split("\n\nRun '").next().unwrap_or(rest).to_string();
                }
                f
            });
    }
    // As docker start: each refusal on its own line, then the containers that failed.
    let mut failed = Vec::new();
    for name in &args.containers {
        match client
            .post(&format!("/containers/{}/start", client::enc(name)))
            .await
        {
            Ok(()) => println!("{name}"),
            Err(e @ client::ClientError::Connect { .. }) => return Err(e.into()),
            Err(e) => {
                eprintln!("{e}");
                failed.push(name.as_str());
            }
        }
    }
    if failed.is_empty() {
        return Ok(0);
    }
    Err(Failure::new(
        1,
        format!("Error: failed to start containers: {}", failed.join(", ")),
    ))
}
