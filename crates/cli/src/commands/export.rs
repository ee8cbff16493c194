//! `berth export`: a container's filesystem as a tar, to a file or to stdout, streamed.

use clap::Args;
use hyper::Method;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

use crate::client::{self, Client};
use crate::commands::{CmdResult, Failure};

/// `berth export`
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output", value_name = "string")]
    pub output: Option<String>,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `berth export`
pub async fn run(client: &Client, args: ExportArgs) -> CmdResult {
    let output = args.output.filter(|o| !o.is_empty());
    match &output {
        None if crate::term::is_tty(1) => {
            return Err(Failure::new(
                1,
                "cowardly refusing to save to a terminal. Use the -o flag or redirect",
            ))
        }
        None => {}
        Some(path) => check_output_path(Path::new(path))
            .map_err(|e| Failure::new(1, format!("failed to export container: {e}")))?,
    }
    let path = format!("/containers/{}/export", client::enc(&args.container));
    let mut body = client
        .send(Method::GET, &path, client::empty())
        .await?
        .into_body();
    let io_failure =
        |e: std::io::Error| Failure::new(1, format!("failed to export container: {e}"));
    match output {
        None => {
            // A reader that stops early (`| head`) ends docker silently, by SIGPIPE.
            let stdout_failure = |e: std::io::Error| match e.kind() {
                std::io::ErrorKind::BrokenPipe => Failure::new(128 + libc::SIGPIPE, ""),
                _ => io_failure(e),
            };
            let mut stdout = tokio::io::stdout();
            while let Some(chunk) = client::next_chunk(&mut body).await? {
                stdout.write_all(&chunk).await.map_err(stdout_failure)?;
            }
            stdout.flush().await.map_err(stdout_failure)?;
        }
        Some(path) => {
            // As docker: write beside the target and rename, so a failed export leaves no
            // half-written file under the name asked for.
            let target = PathBuf::from(&path);
            let temp = temp_beside(&target);
            let result = async {
                let mut file = tokio::fs::File::create(&temp).await.map_err(io_failure)?;
                while let Some(chunk) = client::next_chunk(&mut body).await? {
                    file.write_all(&chunk).await.map_err(io_failure)?;
                }
                file.sync_all().await.map_err(io_failure)?;
                tokio::fs::rename(&temp, &target).await.map_err(io_failure)
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_file(&temp).await;
            }
            result?;
        }
    }
    Ok(0)
}

/// docker's `ValidateOutputPath`: the directory must exist and the path must not be one.
fn check_output_path(path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Err(e) = std::fs::metadata(dir) {
        return Err(format!(
            "invalid output path: stat {}: {}",
            dir.display(),
            os_error(&e)
        ));
    }
    if path.is_dir() {
        return Err("cannot write to a directory".into());
    }
    Ok(())
}

/// An I/O error worded as Go words it ("no such file or directory").
fn os_error(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn temp_beside(target: &Path) -> PathBuf {
    let name = format!(".docker_temp_{}", std::process::id());
    target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(name)
}
