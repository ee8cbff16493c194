//! The OCI runtime spec for a container: a pure function of the container's effective
//! config, its host config and a few host facts. Nothing here touches the system, so every
//! rule is unit-tested.
//!
//! The defaults are Docker's: its capability set, seccomp profile, masked and read-only
//! paths, and the standard `/dev`.

use berth_api::models::{ContainerConfig, HostConfig};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};
use std::path::Path;

/// PATH for a process whose image sets none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths Docker hides from containers: kernel internals a container must not read.
pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker leaves visible but read-only: writing them would change the host.
pub(crate) const READONLY_PATHS: &[&str] =
    &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// The identity the process runs as, already resolved against the image's /etc/passwd.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Host facts that change the spec (never probed here, so the function stays pure).
#[derive(Debug, Clone, Default)]
pub struct HostFeatures {
    /// The memory cgroup accounts swap (`memory.memsw.*` on v1, `memory.swap.max` on v2).
    pub swap_accounting: bool,
}

/// Everything the spec is made from.
pub struct SpecInput<'a> {
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub host_config: &'a HostConfig,
    /// The command line: entrypoint + cmd, already merged with the image's.
    pub args: &'a [String],
    pub user: ProcessUser,
    pub rootfs: &'a Path,
    /// The network namespace to join; `None` keeps the host's (`--network host`).
    pub netns: Option<&'a Path>,
    /// Files the daemon writes per container and binds at /etc/hostname, /etc/hosts, /etc/resolv.conf.
    pub etc_dir: &'a Path,
    pub host: HostFeatures,
    /// `--init`: the host's init binary, run as PID 1 in front of the command.
    pub init: Option<&'a Path>,
    /// The container's cgroup, absolute (`crate::cgroup_path`: `--cgroup-parent` resolved).
    pub cgroups_path: &'a str,
}

/// Where `--init`'s binary appears in the container, as in Docker.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// Spec-building error: a value the user gave that cannot become a valid spec.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// The container's hostname: `--hostname`, else the short ID as Docker does.
pub fn hostname(id: &str, config: &ContainerConfig) -> String {
    match config.hostname.as_deref() {
        Some(h) if !h.is_empty() => h.to_string(),
        _ => id.chars().take(12).collect(),
    }
}

/// The process environment: the effective config's env, plus PATH, HOSTNAME and TERM as
/// Docker adds them.
pub fn environment(id: &str, config: &ContainerConfig) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    set(format!("PATH={DEFAULT_PATH}"));
    set(format!("HOSTNAME={}", hostname(id, config)));
    if config.tty == Some(true) {
        set("TERM=xterm".into());
    }
    for kv in config.env.iter().flatten() {
        set(kv.clone());
    }
    env
}

/// `/dev/shm`'s size: `ShmSize` (bytes; `--shm-size`, `docker build --shm-size`), else
/// Docker's default of 64 MiB.
fn shm_size(hc: &HostConfig) -> String {
    let bytes = hc.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20);
    format!("size={}k", bytes / 1024)
}

/// Builds the OCI spec.
pub fn build(input: &SpecInput) -> Result<Spec, SpecError> {
    // Capabilities, seccomp, no-new-privileges, paths and privileged devices (spec_security.rs).
    let security = crate::spec_security::Security::resolve(input.host_config).map_err(SpecError)?;
    let config = input.config;
    let tty = config.tty == Some(true);
    let cwd = match config.working_dir.as_deref() {
        Some(w) if !w.is_empty() => w,
        _ => "/",
    };
    if !cwd.starts_with('/') {
        return Err(SpecError(format!(
            "the working directory '{cwd}' is invalid, it needs to be an absolute path"
        )));
    }
    let etc = |name: &str| input.etc_dir.join(name).display().to_string();
    let args: Vec<&str> = match input.init {
        Some(_) => [INIT_PATH, "--"].into_iter().chain(input.args.iter().map(String::as_str)).collect(),
        None => input.args.iter().map(String::as_str).collect(),
    };
    let mut process = json!({
        "terminal": tty,
        "user": {"uid": input.user.uid, "gid": input.user.gid},
        "args": args,
        "env": environment(input.id, config),
        "cwd": cwd,
    });
    // `noNewPrivileges` stays absent rather than false: libcontainer loads the seccomp filter
    // while still privileged only when the field is missing (a `false` makes the load fail).
    if !input.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(input.user.additional_gids);
    }
    if let Some(size) = &input.host_config.console_size {
        if let [h, w] = size[..] {
            if h > 0 && w > 0 {
                process["consoleSize"] = json!({"height": h, "width": w});
            }
        }
    }
    if let Some(rlimits) = rlimits(input.host_config) {
        process["rlimits"] = rlimits;
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": input.rootfs, "readonly": input.host_config.readonly_rootfs == Some(true)},
        "hostname": hostname(input.id, config),
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", shm_size(input.host_config)]},
            {"destination": "/etc/resolv.conf", "type": "bind", "source": etc("resolv.conf"), "options": ["rbind", "rprivate"]},
            {"destination": "/etc/hostname", "type": "bind", "source": etc("hostname"), "options": ["rbind", "rprivate"]},
            {"destination": "/etc/hosts", "type": "bind", "source": etc("hosts"), "options": ["rbind", "rprivate"]},
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
            ],
            "cgroupsPath": input.cgroups_path,
            "resources": resources(input.host_config, &input.host)?,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    });
    security.apply(&mut spec);
    if let (Some(netns), Some(namespaces)) = (input.netns, spec["linux"]["namespaces"].as_array_mut()) {
        namespaces.push(json!({"type": "network", "path": netns}));
    }
    if let Some(domain) = config.domainname.as_deref().filter(|d| !d.is_empty()) {
        spec["domainname"] = json!(domain);
    }
    if let (Some(init), Some(mounts)) = (input.init, spec["mounts"].as_array_mut()) {
        mounts.push(json!({"destination": INIT_PATH, "type": "bind", "source": init, "options": ["rbind", "ro", "rprivate"]}));
    }
    // --ipc/--pid/--uts/--sysctl (spec_namespaces.rs), --device/--device-cgroup-rule (spec_devices.rs).
    // Unlike the rest, these look at the system: another container's process for a join, a
    // shareable /dev/shm's host mount, the host's device nodes.
    crate::spec_namespaces::apply(&mut spec, input)?;
    crate::spec_devices::apply(&mut spec, input.host_config)?;
    serde_json::from_value(spec).map_err(|e| SpecError(format!("invalid runtime spec: {e}")))
}

/// `--ulimit`s as dockerd's `WithRlimits` writes them: `RLIMIT_<NAME>`, values as unsigned
/// (-1: unlimited). None given: the process keeps the limits it inherits, as under dockerd.
fn rlimits(hc: &HostConfig) -> Option<Value> {
    let ulimits = hc.ulimits.as_ref().filter(|u| !u.is_empty())?;
    let entries: Vec<Value> = ulimits
        .iter()
        .map(|u| {
            json!({
                "type": format!("RLIMIT_{}", u.name.as_deref().unwrap_or_default().to_ascii_uppercase()),
                "soft": u.soft.unwrap_or_default() as u64,
                "hard": u.hard.unwrap_or_default() as u64,
            })
        })
        .collect();
    Some(Value::Array(entries))
}

/// Checks the resource values alone, for `create` (the spec itself is built at start).
pub fn validate_resources(hc: &HostConfig) -> Result<(), SpecError> {
    resources(hc, &HostFeatures::default()).map(drop)
}

/// Smallest memory limit Docker accepts.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// cgroup limits from the host config, and the device allow-list Docker gives every container.
fn resources(hc: &HostConfig, host: &HostFeatures) -> Result<Value, SpecError> {
    let mut r = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "b", "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
        ],
    });
    let memory = hc.memory.unwrap_or(0);
    if memory < 0 || (memory > 0 && memory < MIN_MEMORY) {
        return Err(SpecError("Minimum memory limit allowed is 6MB".into()));
    }
    if memory > 0 {
        r["memory"] = json!({"limit": memory});
        // Docker's default: swap may equal memory (total 2x) unless told otherwise.
        let swap = match hc.memory_swap.unwrap_or(0) {
            0 => memory * 2,
            s => s,
        };
        if host.swap_accounting {
            r["memory"]["swap"] = json!(swap);
        }
    }
    let mut cpu = serde_json::Map::new();
    if let Some(shares) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(nano) = hc.nano_cpus.filter(|n| *n > 0) {
        const PERIOD: i64 = 100_000;
        cpu.insert("period".into(), json!(PERIOD));
        cpu.insert("quota".into(), json!(nano * PERIOD / 1_000_000_000));
    } else {
        if let Some(period) = hc.cpu_period.filter(|p| *p > 0) {
            cpu.insert("period".into(), json!(period));
        }
        if let Some(quota) = hc.cpu_quota.filter(|q| *q > 0) {
            cpu.insert("quota".into(), json!(quota));
        }
    }
    if !cpu.is_empty() {
        r["cpu"] = Value::Object(cpu);
    }
    if let Some(pids) = hc.pids_limit.filter(|p| *p > 0) {
        r["pids"] = json!({"limit": pids});
    }
    // Limits `update` can set too, so a stopped container gets them at its next start.
    if let Some(reservation) = hc.memory_reservation.filter(|m| *m > 0) {
        r["memory"]["reservation"] = json!(reservation);
    }
    for (key, list) in [("cpus", &hc.cpuset_cpus), ("mems", &hc.cpuset_mems)] {
        if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
            r["cpu"][key] = json!(list);
        }
    }
    if let Some(weight) = hc.blkio_weight.filter(|w| *w > 0) {
        r["blockIO"] = json!({"weight": weight});
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(config: &'a ContainerConfig, hc: &'a HostConfig, args: &'a [String]) -> SpecInput<'a> {
        SpecInput {
            id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            config,
            host_config: hc,
            args,
            user: ProcessUser::default(),
            rootfs: Path::new("/run/berth/c/rootfs"),
            netns: Some(Path::new("/run/berth/netns/c")),
            etc_dir: Path::new("/var/lib/berth/containers/c"),
            host: HostFeatures { swap_accounting: true },
            init: None,
            cgroups_path: "/berth/c",
        }
    }

    #[test]
    fn init_runs_in_front_of_the_command() {
        let (config, hc) = (ContainerConfig::default(), HostConfig::default());
        let args = vec!["sleep".to_string(), "1".to_string()];
        let mut with_init = input(&config, &hc, &args);
        with_init.init = Some(Path::new("/usr/bin/tini-static"));
        let v = serde_json::to_value(build(&with_init).unwrap()).unwrap();
        assert_eq!(v["process"]["args"], json!(["/sbin/docker-init", "--", "sleep", "1"]));
        let mounts = v["mounts"].as_array().unwrap();
        let init = mounts.iter().find(|m| m["destination"] == INIT_PATH).unwrap();
        assert_eq!(init["source"], "/usr/bin/tini-static");
        assert!(init["options"].as_array().unwrap().contains(&json!("ro")));
    }

    #[test]
    fn shm_is_64m_unless_shm_size_says_otherwise() {
        let config = ContainerConfig::default();
        let args = vec!["true".to_string()];
        let shm_options = |hc: &HostConfig| {
            let v = serde_json::to_value(build(&input(&config, hc, &args)).unwrap()).unwrap();
            let mounts = v["mounts"].as_array().unwrap().clone();
            mounts.into_iter().find(|m| m["destination"] == "/dev/shm").unwrap()["options"].clone()
        };
        assert!(shm_options(&HostConfig::default()).as_array().unwrap().contains(&json!("size=65536k")));
        let hc = HostConfig { shm_size: Some(32 << 20), ..Default::default() };
        assert!(shm_options(&hc).as_array().unwrap().contains(&json!("size=32768k")));
    }

    #[test]
    fn host_network_has_no_namespace_and_domain_goes_to_uts() {
        let config = ContainerConfig { domainname: Some("example.com".into()), ..Default::default() };
        let hc = HostConfig::default();
        let args = vec!["true".to_string()];
        let own = serde_json::to_value(build(&input(&config, &hc, &args)).unwrap()).unwrap();
        let has_net = |v: &Value| v["linux"]["namespaces"].as_array().unwrap().iter().any(|n| n["type"] == "network");
        assert!(has_net(&own));
        assert_eq!(own["domainname"], "example.com");
        let mut host = input(&config, &hc, &args);
        host.netns = None;
        assert!(!has_net(&serde_json::to_value(build(&host).unwrap()).unwrap()));
    }

    #[test]
    fn defaults_follow_docker() {
        let config = ContainerConfig { env: Some(vec!["A=1".into(), "PATH=/bin".into()]), ..Default::default() };
        let hc = HostConfig::default();
        let args = vec!["sh".to_string()];
        let spec = build(&input(&config, &hc, &args)).unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["hostname"], "0123456789ab");
        assert_eq!(v["process"]["cwd"], "/");
        let env: Vec<String> = serde_json::from_value(v["process"]["env"].clone()).unwrap();
        assert!(env.contains(&"PATH=/bin".to_string()), "image PATH wins: {env:?}");
        assert!(env.contains(&"HOSTNAME=0123456789ab".to_string()));
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 14);
        assert!(!caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert!(v["linux"]["maskedPaths"].as_array().unwrap().iter().any(|p| p == "/proc/kcore"));
        assert_eq!(v["linux"]["namespaces"].as_array().unwrap().len(), 5);
        assert!(v["linux"]["seccomp"]["syscalls"].as_array().is_some());
        assert!(v["linux"]["resources"].get("memory").is_none());
    }

    #[test]
    fn limits_become_cgroup_resources() {
        let config = ContainerConfig::default();
        let hc = HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(1_500_000_000),
            cpu_shares: Some(512),
            pids_limit: Some(20),
            ..Default::default()
        };
        let args = vec!["true".to_string()];
        let v = serde_json::to_value(build(&input(&config, &hc, &args)).unwrap()).unwrap();
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["memory"]["swap"], 128 << 20);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["cpu"]["shares"], 512);
        assert_eq!(r["pids"]["limit"], 20);
    }

    #[test]
    fn cpuset_reservation_and_blkio_weight_reach_the_spec() {
        let config = ContainerConfig::default();
        let hc = HostConfig {
            memory_reservation: Some(32 << 20),
            cpuset_cpus: Some("0".into()),
            cpuset_mems: Some("0".into()),
            blkio_weight: Some(300),
            ..Default::default()
        };
        let args = vec!["true".to_string()];
        let v = serde_json::to_value(build(&input(&config, &hc, &args)).unwrap()).unwrap();
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"]["reservation"], 32 << 20);
        assert!(r["memory"].get("limit").is_none());
        assert_eq!((r["cpu"]["cpus"].as_str(), r["cpu"]["mems"].as_str()), (Some("0"), Some("0")));
        assert_eq!(r["blockIO"]["weight"], 300);
    }

    #[test]
    fn rejects_bad_values() {
        let config = ContainerConfig::default();
        let args = vec!["true".to_string()];
        let hc = HostConfig { memory: Some(1024), ..Default::default() };
        let err = build(&input(&config, &hc, &args)).unwrap_err();
        assert_eq!(err.to_string(), "Minimum memory limit allowed is 6MB");
        let config = ContainerConfig { working_dir: Some("rel".into()), ..Default::default() };
        let hc = HostConfig::default();
        assert!(build(&input(&config, &hc, &args)).is_err());
    }

    #[test]
    fn ulimits_become_process_rlimits() {
        let config = ContainerConfig::default();
        let args = vec!["sh".to_string()];
        let none = HostConfig::default();
        let v = serde_json::to_value(build(&input(&config, &none, &args)).unwrap()).unwrap();
        assert!(v["process"].get("rlimits").is_none(), "inherited when not given");
        let hc = HostConfig {
            ulimits: Some(vec![
                berth_api::models::ResourcesUlimits { name: Some("nofile".into()), soft: Some(512), hard: Some(1024) },
                berth_api::models::ResourcesUlimits { name: Some("core".into()), soft: Some(-1), hard: Some(-1) },
            ]),
            ..Default::default()
        };
        let v = serde_json::to_value(build(&input(&config, &hc, &args)).unwrap()).unwrap();
        assert_eq!(
            v["process"]["rlimits"],
            json!([
                {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
                {"type": "RLIMIT_CORE", "soft": u64::MAX, "hard": u64::MAX},
            ])
        );
    }

    #[test]
    fn tty_sets_term() {
        let config = ContainerConfig { tty: Some(true), ..Default::default() };
        assert!(environment("abc", &config).contains(&"TERM=xterm".to_string()));
    }
}
