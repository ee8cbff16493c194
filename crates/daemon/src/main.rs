//! berthd: serves the Docker Engine API on a UNIX socket and runs containers through
//! one `berth-shim` per container.

mod api;
mod build;
mod cgroup_path;
mod config;
mod engine;
mod humanize;
mod io;
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
    /// Socket to listen on, as unix:///path.
    #[arg(short = 'H', long = "host", default_value = "unix:///run/berth.sock")]
    host: String,
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse_from(config::command_line::<Args>()?);
    let log_defaults = config::log_defaults(&args.log_driver, &args.log_opt)?;
    let registries = berth_distribution::RegistryConfig::new(&args.insecure_registry, &args.registry_mirror)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!("berthd={}", args.log_level)))
        .with_writer(std::io::stderr)
        .init();
    let socket_path = args
        .host
        .strip_prefix("unix://")
        .map(PathBuf::from)
        .with_context(|| format!("unsupported host {:?}: only unix:// sockets are served", args.host))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let shutdown_timeout = u64::try_from(args.shutdown_timeout).ok().map(std::time::Duration::from_secs);
    let result = runtime.block_on(async move {
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
        let served = server::serve(&socket_path, &args.group, engine.clone()).await;
        engine.shutdown(shutdown_timeout).await;
        engine.stop_networking();
        served
    });
    // Dropping the runtime would wait for every blocking task, however stuck: one still
    // running gets a moment to finish its file operation; what it leaves, restore finds.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}
