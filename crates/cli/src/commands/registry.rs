//! `berth registry serve`: runs berth's registry server. The server is its own binary,
//! `berth-registry` (beside `berth`, else on PATH), so the CLI stays small; this command
//! replaces itself with it, passing the options on.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::commands::{CmdResult, Failure};

/// `berth registry`
#[derive(Debug, Args)]
pub struct RegistryArgs {
    #[command(subcommand)]
    pub command: RegistryCommand,
}

/// The registry subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum RegistryCommand {
    /// Serve an OCI distribution registry backed by berth's content store
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub addr: String,
    /// Directory for blobs, repositories and uploads
    #[arg(long, default_value = "/var/lib/berth/registry")]
    pub root: PathBuf,
    /// Require basic auth against this htpasswd file (bcrypt entries, htpasswd -B)
    #[arg(long)]
    pub htpasswd: Option<PathBuf>,
    /// TLS certificate (PEM); needs --tls-key
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// `berth-registry` next to the running `berth` (an install or a cargo target dir keeps
/// them together), else whatever PATH finds.
fn server_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("berth-registry")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("berth-registry"))
}

/// Execs the server; returns only if that fails.
pub async fn run(args: RegistryArgs) -> CmdResult {
    let RegistryCommand::Serve(a) = args.command;
    let bin = server_binary();
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("--addr").arg(&a.addr).arg("--root").arg(&a.root);
    if let Some(h) = &a.htpasswd {
        cmd.arg("--htpasswd").arg(h);
    }
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
    }
    let err = cmd.exec();
    Err(Failure::new(
        1,
        format!("cannot run {}: {err}", bin.display()),
    ))
}
