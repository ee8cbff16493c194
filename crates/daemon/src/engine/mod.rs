//! The engine: the one entry point for everything berthd does. The API layer turns HTTP
//! into calls here and results back into HTTP; nothing here knows about HTTP.

pub mod archive;
mod attach;
mod auth;
pub mod build_step;
mod changes;
mod chunks;
pub(crate) mod commit;
mod container_prune;
mod containers;
mod create;
mod diff;
mod disk_usage;
mod events;
mod exec;
mod export;
mod health;
mod image_delete;
mod images;
mod list;
mod logs;
mod mounts;
mod names;
pub(crate) mod nofollow;
mod networks;
mod pause;
mod pull;
mod push;
mod resources;
mod restart;
mod restore;
mod save;
mod shim;
mod shutdown;
mod stats;
mod system;
mod top;
mod update;
pub(crate) mod user;
mod volumes;

pub use attach::{AttachRequest, AttachStreams};
pub use commit::CommitRequest;
pub use containers::{ListOptions, WaitCondition};
pub use events::EventFilter;
pub use health::{filter_value as health_filter_value, status_suffix as health_status_suffix};
pub use restart::check_raw_name as check_restart_policy_name;
pub use create::now_rfc3339;
pub use images::ImportRequest;
pub use pull::PullOptions;
pub use images::{Deleted, HistoryEntry, ImageDetail};
pub use mounts::MountRecord;
pub use update::UpdateRequest;
pub use system::cgroup_version;

use crate::state::{Record, Records};
use berth_store::Store;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// Where berthd keeps things.
#[derive(Debug, Clone)]
pub struct Paths {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    /// The `berth-shim` binary: beside berthd's own executable, else on PATH.
    pub shim_binary: PathBuf,
    /// The init binary `--init` runs: a static tini, as Docker's `docker-init` is.
    pub init_binary: Option<PathBuf>,
    /// `--storage-driver`; `None` lets the store choose (see `berth_store::Store::open_with_driver`).
    pub storage_driver: Option<berth_store::Driver>,
}

impl Paths {
    pub fn new(data_root: &Path, exec_root: &Path) -> anyhow::Result<Paths> {
        let beside_us = std::env::current_exe()?.with_file_name("berth-shim");
        let shim_binary = if beside_us.exists() { beside_us } else { PathBuf::from("berth-shim") };
        Ok(Paths { data_root: data_root.into(), exec_root: exec_root.into(), shim_binary, init_binary: find_init(), storage_driver: None })
    }

    /// Persistent per-container files: logs, /etc/hosts and friends.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.data_root.join("containers").join(id)
    }

    /// The shim's state dir: its socket, pid and exit files; the bundle and rootfs mountpoint.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }

    pub fn netns(&self, id: &str) -> PathBuf {
        self.exec_root.join("netns").join(id)
    }

    pub fn runtime_root(&self) -> PathBuf {
        self.exec_root.join("runtime")
    }

    /// The shims' compiled seccomp programs (`berth_runtime::shim::seccomp_bpf`); on the
    /// exec root's tmpfs, so a new kernel or libseccomp after a reboot starts it afresh.
    pub fn seccomp_cache(&self) -> PathBuf {
        self.exec_root.join("seccomp")
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(format!("{id}-json.log"))
    }
}

/// A static init on PATH. It must be static: it runs inside the container's rootfs, which
/// need not have a C library.
fn find_init() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    ["tini-static", "docker-init"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Engine errors; `api/error.rs` maps each kind to its HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidParameter(String),
    /// The request asked for the state the container is already in (HTTP 304).
    #[error("not modified")]
    NotModified,
    /// The container process could not be started; carries Docker's exit-code class.
    #[error("{message}")]
    StartFailed { message: String, not_found: bool },
    #[error("{0}")]
    Internal(String),
    /// The operation exists in Docker but not for this container (HTTP 501), e.g. reading
    /// the logs of a container whose log driver keeps none.
    #[error("{0}")]
    NotImplemented(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<crate::state::DbError> for Error {
    fn from(e: crate::state::DbError) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<berth_store::Error> for Error {
    fn from(e: berth_store::Error) -> Self {
        use berth_store::Error as S;
        match e {
            S::ImageNotFound(_) => Error::NotFound(e.to_string()),
            S::NotFound(_) => Error::NotFound(e.to_string()),
            S::InvalidReference(_) => Error::InvalidParameter(e.to_string()),
            S::Conflict(_) => Error::Conflict(e.to_string()),
            S::InvalidArchive(_) => Error::InvalidParameter(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Internal(format!("background task failed: {e}"))
    }
}

/// One container as the engine holds it in memory.
pub struct Container {
    /// The record; short critical sections only, never held across an await.
    pub rec: Mutex<Record>,
    /// Serialises lifecycle operations (start, stop, kill, remove) on this container.
    op: tokio::sync::Mutex<()>,
    /// Published on every state change; waiters and log followers watch it.
    events: tokio::sync::watch::Sender<Lifecycle>,
    /// Attach connections made before start; handed to the shim when it starts.
    attach: Mutex<attach::AttachQueue>,
    /// The restart policy's bookkeeping.
    restart: Mutex<restart::RestartState>,
}

/// What waiters need to know about a container's lifecycle.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lifecycle {
    pub running: bool,
    /// How many times the container has exited since berthd loaded it.
    pub exits: u64,
    pub exit_code: i64,
    pub removed: bool,
    /// A shim still holds this container's rootfs mount and cgroup (running, or cleaning up
    /// after an exit); the files may not be removed nor a new run started until it lets go.
    pub shim_active: bool,
}

impl Container {
    fn new(rec: Record) -> Arc<Container> {
        let running = rec.state.status == crate::state::Status::Running;
        let exit_code = rec.state.exit_code;
        Arc::new(Container {
            rec: Mutex::new(rec),
            op: tokio::sync::Mutex::new(()),
            events: tokio::sync::watch::channel(Lifecycle { running, exit_code, ..Default::default() }).0,
            attach: Mutex::new(attach::AttachQueue::default()),
            restart: Mutex::new(Default::default()),
        })
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> Record {
        lock(&self.rec).clone()
    }

    pub fn id(&self) -> String {
        lock(&self.rec).id.clone()
    }
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it: the record is
/// always left whole by our updates, so the data is still good.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The engine.
pub struct Engine {
    pub paths: Paths,
    pub store: Arc<Store>,
    records: Records,
    containers: RwLock<HashMap<String, Arc<Container>>>,
    /// Named and anonymous volumes.
    volumes: volumes::Volumes,
    /// `docker exec` instances (in memory, as in Docker).
    execs: exec::Execs,
    /// What happened lately, for `GET /events`.
    events: Arc<events::EventLog>,
    /// Networks, endpoints and published ports.
    networks: networks::Networks,
    /// The embedded DNS servers of running containers on user-defined networks, by ID.
    dns_servers: Mutex<HashMap<String, berth_net::dns::Server>>,
    /// Daemon-wide identity reported by `/info`.
    pub daemon_id: String,
    /// The log driver new containers get unless they name one (daemon.json `log-driver`/`log-opts`).
    pub log_defaults: berth_api::models::HostConfigLogConfig,
    /// The registry client: connection pools, bearer tokens, insecure registries, mirrors.
    pub registry: berth_distribution::Client,
    /// Build contexts: content-addressed files and manifests (`<data-root>/build/context`).
    pub build_context: Arc<crate::build::context_store::ContextStore>,
    /// Container starts in progress, which a shutdown lets finish (or ends).
    starts: shutdown::Starts,
}

/// What only the daemon may read, as dockerd keeps it (`containers/` 0710 with no remapped
/// group, `repositories.json` 0600): containers' configs and logs, the database, the build
/// contexts. Tightened at every open, so data roots made by older versions are fixed too.
fn private_files(data_root: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (name, mode) in [("containers", 0o700), ("build", 0o700), ("berth.db", 0o600), ("engine-id", 0o600)] {
        match std::fs::set_permissions(data_root.join(name), std::fs::Permissions::from_mode(mode)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    Ok(())
}

impl Engine {
    /// Opens (or creates) the data root and loads every container record.
    pub fn open(paths: Paths) -> anyhow::Result<Engine> {
        for dir in [paths.data_root.join("containers"), paths.exec_root.join("containers")] {
            std::fs::create_dir_all(&dir)?;
        }
        std::fs::set_permissions(&paths.data_root, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
        let db = Arc::new(redb::Database::create(paths.data_root.join("berth.db"))?);
        let store = Arc::new(Store::open_with_driver(&paths.data_root, db.clone(), paths.storage_driver)?);
        let events = Arc::new(events::EventLog::default());
        let volumes = volumes::Volumes::open(db.clone(), &paths.data_root, events.clone())?;
        let networks = networks::Networks::open(db.clone(), &paths.exec_root)?;
        let build_context = Arc::new(crate::build::context_store::ContextStore::open_with_db(&paths.data_root.join("build/context"), db.clone())?);
        let records = Records::new(db)?;
        let daemon_id = system::daemon_id(&paths.data_root)?;
        private_files(&paths.data_root)?;
        let containers = records
            .load_all()?
            .into_iter()
            .map(|rec| (rec.id.clone(), Container::new(rec)))
            .collect();
        Ok(Engine { paths, store, records, containers: RwLock::new(containers), volumes, networks, dns_servers: Default::default(), execs: exec::Execs::default(), events, daemon_id, log_defaults: crate::io::logs::driver::builtin_default(), registry: berth_distribution::Client::new(Default::default()), build_context, starts: Default::default() })
    }

    /// Finds a container by full ID, name (with or without `/`), or unique ID prefix.
    pub fn container(&self, name: &str) -> Result<Arc<Container>> {
        let all = self.containers.read().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = all.get(name) {
            return Ok(c.clone());
        }
        let bare = name.strip_prefix('/').unwrap_or(name);
        if let Some(c) = all.values().find(|c| lock(&c.rec).name == bare) {
            return Ok(c.clone());
        }
        let mut by_prefix = all.iter().filter(|(id, _)| !name.is_empty() && id.starts_with(name));
        match (by_prefix.next(), by_prefix.next()) {
            (Some((_, c)), None) => Ok(c.clone()),
            (Some(_), Some(_)) => Err(Error::NotFound(format!(
                "Multiple IDs found with provided prefix: {name}"
            ))),
            _ => Err(Error::NotFound(format!("No such container: {name}"))),
        }
    }

    fn all_containers(&self) -> Vec<Arc<Container>> {
        self.containers.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Saves `rec` as the container's record, in memory and on disk.
    fn commit(&self, c: &Container, rec: Record) -> Result<()> {
        self.records.save(&rec)?;
        self.commit_in_memory(c, rec);
        Ok(())
    }

    /// `commit`'s in-memory half: the record as the API and waiters see it, not yet on disk.
    fn commit_in_memory(&self, c: &Container, rec: Record) {
        let lifecycle = {
            let mut current = lock(&c.rec);
            *current = rec;
            (current.state.status == crate::state::Status::Running, current.state.exit_code)
        };
        c.events.send_modify(|l| {
            l.running = lifecycle.0;
            l.exit_code = lifecycle.1;
        });
    }
}

/// Runs blocking work (store, shim spawn) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}
