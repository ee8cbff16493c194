//! A container's mounts: `HostConfig.Binds`, `.Mounts`, `.Tmpfs`, `.VolumesFrom` and the
//! image's `VOLUME`s, resolved once at create time into a list kept in the container's record.
//! Start only turns that list into OCI spec mounts, so a restart never re-interprets input.
//!
//! Resolution is two steps: `plan` only parses and checks (nothing is created, so bad input
//! leaves nothing behind), then `Engine::realize_mounts` creates the volumes and bind sources.

use super::volumes::{self, ANONYMOUS_LABEL};
use super::{Engine, Error, Result};
use berth_api::models::{HostConfig, Mount, MountPoint, MountType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// What a mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Volume,
    Bind,
    Tmpfs,
}

/// One resolved mount, as stored in the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountRecord {
    pub kind: MountKind,
    /// The volume's name (volumes only).
    #[serde(default)]
    pub name: String,
    /// The host path (binds only).
    #[serde(default)]
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// The mode as `inspect` shows it (`ro`, `z`, or empty).
    #[serde(default)]
    pub mode: String,
    /// Bind propagation (`rprivate` unless asked otherwise); empty for volumes and tmpfs.
    #[serde(default)]
    pub propagation: String,
    /// tmpfs mount options, Docker's defaults included.
    #[serde(default)]
    pub options: Vec<String>,
    /// The volume was made for this container alone (`-v /path`, an image `VOLUME`).
    #[serde(default)]
    pub anonymous: bool,
    /// Fill an empty volume with the image's content at this path (not `nocopy`).
    #[serde(default)]
    pub copy: bool,
    /// Shown in `inspect`'s `Mounts` (Docker leaves `--tmpfs` out).
    #[serde(default)]
    pub listed: bool,
    /// Bind without `rbind` (`bind-nonrecursive`).
    #[serde(default)]
    pub non_recursive: bool,
}

impl MountRecord {
    pub fn is_volume(&self, name: &str) -> bool {
        self.kind == MountKind::Volume && self.name == name
    }

    pub fn anonymous_volume(&self) -> Option<&str> {
        (self.kind == MountKind::Volume && self.anonymous).then_some(self.name.as_str())
    }
}

/// A mount before its effects: volume to create, bind source to make.
#[derive(Debug, Clone)]
struct Planned {
    rec: MountRecord,
    /// Volume options when the volume does not exist yet (from `--mount volume-opt=…`).
    driver: Option<String>,
    driver_opts: HashMap<String, String>,
    labels: HashMap<String, String>,
    /// `-v /host:/path` creates a missing host directory, as Docker does.
    create_source: bool,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidParameter(msg.into())
}

/// A clean absolute path (`/a/./b/` → `/a/b`); `..` is kept out of targets altogether.
fn clean_abs(p: &str) -> Option<String> {
    if !p.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// A container path: absolute, not `/`.
fn destination(spec: &str, kind: &str, dest: &str) -> Result<String> {
    let fail = |why: String| {
        let prefix = if spec.is_empty() { String::new() } else { format!("invalid volume specification: '{spec}': ") };
        invalid(format!("{prefix}invalid mount config for type \"{kind}\": {why}"))
    };
    if dest.is_empty() {
        return Err(fail("field Target must not be empty".into()));
    }
    let clean = clean_abs(dest).ok_or_else(|| fail(format!("invalid mount path: '{dest}' mount path must be absolute")))?;
    if clean == "/" {
        return Err(fail("invalid specification: destination can't be '/'".into()));
    }
    Ok(clean)
}

const PROPAGATIONS: &[&str] = &["private", "rprivate", "shared", "rshared", "slave", "rslave"];

/// One `-v`/`Binds` entry: `dest`, `name:dest[:mode]`, `/host:dest[:mode]`.
fn parse_bind(spec: &str) -> Result<Planned> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts[..] {
        [d] => ("", d, ""),
        [s, d] => (s, d, ""),
        [s, d, m] => (s, d, m),
        _ => return Err(invalid(format!("invalid volume specification: '{spec}'"))),
    };
    if dst.is_empty() {
        return Err(invalid(format!("invalid volume specification: '{spec}'")));
    }
    let (mut rw, mut rw_seen, mut copy, mut propagation, mut label) = (true, false, true, String::new(), false);
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" | "rw" if rw_seen => return Err(invalid(format!("invalid mode: {mode}"))),
            "ro" => (rw, rw_seen) = (false, true),
            "rw" => (rw, rw_seen) = (true, true),
            "z" | "Z" => label = true,
            "nocopy" => copy = false,
            "consistent" | "cached" | "delegated" => {}
            p if PROPAGATIONS.contains(&p) => {
                if !propagation.is_empty() {
                    return Err(invalid(format!("invalid mode: {mode}")));
                }
                propagation = p.to_string();
            }
            _ => return Err(invalid(format!("invalid mode: {mode}"))),
        }
    }
    let _ = label; // SELinux relabelling: nothing to do without SELinux.
    let is_bind = src.starts_with('/');
    let kind = if is_bind { "bind" } else { "volume" };
    let dest = destination(spec, kind, dst)?;
    let mut rec = MountRecord {
        kind: if is_bind { MountKind::Bind } else { MountKind::Volume },
        name: String::new(),
        source: String::new(),
        destination: dest,
        rw,
        mode: mode.to_string(),
        propagation: String::new(),
        options: Vec::new(),
        anonymous: false,
        copy,
        listed: true,
        non_recursive: false,
    };
    let mut create_source = false;
    if is_bind {
        if !copy {
            return Err(invalid(format!("invalid mode: {mode}")));
        }
        rec.source = clean_abs(src).unwrap_or_default();
        rec.propagation = if propagation.is_empty() { "rprivate".into() } else { propagation };
        rec.copy = false;
        create_source = true;
    } else if src.is_empty() {
        rec.anonymous = true;
    } else {
        volumes::validate_name(src).map_err(|why| invalid(format!("create {src}: {why}")))?;
        rec.name = src.to_string();
        if mode.is_empty() {
            // Docker shows a named volume's default SELinux mode.
            rec.mode = "z".into();
        }
    }
    Ok(Planned { rec, driver: None, driver_opts: HashMap::new(), labels: HashMap::new(), create_source })
}

/// One `HostConfig.Mounts` entry.
fn parse_mount(m: &Mount) -> Result<Planned> {
    let typ = m.typ.unwrap_or(MountType::VOLUME);
    let kind = match typ {
        MountType::BIND => "bind",
        MountType::VOLUME => "volume",
        MountType::TMPFS => "tmpfs",
        other => return Err(invalid(format!("mount type unknown: \"{other}\""))),
    };
    let fail = |why: String| invalid(format!("invalid mount config for type \"{kind}\": {why}"));
    let dest = destination("", kind, m.target.as_deref().unwrap_or(""))?;
    let source = m.source.clone().unwrap_or_default();
    let rw = m.read_only != Some(true);
    let mut rec = MountRecord {
        kind: MountKind::Volume,
        name: String::new(),
        source: String::new(),
        destination: dest,
        rw,
        mode: String::new(),
        propagation: String::new(),
        options: Vec::new(),
        anonymous: false,
        copy: false,
        listed: true,
        non_recursive: false,
    };
    let mut planned = Planned { rec: rec.clone(), driver: None, driver_opts: HashMap::new(), labels: HashMap::new(), create_source: false };
    if typ != MountType::BIND && m.bind_options.is_some() {
        return Err(fail("field BindOptions must not be specified".into()));
    }
    if typ != MountType::VOLUME && m.volume_options.is_some() {
        return Err(fail("field VolumeOptions must not be specified".into()));
    }
    if typ != MountType::TMPFS && m.tmpfs_options.is_some() {
        return Err(fail("field TmpfsOptions must not be specified".into()));
    }
    match typ {
        MountType::BIND => {
            if source.is_empty() {
                return Err(fail("field Source must not be empty".into()));
            }
            let clean = clean_abs(&source)
                .ok_or_else(|| fail(format!("invalid mount path: '{source}' mount path must be absolute")))?;
            let opts = m.bind_options.clone().unwrap_or_default();
            if !Path::new(&clean).exists() && opts.create_mountpoint != Some(true) {
                return Err(fail(format!("bind source path does not exist: {clean}")));
            }
            planned.create_source = opts.create_mountpoint == Some(true);
            rec.kind = MountKind::Bind;
            rec.source = clean;
            rec.propagation = match opts.propagation {
                Some(p) if !p.as_ref().is_empty() => p.as_ref().to_string(),
                _ => "rprivate".into(),
            };
            rec.non_recursive = opts.non_recursive == Some(true);
        }
        MountType::VOLUME => {
            let opts = m.volume_options.clone().unwrap_or_default();
            if opts.subpath.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(fail("volume subpaths are not supported".into()));
            }
            rec.kind = MountKind::Volume;
            rec.mode = "z".into();
            rec.copy = opts.no_copy != Some(true);
            if source.is_empty() {
                rec.anonymous = true;
            } else {
                volumes::validate_name(&source).map_err(|why| invalid(format!("create {source}: {why}")))?;
                rec.name = source;
            }
            if let Some(dc) = opts.driver_config {
                planned.driver = dc.name;
                planned.driver_opts = dc.options.unwrap_or_default();
            }
            planned.labels = opts.labels.unwrap_or_default();
        }
        _ => {
            if !source.is_empty() {
                return Err(fail("field Source must not be specified".into()));
            }
            let opts = m.tmpfs_options.clone().unwrap_or_default();
            let mut extra = Vec::new();
            if let Some(size) = opts.size_bytes {
                if size < 0 {
                    return Err(fail(format!("invalid tmpfs size: {size}")));
                }
                if size > 0 {
                    extra.push(format!("size={size}"));
                }
            }
            if let Some(mode) = opts.mode.filter(|m| *m != 0) {
                if !(0..=0o7777).contains(&mode) {
                    return Err(fail(format!("invalid tmpfs mode: {mode}")));
                }
                extra.push(format!("mode={mode:o}"));
            }
            for o in opts.options.iter().flatten() {
                extra.push(o.join("="));
            }
            if !rw {
                extra.push("ro".into());
            }
            rec.kind = MountKind::Tmpfs;
            rec.options = tmpfs_options(&extra.join(","), &rec.destination).map_err(fail)?;
        }
    }
    planned.rec = rec;
    Ok(planned)
}

/// tmpfs options: Docker's defaults (`nosuid,nodev,noexec`), changed by the user's.
fn tmpfs_options(user: &str, dest: &str) -> std::result::Result<Vec<String>, String> {
    let mut flags: Vec<String> = vec!["nosuid".into(), "nodev".into(), "noexec".into()];
    let mut data: Vec<String> = Vec::new();
    let set = |flags: &mut Vec<String>, on: &str, off: &str| {
        flags.retain(|f| f != off && f != on);
        flags.push(on.to_string());
    };
    for o in user.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match o {
            "exec" => set(&mut flags, "exec", "noexec"),
            "noexec" => set(&mut flags, "noexec", "exec"),
            "suid" => set(&mut flags, "suid", "nosuid"),
            "nosuid" => set(&mut flags, "nosuid", "suid"),
            "dev" => set(&mut flags, "dev", "nodev"),
            "nodev" => set(&mut flags, "nodev", "dev"),
            "ro" => set(&mut flags, "ro", "rw"),
            "rw" => set(&mut flags, "rw", "ro"),
            "atime" | "noatime" | "relatime" | "norelatime" | "strictatime" | "nostrictatime" | "diratime"
            | "nodiratime" | "sync" | "async" | "dirsync" | "mand" | "nomand" | "lazytime" | "nolazytime"
            | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                flags.retain(|f| f != o);
                flags.push(o.to_string());
            }
            kv => {
                let (k, v) = kv.split_once('=').ok_or_else(|| format!("invalid tmpfs option {kv:?} for {dest}"))?;
                if !matches!(k, "size" | "mode" | "uid" | "gid" | "nr_inodes" | "nr_blocks" | "mpol" | "huge") || v.is_empty() {
                    return Err(format!("invalid tmpfs option {kv:?} for {dest}"));
                }
                data.retain(|d| !d.starts_with(&format!("{k}=")));
                data.push(kv.to_string());
            }
        }
    }
    flags.extend(data);
    Ok(flags)
}

/// Parses and checks every mount the request asks for, creating nothing. `volumes_from`
/// holds the mounts of the containers named in `--volumes-from`, already looked up.
fn plan(
    hc: &HostConfig,
    config_volumes: &[String],
    volumes_from: &[(Vec<MountRecord>, Option<bool>)],
) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    // Docker's order of precedence: volumes-from, then binds, then mounts; the image's and
    // config's VOLUMEs fill only the paths nobody else mounts.
    for (mounts, rw) in volumes_from {
        for m in mounts.iter().filter(|m| m.kind != MountKind::Tmpfs) {
            let mut rec = m.clone();
            if let Some(rw) = rw {
                rec.rw = *rw;
                rec.mode = if *rw { "rw".into() } else { "ro".into() };
            }
            // The volume stays the other container's: `rm -v` here must not remove it.
            rec.anonymous = false;
            rec.copy = false;
            out.retain(|p| p.rec.destination != rec.destination);
            out.push(Planned { rec, driver: None, driver_opts: HashMap::new(), labels: HashMap::new(), create_source: false });
        }
    }
    let mut user: Vec<Planned> = Vec::new();
    for spec in hc.binds.iter().flatten() {
        user.push(parse_bind(spec)?);
    }
    for m in hc.mounts.iter().flatten() {
        user.push(parse_mount(m)?);
    }
    let mut tmpfs: Vec<(&String, &String)> = hc.tmpfs.iter().flatten().collect();
    tmpfs.sort();
    for (path, opts) in tmpfs {
        let dest = clean_abs(path)
            .filter(|d| d != "/")
            .ok_or_else(|| invalid(format!("invalid mount path: '{path}' mount path must be absolute")))?;
        let options = tmpfs_options(opts, &dest).map_err(invalid)?;
        user.push(Planned {
            rec: MountRecord {
                kind: MountKind::Tmpfs,
                name: String::new(),
                source: String::new(),
                destination: dest,
                rw: !options.iter().any(|o| o == "ro"),
                mode: String::new(),
                propagation: String::new(),
                options,
                anonymous: false,
                copy: false,
                listed: false,
                non_recursive: false,
            },
            driver: None,
            driver_opts: HashMap::new(),
            labels: HashMap::new(),
            create_source: false,
        });
    }
    for (i, p) in user.iter().enumerate() {
        if user[..i].iter().any(|q| q.rec.destination == p.rec.destination) {
            return Err(invalid(format!("Duplicate mount point: {}", p.rec.destination)));
        }
    }
    for p in user {
        out.retain(|q| q.rec.destination != p.rec.destination);
        out.push(p);
    }
    let mut config_volumes: Vec<&String> = config_volumes.iter().collect();
    config_volumes.sort();
    config_volumes.dedup();
    for path in config_volumes {
        let spec = parse_bind(path)?;
        if spec.rec.kind != MountKind::Volume || !spec.rec.anonymous {
            return Err(invalid(format!("invalid volume specification: '{path}'")));
        }
        if out.iter().any(|q| q.rec.destination == spec.rec.destination) {
            continue;
        }
        out.push(spec);
    }
    // Parents before children, so a mount inside another lands on top of it.
    out.sort_by_key(|p| p.rec.destination.matches('/').count());
    Ok(out)
}

impl Engine {
    /// Resolves and creates a new container's mounts. On error, whatever this call created
    /// is removed again.
    pub(super) fn resolve_mounts(&self, hc: &HostConfig, config_volumes: &[String]) -> Result<Vec<MountRecord>> {
        let mut from = Vec::new();
        for spec in hc.volumes_from.iter().flatten() {
            let (name, mode) = match spec.rsplit_once(':') {
                Some((n, m)) => (n, Some(m)),
                None => (spec.as_str(), None),
            };
            let rw = match mode {
                None => None,
                Some("rw") => Some(true),
                Some("ro") => Some(false),
                Some(m) => return Err(invalid(format!("invalid mode: {m}"))),
            };
            let c = self.container(name)?;
            let mounts = c.snapshot().mounts;
            from.push((mounts, rw));
        }
        let planned = plan(hc, config_volumes, &from)?;
        // Options for a volume that already exists must not be silently ignored.
        for p in &planned {
            if p.rec.kind == MountKind::Volume && !p.rec.anonymous {
                if let Some(d) = p.driver.as_deref().filter(|d| !d.is_empty() && *d != "local") {
                    return Err(Error::NotFound(format!(
                        "create {}: error looking up volume plugin {d}: plugin \"{d}\" not found",
                        p.rec.name
                    )));
                }
            }
        }
        let mut created: Vec<String> = Vec::new();
        let mut out = Vec::new();
        let result = (|| -> Result<()> {
            for p in planned {
                let mut rec = p.rec;
                match rec.kind {
                    MountKind::Volume if rec.anonymous => {
                        let mut labels = p.labels.clone();
                        labels.insert(ANONYMOUS_LABEL.into(), String::new());
                        let v = self.volumes.create(None, p.driver.clone(), p.driver_opts.clone(), labels)?;
                        created.push(v.name.clone());
                        rec.name = v.name;
                    }
                    MountKind::Volume if self.volumes.get(&rec.name)?.is_none() => {
                        let v = self.volumes.create(Some(rec.name.clone()), p.driver.clone(), p.driver_opts.clone(), p.labels.clone())?;
                        created.push(v.name);
                    }
                    MountKind::Bind if p.create_source && !Path::new(&rec.source).exists() => {
                        std::fs::create_dir_all(&rec.source)
                            .map_err(|e| invalid(format!("error while creating mount source path '{}': {e}", rec.source)))?;
                    }
                    _ => {}
                }
                out.push(rec);
            }
            Ok(())
        })();
        if let Err(e) = result {
            for name in created {
                let _ = self.volume_remove(&name, true);
            }
            return Err(e);
        }
        Ok(out)
    }

    /// Fills each empty volume that asks for it with the image's content at its path,
    /// keeping ownership and modes (Docker's copy-up). `layers` are the rootfs layer
    /// directories, topmost first.
    pub(super) fn copy_up(&self, mounts: &[MountRecord], layers: &[PathBuf]) -> Result<()> {
        for m in mounts.iter().filter(|m| m.kind == MountKind::Volume && m.copy) {
            let data = self.volumes.data_dir(&m.name);
            let empty = std::fs::read_dir(&data).map(|mut d| d.next().is_none()).unwrap_or(false);
            if !empty {
                continue;
            }
            let Some(meta) = self.volumes.get(&m.name)? else { continue };
            if !meta.options.is_empty() {
                // A driver-mounted volume is only filled once mounted; Docker does the same
                // at mount time, berth leaves such volumes as the device has them.
                continue;
            }
            let rel = m.destination.trim_start_matches('/');
            if let Some(sources) = image_dir(layers, rel) {
                copy_merged(&sources, &data)
                    .map_err(|e| Error::Internal(format!("copying image content into volume {}: {e}", m.name)))?;
            }
        }
        Ok(())
    }

    /// The OCI spec mounts for a container's resolved mounts.
    pub(super) fn spec_mounts(&self, mounts: &[MountRecord]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for m in mounts {
            let mut options: Vec<String> = Vec::new();
            let source = match m.kind {
                MountKind::Volume => {
                    let meta = self.volumes.get(&m.name)?.ok_or_else(|| {
                        Error::NotFound(format!("error while mounting volume '{}': no such volume", m.name))
                    })?;
                    self.volumes.ensure_mounted(&meta)?;
                    options.extend(["rbind".into(), "rprivate".into()]);
                    self.volumes.data_dir(&m.name).display().to_string()
                }
                MountKind::Bind => {
                    options.push(if m.non_recursive { "bind" } else { "rbind" }.into());
                    options.push(if m.propagation.is_empty() { "rprivate".into() } else { m.propagation.clone() });
                    m.source.clone()
                }
                MountKind::Tmpfs => {
                    out.push(json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": m.options}));
                    continue;
                }
            };
            if !m.rw {
                options.push("ro".into());
            }
            out.push(json!({"destination": m.destination, "type": "bind", "source": source, "options": options}));
        }
        Ok(out)
    }

    /// `spec` with the container's own mounts added; a default mount at the same path
    /// (`/etc/hosts`, `/dev/shm`…) gives way to the user's, as under Docker.
    pub(super) fn with_user_mounts(&self, spec: oci_spec::runtime::Spec, mounts: &[MountRecord]) -> Result<oci_spec::runtime::Spec> {
        if mounts.is_empty() {
            return Ok(spec);
        }
        let extra: Vec<oci_spec::runtime::Mount> = serde_json::from_value(Value::Array(self.spec_mounts(mounts)?))
            .map_err(|e| Error::Internal(format!("invalid mount: {e}")))?;
        let mut spec = spec;
        let mut all: Vec<oci_spec::runtime::Mount> = spec.mounts().clone().unwrap_or_default();
        all.retain(|d| !extra.iter().any(|m| m.destination() == d.destination()));
        all.extend(extra);
        spec.set_mounts(Some(all));
        Ok(spec)
    }

    /// `Mounts` as `inspect` and `ps` show them.
    pub fn mount_points(&self, mounts: &[MountRecord]) -> Vec<MountPoint> {
        mounts
            .iter()
            .filter(|m| m.listed)
            .map(|m| match m.kind {
                MountKind::Volume => MountPoint {
                    typ: Some("volume".into()),
                    name: Some(m.name.clone()),
                    source: Some(self.volumes.data_dir(&m.name).display().to_string()),
                    destination: Some(m.destination.clone()),
                    driver: Some("local".into()),
                    mode: Some(m.mode.clone()),
                    rw: Some(m.rw),
                    propagation: Some(String::new()),
                },
                MountKind::Bind => MountPoint {
                    typ: Some("bind".into()),
                    name: None,
                    source: Some(m.source.clone()),
                    destination: Some(m.destination.clone()),
                    driver: None,
                    mode: Some(m.mode.clone()),
                    rw: Some(m.rw),
                    propagation: Some(m.propagation.clone()),
                },
                MountKind::Tmpfs => MountPoint {
                    typ: Some("tmpfs".into()),
                    name: None,
                    source: Some(String::new()),
                    destination: Some(m.destination.clone()),
                    driver: None,
                    mode: Some(String::new()),
                    rw: Some(m.rw),
                    propagation: Some(String::new()),
                },
            })
            .collect()
    }
}

/// The layer directories that make up image directory `rel` (topmost first, stopping below
/// an opaque one), or `None` when the image has no directory there. A symlink on the way
/// means no copy-up: following it could lead outside the layer.
fn image_dir(layers: &[PathBuf], rel: &str) -> Option<Vec<PathBuf>> {
    let mut current: Vec<PathBuf> = layers.to_vec();
    for comp in rel.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for dir in &current {
            let p = dir.join(comp);
            match std::fs::symlink_metadata(&p) {
                Ok(meta) if meta.is_dir() => {
                    next.push(p.clone());
                    if is_opaque(&p) {
                        break;
                    }
                }
                // A file, symlink or whiteout here hides everything below.
                Ok(_) => break,
                Err(_) => {}
            }
        }
        if next.is_empty() {
            return None;
        }
        current = next;
    }
    Some(current)
}

fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else { return false };
    let mut buf = [0u8; 4];
    // SAFETY: `c` is a valid NUL-terminated path and `buf` a writable buffer of the given
    // length; lgetxattr does not follow symlinks.
    let n = unsafe {
        libc::lgetxattr(c.as_ptr(), c"trusted.overlay.opaque".as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    };
    n == 1 && buf[0] == b'y'
}

fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Copies the merged view of `sources` (topmost first) into `dest`, and gives `dest` the
/// topmost source's owner and mode. Never follows a symlink: links are copied as links.
fn copy_merged(sources: &[PathBuf], dest: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let Some(top) = sources.first() else { return Ok(()) };
    let top_meta = std::fs::symlink_metadata(top)?;
    let mut seen = std::collections::HashSet::new();
    for (i, src) in sources.iter().enumerate() {
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            let name = entry.file_name();
            if !seen.insert(name.clone()) {
                continue;
            }
            let meta = std::fs::symlink_metadata(entry.path())?;
            if is_whiteout(&meta) {
                continue;
            }
            let target = dest.join(&name);
            if meta.is_dir() {
                // The same directory in the layers below, until one is opaque or not a dir.
                let mut below = vec![entry.path()];
                if !is_opaque(&entry.path()) {
                    for lower in &sources[i + 1..] {
                        match std::fs::symlink_metadata(lower.join(&name)) {
                            Ok(m) if m.is_dir() => {
                                below.push(lower.join(&name));
                                if is_opaque(&lower.join(&name)) {
                                    break;
                                }
                            }
                            Ok(_) => break,
                            Err(_) => {}
                        }
                    }
                }
                std::fs::create_dir(&target)?;
                copy_merged(&below, &target)?;
            } else if meta.file_type().is_symlink() {
                let link = std::fs::read_link(entry.path())?;
                std::os::unix::fs::symlink(link, &target)?;
                std::os::unix::fs::lchown(&target, Some(meta.uid()), Some(meta.gid()))?;
            } else if meta.is_file() {
                copy_file(&entry.path(), &target, &meta)?;
            }
            // Devices, fifos and sockets are not copied: volumes hold data.
        }
    }
    std::os::unix::fs::lchown(dest, Some(top_meta.uid()), Some(top_meta.gid()))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(top_meta.mode() & 0o7777))?;
    Ok(())
}

fn copy_file(src: &Path, dest: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let mut from = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(src)?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(dest)?;
    std::io::copy(&mut from, &mut to)?;
    // Owner first: chown clears set-id bits, which the mode then restores.
    std::os::unix::fs::fchown(&to, Some(meta.uid()), Some(meta.gid()))?;
    to.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(binds: &[&str]) -> HostConfig {
        HostConfig { binds: Some(binds.iter().map(|s| s.to_string()).collect()), ..Default::default() }
    }

    #[test]
    fn binds_parse_like_docker() {
        let p = plan(&hc(&["data:/data:ro", "/tmp:/h", "/anon"]), &[], &[]).unwrap();
        let find = |d: &str| p.iter().find(|x| x.rec.destination == d).unwrap().rec.clone();
        let data = find("/data");
        assert_eq!((data.kind, data.name.as_str(), data.rw, data.mode.as_str()), (MountKind::Volume, "data", false, "ro"));
        let h = find("/h");
        assert_eq!((h.kind, h.source.as_str(), h.propagation.as_str(), h.mode.as_str()), (MountKind::Bind, "/tmp", "rprivate", ""));
        assert!(find("/anon").anonymous);
        let err = |b: &str| plan(&hc(&[b]), &[], &[]).unwrap_err().to_string();
        assert_eq!(err("v:/x:bad"), "invalid mode: bad");
        assert_eq!(err("v:/x:ro,rw"), "invalid mode: ro,rw");
        assert!(err("rel/x:/y").starts_with("create rel/x: \"rel/x\" includes invalid characters"));
        assert_eq!(
            err("/tmp:x"),
            "invalid volume specification: '/tmp:x': invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute"
        );
        assert!(err("/tmp:/").contains("destination can't be '/'"));
        assert_eq!(plan(&hc(&["a1:/x", "/tmp:/x"]), &[], &[]).unwrap_err().to_string(), "Duplicate mount point: /x");
    }

    #[test]
    fn mounts_api_checks_sources() {
        let m = |typ, src: &str, dst: &str| HostConfig {
            mounts: Some(vec![Mount { typ: Some(typ), source: Some(src.into()), target: Some(dst.into()), ..Default::default() }]),
            ..Default::default()
        };
        assert_eq!(
            plan(&m(MountType::BIND, "/nonexistent-berth", "/x"), &[], &[]).unwrap_err().to_string(),
            "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-berth"
        );
        assert_eq!(
            plan(&m(MountType::BIND, "rel", "/x"), &[], &[]).unwrap_err().to_string(),
            "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert!(plan(&m(MountType::TMPFS, "x", "/x"), &[], &[]).is_err());
        let t = plan(&m(MountType::TMPFS, "", "/t"), &[], &[]).unwrap();
        assert_eq!(t[0].rec.options, ["nosuid", "nodev", "noexec"]);
        assert!(t[0].rec.listed);
    }

    #[test]
    fn image_volumes_fill_the_gaps_and_sort_by_depth() {
        let p = plan(&hc(&["v1:/data/sub"]), &["/data".into(), "/data/sub".into()], &[]).unwrap();
        let dests: Vec<_> = p.iter().map(|x| x.rec.destination.as_str()).collect();
        assert_eq!(dests, ["/data", "/data/sub"]);
        assert!(p[0].rec.anonymous && !p[1].rec.anonymous);
    }

    #[test]
    fn tmpfs_options_follow_docker() {
        assert_eq!(tmpfs_options("", "/t").unwrap(), ["nosuid", "nodev", "noexec"]);
        assert_eq!(tmpfs_options("exec,size=1m", "/t").unwrap(), ["nosuid", "nodev", "exec", "size=1m"]);
        assert!(tmpfs_options("bogus", "/t").is_err());
    }

    #[test]
    fn copy_up_merges_layers_and_keeps_owners() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let (upper, lower, dest) = (d.path().join("u"), d.path().join("l"), d.path().join("dest"));
        for p in [upper.join("data"), lower.join("data/sub"), dest.clone()] {
            std::fs::create_dir_all(p).unwrap();
        }
        std::fs::write(lower.join("data/a"), "lower").unwrap();
        std::fs::write(lower.join("data/sub/b"), "b").unwrap();
        std::fs::write(upper.join("data/a"), "upper").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", upper.join("data/link")).unwrap();
        std::os::unix::fs::chown(lower.join("data/sub/b"), Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::chown(upper.join("data"), Some(65534), Some(65534)).unwrap();
        let sources = image_dir(&[upper.clone(), lower.clone()], "data").unwrap();
        copy_merged(&sources, &dest).unwrap();
        assert_eq!(std::fs::read_to_string(dest.join("a")).unwrap(), "upper");
        assert_eq!(std::fs::read_to_string(dest.join("sub/b")).unwrap(), "b");
        assert_eq!(std::fs::metadata(dest.join("sub/b")).unwrap().uid(), 65534);
        assert_eq!(std::fs::metadata(&dest).unwrap().uid(), 65534);
        assert_eq!(std::fs::read_link(dest.join("link")).unwrap(), Path::new("/etc/shadow"));
        assert!(image_dir(&[upper, lower], "nope").is_none());
    }
}
