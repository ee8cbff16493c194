//! `berth save`: one or more images as a tar archive, to a file or stdout.

use std::io::{IsTerminal, Write};

use clap::Args;
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::{CmdResult, Failure};

/// `berth save`
#[derive(Debug, Clone, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output", value_name = "string")]
    pub output: Option<String>,
    /// The images
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

pub async fn run(client: &Client, args: SaveArgs) -> CmdResult {
    let output = args.output.filter(|o| !o.is_empty());
    if output.is_none() && std::io::stdout().is_terminal() {
        return Err(Failure::new(1, "cowardly refusing to save to a terminal. Use the -o flag or redirect"));
    }
    let q: Vec<(&str, String)> = args.images.iter().map(|i| ("names", i.clone())).collect();
    let resp = client.send(Method::GET, &format!("/images/get{}", client::query(&q)), client::empty()).await?;
    let mut body = resp.into_body();
    // A file is written beside its final name and renamed once complete, as docker does, so
    // a failed save never leaves a truncated archive under the name asked for.
    let (mut sink, temp): (Box<dyn Write>, Option<(std::path::PathBuf, std::path::PathBuf)>) = match &output {
        Some(path) => {
            let target = std::path::PathBuf::from(path);
            let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let temp = dir.join(format!(".berth-save-{}", std::process::id()));
            let file = std::fs::File::create(&temp)
                .map_err(|e| Failure::new(1, format!("failed to save image: {}", crate::commands::create::io_reason(&e))))?;
            (Box::new(std::io::BufWriter::new(file)), Some((temp, target)))
        }
        None => (Box::new(std::io::stdout().lock()), None),
    };
    let result = async {
        while let Some(chunk) = client::next_chunk(&mut body).await? {
            sink.write_all(&chunk).map_err(|e| Failure::new(1, e.to_string()))?;
        }
        sink.flush().map_err(|e| Failure::new(1, e.to_string()))?;
        Ok::<_, Failure>(())
    }
    .await;
    drop(sink);
    if let Some((temp, target)) = temp {
        match &result {
            Ok(()) => std::fs::rename(&temp, &target).map_err(|e| Failure::new(1, e.to_string()))?,
            Err(_) => {
                let _ = std::fs::remove_file(&temp);
            }
        }
    }
    result.map(|()| 0)
}
