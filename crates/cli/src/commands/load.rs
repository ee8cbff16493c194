//! `berth load`: images from a `docker save` archive (a file or stdin).

use std::io::IsTerminal;

use clap::Args;
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::import::stream_body;
use crate::commands::{CmdResult, Failure};

/// `berth load`
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long = "input", value_name = "string")]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

pub async fn run(client: &Client, args: LoadArgs) -> CmdResult {
    let body = match args.input.as_deref().filter(|i| !i.is_empty()) {
        Some(path) => {
            let file = tokio::fs::File::open(path).await.map_err(|e| {
                Failure::new(1, format!("open {path}: {}", crate::commands::create::io_reason(&e)))
            })?;
            stream_body(file)
        }
        None if std::io::stdin().is_terminal() => {
            return Err(Failure::new(1, "requested load from stdin, but stdin is empty"));
        }
        None => stream_body(tokio::io::stdin()),
    };
    let path = format!("/images/load{}", client::query(&[("quiet", if args.quiet { "1" } else { "0" }.to_string())]));
    let resp = client.send(Method::POST, &path, body).await?;
    let body = client::collect(resp.into_body()).await?;
    for line in String::from_utf8_lossy(&body).lines().filter(|l| !l.trim().is_empty()) {
        let message: serde_json::Value = serde_json::from_str(line).map_err(|e| Failure::new(1, e.to_string()))?;
        if let Some(error) = message["errorDetail"]["message"].as_str() {
            return Err(Failure::new(1, error.to_string()));
        }
        if let (Some(text), false) = (message["stream"].as_str(), args.quiet) {
            print!("{text}");
        }
    }
    Ok(0)
}
