//! Named volumes with the `local` driver: directories under `<data-root>/volumes/<name>/_data`
//! (Docker's layout), their metadata in the daemon's redb database (table `volumes`, one
//! write transaction per change), and the `/volumes` operations of the engine.
//!
//! A volume created with `-o type=… -o device=… -o o=…` is a host mount made on its `_data`
//! directory when a container first needs it, as Docker's local driver does.

use super::{Engine, Error, Result};
use berth_api::models::{Volume, VolumeScopeEnum};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volumes");

/// The label Docker puts on anonymous volumes; `prune` without `all` removes only these.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// Options the local driver accepts (Docker's `validOpts`).
const VALID_OPTS: &[&str] = &["type", "device", "o", "size"];

/// One volume's metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeMeta {
    pub name: String,
    pub driver: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub options: HashMap<String, String>,
}

impl VolumeMeta {
    pub fn is_anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
}

fn db_err(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("volume database: {e}"))
}

/// The volumes table and directory.
pub struct Volumes {
    db: Arc<Database>,
    dir: PathBuf,
    /// Serialises create/remove so two requests cannot race on one name.
    lock: Mutex<()>,
    /// Volume create/destroy events go here.
    events: Arc<super::events::EventLog>,
}

/// Checks a local volume name as Docker does; `Err` carries Docker's reason.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.len() == 1 {
        return Err("volume name is too short, names should be at least two alphanumeric characters".into());
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(format!(
            "\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        ));
    }
    Ok(())
}

/// A fresh anonymous volume name: 64 random hex characters, like a container ID.
pub fn anonymous_name() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Volumes {
    pub fn open(db: Arc<Database>, data_root: &Path, events: Arc<super::events::EventLog>) -> anyhow::Result<Volumes> {
        let tx = db.begin_write()?;
        tx.open_table(VOLUMES)?;
        tx.commit()?;
        let dir = data_root.join("volumes");
        std::fs::create_dir_all(&dir)?;
        // Only root may walk into the volumes; containers reach them through their mounts.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o701))?;
        Ok(Volumes { db, dir, lock: Mutex::new(()), events })
    }

    /// `<data-root>/volumes/<name>/_data`; `name` has been validated, so it cannot escape.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    pub fn get(&self, name: &str) -> Result<Option<VolumeMeta>> {
        if validate_name(name).is_err() {
            return Ok(None);
        }
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(VOLUMES).map_err(db_err)?;
        let Some(v) = table.get(name).map_err(db_err)? else { return Ok(None) };
        serde_json::from_slice(v.value()).map(Some).map_err(db_err)
    }

    pub fn all(&self) -> Result<Vec<VolumeMeta>> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(VOLUMES).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            match serde_json::from_slice(value.value()) {
                Ok(v) => out.push(v),
                Err(e) => tracing::error!("skipping unreadable volume {}: {e}", key.value()),
            }
        }
        Ok(out)
    }

    /// Creates a volume, or returns the existing one of that name (Docker's create is
    /// idempotent). The directory is made before the record, so a record always has one.
    pub fn create(
        &self,
        name: Option<String>,
        driver: Option<String>,
        options: HashMap<String, String>,
        labels: HashMap<String, String>,
    ) -> Result<VolumeMeta> {
        let name = name.filter(|n| !n.is_empty()).unwrap_or_else(anonymous_name);
        let fail = |why: String| Error::InvalidParameter(format!("create {name}: {why}"));
        validate_name(&name).map_err(fail)?;
        let driver = driver.filter(|d| !d.is_empty()).unwrap_or_else(|| "local".into());
        if driver != "local" {
            return Err(Error::NotFound(format!(
                "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        validate_options(&options).map_err(fail)?;
        let _guard = super::lock(&self.lock);
        if let Some(existing) = self.get(&name)? {
            return Ok(existing);
        }
        let data = self.data_dir(&name);
        std::fs::create_dir_all(&data)?;
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        // As dockerd: `<name>` can be walked through, not listed.
        std::fs::set_permissions(self.dir.join(&name), std::os::unix::fs::PermissionsExt::from_mode(0o701))?;
        let meta = VolumeMeta {
            name: name.clone(),
            driver,
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels,
            options,
        };
        if let Err(e) = self.save(&meta) {
            let _ = std::fs::remove_dir_all(self.dir.join(&name));
            return Err(e);
        }
        tracing::info!("created volume {name}");
        self.events.publish("volume", "create", &name, [("driver".to_string(), meta.driver.clone())].into());
        Ok(meta)
    }

    fn save(&self, meta: &VolumeMeta) -> Result<()> {
        let bytes = serde_json::to_vec(meta).map_err(db_err)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(VOLUMES).map_err(db_err)?;
            table.insert(meta.name.as_str(), bytes.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Deletes the record, then the files (a crash in between leaves an unnamed directory,
    /// which costs disk but never shows a volume without data).
    fn delete(&self, name: &str) -> Result<()> {
        let data = self.data_dir(name);
        unmount_if_mounted(&data);
        // Deleting through a mount that would not go would delete a bind device's files.
        if is_mountpoint(&data) {
            return Err(Error::Internal(format!("remove {name}: the volume is still mounted at {}", data.display())));
        }
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(VOLUMES).map_err(db_err)?;
            table.remove(name).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        self.events.publish("volume", "destroy", name, [("driver".to_string(), "local".to_string())].into());
        match std::fs::remove_dir_all(self.dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Makes the host mount of a volume created with driver options, once.
    pub fn ensure_mounted(&self, meta: &VolumeMeta) -> Result<()> {
        let Some(typ) = meta.options.get("type").filter(|t| !t.is_empty()) else { return Ok(()) };
        let data = self.data_dir(&meta.name);
        if is_mountpoint(&data) {
            return Ok(());
        }
        let device = meta.options.get("device").cloned().unwrap_or_default();
        let opts = meta.options.get("o").cloned().unwrap_or_default();
        let mut flags = nix::mount::MsFlags::empty();
        let mut data_opts = Vec::new();
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "bind" => flags |= nix::mount::MsFlags::MS_BIND,
                "rbind" => flags |= nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
                "ro" => flags |= nix::mount::MsFlags::MS_RDONLY,
                "nosuid" => flags |= nix::mount::MsFlags::MS_NOSUID,
                "nodev" => flags |= nix::mount::MsFlags::MS_NODEV,
                "noexec" => flags |= nix::mount::MsFlags::MS_NOEXEC,
                other => data_opts.push(other),
            }
        }
        let joined = data_opts.join(",");
        let fs_type = (typ != "none").then_some(typ.as_str());
        nix::mount::mount(
            Some(device.as_str()),
            &data,
            fs_type,
            flags,
            (!joined.is_empty()).then_some(joined.as_str()),
        )
        .map_err(|e| Error::Internal(format!("error while mounting volume '{}': failed to mount local volume: mount {device}:{} , data: {joined}: {}", meta.name, data.display(), e.desc().to_lowercase())))
    }
}

/// Docker's local-driver option check.
fn validate_options(options: &HashMap<String, String>) -> std::result::Result<(), String> {
    let mut keys: Vec<&String> = options.keys().collect();
    keys.sort();
    if let Some(bad) = keys.iter().find(|k| !VALID_OPTS.contains(&k.as_str())) {
        return Err(format!("invalid option: \"{bad}\""));
    }
    let typ = options.get("type").map(String::as_str).unwrap_or("");
    let device = options.get("device").map(String::as_str).unwrap_or("");
    let o = options.get("o").map(String::as_str).unwrap_or("");
    if typ.is_empty() && (!device.is_empty() || !o.is_empty()) {
        return Err("missing required option: \"type\"".into());
    }
    if !typ.is_empty() && device.is_empty() {
        return Err("missing required option: \"device\"".into());
    }
    if o.split(',').any(|x| x == "bind" || x == "rbind") && !device.starts_with('/') {
        // A relative bind device would be resolved against berthd's working directory.
        return Err(format!("invalid device path for bind mount: {device}: path must be absolute"));
    }
    if options.contains_key("size") {
        return Err("quota size requested but no quota support".into());
    }
    Ok(())
}

/// Whether `path` is a mount point (listed in our mountinfo).
fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = path.display().to_string();
    info.lines().any(|l| l.split(' ').nth(4).is_some_and(|mp| mp == want))
}

fn unmount_if_mounted(path: &Path) {
    while is_mountpoint(path) {
        if let Err(e) = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("unmounting {}: {e}", path.display());
            return;
        }
    }
}

/// The API view of a volume.
pub fn view(volumes: &Volumes, meta: &VolumeMeta) -> Volume {
    Volume {
        name: meta.name.clone(),
        driver: meta.driver.clone(),
        mountpoint: volumes.data_dir(&meta.name).display().to_string(),
        created_at: Some(meta.created_at.clone()),
        status: None,
        labels: meta.labels.clone(),
        scope: Some(VolumeScopeEnum::LOCAL),
        cluster_volume: None,
        options: meta.options.clone(),
        usage_data: None,
    }
}

/// Filter keys `GET /volumes` and `POST /volumes/prune` accept.
const LIST_FILTERS: &[&str] = &["dangling", "name", "driver", "label"];
const PRUNE_FILTERS: &[&str] = &["label", "label!", "all"];

fn truthy(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn label_matches(meta: &VolumeMeta, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => meta.labels.get(k).is_some_and(|x| x == v),
        None => meta.labels.contains_key(want),
    }
}

impl Engine {
    /// IDs of the containers whose mounts use volume `name` (running or not, as Docker counts).
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .all_containers()
            .iter()
            .filter_map(|c| {
                let rec = super::lock(&c.rec);
                rec.mounts.iter().any(|m| m.is_volume(name)).then(|| rec.id.clone())
            })
            .collect();
        ids.sort();
        ids
    }

    pub fn volume_create(
        &self,
        name: Option<String>,
        driver: Option<String>,
        options: HashMap<String, String>,
        labels: HashMap<String, String>,
    ) -> Result<Volume> {
        let meta = self.volumes.create(name, driver, options, labels)?;
        Ok(view(&self.volumes, &meta))
    }

    pub fn volume_inspect(&self, name: &str) -> Result<Volume> {
        match self.volumes.get(name)? {
            Some(meta) => Ok(view(&self.volumes, &meta)),
            None => Err(Error::NotFound(format!("get {name}: no such volume"))),
        }
    }

    pub fn volume_list(&self, filters: &HashMap<String, Vec<String>>) -> Result<Vec<Volume>> {
        if let Some(bad) = filters.keys().find(|k| !LIST_FILTERS.contains(&k.as_str())) {
            return Err(Error::InvalidParameter(format!("invalid filter '{bad}'")));
        }
        let mut dangling = None;
        for v in filters.get("dangling").into_iter().flatten() {
            dangling = Some(truthy(v).ok_or_else(|| {
                Error::InvalidParameter(format!("invalid filter 'dangling={v}'"))
            })?);
        }
        let mut out: Vec<Volume> = Vec::new();
        for meta in self.volumes.all()? {
            let pass = filters.iter().all(|(key, values)| {
                values.is_empty()
                    || match key.as_str() {
                        "dangling" => dangling.is_none_or(|d| d == self.volume_users(&meta.name).is_empty()),
                        "name" => values.iter().any(|v| meta.name.contains(v.as_str())),
                        "driver" => values.contains(&meta.driver),
                        "label" => values.iter().all(|v| label_matches(&meta, v)),
                        _ => false,
                    }
            });
            if pass {
                out.push(view(&self.volumes, &meta));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a volume; one in use only fails (Docker's `force` only ignores a missing volume).
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let _guard = super::lock(&self.volumes.lock);
        if self.volumes.get(name)?.is_none() {
            if force {
                return Ok(());
            }
            return Err(Error::NotFound(format!("get {name}: no such volume")));
        }
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(Error::Conflict(format!("remove {name}: volume is in use - [{}]", users.join(", "))));
        }
        self.volumes.delete(name)?;
        tracing::info!("removed volume {name}");
        Ok(())
    }

    /// Removes unused volumes: anonymous ones, or all with the `all` filter. Returns the
    /// names removed and the bytes reclaimed.
    pub fn volume_prune(&self, filters: &HashMap<String, Vec<String>>) -> Result<(Vec<String>, u64)> {
        if let Some(bad) = filters.keys().find(|k| !PRUNE_FILTERS.contains(&k.as_str())) {
            return Err(Error::InvalidParameter(format!("invalid filter '{bad}'")));
        }
        let mut all = false;
        for v in filters.get("all").into_iter().flatten() {
            all = truthy(v).ok_or_else(|| Error::InvalidParameter(format!("invalid filter 'all={v}'")))?;
        }
        let mut removed = Vec::new();
        let mut reclaimed = 0;
        for meta in self.volumes.all()? {
            let labels_ok = filters.get("label").into_iter().flatten().all(|l| label_matches(&meta, l))
                && !filters.get("label!").into_iter().flatten().any(|l| label_matches(&meta, l));
            if !(all || meta.is_anonymous()) || !labels_ok {
                continue;
            }
            let size = dir_size(&self.volumes.data_dir(&meta.name));
            match self.volume_remove(&meta.name, false) {
                Ok(()) => {
                    removed.push(meta.name.clone());
                    reclaimed += size;
                }
                Err(Error::Conflict(_)) => {}
                Err(e) => tracing::warn!("prune volume {}: {e}", meta.name),
            }
        }
        Ok((removed, reclaimed))
    }

    /// Removes the anonymous volumes among `mounts` that no other container uses
    /// (`rm -v`, `--rm`). Failures are logged: the container is already gone.
    pub fn remove_anonymous_volumes(&self, mounts: &[super::mounts::MountRecord]) {
        for m in mounts {
            if let Some(name) = m.anonymous_volume() {
                match self.volume_remove(name, true) {
                    Ok(()) | Err(Error::Conflict(_)) => {}
                    Err(e) => tracing::warn!("removing anonymous volume {name}: {e}"),
                }
            }
        }
    }
}

/// Bytes used by the files under `dir` (not following symlinks).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker() {
        assert!(validate_name("data").is_ok());
        assert!(validate_name("a.b_c-1").is_ok());
        assert!(validate_name("a").unwrap_err().contains("too short"));
        assert!(validate_name("../x").unwrap_err().contains("invalid characters"));
        assert!(validate_name("x/y").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name(".x").is_err());
        assert_eq!(anonymous_name().len(), 64);
    }

    #[test]
    fn options_follow_docker() {
        let o = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(validate_options(&o(&[])).is_ok());
        assert!(validate_options(&o(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")])).is_ok());
        assert_eq!(validate_options(&o(&[("foo", "bar")])).unwrap_err(), "invalid option: \"foo\"");
        assert!(validate_options(&o(&[("type", "none"), ("device", "rel"), ("o", "bind")])).is_err());
        assert!(validate_options(&o(&[("device", "/x")])).is_err());
    }

    #[test]
    fn volumes_persist_in_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("db")).unwrap());
        let vols = Volumes::open(db.clone(), dir.path(), Default::default()).unwrap();
        let v = vols.create(Some("data".into()), None, HashMap::new(), HashMap::new()).unwrap();
        assert!(vols.data_dir("data").is_dir());
        assert_eq!(vols.create(Some("data".into()), None, HashMap::new(), HashMap::new()).unwrap(), v);
        assert!(vols.create(Some("x".into()), Some("nope".into()), HashMap::new(), HashMap::new()).is_err());
        assert!(vols.get("x").unwrap().is_none());
        drop(vols);
        let vols = Volumes::open(db, dir.path(), Default::default()).unwrap();
        assert_eq!(vols.all().unwrap(), vec![v]);
        vols.delete("data").unwrap();
        assert!(!dir.path().join("volumes/data").exists());
    }
}
