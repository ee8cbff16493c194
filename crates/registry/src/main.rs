//! `berth-registry`: the server behind `berth registry serve`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Serve an OCI distribution registry backed by berth's content store
#[derive(Debug, Parser)]
#[command(name = "berth-registry")]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: String,
    /// Directory for blobs, repositories and uploads
    #[arg(long, default_value = "/var/lib/berth/registry")]
    root: PathBuf,
    /// Require basic auth against this htpasswd file (bcrypt entries, htpasswd -B)
    #[arg(long)]
    htpasswd: Option<PathBuf>,
    /// TLS certificate (PEM); needs --tls-key
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Remove upload sessions untouched for this many seconds
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    upload_ttl: u64,
}

fn main() {
    let args = Args::parse();
    let config = berth_registry::Config {
        addr: args.addr,
        root: args.root,
        htpasswd: args.htpasswd,
        tls: args.tls_cert.zip(args.tls_key),
        upload_ttl: Duration::from_secs(args.upload_ttl),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth-registry: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(berth_registry::serve(config)) {
        eprintln!("berth-registry: {e:#}");
        std::process::exit(1);
    }
}
