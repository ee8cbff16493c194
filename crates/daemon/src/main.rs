//! berthd: serves the Docker Engine API on UNIX sockets and TCP (with TLS) and runs
//! containers through one `berth-shim` per container.

mod api;
mod build;
mod cgroup_path;
mod config;
mod engine;
mod humanize;
mod io;
mod listen;
mod listen_hosts;
mod listen_tls;
mod seccomp;
mod server;
mod spec;
mod spec_devices;
mod spec_namespaces;
mod spec_security;
mod state;

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;

/// Command-line options; the names follow dockerd's.
#[derive(Parser, Debug)]
#[command(name = "berthd", version, about = "berth daemon: the Docker Engine API for berth")]
struct Args {
    /// Daemon socket(s) to connect to: unix:///path, tcp://host:port (repeatable; default
    /// unix:///run/berth.sock, or tcp://localhost:2376 with TLS, as dockerd).
    #[arg(short = 'H', long = "host", value_name = "list", value_parser = parse_host)]
    host: Vec<listen::Host>,
    /// Use TLS; implied by --tlsverify.
    #[arg(long = "tls", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    tls: Option<bool>,
    /// Use TLS and verify the remote (clients must present a certificate signed by --tlscacert).
    #[arg(long = "tlsverify", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    tlsverify: Option<bool>,
    /// Trust certs signed only by this CA (default ~/.docker/ca.pem).
    #[arg(long = "tlscacert", value_name = "string")]
    tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default ~/.docker/cert.pem).
    #[arg(long = "tlscert", value_name = "string")]
    tlscert: Option<PathBuf>,
    /// Path to TLS key file (default ~/.docker/key.pem).
    #[arg(long = "tlskey", value_name = "string")]
    tlskey: Option<PathBuf>,
    /// Root of persistent state: images, containers, metadata.
    #[arg(long = "data-root", default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Root of runtime state that does not survive a reboot: shim sockets, netns pins.
    #[arg(long = "exec-root", default_value = "/run/berth")]
    exec_root: PathBuf,
    /// Group that may use the socket (the socket is mode 0660 root:<group>).
    #[arg(short = 'G', long = "group", default_value = "docker")]
    group: String,
    /// Log level: error, warn, info, debug.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    log_level: String,
    /// Daemon configuration file (dockerd's daemon.json directives).
    #[arg(long = "config-file", default_value = config::DEFAULT_PATH)]
    config_file: PathBuf,
    /// Default driver for container logs.
    #[arg(long = "log-driver", default_value = "json-file")]
    log_driver: String,
    /// Default log driver options for containers.
    #[arg(long = "log-opt", value_name = "map")]
    log_opt: Vec<String>,
    /// Storage driver to use: overlay2 or vfs (default: the data root's, else overlay2 when
    /// overlayfs works here, else vfs).
    #[arg(short = 's', long = "storage-driver", value_name = "string")]
    storage_driver: Option<String>,
    /// Address and prefix of the default bridge (`berth0`), as dockerd's `--bip`.
    #[arg(long = "bip", value_name = "string")]
    bip: Option<String>,
    /// Registries reached over plain HTTP or unchecked TLS: host[:port] or a CIDR
    /// (127.0.0.0/8 always is, as in dockerd).
    #[arg(long = "insecure-registry", value_name = "list")]
    insecure_registry: Vec<String>,
    /// Pull mirrors: a URL mirrors Docker Hub (as dockerd); `<domain>=<url>` mirrors any
    /// registry (berth's extension).
    #[arg(long = "registry-mirror", value_name = "list")]
    registry_mirror: Vec<String>,
    /// Size the build context store is kept under (e.g. 10GB; the default).
    #[arg(long = "build-context-max-size", value_name = "string", value_parser = config::build_context_max_size)]
    build_context_max_size: Option<u64>,
    /// Seconds the starts in progress get to finish when the daemon is told to stop (a
    /// negative value: however long they take), as dockerd's.
    #[arg(long = "shutdown-timeout", value_name = "int", default_value_t = 15, allow_negative_numbers = true)]
    shutdown_timeout: i64,
}

/// Where berthd listens when no host is given.
const DEFAULT_SOCKET: &str = "/run/berth.sock";

/// `-H` values, checked as dockerd checks them.
fn parse_host(value: &str) -> Result<listen::Host, String> {
    listen_hosts::parse_host(value, DEFAULT_SOCKET)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse_from(config::command_line::<Args>()?);
    let log_defaults = config::log_defaults(&args.log_driver, &args.log_opt)?;
    let registries = berth_distribution::RegistryConfig::new(&args.insecure_registry, &args.registry_mirror)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!("berthd={}", args.log_level)))
        .with_writer(std::io::stderr)
        .init();
    let tls = listen::TlsOptions::new(
        args.tls,
        args.tlsverify,
        args.tlscacert.clone(),
        args.tlscert.clone(),
        args.tlskey.clone(),
    );
    let hosts = listen::effective_hosts(&args.host, tls.enabled, DEFAULT_SOCKET);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let shutdown_timeout = u64::try_from(args.shutdown_timeout).ok().map(std::time::Duration::from_secs);
    let result = runtime.block_on(async move {
        // Before the data root: a bad certificate or a taken port fails fast, as in dockerd;
        // connections wait in the backlog until restore is done.
        let listeners = listen::bind(&hosts, &args.group, &tls).await?;
        let socket_files: Vec<_> = listeners.iter().map(listen::Listener::socket_file).collect();
        let opened = open_engine(args, log_defaults, registries).await;
        let engine = match opened {
            Ok(engine) => engine,
            Err(e) => {
                // A daemon that could not start leaves no socket behind.
                socket_files.iter().for_each(listen::Listener::cleanup);
                return Err(e);
            }
        };
        let served = server::serve(listeners, engine.clone()).await;
        engine.shutdown(shutdown_timeout).await;
        engine.stop_networking();
        served
    });
    // Dropping the runtime would wait for every blocking task, however stuck: one still
    // running gets a moment to finish its file operation; what it leaves, restore finds.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

/// Opens the data root, restores the containers and starts networking.
async fn open_engine(
    args: Args,
    log_defaults: berth_api::models::HostConfigLogConfig,
    registries: berth_distribution::RegistryConfig,
) -> anyhow::Result<Arc<engine::Engine>> {
    let mut paths = engine::Paths::new(&args.data_root, &args.exec_root)?;
    paths.storage_driver = match args.storage_driver.as_deref().filter(|d| !d.is_empty()) {
        None => None,
        Some(name) => Some(
            berth_store::Driver::from_name(name)
                .with_context(|| format!("error initializing graphdriver: driver not supported: {name}"))?,
        ),
    };
    let mut engine = engine::Engine::open(paths).context("opening the data root")?;
    engine.log_defaults = log_defaults;
    engine.registry = berth_distribution::Client::new(registries);
    if let Some(max) = args.build_context_max_size {
        engine.build_context.set_max_size(max);
    }
    let engine = Arc::new(engine);
    engine.start_networking(args.bip.as_deref())?;
    engine.clone().restore().await;
    Ok(engine)
}
