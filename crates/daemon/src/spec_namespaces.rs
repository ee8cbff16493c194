//! `--ipc`, `--pid`, `--uts`, `--userns` and `--sysctl` as dockerd 20.10 (with runc) applies
//! them: which namespaces a container gets, joins or leaves to the host, its /dev/shm, and the
//! namespaced sysctls written at its start.
//!
//! Two halves: `check_create` (at create: the rules dockerd applies then, and
//! `container:<name>` kept as the other container's ID) and `apply` (at start, on the spec
//! `spec::build` made: joins need the other container's running process, so they can only be
//! resolved then, as dockerd does).
//!
//! A joined IPC namespace comes with the owner's /dev/shm, as under Docker: a shareable
//! container's /dev/shm is a tmpfs mounted on the host (`<exec-root>/shm/<id>`) and bound into
//! it and its joiners, whose binds keep it alive after the owner is gone. dockerd unmounts it
//! when the owner stops; berth has no hook there, so the host mount goes at the owner's next
//! start (a fresh tmpfs, as Docker's) or, once the owner is removed, at the next container
//! start (`forget_removed_shms`). Every container that shares an IPC namespace (`shareable`,
//! `host`, `container:`) gets a link in its run dir (`SHM_LINK`) to the /dev/shm it uses, so a
//! chain of joins ends at the owner's, as Docker's `ShmPath` does.

use crate::spec::{SpecError, SpecInput};
use berth_api::models::HostConfig;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The default `IpcMode` (dockerd's `default-ipc-mode`, "private" since 20.10).
pub const DEFAULT_IPC_MODE: &str = "private";

/// The link in a container's run dir to the /dev/shm its IPC namespace's joiners share.
const SHM_LINK: &str = "shm";

/// The IPC-namespaced sysctls runc accepts besides `fs.mqueue.*`.
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// One namespace mode (`IpcMode`, `PidMode`, `UTSMode`, `UsernsMode`) as dockerd reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode<'a> {
    /// Empty, `private`, `shareable` or any other value dockerd treats as its own namespace.
    Own,
    Host,
    /// `--ipc none`: an own IPC namespace without /dev/shm.
    NoShm,
    /// `container:<name|id>` (the part after the colon, possibly empty).
    Container(&'a str),
}

fn mode(value: Option<&str>) -> Mode<'_> {
    match value.unwrap_or_default() {
        "host" => Mode::Host,
        "none" => Mode::NoShm,
        v => match v.strip_prefix("container:") {
            Some(target) => Mode::Container(target),
            None => Mode::Own,
        },
    }
}

/// The IPC modes dockerd knows; any other is refused at start ("Invalid IPC mode").
fn ipc_mode_known(value: &str) -> bool {
    matches!(value, "" | "private" | "shareable" | "host" | "none") || value.starts_with("container:")
}

/// Create-time rules: `--uts host` with `--hostname` is refused, the IPC mode defaults to
/// dockerd's, and the container a `container:` mode names must exist (its ID is kept, so a
/// rename changes nothing). `find` gives a container's ID by name or ID.
pub fn check_create(
    hc: &mut HostConfig,
    hostname: Option<&str>,
    find: impl Fn(&str) -> Option<String>,
) -> Result<(), String> {
    if mode(hc.uts_mode.as_deref()) == Mode::Host && hostname.is_some_and(|h| !h.is_empty()) {
        return Err("conflicting options: hostname and the UTS mode".into());
    }
    if hc.ipc_mode.as_deref().unwrap_or_default().is_empty() {
        hc.ipc_mode = Some(DEFAULT_IPC_MODE.into());
    }
    for field in [&mut hc.ipc_mode, &mut hc.pid_mode] {
        // An empty name is dockerd's start-time error, not a create-time one.
        let Some(target) = field
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
            .filter(|t| !t.is_empty())
        else {
            continue;
        };
        let id = find(target).ok_or_else(|| format!("No such container: {target}"))?;
        *field = Some(format!("container:{id}"));
    }
    Ok(())
}

/// Where other containers' state lives, found from this container's paths (`engine::Paths`:
/// the rootfs is `<exec-root>/containers/<id>/rootfs`, the /etc files' directory
/// `<data-root>/containers/<id>`); `layout_matches_the_engine_paths` holds them together.
struct Layout {
    /// `<exec-root>/containers`: each container's run dir.
    run_dirs: PathBuf,
    /// `<exec-root>/runtime`: the runtime's state of each created container.
    runtime_root: PathBuf,
    /// `<data-root>/containers`: one directory per existing container.
    container_dirs: PathBuf,
    /// `<exec-root>/shm`: the host mounts of shareable containers' /dev/shm.
    shm_mounts: PathBuf,
}

impl Layout {
    fn of(input: &SpecInput) -> Option<Layout> {
        let run_dirs = input.rootfs.parent()?.parent()?.to_path_buf();
        let runtime_root = run_dirs.parent()?.join("runtime");
        let shm_mounts = run_dirs.parent()?.join("shm");
        let container_dirs = input.etc_dir.parent()?.to_path_buf();
        Some(Layout {
            run_dirs,
            runtime_root,
            container_dirs,
            shm_mounts,
        })
    }

    fn shm_link(&self, id: &str) -> PathBuf {
        self.run_dirs.join(id).join(SHM_LINK)
    }

    /// The init process of a running container `id`, or dockerd's reason why there is none.
    fn running_pid(&self, id: &str) -> Result<i32, Missing> {
        if !self.container_dirs.join(id).is_dir() {
            return Err(Missing::NoSuchContainer);
        }
        let state = std::fs::read(self.runtime_root.join(id).join("state.json")).map_err(|_| Missing::NotRunning)?;
        let pid = serde_json::from_slice::<Value>(&state)
            .ok()
            .and_then(|s| s["pid"].as_i64())
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or(Missing::NotRunning)?;
        // The state outlives the process for a moment after an exit; a reused pid is some
        // other process, not in the container's cgroup.
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|_| Missing::NotRunning)?;
        if !cgroup.contains(id) {
            return Err(Missing::NotRunning);
        }
        Ok(pid)
    }
}

/// Why a container named by a `container:` mode cannot be joined.
#[derive(Debug, PartialEq, Eq)]
enum Missing {
    NoSuchContainer,
    NotRunning,
}

impl Missing {
    fn text(&self, id: &str) -> String {
        match self {
            Missing::NoSuchContainer => format!("No such container: {id}"),
            Missing::NotRunning => format!("container {id} is not running"),
        }
    }
}

/// Applies the namespace modes and sysctls to the spec `spec::build` made. Touches the
/// system only for joins (the other container's process) and a shareable /dev/shm.
pub fn apply(spec: &mut Value, input: &SpecInput) -> Result<(), SpecError> {
    let hc = input.host_config;
    let layout = Layout::of(input).ok_or_else(|| SpecError("container paths without parents".into()))?;
    ipc(spec, hc, input.id, &layout)?;
    pid(spec, hc, &layout)?;
    if mode(hc.uts_mode.as_deref()) == Mode::Host {
        remove_namespace(spec, "uts");
        // Without its own UTS namespace, setting these would rename the host.
        if let Some(spec) = spec.as_object_mut() {
            spec.remove("hostname");
            spec.remove("domainname");
        }
    }
    // `--userns host` (or none): berth makes no user namespace, so there is nothing to leave.
    sysctls(spec, hc)
}

fn ipc(spec: &mut Value, hc: &HostConfig, id: &str, layout: &Layout) -> Result<(), SpecError> {
    let value = hc.ipc_mode.as_deref().unwrap_or_default();
    if !ipc_mode_known(value) {
        return Err(SpecError(format!("Invalid IPC mode: {value}")));
    }
    let own_shm = layout.shm_link(id);
    let _ = std::fs::remove_file(&own_shm);
    forget_removed_shms(layout);
    match mode(Some(value)) {
        Mode::Own if value == "shareable" => {
            let mount = layout.shm_mounts.join(id);
            mount_shm(&mount, hc.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20))?;
            link_shm(&own_shm, &mount)?;
            set_shm(spec, Some(bind_shm(&mount)));
        }
        Mode::Own => {}
        Mode::NoShm => set_shm(spec, None),
        Mode::Host => {
            remove_namespace(spec, "ipc");
            link_shm(&own_shm, Path::new("/dev/shm"))?;
            set_shm(spec, Some(bind_shm(Path::new("/dev/shm"))));
        }
        Mode::Container(target) => {
            let fail = |why: String| SpecError(format!("can't join IPC of container {target}: {why}"));
            if target.is_empty() {
                return Err(fail("invalid name or ID supplied: \"\"".into()));
            }
            let pid = layout.running_pid(target).map_err(|m| fail(m.text(target)))?;
            let shared = std::fs::canonicalize(layout.shm_link(target))
                .ok()
                .filter(|p| p.is_dir())
                .ok_or_else(|| {
                    fail("non-shareable IPC (hint: use IpcMode:shareable for the donor container)".into())
                })?;
            join_namespace(spec, "ipc", pid);
            link_shm(&own_shm, &shared)?;
            set_shm(spec, Some(bind_shm(&shared)));
        }
    }
    Ok(())
}

fn pid(spec: &mut Value, hc: &HostConfig, layout: &Layout) -> Result<(), SpecError> {
    match mode(hc.pid_mode.as_deref()) {
        Mode::Host => remove_namespace(spec, "pid"),
        Mode::Container(target) => {
            let pid = match layout.running_pid(target) {
                Ok(pid) => pid,
                Err(_) if target.is_empty() => {
                    return Err(SpecError(format!(
                        "cannot join PID of a non running container: {target}: invalid name or ID supplied: \"\""
                    )))
                }
                Err(m @ Missing::NoSuchContainer) => {
                    return Err(SpecError(format!(
                        "cannot join PID of a non running container: {target}: {}",
                        m.text(target)
                    )))
                }
                Err(m) => return Err(SpecError(m.text(target))),
            };
            join_namespace(spec, "pid", pid);
        }
        Mode::Own | Mode::NoShm => {}
    }
    Ok(())
}

/// A fresh tmpfs at `path` for a shareable container's /dev/shm, as dockerd mounts one
/// (`mode=1777`, `--shm-size`, nosuid, nodev, noexec). One left from the container's last run
/// is detached first: joiners still running keep theirs, as under Docker.
fn mount_shm(path: &Path, size: i64) -> Result<(), SpecError> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let fail = |e: String| SpecError(format!("mounting shm tmpfs: {e}"));
    let _ = umount2(path, MntFlags::MNT_DETACH);
    std::fs::create_dir_all(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let data = format!("mode=1777,size={size}");
    mount(Some("shm"), path, Some("tmpfs"), flags, Some(data.as_str())).map_err(|e| fail(e.to_string()))
}

/// Detaches the /dev/shm mounts of containers that no longer exist (their joiners keep
/// theirs). Only removed containers: a stopped one may start again, and one starting now
/// cannot have been removed.
fn forget_removed_shms(layout: &Layout) {
    let Ok(entries) = std::fs::read_dir(&layout.shm_mounts) else {
        return;
    };
    for entry in entries.flatten() {
        if layout.container_dirs.join(entry.file_name()).exists() {
            continue;
        }
        release_shm(&entry.path());
    }
}

/// Detaches a removed shareable container's /dev/shm mount (`<exec-root>/shm/<id>`), so its
/// removal leaves no mount behind; joiners still running keep theirs.
pub fn release_shm(mount: &Path) {
    if !mount.exists() {
        return;
    }
    let _ = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH);
    if let Err(e) = std::fs::remove_dir(mount) {
        tracing::warn!("removing {}: {e}", mount.display());
    }
}

/// Records which /dev/shm a container sharing its IPC namespace uses, for its joiners.
fn link_shm(link: &Path, target: &Path) -> Result<(), SpecError> {
    if let Some(dir) = link.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::os::unix::fs::symlink(target, link).map_err(|e| SpecError(format!("{}: {e}", link.display())))
}

fn bind_shm(source: &Path) -> Value {
    json!({"destination": "/dev/shm", "type": "bind", "source": source, "options": ["rbind", "rprivate"]})
}

/// Replaces the /dev/shm mount (`None`: the container has none).
fn set_shm(spec: &mut Value, mount: Option<Value>) {
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.retain(|m| m["destination"] != "/dev/shm");
        mounts.extend(mount);
    }
}

fn namespaces(spec: &mut Value) -> Option<&mut Vec<Value>> {
    spec["linux"]["namespaces"].as_array_mut()
}

fn remove_namespace(spec: &mut Value, kind: &str) {
    if let Some(list) = namespaces(spec) {
        list.retain(|n| n["type"] != kind);
    }
}

fn join_namespace(spec: &mut Value, kind: &str, pid: i32) {
    if let Some(list) = namespaces(spec) {
        list.retain(|n| n["type"] != kind);
        list.push(json!({"type": kind, "path": format!("/proc/{pid}/ns/{kind}")}));
    }
}

/// runc's rule for one sysctl given the container's namespaces (as dockerd reports it).
fn sysctl_refusal(key: &str, has: &dyn Fn(&str) -> bool) -> Option<String> {
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        return (!has("ipc")).then(|| format!("sysctl \"{key}\" is not allowed in the hosts ipc namespace"));
    }
    if key.starts_with("net.") {
        // berth's network namespaces (own or another container's) are never the host's.
        return (!has("network")).then(|| format!("sysctl \"{key}\" not allowed in host network namespace"));
    }
    if has("uts") {
        match key {
            "kernel.domainname" => return None,
            "kernel.hostname" => {
                return Some(format!(
                    "sysctl \"{key}\" is not allowed as it conflicts with the OCI \"hostname\" field"
                ))
            }
            _ => {}
        }
    }
    Some(format!("sysctl \"{key}\" is not in a separate kernel namespace"))
}

/// Checks the sysctls against the final namespaces and writes them as `linux.sysctl`.
fn sysctls(spec: &mut Value, hc: &HostConfig) -> Result<(), SpecError> {
    let Some(sysctls) = hc.sysctls.as_ref().filter(|s| !s.is_empty()) else {
        return Ok(());
    };
    let kinds: Vec<String> = namespaces(spec)
        .map(|l| {
            l.iter()
                .filter_map(|n| n["type"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let has = |kind: &str| kinds.iter().any(|k| k == kind);
    let mut keys: Vec<&String> = sysctls.keys().collect();
    keys.sort();
    for key in keys {
        if let Some(why) = sysctl_refusal(key, &has) {
            return Err(SpecError(format!(
                "failed to create shim task: OCI runtime create failed: runc create failed: {why}: unknown"
            )));
        }
    }
    spec["linux"]["sysctl"] = json!(sysctls);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{HostFeatures, ProcessUser};
    use berth_api::models::ContainerConfig;
    use std::collections::HashMap;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    /// A spec made by `spec::build` with `hc`, under a temporary exec and data root.
    fn built(root: &Path, hc: &HostConfig) -> Result<Value, SpecError> {
        let paths = crate::engine::Paths::new(&root.join("data"), &root.join("exec")).unwrap();
        let config = ContainerConfig {
            hostname: Some("h".into()),
            domainname: Some("d".into()),
            ..Default::default()
        };
        let args = vec!["true".to_string()];
        let rootfs = paths.run_dir(ID).join("rootfs");
        let netns = paths.netns(ID);
        let etc = paths.container_dir(ID);
        let input = SpecInput {
            id: ID,
            config: &config,
            host_config: hc,
            args: &args,
            user: ProcessUser::default(),
            rootfs: &rootfs,
            netns: Some(&netns),
            etc_dir: &etc,
            host: HostFeatures::default(),
            init: None,
            cgroups_path: "/berth/c",
        };
        Ok(serde_json::to_value(crate::spec::build(&input)?).unwrap())
    }

    fn kinds(spec: &Value) -> Vec<String> {
        spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect()
    }

    fn shm(spec: &Value) -> Option<Value> {
        spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .cloned()
    }

    fn hc(ipc: &str, pid: &str, uts: &str) -> HostConfig {
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        HostConfig {
            ipc_mode: some(ipc),
            pid_mode: some(pid),
            uts_mode: some(uts),
            ..Default::default()
        }
    }

    #[test]
    fn layout_matches_the_engine_paths() {
        let paths = crate::engine::Paths::new(Path::new("/d"), Path::new("/e")).unwrap();
        let config = ContainerConfig::default();
        let hc = HostConfig::default();
        let rootfs = paths.run_dir(ID).join("rootfs");
        let etc = paths.container_dir(ID);
        let input = SpecInput {
            id: ID,
            config: &config,
            host_config: &hc,
            args: &[],
            user: ProcessUser::default(),
            rootfs: &rootfs,
            netns: None,
            etc_dir: &etc,
            host: HostFeatures::default(),
            init: None,
            cgroups_path: "/",
        };
        let layout = Layout::of(&input).unwrap();
        assert_eq!(layout.runtime_root, paths.runtime_root());
        assert_eq!(layout.run_dirs.join("x"), paths.run_dir("x"));
        assert_eq!(layout.container_dirs.join("x"), paths.container_dir("x"));
    }

    #[test]
    fn private_is_the_default_and_host_modes_leave_namespaces() {
        let root = tempfile::tempdir().unwrap();
        let own = built(root.path(), &HostConfig::default()).unwrap();
        assert_eq!(kinds(&own), ["pid", "ipc", "uts", "mount", "network"]);
        assert_eq!(shm(&own).unwrap()["type"], "tmpfs");
        let host = built(root.path(), &hc("host", "host", "host")).unwrap();
        assert_eq!(kinds(&host), ["mount", "network"]);
        assert_eq!(shm(&host).unwrap()["source"], "/dev/shm");
        assert!(host.get("hostname").is_none() && host.get("domainname").is_none());
        let none = built(root.path(), &hc("none", "", "")).unwrap();
        assert!(kinds(&none).contains(&"ipc".to_string()));
        assert!(shm(&none).is_none());
    }

    #[test]
    fn shareable_mounts_a_tmpfs_others_can_find() {
        let root = tempfile::tempdir().unwrap();
        let h = HostConfig {
            shm_size: Some(1 << 20),
            ..hc("shareable", "", "")
        };
        let spec = built(root.path(), &h);
        let mount = root.path().join("exec/shm").join(ID);
        let mounted = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(mount.to_str().unwrap()))
            .map(str::to_string);
        let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
        assert_eq!(shm(&spec.unwrap()).unwrap()["source"], mount.display().to_string());
        let mounted = mounted.expect("a tmpfs on the host");
        assert!(
            mounted.contains(" - tmpfs shm ") && mounted.contains("size=1024k"),
            "{mounted}"
        );
        assert!(mounted.contains("nosuid,nodev,noexec"), "{mounted}");
        let link = root.path().join("exec/containers").join(ID).join("shm");
        assert_eq!(std::fs::read_link(link).unwrap(), mount);
    }

    #[test]
    fn removed_owners_lose_their_host_mount() {
        let root = tempfile::tempdir().unwrap();
        let gone = root.path().join("exec/shm/gone");
        let kept = root.path().join("exec/shm/kept");
        std::fs::create_dir_all(&gone).unwrap();
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::create_dir_all(root.path().join("data/containers/kept")).unwrap();
        built(root.path(), &HostConfig::default()).unwrap();
        assert!(!gone.exists() && kept.exists());
    }

    #[test]
    fn joins_need_a_running_shareable_container() {
        let root = tempfile::tempdir().unwrap();
        let err = |hc: &HostConfig| built(root.path(), hc).unwrap_err().0;
        let other = "fedcba";
        assert_eq!(
            err(&hc(&format!("container:{other}"), "", "")),
            format!("can't join IPC of container {other}: No such container: {other}")
        );
        assert_eq!(
            err(&hc("", &format!("container:{other}"), "")),
            format!("cannot join PID of a non running container: {other}: No such container: {other}")
        );
        std::fs::create_dir_all(root.path().join("data/containers").join(other)).unwrap();
        assert_eq!(
            err(&hc(&format!("container:{other}"), "", "")),
            format!("can't join IPC of container {other}: container {other} is not running")
        );
        assert_eq!(
            err(&hc("", &format!("container:{other}"), "")),
            format!("container {other} is not running")
        );
        assert_eq!(
            err(&hc("container:", "", "")),
            "can't join IPC of container : invalid name or ID supplied: \"\""
        );
        assert_eq!(err(&hc("bogus", "", "")), "Invalid IPC mode: bogus");
    }

    #[test]
    fn create_checks_follow_dockerd() {
        let find = |n: &str| (n == "web").then(|| "abc123".to_string());
        let mut h = hc("container:web", "container:web", "");
        check_create(&mut h, None, find).unwrap();
        assert_eq!(h.ipc_mode.as_deref(), Some("container:abc123"));
        assert_eq!(h.pid_mode.as_deref(), Some("container:abc123"));
        let mut h = HostConfig::default();
        check_create(&mut h, None, find).unwrap();
        assert_eq!(h.ipc_mode.as_deref(), Some("private"));
        assert_eq!(
            check_create(&mut hc("", "container:db", ""), None, find).unwrap_err(),
            "No such container: db"
        );
        assert_eq!(
            check_create(&mut hc("", "", "host"), Some("x"), find).unwrap_err(),
            "conflicting options: hostname and the UTS mode"
        );
        // Unknown modes are dockerd's start-time business (or none at all).
        check_create(&mut hc("bogus", "bogus", "bogus"), Some("x"), find).unwrap();
    }

    #[test]
    fn sysctls_follow_runc_rules() {
        let root = tempfile::tempdir().unwrap();
        let with = |pairs: &[(&str, &str)], ipc: &str, uts: &str| {
            let mut h = hc(ipc, "", uts);
            h.sysctls = Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<HashMap<_, _>>(),
            );
            built(root.path(), &h)
        };
        let ok = with(
            &[
                ("net.ipv4.ip_forward", "1"),
                ("kernel.shmmax", "9"),
                ("kernel.domainname", "x"),
            ],
            "",
            "",
        )
        .unwrap();
        assert_eq!(ok["linux"]["sysctl"]["kernel.shmmax"], "9");
        let refused = |pairs: &[(&str, &str)], ipc: &str, uts: &str| {
            let e = with(pairs, ipc, uts).unwrap_err().0;
            let inner = e
                .strip_prefix("failed to create shim task: OCI runtime create failed: runc create failed: ")
                .unwrap();
            inner.strip_suffix(": unknown").unwrap().to_string()
        };
        assert_eq!(
            refused(&[("kernel.shmmax", "1")], "host", ""),
            "sysctl \"kernel.shmmax\" is not allowed in the hosts ipc namespace"
        );
        assert_eq!(
            refused(&[("fs.mqueue.msg_max", "1")], "host", ""),
            "sysctl \"fs.mqueue.msg_max\" is not allowed in the hosts ipc namespace"
        );
        assert_eq!(
            refused(&[("vm.swappiness", "1")], "", ""),
            "sysctl \"vm.swappiness\" is not in a separate kernel namespace"
        );
        assert_eq!(
            refused(&[("kernel.hostname", "1")], "", ""),
            "sysctl \"kernel.hostname\" is not allowed as it conflicts with the OCI \"hostname\" field"
        );
        assert_eq!(
            refused(&[("kernel.domainname", "1")], "", "host"),
            "sysctl \"kernel.domainname\" is not in a separate kernel namespace"
        );
        let no_net = |key: &str| sysctl_refusal(key, &|k| k != "network");
        assert_eq!(
            no_net("net.ipv4.ip_forward").unwrap(),
            "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"
        );
    }
}
