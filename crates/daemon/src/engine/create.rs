//! `create`: validates the request, merges it with the image's config, prepares the
//! container's root filesystem, and saves the record. On any error nothing is left behind.

use super::{blocking, names, Container, Engine, Error, Result};
use crate::state::{Record, RunState};
use berth_api::models::{ContainerConfig, ContainerCreateBody, HostConfig};
use berth_store::{Image, Reference};
use rand::RngCore;
use std::collections::HashMap;
use std::sync::Arc;

impl Engine {
    /// Creates a container; returns its ID and warnings.
    pub async fn create(&self, name: Option<String>, body: ContainerCreateBody) -> Result<(String, Vec<String>)> {
        let image_name = body.image.clone().filter(|i| !i.is_empty()).ok_or_else(|| {
            Error::InvalidParameter("config cannot be empty in order to create a container".into())
        })?;
        // A start usually follows (`run`); its cgroup move then finds the kernel's attach lock
        // warm, this grace period paid while the request is handled (see `cgroup_warmup`).
        tokio::task::spawn_blocking(berth_runtime::cgroup_warmup::warm_attach_lock);
        let mut host_config = body.host_config.clone().unwrap_or_default();
        validate_host_config(&host_config)?;
        // dockerd's capability and --security-opt checks, and the defaults it stores.
        crate::spec_security::prepare(&mut host_config).map_err(Error::InvalidParameter)?;
        // dockerd's namespace-mode checks; `container:<name>` kept as that container's ID.
        crate::spec_namespaces::check_create(&mut host_config, body.hostname.as_deref(), |n| {
            self.container(n).ok().map(|c| c.id())
        })
        .map_err(Error::InvalidParameter)?;
        let network_warning = validate_network_mode(&body, &host_config)?;
        // Which networks it joins, checked before anything is made.
        let network_plan = self.plan_networks(&host_config, body.networking_config.as_ref())?;
        // Values this host cannot honour are dropped with a warning, as Docker does.
        let host = super::resources::HostResources::probe(std::path::Path::new("/sys/fs/cgroup"));
        let mut warnings = super::resources::verify(&mut host_config, 0, &host).map_err(Error::InvalidParameter)?;
        warnings.extend(network_warning);
        // As dockerd: no mode is the default one, and inspect says so.
        if host_config.network_mode.as_deref().unwrap_or_default().is_empty() {
            host_config.network_mode = Some("default".into());
        }
        // `container:<name>` is kept as the container's ID, as Docker does, so a rename of
        // the other container changes nothing; a missing one is an error only at start.
        if let Some(target) = host_config.network_mode.as_deref().and_then(|m| m.strip_prefix("container:")) {
            if let Ok(other) = self.container(target) {
                host_config.network_mode = Some(format!("container:{}", other.id()));
            }
        }
        let store = self.store.clone();
        let lookup = image_name.clone();
        let image = blocking(move || store.resolve(&lookup).map_err(Error::from)).await.map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("No such image: {}", display_ref(&image_name))),
            other => other,
        })?;
        // After the image, as dockerd checks the log driver.
        let host_config = self.with_log_config(host_config)?;
        super::health::validate(body.healthcheck.as_ref())?;
        if let Some(signal) = body.stop_signal.as_deref().filter(|s| !s.is_empty()) {
            super::containers::parse_signal(signal)
                .ok_or_else(|| Error::InvalidParameter(format!("Invalid signal: {signal}")))?;
        }
        let mut config = merge_config(body, &image);
        // Under `--network host` the container is named as the host is, as Docker does.
        if host_config.network_mode.as_deref() == Some("host") && config.hostname.as_deref().unwrap_or("").is_empty() {
            config.hostname = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok());
        }
        let args: Vec<String> =
            config.entrypoint.iter().flatten().chain(config.cmd.iter().flatten()).cloned().collect();
        let Some((path, rest)) = args.split_first() else {
            return Err(Error::InvalidParameter("No command specified".into()));
        };

        let id = new_id();
        let container = Container::new(Record {
            id: id.clone(),
            name: String::new(),
            created: now_rfc3339(),
            image: image_name,
            image_id: image.id.clone(),
            config,
            host_config,
            path: path.clone(),
            args: rest.to_vec(),
            state: RunState::default(),
            restart_count: 0,
            mounts: Vec::new(),
        });
        // The name is claimed under the table's write lock so two creates cannot both take it.
        let name = {
            let mut all = self.containers.write().unwrap_or_else(|p| p.into_inner());
            let name = match name.filter(|n| !n.is_empty()) {
                Some(n) => free_name(&all, &n)?,
                None => (0..)
                    .map(names::random)
                    .find(|n| name_owner(&all, n).is_none())
                    .unwrap_or_else(|| id.clone()),
            };
            super::lock(&container.rec).name = name.clone();
            all.insert(id.clone(), container.clone());
            name
        };
        // Mounts are resolved once the name is ours, so a name conflict creates no volume.
        let (hc, config_volumes) = {
            let rec = super::lock(&container.rec);
            (rec.host_config.clone(), rec.config.volumes.clone().unwrap_or_default())
        };
        match self.resolve_mounts(&hc, &config_volumes) {
            Ok(mounts) => super::lock(&container.rec).mounts = mounts,
            Err(e) => {
                self.containers.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
                return Err(e);
            }
        }
        let made = match self.save_network_plan(&id, network_plan) {
            Ok(()) => self.materialize(&container, &image).await,
            Err(e) => Err(e),
        };
        if let Err(e) = made {
            self.forget_networks(&id);
            self.containers.write().unwrap_or_else(|p| p.into_inner()).remove(&id);
            self.remove_anonymous_volumes(&container.snapshot().mounts);
            let _ = self.store.remove_rootfs(&id);
            let _ = std::fs::remove_dir_all(self.paths.container_dir(&id));
            return Err(e);
        }
        self.container_event(&container.snapshot(), "create", &[]);
        tracing::info!("created container {id} ({name})");
        Ok((id, warnings))
    }

    /// Makes the container's files and saves its record (the record last: a crash before it
    /// leaves only files that start-up cleans as orphans).
    async fn materialize(&self, c: &Container, image: &Image) -> Result<()> {
        let rec = c.snapshot();
        std::fs::create_dir_all(self.paths.container_dir(&rec.id))?;
        let (store, id, image) = (self.store.clone(), rec.id.clone(), image.clone());
        let rootfs = blocking(move || store.prepare_rootfs(&id, &image).map_err(Error::from)).await?;
        self.copy_up(&rec.mounts, &super::user::layer_dirs(&rootfs))?;
        self.records.save(&rec)?;
        Ok(())
    }
}

impl Engine {
    /// `rename`: gives a container a new, unused name.
    pub fn rename(&self, name: &str, new_name: &str) -> Result<()> {
        let c = self.container(name)?;
        let all = self.containers.write().unwrap_or_else(|p| p.into_inner());
        let mut rec = c.snapshot();
        if new_name.trim_start_matches('/') == rec.name {
            return Err(Error::InvalidParameter(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        let old_name = std::mem::replace(&mut rec.name, free_name(&all, new_name)?);
        self.commit(&c, rec.clone())?;
        self.container_event(&rec, "rename", &[("oldName", format!("/{old_name}"))]);
        Ok(())
    }
}

/// The ID of the container called `name`, if any.
fn name_owner(all: &HashMap<String, Arc<Container>>, name: &str) -> Option<String> {
    all.values().find(|c| super::lock(&c.rec).name == name).map(|c| c.id())
}

/// Checks a user-given name and that nobody has it; callers hold the table's write lock, so
/// two requests cannot both take one name.
fn free_name(all: &HashMap<String, Arc<Container>>, name: &str) -> Result<String> {
    let name = names::validate(name).map_err(Error::InvalidParameter)?;
    match name_owner(all, &name) {
        Some(other) => Err(Error::Conflict(format!(
            "Conflict. The container name \"/{name}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
        ))),
        None => Ok(name),
    }
}

/// `busybox` → `busybox:latest`, as Docker names a missing image.
fn display_ref(name: &str) -> String {
    match Reference::parse(name) {
        Ok(r) if r.digest().is_none() => r.to_string(),
        _ => name.to_string(),
    }
}

/// Rejects host settings Docker rejects at create time, and those berth cannot honour yet:
/// silently running a container without a volume or privilege it asked for would be worse
/// than saying so.
fn validate_host_config(hc: &HostConfig) -> Result<()> {
    super::restart::validate(hc.restart_policy.as_ref(), hc.auto_remove == Some(true))?;
    // Unknown networks are reported by `plan_networks`, with Docker's message.
    Ok(())
}

/// Docker's create-time rules for the network mode (`container:` without a name, settings
/// a joined namespace cannot have, `--add-host` syntax); returns the warning Docker gives.
fn validate_network_mode(body: &ContainerCreateBody, hc: &HostConfig) -> Result<Option<String>> {
    use berth_net::mode::{ModeChecks, NetworkMode};
    let mode = NetworkMode::parse(hc.network_mode.as_deref()).map_err(Error::InvalidParameter)?;
    let set = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let checks = ModeChecks {
        hostname: body.hostname.as_deref().is_some_and(|h| !h.is_empty()),
        dns: set(&hc.dns),
        extra_hosts: set(&hc.extra_hosts),
        links: set(&hc.links),
        published_ports: hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty()) || hc.publish_all_ports == Some(true),
        exposed_ports: body.exposed_ports.as_ref().is_some_and(|p| !p.is_empty()),
    };
    mode.check(&checks).map_err(Error::InvalidParameter)?;
    for entry in hc.extra_hosts.iter().flatten() {
        // host-gateway is resolved at start; here only the syntax is checked.
        let placeholder = Some(std::net::IpAddr::from([0, 0, 0, 0]));
        berth_net::etc_files::parse_extra_host(entry, placeholder).map_err(Error::InvalidParameter)?;
    }
    Ok(mode.warning(&checks).map(str::to_string))
}

/// The image's `Healthcheck`, a Docker extension of the OCI config.
fn image_healthcheck(image: &Image) -> Option<berth_api::models::HealthConfig> {
    image.docker_config.as_ref()?.get("Healthcheck").and_then(|h| serde_json::from_value(h.clone()).ok())
}

/// The effective config: the request, with the image's values where the request has none.
fn merge_config(body: ContainerCreateBody, image: &Image) -> ContainerConfig {
    let defaults = image.config.config().clone().unwrap_or_default();
    let mut env: Vec<String> = defaults.env().clone().unwrap_or_default();
    for kv in body.env.iter().flatten() {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    // As Docker: an entrypoint given at create time drops the image's CMD too.
    let (entrypoint, cmd) = match (&body.entrypoint, &body.cmd) {
        (Some(ep), cmd) => (
            Some(ep.iter().filter(|a| !a.is_empty()).cloned().collect::<Vec<_>>()),
            cmd.clone(),
        ),
        (None, Some(cmd)) if !cmd.is_empty() => (defaults.entrypoint().clone(), Some(cmd.clone())),
        (None, _) => (defaults.entrypoint().clone(), defaults.cmd().clone()),
    };
    let mut labels = defaults.labels().clone().unwrap_or_default();
    labels.extend(body.labels.clone().unwrap_or_default());
    let pick = |given: &Option<String>, image: &Option<String>| {
        given.clone().filter(|s| !s.is_empty()).or_else(|| image.clone())
    };
    ContainerConfig {
        hostname: body.hostname.clone(),
        domainname: body.domainname.clone(),
        user: pick(&body.user, defaults.user()).or(Some(String::new())),
        attach_stdin: body.attach_stdin,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        exposed_ports: body.exposed_ports.clone().or_else(|| defaults.exposed_ports().clone()),
        tty: body.tty,
        open_stdin: body.open_stdin,
        stdin_once: body.stdin_once,
        env: Some(env),
        cmd,
        image: body.image.clone(),
        // The image's VOLUMEs and the request's (`-v /path`) together.
        volumes: {
            let mut v: Vec<String> = defaults.volumes().clone().unwrap_or_default();
            v.extend(body.volumes.clone().unwrap_or_default());
            v.sort();
            v.dedup();
            (!v.is_empty()).then_some(v)
        },
        working_dir: pick(&body.working_dir, defaults.working_dir()).or(Some(String::new())),
        entrypoint,
        labels: Some(labels),
        stop_signal: pick(&body.stop_signal, defaults.stop_signal()),
        stop_timeout: body.stop_timeout,
        healthcheck: super::health::merge(body.healthcheck.clone(), image_healthcheck(image)),
        ..Default::default()
    }
}

fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Now, as Docker writes times: RFC 3339 with nanoseconds, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
