//! The containers of a classic build: each Dockerfile step that is not FROM/COPY/ADD gets a
//! real container, as in Docker 20.10, so `Running in <id>`, `ps` during the build and the
//! events are true. Metadata steps create one and commit it without starting it (an empty
//! layer, no walk); RUN starts it with the build's network and resources, streams its stdout
//! and stderr apart, and commits its changes. The container is always removed afterwards,
//! also when the step fails or the build is cancelled (20.10 keeps it on failure without
//! `--force-rm`; berth does not leave it behind).
//!
//! Events match what dockerd 20.10 emits for a build (checked with `docker events`): a
//! metadata step gives `create`, `destroy`; a RUN gives `create`, `attach`, `network
//! connect`, `start`, `die`, `network disconnect`, `destroy`. A build commit emits no
//! `commit` event.

use super::{lock, AttachRequest, AttachStreams, Container, Engine, Error, Result};
use crate::state::{Record, RunState, Status};
use berth_api::frame;
use berth_api::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use berth_store::Image;
use bytes::Bytes;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

/// A build step's container. Dropping it without [`Engine::build_remove`] (a build future
/// dropped when its client went away) still kills and removes the container.
pub struct BuildContainer {
    pub id: String,
    engine: Arc<Engine>,
    removed: AtomicBool,
}

impl std::fmt::Debug for BuildContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContainer")
            .field("id", &self.id)
            .finish()
    }
}

impl BuildContainer {
    /// Leaves the container in place (`--rm=false` after a successful step): dropping it
    /// then removes nothing.
    pub fn keep(self) {
        self.removed.store(true, Ordering::SeqCst);
    }
}

impl Drop for BuildContainer {
    fn drop(&mut self) {
        if self.removed.load(Ordering::SeqCst) {
            return;
        }
        let (engine, id) = (self.engine.clone(), self.id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { engine.remove_build_container(&id).await });
        }
    }
}

/// The build's `POST /build` run options that apply to its RUN containers. Zero and empty
/// mean "not set", as in the query.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `networkmode`: `default` (the bridge), `host`, `none`, or a user network's name/ID.
    pub network_mode: String,
    pub memory: i64,
    pub memswap: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub shm_size: i64,
    pub cgroup_parent: String,
    pub ulimits: Vec<ResourcesUlimits>,
    /// `extrahosts`: `name:ip` entries for /etc/hosts.
    pub extra_hosts: Vec<String>,
}

impl RunOptions {
    /// The host config a build container gets from these options.
    fn host_config(&self) -> HostConfig {
        let num = |v: i64| (v != 0).then_some(v);
        let text = |v: &str| (!v.is_empty()).then(|| v.to_string());
        HostConfig {
            network_mode: Some(text(&self.network_mode).unwrap_or_else(|| "default".into())),
            memory: num(self.memory),
            memory_swap: num(self.memswap),
            cpu_shares: num(self.cpu_shares),
            cpu_period: num(self.cpu_period),
            cpu_quota: num(self.cpu_quota),
            cpuset_cpus: text(&self.cpuset_cpus),
            cpuset_mems: text(&self.cpuset_mems),
            shm_size: num(self.shm_size),
            cgroup_parent: text(&self.cgroup_parent),
            ulimits: (!self.ulimits.is_empty()).then(|| self.ulimits.clone()),
            extra_hosts: (!self.extra_hosts.is_empty()).then(|| self.extra_hosts.clone()),
            ..Default::default()
        }
    }
}

/// A chunk of a RUN's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// Cancels a build: every clone sees it. Cheap to clone; one per build, handed to each step.
#[derive(Debug, Clone)]
pub struct CancelToken(Arc<watch::Sender<bool>>);

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken(Arc::new(watch::channel(false).0))
    }

    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`CancelToken::cancel`] has been called (at once if it already was).
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in self, so the channel cannot close while we wait.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// The error a RUN that was cancelled returns.
pub const CANCELLED: &str = "the build was cancelled";

impl Engine {
    /// Creates a build container (not started) from `image` (an image ID; `None` =
    /// `scratch`) with `config`, a Docker container config (`Cmd`, `Entrypoint`, `Env`,
    /// `User`, `WorkingDir`, `Labels`, ...), and the build's run options.
    pub async fn build_create(
        self: &Arc<Self>,
        image: Option<&str>,
        config: Map<String, Value>,
        opts: &RunOptions,
    ) -> Result<BuildContainer> {
        let mut body: ContainerCreateBody = serde_json::from_value(Value::Object(config))
            .map_err(|e| Error::InvalidParameter(format!("build container config: {e}")))?;
        body.host_config = Some(opts.host_config());
        body.networking_config = None;
        let id = match image {
            Some(image) => {
                // The image's ID, as Docker's build containers name it (`Config.Image`).
                body.image = Some(image.to_string());
                self.create(None, body).await?.0
            }
            None => self.create_on_scratch(body).await?,
        };
        Ok(BuildContainer {
            id,
            engine: self.clone(),
            removed: AtomicBool::new(false),
        })
    }

    /// Starts the container, streams its output to `out` and waits for it to exit; returns
    /// its exit code. `cancel`, or dropping the returned future, kills it.
    pub async fn build_run(
        self: &Arc<Self>,
        c: &BuildContainer,
        out: mpsc::Sender<Output>,
        cancel: CancelToken,
    ) -> Result<i64> {
        if cancel.is_cancelled() {
            return Err(Error::Internal(CANCELLED.into()));
        }
        let container = self.container(&c.id)?;
        if lock(&container.rec).image_id.is_empty() {
            return Err(scratch_start_error(&container.snapshot().path));
        }
        // The run goes on in its own task: a start is never cut in half by a dropped future.
        // What stops it is the kill below.
        let task = tokio::spawn(self.clone().run_to_exit(container, out));
        let mut kill_guard = KillOnDrop {
            engine: self.clone(),
            id: c.id.clone(),
            armed: true,
        };
        let result = tokio::select! {
            joined = task => joined.map_err(Error::from).and_then(|r| r),
            () = cancel.cancelled() => Err(Error::Internal(CANCELLED.into())),
        };
        if result.is_ok() {
            kill_guard.armed = false;
        }
        drop(kill_guard);
        result
    }

    /// `build_run`'s body: attach, start, copy the output, wait.
    async fn run_to_exit(
        self: Arc<Self>,
        c: Arc<Container>,
        out: mpsc::Sender<Output>,
    ) -> Result<i64> {
        let mut lifecycle = c.events.subscribe();
        let exits_before = lifecycle.borrow().exits;
        let (client, ours) = tokio::io::duplex(64 * 1024);
        let streams = AttachStreams {
            stdin: false,
            stdout: true,
            stderr: true,
        };
        // Joined before the start (the engine queues it), so no output is missed.
        self.attach(
            c.clone(),
            AttachRequest {
                streams,
                detach_keys: Vec::new(),
            },
            Box::new(client),
        )
        .await;
        self.start_container(&c, None).await?;
        copy_output(ours, &out).await;
        let exited = lifecycle
            .wait_for(|l| l.exits > exits_before || l.removed)
            .await;
        Ok(match exited {
            Ok(l) => l.exit_code,
            Err(_) => lock(&c.rec).state.exit_code,
        })
    }

    /// Commits the container's changes as a child of `step.parent` (`None`: `scratch`): the
    /// empty layer when it never ran (no walk), else what it changed. The image's history gains
    /// `created_by` (and `author`, from MAINTAINER); its `container` is the container's ID.
    pub async fn build_commit_step(&self, c: &BuildContainer, step: StepCommit) -> Result<Image> {
        let container = self.container(&c.id)?;
        // A container that never ran changed nothing: no walk (and one on scratch has no
        // image to walk against).
        let ran = {
            let rec = lock(&container.rec);
            rec.state.status != Status::Created && !rec.image_id.is_empty()
        };
        let spec = super::commit::CommitSpec {
            parent: step.parent,
            config: step.config,
            container_config: step.container_config,
            created_by: step.created_by,
            author: step.author,
            comment: String::new(),
            tag: None,
            walk: ran,
        };
        self.commit_layer(&container, spec).await
    }

    /// Removes the container (killing it if it runs). Never fails: problems are logged.
    pub async fn build_remove(&self, c: &BuildContainer) {
        c.removed.store(true, Ordering::SeqCst);
        self.remove_build_container(&c.id).await;
    }

    async fn remove_build_container(&self, id: &str) {
        match self.remove(id, true).await {
            Ok(()) | Err(Error::NotFound(_)) => {}
            Err(e) => tracing::warn!("removing build container {id}: {e}"),
        }
    }

    /// A container on `scratch`: no image, no rootfs. Metadata steps are all it can serve;
    /// nothing can run in an empty filesystem (see `scratch_start_error`).
    async fn create_on_scratch(&self, body: ContainerCreateBody) -> Result<String> {
        let config = berth_api::models::ContainerConfig {
            hostname: body.hostname.clone(),
            domainname: body.domainname.clone(),
            user: Some(body.user.clone().unwrap_or_default()),
            env: body.env.clone(),
            cmd: body.cmd.clone(),
            // `[""]` (what RUN sets) means no entrypoint, as at create.
            entrypoint: body
                .entrypoint
                .clone()
                .map(|e| e.into_iter().filter(|a| !a.is_empty()).collect()),
            image: Some(String::new()),
            working_dir: Some(body.working_dir.clone().unwrap_or_default()),
            labels: body.labels.clone(),
            exposed_ports: body.exposed_ports.clone(),
            volumes: body.volumes.clone(),
            stop_signal: body.stop_signal.clone(),
            healthcheck: body.healthcheck.clone(),
            ..Default::default()
        };
        let args: Vec<String> = config
            .entrypoint
            .iter()
            .flatten()
            .chain(config.cmd.iter().flatten())
            .cloned()
            .collect();
        let (path, rest) = args
            .split_first()
            .map(|(p, r)| (p.clone(), r.to_vec()))
            .unwrap_or_default();
        let id = new_id();
        let container = Container::new(Record {
            id: id.clone(),
            name: String::new(),
            created: super::now_rfc3339(),
            image: String::new(),
            image_id: String::new(),
            config,
            host_config: body.host_config.unwrap_or_default(),
            path,
            args: rest,
            state: RunState::default(),
            restart_count: 0,
            mounts: Vec::new(),
        });
        {
            let mut all = self.containers.write().unwrap_or_else(|p| p.into_inner());
            let name = (0..)
                .map(super::names::random)
                .find(|n| !all.values().any(|c| lock(&c.rec).name == *n))
                .unwrap_or_else(|| id.clone());
            lock(&container.rec).name = name;
            all.insert(id.clone(), container.clone());
        }
        let saved = std::fs::create_dir_all(self.paths.container_dir(&id))
            .map_err(Error::from)
            .and_then(|()| {
                self.records
                    .save(&container.snapshot())
                    .map_err(Error::from)
            });
        if let Err(e) = saved {
            self.containers
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            let _ = std::fs::remove_dir_all(self.paths.container_dir(&id));
            return Err(e);
        }
        self.container_event(&container.snapshot(), "create", &[]);
        Ok(id)
    }

    /// Kills a build container once any start in progress has finished (the lifecycle lock),
    /// so a cancel that races the start still stops what the start began.
    async fn kill_build_container(&self, id: &str) {
        let Ok(c) = self.container(id) else { return };
        drop(c.op.lock().await);
        if lock(&c.rec).state.status == Status::Running {
            if let Err(e) = self.kill(id, None).await {
                tracing::debug!("cancelling build container {id}: {e}");
            }
        }
    }
}

/// The rest of a build commit besides the container.
#[derive(Debug, Clone, Default)]
pub struct StepCommit {
    /// The parent image's ID; `None` on `scratch`.
    pub parent: Option<String>,
    pub config: Map<String, Value>,
    pub container_config: Map<String, Value>,
    pub created_by: String,
    /// MAINTAINER's value: the image's and the history entry's `author`.
    pub author: String,
}

/// Kills the container when the RUN did not finish normally (cancelled, failed to run, or
/// its future dropped).
struct KillOnDrop {
    engine: Arc<Engine>,
    id: String,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (engine, id) = (self.engine.clone(), self.id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { engine.kill_build_container(&id).await });
        }
    }
}

/// Splits the attach stream's frames into stdout and stderr chunks for `out`. Keeps reading
/// when nobody listens any more, so the container never blocks on a full pipe.
async fn copy_output(mut stream: impl AsyncRead + Unpin, out: &mpsc::Sender<Output>) {
    let mut listening = true;
    loop {
        let mut header = [0u8; frame::HEADER_LEN];
        if stream.read_exact(&mut header).await.is_err() {
            return;
        }
        let Some((which, len)) = frame::parse_header(&header) else {
            return;
        };
        let mut payload = vec![0u8; len];
        if stream.read_exact(&mut payload).await.is_err() {
            return;
        }
        let chunk = match which {
            frame::Stream::Stderr => Output::Stderr(payload.into()),
            _ => Output::Stdout(payload.into()),
        };
        if listening && out.send(chunk).await.is_err() {
            listening = false;
        }
    }
}

/// What starting a command on `scratch` fails with: its filesystem is empty, so the command
/// cannot be found (the runtime's wording, as `start` reports it).
fn scratch_start_error(arg0: &str) -> Error {
    let why = if arg0.contains('/') {
        format!("exec: \"{arg0}\": stat {arg0}: no such file or directory")
    } else {
        format!("exec: \"{arg0}\": executable file not found in $PATH")
    };
    Error::StartFailed {
        message: format!("failed to create task for container: {why}: unknown"),
        not_found: true,
    }
}

fn new_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[(frame::Stream, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (s, p) in parts {
            frame::encode(*s, p, &mut buf);
        }
        buf
    }

    #[tokio::test]
    async fn output_frames_become_stdout_and_stderr_chunks() {
        let data = frames(&[
            (frame::Stream::Stdout, b"hi\n"),
            (frame::Stream::Stderr, b"err\n"),
            (frame::Stream::Stdout, b""),
        ]);
        let (tx, mut rx) = mpsc::channel(8);
        copy_output(&data[..], &tx).await;
        drop(tx);
        let mut got = Vec::new();
        while let Some(o) = rx.recv().await {
            got.push(o);
        }
        assert_eq!(
            got,
            [
                Output::Stdout(Bytes::from_static(b"hi\n")),
                Output::Stderr(Bytes::from_static(b"err\n")),
                Output::Stdout(Bytes::new())
            ]
        );
    }

    #[tokio::test]
    async fn output_is_drained_when_nobody_listens() {
        let data = frames(&[(frame::Stream::Stdout, b"a"), (frame::Stream::Stdout, b"b")]);
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut reader = &data[..];
        copy_output(&mut reader, &tx).await;
        assert!(reader.is_empty(), "read to the end");
    }

    #[tokio::test]
    async fn cancel_wakes_every_clone() {
        let token = CancelToken::new();
        let other = token.clone();
        let waiter = tokio::spawn(async move { other.cancelled().await });
        assert!(!token.is_cancelled());
        token.cancel();
        waiter.await.unwrap();
        assert!(token.is_cancelled());
        // Already cancelled: returns at once.
        token.cancelled().await;
    }

    #[test]
    fn run_options_fill_only_what_was_set() {
        let hc = RunOptions::default().host_config();
        assert_eq!(hc.network_mode.as_deref(), Some("default"));
        assert_eq!(
            (
                hc.memory,
                hc.shm_size,
                hc.cpuset_cpus.clone(),
                hc.ulimits.clone()
            ),
            (None, None, None, None)
        );
        let opts = RunOptions {
            network_mode: "host".into(),
            memory: 64 << 20,
            cpuset_cpus: "0".into(),
            ..Default::default()
        };
        let hc = opts.host_config();
        assert_eq!(
            (
                hc.network_mode.as_deref(),
                hc.memory,
                hc.cpuset_cpus.as_deref()
            ),
            (Some("host"), Some(64 << 20), Some("0"))
        );
    }

    #[test]
    fn nothing_runs_on_scratch() {
        assert_eq!(
            scratch_start_error("/bin/sh").to_string(),
            "failed to create task for container: exec: \"/bin/sh\": stat /bin/sh: no such file or directory: unknown"
        );
        assert!(scratch_start_error("ls")
            .to_string()
            .contains("executable file not found in $PATH"));
    }

    /// A real engine on a temp data root with the test image, for the tests that run
    /// containers; `None` (skip) without root or the shim binary, except under CI.
    async fn engine_with_busybox() -> Option<(tempfile::TempDir, Arc<Engine>, Image)> {
        let ci = std::env::var("CI").as_deref() == Ok("true");
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        // target/debug/deps/<test> → target/debug/berth-shim (`cargo build --workspace --bins`).
        let shim = std::env::current_exe()
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("berth-shim");
        if !root || !shim.exists() || !std::path::Path::new("/bin/busybox").exists() {
            assert!(
                !ci,
                "needs root, {} and /bin/busybox under CI",
                shim.display()
            );
            eprintln!("skipping: needs root, {} and /bin/busybox", shim.display());
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-build-step")
            .tempdir_in("/var/tmp")
            .unwrap();
        let mut paths =
            super::super::Paths::new(&dir.path().join("data"), &dir.path().join("exec")).unwrap();
        paths.shim_binary = shim;
        let engine = Arc::new(Engine::open(paths).unwrap());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/mkimage.sh");
        let tar = std::process::Command::new("bash")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            tar.status.success(),
            "mkimage: {}",
            String::from_utf8_lossy(&tar.stderr)
        );
        let config: berth_store::ImageConfig = serde_json::from_value(serde_json::json!({
            "Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        }))
        .unwrap();
        let opts = berth_store::ImportOptions {
            config,
            ..Default::default()
        };
        let image = engine.store.import(&mut &tar.stdout[..], opts).unwrap();
        Some((dir, engine, image))
    }

    fn run_config(image: &Image, script: &str) -> Map<String, Value> {
        serde_json::json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh", "-c", script], "Entrypoint": [""], "Image": image.id,
            "Healthcheck": {"Test": ["NONE"]}, "Labels": {"step": "run"}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    /// Actions of the container events about `id` so far.
    fn actions(engine: &Engine, id: &str) -> Vec<String> {
        let (past, _) = engine.events.subscribe(Some(0));
        past.iter()
            .filter(|e| e.actor_id == id)
            .map(|e| e.action.clone())
            .collect()
    }

    async fn collect(mut rx: mpsc::Receiver<Output>) -> (String, String) {
        let (mut out, mut err) = (String::new(), String::new());
        while let Some(o) = rx.recv().await {
            match o {
                Output::Stdout(b) => out.push_str(&String::from_utf8_lossy(&b)),
                Output::Stderr(b) => err.push_str(&String::from_utf8_lossy(&b)),
            }
        }
        (out, err)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_step_streams_commits_and_leaves_no_container() {
        let Some((_dir, engine, busybox)) = engine_with_busybox().await else {
            return;
        };
        let opts = RunOptions {
            network_mode: "none".into(),
            ..Default::default()
        };
        let script = "echo out; echo err >&2; echo data > /made; exit 3";
        let c = engine
            .build_create(Some(&busybox.id), run_config(&busybox, script), &opts)
            .await
            .unwrap();
        assert_eq!(
            engine.container(&c.id).unwrap().snapshot().image,
            busybox.id,
            "named by image ID, as Docker"
        );
        let (tx, rx) = mpsc::channel(16);
        let output = tokio::spawn(collect(rx));
        let code = engine.build_run(&c, tx, CancelToken::new()).await.unwrap();
        assert_eq!(code, 3);
        assert_eq!(
            output.await.unwrap(),
            ("out\n".to_string(), "err\n".to_string())
        );

        let mut probe = run_config(&busybox, script);
        probe.insert("Entrypoint".into(), Value::Null);
        let image = engine
            .build_commit_step(
                &c,
                StepCommit {
                    parent: Some(busybox.id.clone()),
                    config: run_config(&busybox, "sh"),
                    container_config: probe,
                    created_by: format!("/bin/sh -c {script}"),
                    author: String::new(),
                },
            )
            .await
            .unwrap();
        assert_eq!(image.parent.as_deref(), Some(busybox.id.as_str()));
        assert_eq!(
            image.config.rootfs().diff_ids().len(),
            2,
            "the container's changes are one layer"
        );
        let blob: Value =
            serde_json::from_slice(&engine.store.config_blob(&image).unwrap()).unwrap();
        assert_eq!(blob["container"], c.id.as_str());
        assert_eq!(
            blob["history"][1]["created_by"],
            format!("/bin/sh -c {script}")
        );
        assert_eq!(blob["container_config"]["Entrypoint"], Value::Null);
        let top = &engine.store.layer_dirs(&image).unwrap()[1].1;
        assert_eq!(std::fs::read_to_string(top.join("made")).unwrap(), "data\n");

        engine.build_remove(&c).await;
        assert!(engine.container(&c.id).is_err(), "gone from ps -a");
        assert!(!engine.paths.container_dir(&c.id).exists());
        // dockerd 20.10's events for a RUN (network `none`: no connect/disconnect).
        assert_eq!(
            actions(&engine, &c.id),
            ["create", "attach", "start", "die", "destroy"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_metadata_step_commits_an_empty_layer_without_running() {
        let Some((_dir, engine, busybox)) = engine_with_busybox().await else {
            return;
        };
        let mut config = run_config(&busybox, "#(nop) ");
        config.insert(
            "Cmd".into(),
            serde_json::json!(["/bin/sh", "-c", "#(nop) ", "ENV A=1"]),
        );
        let c = engine
            .build_create(Some(&busybox.id), config.clone(), &RunOptions::default())
            .await
            .unwrap();
        let image = engine
            .build_commit_step(
                &c,
                StepCommit {
                    parent: Some(busybox.id.clone()),
                    config: config.clone(),
                    container_config: config,
                    created_by: "/bin/sh -c #(nop)  ENV A=1".into(),
                    author: String::new(),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            image.config.rootfs().diff_ids(),
            busybox.config.rootfs().diff_ids()
        );
        let blob: Value =
            serde_json::from_slice(&engine.store.config_blob(&image).unwrap()).unwrap();
        assert_eq!(blob["history"][1]["empty_layer"], true);
        engine.build_remove(&c).await;
        assert_eq!(actions(&engine, &c.id), ["create", "destroy"]);

        // On scratch: a container without image; its commit is an image without layers or parent.
        let mut config = run_config(&busybox, "");
        config.insert(
            "Cmd".into(),
            serde_json::json!(["/bin/sh", "-c", "#(nop) ", "ENV A=1"]),
        );
        let c = engine
            .build_create(None, config.clone(), &RunOptions::default())
            .await
            .unwrap();
        let image = engine
            .build_commit_step(
                &c,
                StepCommit {
                    parent: None,
                    config: config.clone(),
                    container_config: config,
                    created_by: "/bin/sh -c #(nop)  ENV A=1".into(),
                    author: String::new(),
                },
            )
            .await
            .unwrap();
        assert!(image.config.rootfs().diff_ids().is_empty());
        assert_eq!(image.parent, None);
        let (tx, _rx) = mpsc::channel(1);
        let err = engine
            .build_run(&c, tx, CancelToken::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("stat /bin/sh: no such file or directory"),
            "{err}"
        );
        engine.build_remove(&c).await;
        assert!(engine.container(&c.id).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancel_kills_the_run_and_a_dropped_container_is_removed() {
        let Some((_dir, engine, busybox)) = engine_with_busybox().await else {
            return;
        };
        let opts = RunOptions {
            network_mode: "none".into(),
            ..Default::default()
        };
        let c = engine
            .build_create(
                Some(&busybox.id),
                run_config(&busybox, "echo ready; exec sleep 1000"),
                &opts,
            )
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let cancel = CancelToken::new();
        let canceller = {
            let cancel = cancel.clone();
            tokio::spawn(async move {
                // Cancel once the command runs.
                while let Some(o) = rx.recv().await {
                    if o == Output::Stdout(Bytes::from_static(b"ready\n")) {
                        cancel.cancel();
                    }
                }
            })
        };
        let err = engine.build_run(&c, tx, cancel).await.unwrap_err();
        assert_eq!(err.to_string(), CANCELLED);
        let container = engine.container(&c.id).unwrap();
        let mut lifecycle = container.events.subscribe();
        let stopped = lifecycle
            .wait_for(|l| !l.running && l.exits > 0)
            .await
            .unwrap()
            .exit_code;
        assert_eq!(stopped, 137, "killed");
        canceller.await.unwrap();
        let id = c.id.clone();
        // Dropped without build_remove (a build future dropped with its client): removed anyway.
        let (_, mut feed) = engine.events.subscribe(None);
        drop(c);
        while feed
            .recv()
            .await
            .map(|e| e.actor_id != id || e.action != "destroy")
            .unwrap()
        {}
        assert!(engine.container(&id).is_err());
        assert_eq!(
            actions(&engine, &id),
            ["create", "attach", "start", "kill", "die", "destroy"]
        );
    }
}
