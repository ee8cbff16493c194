//! A container's security settings, as Docker 20.10 derives them from the host config:
//! capabilities (`--cap-add`, `--cap-drop`, `--privileged`), the seccomp profile, no-new-privileges,
//! masked and read-only paths, and what `--privileged` opens up (every host device, a writable
//! `/sys`, no filters).
//!
//! Two moments: [`prepare`] at create (dockerd's checks and its defaults written into the stored
//! host config, which inspect shows) and [`Security::resolve`] + [`Security::apply`] when the
//! spec is built.

use crate::seccomp;
use berth_api::models::HostConfig;
use berth_dockerfile::go_quote;
use serde_json::{json, Value};
use std::path::Path;

/// Every capability Docker 20.10 knows (gocapability's list), in bit order: the bit of each
/// is its index.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capabilities this kernel has, by name: dockerd accepts only those.
fn known_capabilities() -> &'static [&'static str] {
    // Read once: the kernel's last capability does not change while berthd runs.
    static LAST: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let last = *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(ALL_CAPABILITIES.len() - 1)
    });
    &ALL_CAPABILITIES[..(last + 1).min(ALL_CAPABILITIES.len())]
}

/// "All capabilities" for `--privileged`, `--cap-add ALL` and `exec --privileged`: those the
/// kernel has and berthd itself holds. Docker asks for every one and fails to start when its
/// daemon lacks one (a VM whose root has a reduced bounding set); berth gives what it can.
pub fn all_capabilities() -> Vec<String> {
    // berthd's bounding set, read once: it only ever shrinks, and berthd never shrinks it.
    static BOUNDING: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let bounding = *BOUNDING.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string())))
            .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
            .unwrap_or(u64::MAX)
    });
    known_capabilities()
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// dockerd's `NormalizeLegacyCapabilities`: upper case, `CAP_` added, `ALL` kept; an unknown
/// name is an error.
fn normalize_capabilities(caps: &[String], known: &[&str]) -> Result<Vec<String>, String> {
    caps.iter()
        .map(|c| {
            let upper = c.to_ascii_uppercase();
            if upper == "ALL" {
                return Ok(upper);
            }
            let name = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            match known.contains(&name.as_str()) {
                true => Ok(name),
                false => Err(format!("unknown capability: {}", go_quote(&name))),
            }
        })
        .collect()
}

/// dockerd's `TweakCapabilities`: privileged gets everything; `ALL` added means everything but
/// the drops; `ALL` dropped means only the adds; otherwise the defaults minus the drops, then
/// the adds.
fn effective_capabilities(
    hc: &HostConfig,
    known: &[&str],
    all: &[String],
) -> Result<Vec<String>, String> {
    if hc.privileged == Some(true) {
        return Ok(all.to_vec());
    }
    let adds = normalize_capabilities(hc.cap_add.as_deref().unwrap_or_default(), known)?;
    let drops = normalize_capabilities(hc.cap_drop.as_deref().unwrap_or_default(), known)?;
    let has = |list: &[String], c: &str| list.iter().any(|x| x == c);
    let mut caps: Vec<String> = if has(&adds, "ALL") {
        all.iter().filter(|c| !has(&drops, c)).cloned().collect()
    } else if has(&drops, "ALL") {
        adds
    } else {
        seccomp::DEFAULT_CAPABILITIES
            .iter()
            .filter(|c| !has(&drops, c))
            .map(|c| c.to_string())
            .chain(adds)
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    Ok(caps)
}

/// The security options dockerd understands (`parseSecurityOpt`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    pub no_new_privileges: bool,
    /// `seccomp=`: `unconfined`, a profile's JSON, or empty (the default profile).
    pub seccomp: Option<String>,
    /// `apparmor=`: recorded (inspect's `AppArmorProfile`); this host has no AppArmor to apply it.
    pub apparmor: Option<String>,
}

/// Parses `SecurityOpt` as dockerd does, with its error texts. `label` options are accepted
/// and have no effect, as on a host without SELinux.
pub fn parse_security_opts(opts: &[String]) -> Result<SecurityOpts, String> {
    let mut out = SecurityOpts::default();
    for opt in opts {
        if opt == "no-new-privileges" {
            out.no_new_privileges = true;
            continue;
        }
        if opt == "disable" {
            continue;
        }
        // `=` first; the old `key:value` form is still taken.
        let split = opt.split_once('=').or_else(|| opt.split_once(':'));
        let Some((key, value)) = split else {
            return Err(format!("invalid --security-opt 1: {}", go_quote(opt)));
        };
        match key {
            "label" => {}
            "apparmor" => out.apparmor = Some(value.to_string()),
            "seccomp" => out.seccomp = Some(value.to_string()),
            "no-new-privileges" => {
                out.no_new_privileges = go_parse_bool(value)
                    .ok_or_else(|| format!("invalid --security-opt 2: {}", go_quote(opt)))?
            }
            _ => return Err(format!("invalid --security-opt 2: {}", go_quote(opt))),
        }
    }
    Ok(out)
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Create time: dockerd's checks of the capabilities and security options, then the defaults
/// it stores: `label=disable` for a privileged container or one sharing the host's IPC or PID
/// namespace (unless a `label=` option was given), and the masked and read-only paths of an
/// unprivileged one unless the client set them (`systempaths=unconfined` sends empty lists).
pub fn prepare(hc: &mut HostConfig) -> Result<(), String> {
    let known = known_capabilities();
    normalize_capabilities(hc.cap_add.as_deref().unwrap_or_default(), known)
        .map_err(|e| format!("invalid CapAdd: {e}"))?;
    normalize_capabilities(hc.cap_drop.as_deref().unwrap_or_default(), known)
        .map_err(|e| format!("invalid CapDrop: {e}"))?;
    parse_security_opts(hc.security_opt.as_deref().unwrap_or_default())?;
    let privileged = hc.privileged == Some(true);
    let host_mode = |m: &Option<String>| m.as_deref() == Some("host");
    // dockerd's `generateSecurityOpt`, appended to what was given unless that names a
    // `label=` option (the `label:` form does not count, as in dockerd).
    let given = hc.security_opt.as_deref().unwrap_or_default();
    let labelled = given.iter().any(|o| o.split('=').next() == Some("label"));
    if !labelled && (privileged || host_mode(&hc.ipc_mode) || host_mode(&hc.pid_mode)) {
        hc.security_opt
            .get_or_insert_with(Vec::new)
            .push("label=disable".into());
    }
    if !privileged {
        if hc.masked_paths.is_none() {
            hc.masked_paths = Some(
                crate::spec::MASKED_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
            );
        }
        if hc.readonly_paths.is_none() {
            hc.readonly_paths = Some(
                crate::spec::READONLY_PATHS
                    .iter()
                    .map(|p| p.to_string())
                    .collect(),
            );
        }
    }
    Ok(())
}

/// inspect's `AppArmorProfile`: the `apparmor=` option as given (dockerd records it even on a
/// host without AppArmor), else empty.
pub fn apparmor_profile(hc: &HostConfig) -> String {
    parse_security_opts(hc.security_opt.as_deref().unwrap_or_default())
        .ok()
        .and_then(|o| o.apparmor)
        .unwrap_or_default()
}

/// inspect's `HostConfig`: the security fields dockerd always shows, `null` (or `false`) when
/// unset, so templates such as `{{json .HostConfig.SecurityOpt}}` work as against dockerd.
pub fn inspect_defaults(host_config: &mut Value) {
    let Some(hc) = host_config.as_object_mut() else {
        return;
    };
    for key in [
        "CapAdd",
        "CapDrop",
        "SecurityOpt",
        "MaskedPaths",
        "ReadonlyPaths",
    ] {
        hc.entry(key).or_insert(Value::Null);
    }
    hc.entry("Privileged").or_insert(Value::Bool(false));
}

/// What the spec gets from the host config's security settings.
#[derive(Debug)]
pub struct Security {
    pub capabilities: Vec<String>,
    /// `None`: no filter (`seccomp=unconfined`, `--privileged`, or a profile that disables it).
    pub seccomp: Option<Value>,
    pub no_new_privileges: bool,
    pub privileged: bool,
    masked_paths: Vec<String>,
    readonly_paths: Vec<String>,
    /// The host's device nodes, for a privileged container.
    devices: Vec<Value>,
}

impl Security {
    /// Resolves the settings for one start; reads the host's `/dev` only when privileged.
    pub fn resolve(hc: &HostConfig) -> Result<Security, String> {
        let all = all_capabilities();
        let capabilities = effective_capabilities(hc, known_capabilities(), &all)?;
        let opts = parse_security_opts(hc.security_opt.as_deref().unwrap_or_default())?;
        let privileged = hc.privileged == Some(true);
        let devices = if privileged {
            host_devices(Path::new("/dev"))
        } else {
            Vec::new()
        };
        Self::from_parts(hc, opts, capabilities, devices)
    }

    fn from_parts(
        hc: &HostConfig,
        opts: SecurityOpts,
        capabilities: Vec<String>,
        devices: Vec<Value>,
    ) -> Result<Security, String> {
        let privileged = hc.privileged == Some(true);
        let to_json = |p| serde_json::to_value(p).map_err(|e| format!("seccomp profile: {e}"));
        // As dockerd's `WithSeccomp`: unconfined and privileged have none; a given profile is
        // decoded at start, so a bad one fails the start, not the create.
        let seccomp = match opts.seccomp.as_deref() {
            _ if privileged => None,
            Some("unconfined") => None,
            Some(profile) if !profile.is_empty() => {
                seccomp::docker_profile(profile, &capabilities)?
                    .map(to_json)
                    .transpose()?
            }
            _ => Some(to_json(seccomp::default_profile(&capabilities))?),
        };
        let paths = |given: &Option<Vec<String>>, default: &[&str]| match (privileged, given) {
            (true, _) => Vec::new(),
            (false, Some(list)) => list.clone(),
            (false, None) => default.iter().map(|p| p.to_string()).collect(),
        };
        Ok(Security {
            capabilities,
            seccomp,
            no_new_privileges: opts.no_new_privileges,
            privileged,
            masked_paths: paths(&hc.masked_paths, crate::spec::MASKED_PATHS),
            readonly_paths: paths(&hc.readonly_paths, crate::spec::READONLY_PATHS),
            devices,
        })
    }

    /// Writes the settings into a spec (OCI JSON) that has Docker's defaults.
    pub fn apply(&self, spec: &mut Value) {
        let caps = &self.capabilities;
        spec["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
        // Only `true` is written: libcontainer loads the seccomp filter while still privileged
        // only when the field is missing.
        if self.no_new_privileges {
            spec["process"]["noNewPrivileges"] = json!(true);
        }
        let linux = &mut spec["linux"];
        match &self.seccomp {
            Some(profile) => linux["seccomp"] = profile.clone(),
            None => {
                if let Some(l) = linux.as_object_mut() {
                    l.remove("seccomp");
                }
            }
        }
        linux["maskedPaths"] = json!(self.masked_paths);
        linux["readonlyPaths"] = json!(self.readonly_paths);
        if !self.privileged {
            return;
        }
        // Every host device, and a cgroup rule allowing any ("a *:* rwm").
        match linux["devices"].as_array_mut() {
            Some(list) => list.extend(self.devices.iter().cloned()),
            None => linux["devices"] = json!(self.devices),
        }
        linux["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
        // `/sys` and the cgroup tree writable, as dockerd's `clearReadOnly` leaves them.
        for mount in spec["mounts"].as_array_mut().into_iter().flatten() {
            if mount["destination"] == "/sys" || mount["type"] == "cgroup" {
                if let Some(options) = mount["options"].as_array_mut() {
                    options.retain(|o| o != "ro");
                }
            }
        }
    }
}

/// The device nodes under `dir` as runc's `HostDevices` lists them: character and block
/// devices, recursively, skipping the directories the container mounts itself (`pts`, `shm`,
/// `mqueue`, ...) and `console`; symlinks are not followed.
pub fn host_devices(dir: &Path) -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    const SKIPPED_DIRS: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            if !SKIPPED_DIRS.contains(&name.as_ref()) {
                out.extend(host_devices(&entry.path()));
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        let typ = if kind.is_char_device() {
            "c"
        } else if kind.is_block_device() {
            "b"
        } else {
            continue;
        };
        let rdev = meta.rdev();
        out.push(json!({
            "path": entry.path().display().to_string(),
            "type": typ,
            "major": nix::sys::stat::major(rdev),
            "minor": nix::sys::stat::minor(rdev),
            "fileMode": meta.mode() & 0o7777,
            "uid": meta.uid(),
            "gid": meta.gid(),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn caps_of(hc: &HostConfig) -> Result<Vec<String>, String> {
        effective_capabilities(hc, &ALL_CAPABILITIES, &strings(&ALL_CAPABILITIES))
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn names_are_normalized_and_checked_like_dockerd() {
        let got = normalize_capabilities(
            &strings(&["sys_admin", "CAP_net_admin", "all"]),
            &ALL_CAPABILITIES,
        );
        assert_eq!(got.unwrap(), ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "ALL"]);
        let err = normalize_capabilities(&strings(&["foo"]), &ALL_CAPABILITIES).unwrap_err();
        assert_eq!(err, "unknown capability: \"CAP_FOO\"");
        // `CAP_ALL` is not the magic value.
        assert!(normalize_capabilities(&strings(&["CAP_ALL"]), &ALL_CAPABILITIES).is_err());
        let mut hc = HostConfig {
            cap_drop: Some(strings(&["bogus"])),
            ..Default::default()
        };
        assert_eq!(
            prepare(&mut hc).unwrap_err(),
            "invalid CapDrop: unknown capability: \"CAP_BOGUS\""
        );
    }

    #[test]
    fn adds_and_drops_follow_docker_order() {
        let hc = HostConfig {
            cap_add: Some(strings(&["SYS_ADMIN"])),
            cap_drop: Some(strings(&["CHOWN"])),
            ..Default::default()
        };
        let caps = caps_of(&hc).unwrap();
        assert!(caps.contains(&"CAP_SYS_ADMIN".into()) && !caps.contains(&"CAP_CHOWN".into()));
        assert_eq!(caps.len(), seccomp::DEFAULT_CAPABILITIES.len());
        // Drop ALL keeps only the adds.
        let hc = HostConfig {
            cap_add: Some(strings(&["kill"])),
            cap_drop: Some(strings(&["ALL"])),
            ..Default::default()
        };
        assert_eq!(caps_of(&hc).unwrap(), ["CAP_KILL"]);
        // Add ALL gives everything but the drops.
        let hc = HostConfig {
            cap_add: Some(strings(&["ALL"])),
            cap_drop: Some(strings(&["chown"])),
            ..Default::default()
        };
        assert_eq!(caps_of(&hc).unwrap().len(), ALL_CAPABILITIES.len() - 1);
        // Added and dropped (the raw API; the CLI removes such drops): dropped from the
        // defaults, then added back.
        let hc = HostConfig {
            cap_add: Some(strings(&["CHOWN"])),
            cap_drop: Some(strings(&["CHOWN"])),
            ..Default::default()
        };
        assert_eq!(
            sorted(caps_of(&hc).unwrap()),
            sorted(strings(seccomp::DEFAULT_CAPABILITIES))
        );
        // Privileged ignores both lists.
        let hc = HostConfig {
            privileged: Some(true),
            cap_drop: Some(strings(&["ALL"])),
            ..Default::default()
        };
        assert_eq!(caps_of(&hc).unwrap().len(), ALL_CAPABILITIES.len());
    }

    #[test]
    fn security_opts_parse_like_dockerd() {
        let parse = |v: &[&str]| parse_security_opts(&strings(v));
        assert!(parse(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(
            parse(&["no-new-privileges:true"])
                .unwrap()
                .no_new_privileges
        );
        assert!(parse(&["no-new-privileges=1"]).unwrap().no_new_privileges);
        assert!(
            !parse(&["no-new-privileges=false"])
                .unwrap()
                .no_new_privileges
        );
        assert_eq!(
            parse(&["foo"]).unwrap_err(),
            "invalid --security-opt 1: \"foo\""
        );
        assert_eq!(
            parse(&["foo=bar"]).unwrap_err(),
            "invalid --security-opt 2: \"foo=bar\""
        );
        assert_eq!(
            parse(&["no-new-privileges=maybe"]).unwrap_err(),
            "invalid --security-opt 2: \"no-new-privileges=maybe\""
        );
        // The CLI keeps `systempaths=unconfined` to itself; dockerd refuses it.
        assert!(parse(&["systempaths=unconfined"]).is_err());
        let opts = parse(&[
            "apparmor=foo",
            "label=level:s0",
            "label:disable",
            "disable",
            "seccomp=unconfined",
        ])
        .unwrap();
        assert_eq!(opts.apparmor.as_deref(), Some("foo"));
        assert_eq!(opts.seccomp.as_deref(), Some("unconfined"));
    }

    #[test]
    fn create_stores_dockerd_defaults() {
        let mut hc = HostConfig::default();
        prepare(&mut hc).unwrap();
        assert!(hc.security_opt.is_none());
        assert!(hc
            .masked_paths
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        assert!(hc
            .readonly_paths
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        let mut hc = HostConfig {
            privileged: Some(true),
            ..Default::default()
        };
        prepare(&mut hc).unwrap();
        assert_eq!(hc.security_opt, Some(strings(&["label=disable"])));
        assert!(hc.masked_paths.is_none() && hc.readonly_paths.is_none());
        let mut hc = HostConfig {
            pid_mode: Some("host".into()),
            security_opt: Some(strings(&["apparmor=x"])),
            ..Default::default()
        };
        prepare(&mut hc).unwrap();
        assert_eq!(
            hc.security_opt,
            Some(strings(&["apparmor=x", "label=disable"]))
        );
        let mut hc = HostConfig {
            privileged: Some(true),
            security_opt: Some(strings(&["label=level:s0"])),
            ..Default::default()
        };
        prepare(&mut hc).unwrap();
        assert_eq!(
            hc.security_opt,
            Some(strings(&["label=level:s0"])),
            "a label option stands"
        );
        let mut hc = HostConfig {
            privileged: Some(true),
            security_opt: Some(strings(&["label:disable"])),
            ..Default::default()
        };
        prepare(&mut hc).unwrap();
        assert_eq!(
            hc.security_opt,
            Some(strings(&["label:disable", "label=disable"]))
        );
        let mut hc = HostConfig {
            masked_paths: Some(vec![]),
            readonly_paths: Some(vec![]),
            ..Default::default()
        };
        prepare(&mut hc).unwrap();
        assert_eq!(
            (hc.masked_paths, hc.readonly_paths),
            (Some(vec![]), Some(vec![]))
        );
    }

    fn base_spec() -> Value {
        json!({
            "process": {"capabilities": {}},
            "mounts": [
                {"destination": "/sys", "type": "sysfs", "options": ["nosuid", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "options": ["ro", "nodev"]},
                {"destination": "/proc", "type": "proc", "options": ["nosuid"]},
            ],
            "linux": {"seccomp": {}, "resources": {"devices": [{"allow": false, "access": "rwm"}]}},
        })
    }

    fn applied(hc: &HostConfig, devices: Vec<Value>) -> Value {
        let opts = parse_security_opts(hc.security_opt.as_deref().unwrap_or_default()).unwrap();
        let caps = caps_of(hc).unwrap();
        let mut spec = base_spec();
        Security::from_parts(hc, opts, caps, devices)
            .unwrap()
            .apply(&mut spec);
        spec
    }

    #[test]
    fn privileged_opens_everything() {
        let dev = json!({"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 0o660, "uid": 0, "gid": 6});
        let hc = HostConfig {
            privileged: Some(true),
            security_opt: Some(strings(&["label=disable"])),
            ..Default::default()
        };
        let spec = applied(&hc, vec![dev.clone()]);
        assert!(spec["linux"].get("seccomp").is_none());
        assert_eq!(spec["linux"]["maskedPaths"], json!([]));
        assert_eq!(spec["linux"]["readonlyPaths"], json!([]));
        assert_eq!(spec["linux"]["devices"], json!([dev]));
        assert_eq!(
            spec["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        assert_eq!(spec["mounts"][0]["options"], json!(["nosuid"]));
        assert_eq!(spec["mounts"][1]["options"], json!(["nodev"]));
        assert_eq!(
            spec["process"]["capabilities"]["effective"]
                .as_array()
                .unwrap()
                .len(),
            ALL_CAPABILITIES.len()
        );
        assert!(spec["process"].get("noNewPrivileges").is_none());
    }

    #[test]
    fn unprivileged_keeps_docker_defaults_and_options() {
        let hc = HostConfig {
            cap_add: Some(strings(&["SYS_PTRACE"])),
            ..Default::default()
        };
        let spec = applied(&hc, vec![]);
        let names: Vec<&str> = spec["linux"]["seccomp"]["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            names.contains(&"ptrace"),
            "CAP_SYS_PTRACE allows ptrace in the default profile"
        );
        assert!(!names.contains(&"mount"));
        assert!(spec["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/proc/kcore")));
        assert_eq!(spec["mounts"][0]["options"], json!(["nosuid", "ro"]));
        assert!(spec["linux"].get("devices").is_none());

        let hc = HostConfig {
            security_opt: Some(strings(&["seccomp=unconfined", "no-new-privileges"])),
            masked_paths: Some(vec![]),
            readonly_paths: Some(vec![]),
            ..Default::default()
        };
        let spec = applied(&hc, vec![]);
        assert!(spec["linux"].get("seccomp").is_none());
        assert_eq!(spec["process"]["noNewPrivileges"], json!(true));
        assert_eq!(spec["linux"]["maskedPaths"], json!([]));
    }

    #[test]
    fn a_given_profile_replaces_the_default() {
        let profile = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
        let hc = HostConfig {
            security_opt: Some(vec![format!("seccomp={profile}")]),
            ..Default::default()
        };
        let spec = applied(&hc, vec![]);
        assert_eq!(spec["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(
            spec["linux"]["seccomp"]["syscalls"][0]["names"],
            json!(["mkdir"])
        );
        let hc = HostConfig {
            security_opt: Some(strings(&["seccomp=notjson"])),
            ..Default::default()
        };
        let opts = parse_security_opts(hc.security_opt.as_deref().unwrap()).unwrap();
        let err = Security::from_parts(&hc, opts, vec![], vec![]).unwrap_err();
        assert!(
            err.starts_with("Decoding seccomp profile failed: "),
            "{err}"
        );
    }

    #[test]
    fn host_devices_lists_device_nodes_only() {
        // /dev on any Linux host has null (1:3) and a pts directory that is skipped.
        let devices = host_devices(Path::new("/dev"));
        let null = devices
            .iter()
            .find(|d| d["path"] == "/dev/null")
            .expect("/dev/null listed");
        assert_eq!(
            (
                null["type"].as_str(),
                null["major"].as_u64(),
                null["minor"].as_u64()
            ),
            (Some("c"), Some(1), Some(3))
        );
        assert!(devices
            .iter()
            .all(|d| !d["path"].as_str().unwrap().starts_with("/dev/pts/")));
        assert!(devices.iter().all(|d| d["path"] != "/dev/console"));
    }
}
