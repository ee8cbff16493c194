//! Container lifecycle: start, stop, kill, restart, remove, wait, and the exit monitor.

use super::{blocking, create::now_rfc3339, lock, shim, user, Container, Engine, Error, Result};
use crate::spec::{self, HostFeatures, SpecInput};
use crate::state::{Record, Status};
use berth_runtime::protocol::{ExitStatus, Mount as ShimMount, Request, ShimConfig, StartErrorKind, StartReport};
use berth_net::mode::NetworkMode;
use std::sync::Arc;
use std::time::Duration;

/// Default log rotation, for the json-file options a container leaves unset: Docker's
/// json-file never rotates by default; berth does, so a chatty container cannot fill the disk.
const LOG_MAX_SIZE: u64 = 20 << 20;
const LOG_MAX_FILES: u32 = 2;

/// Where a starting container's network comes from.
struct NetworkPlan {
    mode: NetworkMode,
    /// The namespace to join; `None` is the host's.
    netns: Option<std::path::PathBuf>,
    /// The directory of the hostname, hosts and resolv.conf files it binds.
    etc_dir: std::path::PathBuf,
    /// The joined container's hostname and domain name (`container:` mode).
    joined_names: Option<(Option<String>, Option<String>)>,
}

/// The container's `--dns`, `--dns-search` and `--dns-option`.
fn dns_settings(hc: &berth_api::models::HostConfig) -> berth_net::etc_files::DnsSettings<'_> {
    berth_net::etc_files::DnsSettings {
        servers: hc.dns.as_deref().unwrap_or_default(),
        search: hc.dns_search.as_deref().unwrap_or_default(),
        options: hc.dns_options.as_deref().unwrap_or_default(),
    }
}

/// `wait`'s `condition` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// `GET /containers/json` options.
#[derive(Debug, Default)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<usize>,
    /// Docker's filters: key → accepted values.
    pub filters: std::collections::HashMap<String, Vec<String>>,
}

impl Engine {
    /// Starts a created or exited container.
    pub async fn start(self: &Arc<Self>, name: &str) -> Result<()> {
        let c = self.container(name)?;
        self.start_container(&c, None).await
    }

    /// Starts `c` for a user (`by_policy` None) or for its restart policy (the generation the
    /// restart was scheduled under: a user action since then cancels it).
    pub(super) async fn start_container(self: &Arc<Self>, c: &Arc<Container>, by_policy: Option<u64>) -> Result<()> {
        let _op = c.op.lock().await;
        // A shutdown lets this finish, or ends a start that never will (see `shutdown`).
        let _starting = self.starts.begin(&c.id());
        let rec = c.snapshot();
        match by_policy {
            None if rec.state.restarting => return Err(Error::NotModified),
            None => lock(&c.restart).reset(),
            Some(generation) if lock(&c.restart).generation != generation => return Ok(()),
            Some(_) => {}
        }
        match rec.state.status {
            Status::Running if rec.state.paused => {
                return Err(Error::Conflict("cannot start a paused container, try unpause instead".into()))
            }
            Status::Running => return Err(Error::NotModified),
            Status::Removing | Status::Dead => {
                return Err(Error::Conflict(format!("container {} is marked for removal and cannot be started", rec.id)))
            }
            Status::Created | Status::Exited => {}
        }
        let id = rec.id.clone();
        // A previous run's shim may still be letting go of the rootfs and cgroup.
        let _ = c.events.subscribe().wait_for(|l| !l.shim_active).await;
        let started = self.launch(&rec).await;
        match started {
            Ok(pid) => {
                c.events.send_modify(|l| l.shim_active = true);
                self.attach_waiting(&c).await;
                // Registered before the start, so the shim answers the moment a short-lived
                // container exits instead of after its cleanup.
                let exit_wait = shim::send_wait(&self.paths.run_dir(&id)).await.ok();
                let started_at = now_rfc3339();
                if let Err(e) = shim::call(&self.paths.run_dir(&id), &Request::Start).await {
                    // The shim reports the exit; the monitor below records it.
                    tracing::warn!("start {id}: {e}");
                }
                let mut rec = c.snapshot();
                rec.state.status = Status::Running;
                rec.state.paused = false;
                rec.state.pid = pid as i64;
                rec.state.started_at = started_at;
                rec.state.error.clear();
                rec.state.oom_killed = false;
                rec.state.exit_code = 0;
                rec.state.restarting = false;
                rec.state.manually_stopped = false;
                if by_policy.is_none() {
                    rec.restart_count = 0;
                }
                // Running in memory before the disk flush: the process already runs, and a
                // signal sent the moment it prints (`run`'s signal proxy) must find it so.
                self.commit_in_memory(&c, rec.clone());
                if let Err(e) = self.records.save(&rec) {
                    // The start fails as before, but the running process stays watched.
                    self.clone().monitor_from(c.clone(), exit_wait);
                    return Err(e.into());
                }
                self.container_event(&rec, "start", &[]);
                self.clone().monitor_from(c.clone(), exit_wait);
                self.monitor_health(c, true);
                Ok(())
            }
            Err(e) => {
                self.teardown_network(&id, true);
                let mut rec = c.snapshot();
                if let Error::StartFailed { message, not_found } = &e {
                    rec.state.exit_code = if *not_found { 127 } else { 126 };
                    rec.state.error = message.clone();
                } else {
                    // As Docker: only when nothing set one (an exited container keeps its own).
                    if rec.state.exit_code == 0 {
                        rec.state.exit_code = 128;
                    }
                    rec.state.error = e.to_string();
                }
                rec.state.restarting = false;
                self.commit(&c, rec.clone())?;
                if rec.host_config.auto_remove == Some(true) {
                    drop(_op);
                    let _ = self.remove(&id, true).await;
                }
                Err(e)
            }
        }
    }

    /// Prepares the bundle and network, and has a new shim create the container; returns
    /// the init pid. The process does not run until the shim is told to start.
    async fn launch(self: &Arc<Self>, rec: &Record) -> Result<i32> {
        let id = rec.id.clone();
        // Before anything is prepared: a log the driver cannot open fails the start cleanly.
        let log = crate::io::logs::driver::shim_log(rec, LOG_MAX_SIZE, LOG_MAX_FILES).map_err(Error::InvalidParameter)?;
        let t0 = std::time::Instant::now();
        // The container's cgroup move, in the shim some milliseconds from now, then finds
        // the kernel's attach lock warm (see `cgroup_warmup`); nothing waits for this.
        tokio::task::spawn_blocking(berth_runtime::cgroup_warmup::warm_attach_lock);
        let run_dir = self.paths.run_dir(&id);
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(run_dir.join("bundle"))?;
        let net = self.network_plan(rec)?;
        // The namespace (a millisecond or two of kernel work) is made while the bundle is
        // prepared; both are awaited before anything else, so a failure of either leaves
        // nothing being made behind the start's cleanup.
        let netns = net.mode.owns_namespace().then(|| {
            let ns_path = self.paths.netns(&id);
            tokio::task::spawn_blocking(move || berth_net::create_netns(&ns_path).map_err(|e| Error::Internal(e.to_string())))
        });
        let prepared = self.prepare_bundle(rec, &net, &run_dir).await;
        if let Some(task) = netns {
            task.await??;
        }
        let (mounts, assigned) = prepared?;
        tracing::debug!("{id}: bundle and netns ready after {:?}", t0.elapsed());
        // The embedded DNS server listens inside the namespace.
        if net.etc_dir == self.paths.container_dir(&id) {
            self.start_dns(rec)?;
        }
        let config = ShimConfig {
            id: id.clone(),
            bundle: run_dir.join("bundle"),
            rootfs_mounts: mounts
                .into_iter()
                .map(|m| ShimMount { kind: m.kind, source: m.source, options: m.options })
                .collect(),
            runtime_root: self.paths.runtime_root(),
            seccomp_cache: Some(self.paths.seccomp_cache()),
            log_path: self.paths.log_path(&id),
            log_max_size: log.max_size,
            log_max_files: log.max_files,
            log_disabled: log.disabled,
            log_attrs: log.attrs,
            log_driver: log.driver,
            tty: rec.config.tty == Some(true),
            open_stdin: rec.config.open_stdin == Some(true),
            // As Docker, a client leaving closes the stdin of a container without a TTY
            // only: with one, it may detach and attach again.
            stdin_once: rec.config.stdin_once == Some(true) && rec.config.tty != Some(true),
        };
        let shim_binary = self.paths.shim_binary.clone();
        let shim_dir = run_dir.clone();
        let shim = blocking(move || {
            berth_runtime::write_config(&shim_dir, &config).map_err(|e| Error::Internal(e.to_string()))?;
            berth_runtime::spawn(&shim_binary, &shim_dir).map_err(|e| Error::Internal(e.to_string()))
        });
        // The namespace exists and the container's process runs only at `Start`, so its
        // interfaces can come up while the shim mounts and creates.
        let (engine, plugged_rec) = (self.clone(), rec.clone());
        let plug = async move {
            match assigned {
                Some(assigned) => blocking(move || engine.plug_networks(&plugged_rec, assigned)).await,
                None => Ok(()),
            }
        };
        let (report, plugged) = tokio::join!(shim, plug);
        tracing::debug!("{id}: shim reported after {:?}", t0.elapsed());
        if let Err(e) = plugged {
            if let Ok(StartReport::Created { .. }) = report {
                discard_created(&run_dir).await;
            }
            return Err(e);
        }
        match report? {
            StartReport::Created { pid, .. } => Ok(pid),
            StartReport::Failed { kind, message } => {
                let message = format!("failed to create task for container: {message}: unknown");
                Err(match kind {
                    StartErrorKind::NotFound => Error::StartFailed { message, not_found: true },
                    StartErrorKind::PermissionDenied => Error::StartFailed { message, not_found: false },
                    StartErrorKind::Other => Error::Internal(message),
                })
            }
        }
    }

    /// The start's files: the rootfs layers, the container's addresses, its /etc files and
    /// the OCI bundle (`config.json`). Returns the rootfs mounts and the addresses to plug.
    async fn prepare_bundle(
        &self,
        rec: &Record,
        net: &NetworkPlan,
        run_dir: &std::path::Path,
    ) -> Result<(Vec<berth_store::Mount>, Option<super::networks::AssignedNetworks>)> {
        let id = rec.id.clone();
        let (store, image_id, key) = (self.store.clone(), rec.image_id.clone(), id.clone());
        let mounts = blocking(move || {
            let image = store.container_image(&image_id)?;
            store.prepare_rootfs(&key, &image).map_err(Error::from)
        })
        .await?;
        let user = user::resolve(rec.config.user.as_deref().unwrap_or(""), &user::layer_dirs(&mounts))
            .map_err(|message| Error::StartFailed { message, not_found: false })?;
        // Addresses and published ports (none for modes without a bridge network); their
        // veths and rules are made below while the shim creates the container.
        let assigned = tokio::task::block_in_place(|| self.assign_networks(rec))?;
        // A joined container's files are the other container's; only our own are written.
        if net.etc_dir == self.paths.container_dir(&id) {
            // /etc/hosts names the address on the first network, as Docker's does.
            let address = self.container_addresses(&id).first().map(|(_, ip, _, _)| std::net::IpAddr::V4(*ip));
            self.write_etc_files(rec, &net.mode, address)?;
        }
        let config = match &net.joined_names {
            Some((hostname, domainname)) => berth_api::models::ContainerConfig {
                hostname: hostname.clone(),
                domainname: domainname.clone(),
                ..rec.config.clone()
            },
            None => rec.config.clone(),
        };
        let rootfs = run_dir.join("rootfs");
        let init = match (rec.host_config.init, &self.paths.init_binary) {
            (Some(true), None) => {
                return Err(Error::StartFailed {
                    message: "--init: no init binary found on PATH (tini-static or docker-init; Debian's tini package)".into(),
                    not_found: false,
                })
            }
            (Some(true), Some(path)) => Some(path.clone()),
            _ => None,
        };
        let spec = spec::build(&SpecInput {
            id: &id,
            config: &config,
            host_config: &rec.host_config,
            args: &std::iter::once(rec.path.clone()).chain(rec.args.iter().cloned()).collect::<Vec<_>>(),
            user,
            rootfs: &rootfs,
            netns: net.netns.as_deref(),
            etc_dir: &net.etc_dir,
            host: host_features(),
            init: init.as_deref(),
            cgroups_path: &crate::cgroup_path::container_cgroup(&id, rec.host_config.cgroup_parent.as_deref()),
        })
        .map_err(|e| Error::Internal(e.0))?;
        let spec = self.with_user_mounts(spec, &rec.mounts)?;
        let spec_json = serde_json::to_vec(&spec).map_err(|e| Error::Internal(e.to_string()))?;
        std::fs::write(run_dir.join("bundle/config.json"), spec_json)?;
        Ok((mounts, assigned))
    }

    /// Where the container's network comes from: its own namespace, the host's, or a
    /// running container's (whose /etc files it then shares, as under Docker).
    fn network_plan(&self, rec: &Record) -> Result<NetworkPlan> {
        let mode = match NetworkMode::parse(rec.host_config.network_mode.as_deref()).map_err(Error::InvalidParameter)? {
            // The predefined networks named by ID are the modes they stand for.
            NetworkMode::User(name) => match self.network_inspect(&name).ok().as_ref().and_then(|n| n["Name"].as_str()) {
                Some("bridge") => NetworkMode::Bridge,
                Some("host") => NetworkMode::Host,
                Some("none") => NetworkMode::None,
                _ => NetworkMode::User(name),
            },
            m => m,
        };
        let own = NetworkPlan {
            mode: mode.clone(),
            netns: Some(self.paths.netns(&rec.id)),
            etc_dir: self.paths.container_dir(&rec.id),
            joined_names: None,
        };
        let mut target = match &mode {
            NetworkMode::Host => return Ok(NetworkPlan { netns: None, ..own }),
            NetworkMode::Container(target) => target.clone(),
            _ => return Ok(own),
        };
        // Follow a chain of `container:` modes to the container that owns the namespace.
        for _ in 0..16 {
            let other = self.container(&target)?.snapshot();
            if other.id == rec.id {
                return Err(Error::Internal("cannot join own network".into()));
            }
            if !other.state.counts_as_running() {
                return Err(Error::Conflict(format!("cannot join network of a non running container: {target}")));
            }
            let other_mode = NetworkMode::parse(other.host_config.network_mode.as_deref()).map_err(Error::InvalidParameter)?;
            match other_mode {
                NetworkMode::Container(next) => target = next,
                m => {
                    return Ok(NetworkPlan {
                        netns: (m != NetworkMode::Host).then(|| self.paths.netns(&other.id)),
                        etc_dir: self.paths.container_dir(&other.id),
                        joined_names: Some((other.config.hostname.clone(), other.config.domainname.clone())),
                        mode,
                    })
                }
            }
        }
        Err(Error::Internal("too many nested container network modes".into()))
    }

    /// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf as Docker does
    /// for `mode`; `address` is the container's own address on its network, if it has one.
    fn write_etc_files(&self, rec: &Record, mode: &NetworkMode, address: Option<std::net::IpAddr>) -> Result<()> {
        use berth_net::etc_files::{self, HostsInput};
        let dir = self.paths.container_dir(&rec.id);
        let hostname = spec::hostname(&rec.id, &rec.config);
        std::fs::write(dir.join("hostname"), etc_files::hostname(&hostname))?;
        let hc = &rec.host_config;
        // `host-gateway` is the default bridge's gateway, as dockerd's default.
        let host_gateway = self
            .network_inspect("bridge")
            .ok()
            .and_then(|n| n["IPAM"]["Config"][0]["Gateway"].as_str().and_then(|g| g.parse().ok()));
        let extra = hc
            .extra_hosts
            .iter()
            .flatten()
            .map(|e| etc_files::parse_extra_host(e, host_gateway))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|message| Error::StartFailed { message, not_found: false })?;
        let hosts = match mode {
            // The host's own file, unless --add-host asks for entries of the container's own.
            NetworkMode::Host if extra.is_empty() => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            _ => etc_files::hosts(&HostsInput {
                hostname: &hostname,
                domainname: rec.config.domainname.as_deref().unwrap_or_default(),
                address,
                extra: &extra,
            }),
        };
        std::fs::write(dir.join("hosts"), hosts)?;
        let dns = dns_settings(hc);
        let host_resolv = etc_files::read_host_resolv_conf();
        let resolv = match mode {
            NetworkMode::Host => etc_files::resolv_conf_host_mode(&host_resolv, &dns),
            _ if self.uses_embedded_dns(&rec.id) => etc_files::resolv_conf_embedded(&host_resolv, &dns).0,
            _ => etc_files::resolv_conf(&host_resolv, &dns),
        };
        std::fs::write(dir.join("resolv.conf"), resolv)?;
        Ok(())
    }

    /// Starts the embedded DNS server of a container attached to a user-defined network
    /// (`uses_embedded_dns`; others have none): its sockets opened inside the container's namespace, served here,
    /// answering from the container's networks and forwarding the rest to the container's
    /// `--dns` servers or the host's. Also for live restore: the old daemon's sockets died
    /// with it, the namespace did not.
    pub(super) fn start_dns(self: &Arc<Self>, rec: &Record) -> Result<()> {
        use berth_net::{dns, etc_files};
        if !self.uses_embedded_dns(&rec.id) {
            return Ok(());
        }
        let id = rec.id.as_str();
        let (_, upstreams) = etc_files::resolv_conf_embedded(&etc_files::read_host_resolv_conf(), &dns_settings(&rec.host_config));
        // An internal network reaches no resolver outside it, as under Docker.
        let network = rec.host_config.network_mode.as_deref().unwrap_or_default();
        let internal = self.network_inspect(network).is_ok_and(|n| n["Internal"] == true);
        let ndots_set = rec.host_config.dns_options.iter().flatten().any(|o| {
            o.strip_prefix("ndots:").and_then(|n| n.parse::<u32>().ok()).is_some_and(|n| n > 0)
        });
        let settings = dns::Settings {
            container: id.to_string(),
            netns: Some(self.paths.netns(id)),
            upstreams: if internal { Vec::new() } else { upstreams },
            ndots_set,
        };
        let sockets = dns::bind_in_netns(&self.paths.netns(id), dns::LISTEN)
            .map_err(|e| Error::Internal(format!("embedded DNS server: {e}")))?;
        let engine = Arc::downgrade(self);
        let lookup: dns::Lookup = Arc::new(move |container: &str, name: &str| {
            engine.upgrade().map(|e| e.resolve_on_networks(container, name)).unwrap_or_default()
        });
        let server = dns::serve(sockets, settings, lookup).map_err(|e| Error::Internal(format!("embedded DNS server: {e}")))?;
        lock(&self.dns_servers).insert(id.to_string(), server);
        Ok(())
    }

    /// Releases the container's network (see `disconnect_networks` for `persist`).
    fn teardown_network(&self, id: &str, persist: bool) {
        // Dropping the server closes its sockets.
        lock(&self.dns_servers).remove(id);
        self.disconnect_networks(id, persist);
        if let Err(e) = berth_net::remove_netns(&self.paths.netns(id)) {
            tracing::warn!("{e}");
        }
    }

    /// Watches a running container's shim until the container exits, then records it.
    pub(super) fn monitor(self: Arc<Self>, c: Arc<Container>) {
        self.monitor_from(c, None)
    }

    /// `monitor`, answered on `exit_wait` (a `shim::send_wait` connection) when there is one.
    fn monitor_from(self: Arc<Self>, c: Arc<Container>, exit_wait: Option<tokio::io::BufReader<tokio::net::UnixStream>>) {
        tokio::spawn(async move {
            let id = c.id();
            let dir = self.paths.run_dir(&id);
            let waited = match exit_wait {
                Some(conn) => shim::wait_reply(conn).await,
                None => shim::wait(&dir).await,
            };
            let (status, conn) = match waited {
                Ok((status, conn)) => (status, Some(conn)),
                // The shim is gone; it leaves its verdict on disk when it can.
                Err(e) => (
                    berth_runtime::read_exit(&dir).unwrap_or_else(|| {
                        tracing::warn!("container {id}: shim lost ({e}); marking exited");
                        ExitStatus { exit_code: 255, oom_killed: false, started_at: String::new(), finished_at: now_rfc3339() }
                    }),
                    None,
                ),
            };
            self.exited(&c, status).await;
            if let Some(conn) = conn {
                shim::cleaned_up(conn).await;
            }
            c.events.send_modify(|l| l.shim_active = false);
        });
    }

    /// Records an exit and cleans up what only a running container needs.
    pub(super) async fn exited(self: &Arc<Self>, c: &Arc<Container>, status: ExitStatus) {
        let id = c.id();
        self.attach_closed(c);
        let finished_at = if status.finished_at.is_empty() { now_rfc3339() } else { status.finished_at };
        // Applied to the record as it is by then, keeping what a racing stop set.
        let record_exit = |rec: &mut Record| {
            rec.state.status = Status::Exited;
            rec.state.paused = false;
            rec.state.pid = 0;
            rec.state.exit_code = status.exit_code as i64;
            rec.state.oom_killed = status.oom_killed;
            rec.state.finished_at = finished_at.clone();
            // As Docker, whose health monitor stops with the container and leaves it
            // unhealthy in the same update (the probe loop then ends on its own).
            if let Some(health) = rec.state.health.as_mut() {
                health.status = Some(berth_api::models::HealthStatusEnum::UNHEALTHY);
            }
        };
        // `--rm` (which takes no restart policy) deletes the record right below: saving
        // the exit first would only put one more disk flush on `run --rm`'s path. A crash
        // in between leaves it "running" with its shim gone, which start-up records as this
        // exit and removes.
        let persist = lock(&c.rec).host_config.auto_remove != Some(true);
        let mut restart = None;
        let recorded = self.update_record(c, persist, |rec| {
            record_exit(rec);
            restart = Self::plan_restart(c, rec);
        });
        let rec = match recorded {
            Ok(rec) => rec,
            Err(e) => {
                tracing::error!("recording exit of {id}: {e}");
                restart = None;
                let mut rec = c.snapshot();
                record_exit(&mut rec);
                rec
            }
        };
        if rec.state.oom_killed {
            self.container_event(&rec, "oom", &[]);
        }
        self.container_event(&rec, "die", &[("exitCode", rec.state.exit_code.to_string())]);
        // After `die`, as Docker orders its events (die, network disconnect, stop). `--rm`'s
        // record is deleted right below: no disk flush of the released endpoints before it.
        self.teardown_network(&id, rec.host_config.auto_remove != Some(true));
        // As dockerd at stop: a shareable container's /dev/shm goes (joiners keep theirs).
        crate::spec_namespaces::release_shm(&self.paths.exec_root.join("shm").join(&id));
        // Only now do waiters (`stop`, `wait`) see the exit: Docker's `stop` event follows
        // the die and the disconnect.
        c.events.send_modify(|l| {
            l.running = false;
            l.exit_code = rec.state.exit_code;
            l.exits += 1;
        });
        tracing::info!("container {id} exited with {}", status.exit_code);
        if let Some(plan) = restart {
            self.schedule_restart(c, plan);
            return;
        }
        if rec.host_config.auto_remove == Some(true) {
            self.auto_remove(c);
        }
    }

    /// `--rm`: the container disappears at once; its files go once the shim lets go of them.
    /// The record goes first, so a crash in between leaves only orphaned files, which
    /// start-up removes.
    fn auto_remove(self: &Arc<Self>, c: &Arc<Container>) {
        let id = c.id();
        if let Err(e) = self.records.delete(&id) {
            tracing::warn!("auto-remove {id}: {e}");
            return;
        }
        self.containers.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
        c.events.send_modify(|l| l.removed = true);
        self.container_event(&c.snapshot(), "destroy", &[]);
        // `--rm` takes the container's anonymous volumes with it, as Docker does.
        self.remove_anonymous_volumes(&c.snapshot().mounts);
        let (engine, c) = (self.clone(), c.clone());
        tokio::spawn(async move {
            let _ = c.events.subscribe().wait_for(|l| !l.shim_active).await;
            if let Err(e) = engine.purge_files(&c.snapshot()).await {
                tracing::warn!("auto-remove {id}: {e}");
            }
        });
    }

    /// Sends a signal; `None` means SIGKILL.
    pub async fn kill(&self, name: &str, signal: Option<&str>) -> Result<()> {
        let c = self.container(name)?;
        let signal = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s).ok_or_else(|| Error::InvalidParameter(format!("Invalid signal: {s}")))?,
            None => libc::SIGKILL,
        };
        let rec = c.snapshot();
        if rec.state.restarting {
            return Err(Error::Conflict(format!("Container {} is restarting, wait until the container is running", rec.id)));
        }
        if rec.state.status != Status::Running {
            return Err(Error::Conflict(format!("Container {} is not running", rec.id)));
        }
        // Killing with SIGKILL or the stop signal is a user's stop: no restart follows.
        if signal == libc::SIGKILL || Some(signal) == stop_signal(&rec) {
            self.stopped_by_user(&c)?;
        }
        // Reported before the signal goes: the container may die (and report `die`) before
        // the shim's answer is back, and Docker's order is kill, then die.
        self.container_event(&rec, "kill", &[("signal", signal.to_string())]);
        shim::call(&self.paths.run_dir(&rec.id), &Request::Kill { signal }).await?;
        self.thaw_after_signal(&c, signal).await;
        Ok(())
    }

    /// Stops with the stop signal, then SIGKILL after `timeout` seconds.
    pub async fn stop(&self, name: &str, timeout: Option<i64>) -> Result<()> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, timeout).await
    }

    async fn stop_locked(&self, c: &Container, timeout: Option<i64>) -> Result<()> {
        let rec = c.snapshot();
        if rec.state.restarting {
            // Waiting for its restart: stopping cancels it.
            self.stopped_by_user(c)?;
            let mut rec = c.snapshot();
            rec.state.restarting = false;
            self.commit(c, rec.clone())?;
            self.container_event(&rec, "stop", &[]);
            return Ok(());
        }
        if rec.state.status != Status::Running {
            return Err(Error::NotModified);
        }
        self.stopped_by_user(c)?;
        let dir = self.paths.run_dir(&rec.id);
        let signal = stop_signal(&rec).unwrap_or(libc::SIGTERM);
        let grace = timeout.or(rec.config.stop_timeout).unwrap_or(10).max(0) as u64;
        let mut events = c.events.subscribe();
        // Each `kill` is reported before its signal goes (Docker's order: kill, then die).
        self.container_event(&rec, "kill", &[("signal", signal.to_string())]);
        let _ = shim::call(&dir, &Request::Kill { signal }).await;
        self.thaw_after_signal(c, signal).await;
        let stopped =
            tokio::time::timeout(Duration::from_secs(grace), events.wait_for(|l| !l.running)).await.is_ok();
        if !stopped {
            self.container_event(&rec, "kill", &[("signal", libc::SIGKILL.to_string())]);
            let _ = shim::call(&dir, &Request::Kill { signal: libc::SIGKILL }).await;
            self.thaw_after_signal(c, libc::SIGKILL).await;
            let _ = events.wait_for(|l| !l.running).await;
        }
        self.container_event(&rec, "stop", &[]);
        Ok(())
    }

    /// A user stopped the container: its restart policy lets it be (and `unless-stopped`
    /// remembers it across daemon restarts).
    fn stopped_by_user(&self, c: &Container) -> Result<()> {
        lock(&c.restart).cancel();
        // Not "restarting" either: a restart the exit it races with planned is cancelled.
        self.update_record(c, true, |rec| {
            rec.state.manually_stopped = true;
            rec.state.restarting = false;
        })
        .map(drop)
    }

    /// Changes the record under its lock, saved (when `persist`) before the lock goes, so
    /// two changes that race cannot undo each other. A copy changed and committed could:
    /// a stop's copy of a container that was up for a millisecond, saved after the monitor
    /// had recorded its exit, put it back to "running" and left the stop waiting forever.
    /// The lifecycle waiters see is the caller's to publish (an exit publishes it after its
    /// events).
    pub(super) fn update_record(&self, c: &Container, persist: bool, change: impl FnOnce(&mut Record)) -> Result<Record> {
        let mut current = lock(&c.rec);
        let mut rec = current.clone();
        change(&mut rec);
        if persist {
            self.records.save(&rec)?;
        }
        *current = rec.clone();
        Ok(rec)
    }

    pub async fn restart(self: &Arc<Self>, name: &str, timeout: Option<i64>) -> Result<()> {
        let c = self.container(name)?;
        {
            let _op = c.op.lock().await;
            match self.stop_locked(&c, timeout).await {
                Ok(()) | Err(Error::NotModified) => {}
                Err(e) => return Err(e),
            }
        }
        self.start(&c.id()).await?;
        self.container_event(&c.snapshot(), "restart", &[]);
        Ok(())
    }

    /// Removes a container; a running one only with `force` (it is killed first).
    pub async fn remove(&self, name: &str, force: bool) -> Result<()> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        let id = rec.id.clone();
        if rec.state.restarting && !force {
            return Err(Error::Conflict(format!(
                "You cannot remove a restarting container {id}. Stop the container before attempting removal or force remove"
            )));
        }
        if rec.state.status == Status::Running {
            if !force {
                let (state, unpause) = if rec.state.paused { ("paused", "Unpause and then stop") } else { ("running", "Stop") };
                return Err(Error::Conflict(format!(
                    "You cannot remove a {state} container {id}. {unpause} the container before attempting removal or force remove"
                )));
            }
            lock(&c.restart).cancel();
            let mut events = c.events.subscribe();
            // The shim may be going away with a container that just exited by itself; the
            // monitor records that exit either way.
            if let Err(e) = shim::call(&self.paths.run_dir(&id), &Request::Kill { signal: libc::SIGKILL }).await {
                tracing::debug!("rm -f {id}: {e}");
            }
            self.thaw_after_signal(&c, libc::SIGKILL).await;
            let _ = events.wait_for(|l| !l.running).await;
        }
        // A restart scheduled by the policy must not start what is being removed.
        lock(&c.restart).cancel();
        let mut rec = c.snapshot();
        rec.state.status = Status::Removing;
        self.commit(&c, rec)?;
        let _ = c.events.subscribe().wait_for(|l| !l.shim_active).await;
        self.purge(&c.snapshot()).await?;
        self.containers.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
        c.events.send_modify(|l| l.removed = true);
        self.container_event(&c.snapshot(), "destroy", &[]);
        tracing::info!("removed container {id}");
        Ok(())
    }

    /// Deletes everything a container owns; the record goes last so a crash mid-way is
    /// finished at the next start-up.
    pub(super) async fn purge(&self, rec: &Record) -> Result<()> {
        self.purge_files(rec).await?;
        self.records.delete(&rec.id)?;
        Ok(())
    }

    /// Deletes a container's files, network namespace and rootfs.
    async fn purge_files(&self, rec: &Record) -> Result<()> {
        let id = rec.id.as_str();
        self.teardown_network(id, true);
        self.forget_networks(id);
        self.remove_shim_leftovers(rec);
        let (store, key) = (self.store.clone(), id.to_string());
        blocking(move || store.remove_rootfs(&key).map_err(Error::from)).await?;
        crate::spec_namespaces::release_shm(&self.paths.exec_root.join("shm").join(id));
        for dir in [self.paths.run_dir(id), self.paths.container_dir(id)] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// What the shim removes when its container exits, in case it was killed before: the
    /// rootfs mount, the cgroups (and anything still in them) and the runtime's state.
    fn remove_shim_leftovers(&self, rec: &Record) {
        let _ = nix::mount::umount2(&self.paths.run_dir(&rec.id).join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        let cgroup = crate::cgroup_path::container_cgroup(&rec.id, rec.host_config.cgroup_parent.as_deref());
        let removed = berth_runtime::teardown::remove_cgroups(std::path::Path::new(&cgroup))
            .and(berth_runtime::teardown::remove_runtime_state(&self.paths.runtime_root().join(&rec.id)));
        if let Err(e) = removed {
            tracing::warn!("container {}: {e}", rec.id);
        }
    }

    /// Blocks until the condition holds; returns the exit code.
    pub async fn wait(&self, name: &str, condition: WaitCondition) -> Result<i64> {
        let c = self.container(name)?;
        let mut events = c.events.subscribe();
        let start = *events.borrow();
        let done = match condition {
            WaitCondition::NotRunning => events.wait_for(|l| !l.running || l.removed).await.map(|l| l.exit_code),
            WaitCondition::NextExit => {
                events.wait_for(|l| l.exits > start.exits || l.removed).await.map(|l| l.exit_code)
            }
            WaitCondition::Removed => events.wait_for(|l| l.removed).await.map(|l| l.exit_code),
        };
        // A dropped sender means the container was removed: its last code stands.
        let code = match done {
            Ok(code) => code,
            Err(_) => lock(&c.rec).state.exit_code,
        };
        Ok(code)
    }
}

/// Has a shim whose container was created but will not be started kill it, and returns
/// once the shim has cleaned up (rootfs unmounted, cgroup removed) and gone.
async fn discard_created(run_dir: &std::path::Path) {
    // The wait first: the shim is gone soon after the kill.
    let exit_wait = shim::send_wait(run_dir).await;
    if let Err(e) = shim::call(run_dir, &Request::Kill { signal: libc::SIGKILL }).await {
        tracing::warn!("discarding a created container: {e}");
    }
    if let Ok(conn) = exit_wait {
        if let Ok((_, conn)) = shim::wait_reply(conn).await {
            shim::cleaned_up(conn).await;
        }
    }
}

/// The container's own stop signal, if it names a valid one.
fn stop_signal(rec: &Record) -> Option<i32> {
    rec.config.stop_signal.as_deref().and_then(parse_signal)
}

/// What this host's cgroups offer.
fn host_features() -> HostFeatures {
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").is_ok()
        && std::path::Path::new("/sys/fs/cgroup/cgroup.subtree_control").exists()
        && !std::path::Path::new("/sys/fs/cgroup/memory").exists();
    HostFeatures { swap_accounting: v1 || v2 }
}

/// `SIGTERM`, `TERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let sig = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return None,
    };
    Some(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_signals_like_docker() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("kill"), Some(9));
        assert_eq!(parse_signal("1"), Some(1));
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("SIGNOPE"), None);
    }
}
