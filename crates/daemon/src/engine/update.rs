//! `update`: new resource limits (and restart policy) for an existing container.
//!
//! As in Docker, the request's values are checked against the host, merged into the record
//! (a zero means "keep"), and, while the container runs, written into its cgroup by the shim;
//! a stopped container gets them at its next start, from the record.

use super::{lock, shim, Container, Engine, Error, Result};
use crate::spec::MIN_MEMORY;
use crate::state::Status;
use berth_api::models::{HostConfig, RestartPolicyNameEnum};
use berth_runtime::protocol::Request;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};
use std::path::Path;

/// An update request: the resource fields of a `HostConfig` (the update body has the same
/// names) and `RestartPolicy`, plus `KernelMemory`, which the API models no longer carry.
#[derive(Debug, Default)]
pub struct UpdateRequest {
    pub resources: HostConfig,
    pub kernel_memory: i64,
}

impl Engine {
    /// `POST /containers/{id}/update`; returns Docker's warnings.
    pub async fn update(&self, name: &str, mut req: UpdateRequest) -> Result<Vec<String>> {
        let c = self.container(name)?;
        let host = HostResources::probe(Path::new("/sys/fs/cgroup"));
        let warnings = verify(&mut req.resources, req.kernel_memory, &host)
            .map_err(Error::InvalidParameter)?;
        // restart policy validated by super::restart::validate (names and retry counts, as at
        // create); AutoRemove is checked against the container's own setting in `merge`.
        super::restart::validate(req.resources.restart_policy.as_ref(), false)?;

        let _op = c.op.lock().await;
        let rec = c.snapshot();
        let cannot = |why: &str| format!("Cannot update container {}: {why}", rec.id);
        if matches!(rec.state.status, Status::Removing | Status::Dead) {
            return Err(Error::Internal(cannot(
                "container is marked for removal and cannot be \"update\"",
            )));
        }
        let merged =
            merge(&rec.host_config, &req.resources).map_err(|why| Error::Conflict(cannot(&why)))?;
        // A paused container runs too: its cgroup takes the limits while frozen.
        if rec.state.status == Status::Running && !rec.state.restarting {
            let resources = live_resources(&req.resources, host.swap_limit)
                .map_err(|e| Error::Internal(cannot(&e)))?;
            shim::call(&self.paths.run_dir(&rec.id), &Request::Update { resources })
                .await
                .map_err(|e| Error::Internal(cannot(&e.to_string())))?;
        }
        self.set_host_config(&c, merged)?;
        self.container_event(&rec, "update", &[]);
        Ok(warnings)
    }

    /// Stores the merged host config on the current record, under its lock, so a concurrent
    /// exit's state is kept.
    fn set_host_config(&self, c: &Container, hc: HostConfig) -> Result<()> {
        let mut current = lock(&c.rec);
        let mut rec = current.clone();
        rec.host_config = hc;
        self.records.save(&rec)?;
        *current = rec;
        Ok(())
    }
}

/// What the host's cgroups offer, as Docker's `sysinfo` sees it.
#[derive(Debug, Clone)]
pub struct HostResources {
    /// CPUs this daemon may run on.
    pub ncpu: usize,
    /// The cpuset controller is there.
    pub cpuset: bool,
    /// CPUs and memory nodes containers may be given, as cpuset lists (`0-3`).
    pub cpus: String,
    pub mems: String,
    /// The memory controller limits swap (`memory.memsw.*` on v1; v2 always does).
    pub swap_limit: bool,
    /// The block I/O controller takes a weight (needs a weight-based I/O scheduler on v1).
    pub blkio_weight: bool,
}

impl HostResources {
    /// Reads the facts from the cgroup mount at `root` (`/sys/fs/cgroup`).
    pub fn probe(root: &Path) -> HostResources {
        let read = |p: &str| {
            std::fs::read_to_string(root.join(p))
                .map(|s| s.trim().to_string())
                .ok()
        };
        let ncpu = online_cpus();
        if let Some(controllers) = read("cgroup.controllers") {
            // Pure v2: the root lists what children may enable.
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            return HostResources {
                ncpu,
                cpuset: has("cpuset"),
                cpus: read("cpuset.cpus.effective").unwrap_or_default(),
                mems: read("cpuset.mems.effective").unwrap_or_default(),
                swap_limit: has("memory"),
                blkio_weight: has("io"),
            };
        }
        let cpus = read("cpuset/cpuset.cpus");
        HostResources {
            ncpu,
            cpuset: cpus.is_some(),
            cpus: cpus.unwrap_or_default(),
            mems: read("cpuset/cpuset.mems").unwrap_or_default(),
            swap_limit: root.join("memory/memory.memsw.limit_in_bytes").exists(),
            blkio_weight: root.join("blkio/blkio.weight").exists()
                || root.join("blkio/blkio.bfq.weight").exists(),
        }
    }
}

/// How many CPUs this process may use, as Go's `runtime.NumCPU` counts them.
fn online_cpus() -> usize {
    // SAFETY: cpu_set_t is plain data, zero is a valid empty set, and sched_getaffinity writes
    // at most size_of::<cpu_set_t>() bytes into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            return libc::CPU_COUNT(&set).max(1) as usize;
        }
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Docker's checks of an update's resource values (`verifyPlatformContainerResources` with
/// `update` set). Values the host cannot honour are dropped with a warning, as Docker does;
/// invalid values are an error (HTTP 400).
pub fn verify(
    r: &mut HostConfig,
    kernel_memory: i64,
    host: &HostResources,
) -> std::result::Result<Vec<String>, String> {
    crate::spec::validate_resources(r).map_err(|e| e.0)?;
    let mut warnings = Vec::new();
    let mut warn = |w: &str| warnings.push(w.to_string());
    let memory = r.memory.unwrap_or(0);
    if memory > 0 && r.memory_swap.unwrap_or(0) != -1 && !host.swap_limit {
        warn("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.");
        r.memory_swap = Some(-1);
    }
    let swap = r.memory_swap.unwrap_or(0);
    if memory > 0 && swap > 0 && swap < memory {
        return Err(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    let reservation = r.memory_reservation.unwrap_or(0);
    if reservation > 0 && reservation < MIN_MEMORY {
        return Err("Minimum memory reservation allowed is 6MB".into());
    }
    if memory > 0 && reservation > 0 && memory < reservation {
        return Err(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        );
    }
    // Kernel memory limits are deprecated (kernel 5.4) and ignored by runtimes; Docker checks
    // and warns but nothing applies them.
    if kernel_memory != 0 {
        warn("Specifying a kernel memory limit is deprecated and will be removed in a future release.");
    }
    if kernel_memory > 0 && kernel_memory < MIN_MEMORY {
        return Err("Minimum kernel memory limit allowed is 6MB".into());
    }

    let nano = r.nano_cpus.unwrap_or(0);
    let (period, quota) = (r.cpu_period.unwrap_or(0), r.cpu_quota.unwrap_or(0));
    if nano > 0 && period > 0 {
        return Err("Conflicting options: Nano CPUs and CPU Period cannot both be set".into());
    }
    if nano > 0 && quota > 0 {
        return Err("Conflicting options: Nano CPUs and CPU Quota cannot both be set".into());
    }
    if nano < 0 || nano > host.ncpu as i64 * 1_000_000_000 {
        return Err(format!(
            "Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available",
            n = host.ncpu
        ));
    }
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return Err(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                .into(),
        );
    }
    if quota > 0 && quota < 1000 {
        return Err("CPU cfs quota can not be less than 1ms (i.e. 1000)".into());
    }

    let given = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if (given(&r.cpuset_cpus) || given(&r.cpuset_mems)) && !host.cpuset {
        warn("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.");
        r.cpuset_cpus = None;
        r.cpuset_mems = None;
    }
    for (list, available, what, unit) in [
        (&r.cpuset_cpus, &host.cpus, "cpus", "CPUs"),
        (&r.cpuset_mems, &host.mems, "mems", "memory nodes"),
    ] {
        let Some(list) = list.as_deref().filter(|l| !l.is_empty()) else {
            continue;
        };
        match cpuset_available(list, available) {
            Err(e) => return Err(format!("Invalid value {list} for cpuset {what}: {e}")),
            Ok(false) => {
                return Err(format!(
                    "Requested {unit} are not available - requested {list}, available: {available}"
                ))
            }
            Ok(true) => {}
        }
    }

    if r.blkio_weight.unwrap_or(0) > 0 && !host.blkio_weight {
        warn("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.");
        r.blkio_weight = None;
    }
    if r.blkio_weight
        .is_some_and(|w| w > 0 && !(10..=1000).contains(&w))
    {
        return Err("Range of blkio weight is from 10 to 1000".into());
    }
    Ok(warnings)
}

/// Docker's `ParseUintList`: `0-2,4` → the numbers; `max` bounds them (0 = no bound).
fn parse_cpuset(list: &str, max: u64) -> std::result::Result<Vec<u64>, String> {
    let invalid = || format!("invalid format: {list}");
    let mut out = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.parse::<u64>().map_err(|_| invalid())?,
                hi.parse::<u64>().map_err(|_| invalid())?,
            ),
            None => {
                let n = part.parse::<u64>().map_err(|_| invalid())?;
                (n, n)
            }
        };
        if hi < lo {
            return Err(invalid());
        }
        if max != 0 && hi > max {
            return Err(format!("value of out range, maximum is {max}"));
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

/// Whether every CPU (or memory node) of `requested` is in `available`.
fn cpuset_available(requested: &str, available: &str) -> std::result::Result<bool, String> {
    let available = if available.is_empty() {
        Vec::new()
    } else {
        parse_cpuset(available, 0)?
    };
    // Linux's usual maximum, or more when the host really has more.
    let max = available.iter().copied().max().unwrap_or(0).max(8192);
    let requested = parse_cpuset(requested, max)?;
    Ok(requested.iter().all(|n| available.contains(n)))
}

/// The container's settings after the update: Docker's `UpdateContainer`. A zero (or absent)
/// value keeps the current one; an error is a conflict with what is set already.
pub fn merge(current: &HostConfig, req: &HostConfig) -> std::result::Result<HostConfig, String> {
    let n = |v: Option<i64>| v.unwrap_or(0);
    let mut hc = current.clone();
    // Docker stores the swap limit a memory limit implies (twice the memory) at create; berth
    // derives it when the spec is built. It is written down before the memory can change.
    if n(hc.memory) > 0 && n(hc.memory_swap) == 0 {
        hc.memory_swap = Some(n(hc.memory) * 2);
    }
    let nano = n(req.nano_cpus);
    if nano > 0 && n(hc.cpu_period) > 0 {
        return Err(
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"
                .into(),
        );
    }
    if nano > 0 && n(hc.cpu_quota) > 0 {
        return Err(
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"
                .into(),
        );
    }
    if n(req.cpu_period) > 0 && n(hc.nano_cpus) > 0 {
        return Err(
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"
                .into(),
        );
    }
    if n(req.cpu_quota) > 0 && n(hc.nano_cpus) > 0 {
        return Err(
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
                .into(),
        );
    }
    let keep_or = |new: Option<i64>, old: Option<i64>| if n(new) != 0 { new } else { old };
    hc.blkio_weight = if req.blkio_weight.unwrap_or(0) != 0 {
        req.blkio_weight
    } else {
        hc.blkio_weight
    };
    hc.cpu_shares = keep_or(req.cpu_shares, hc.cpu_shares);
    hc.nano_cpus = keep_or(req.nano_cpus, hc.nano_cpus);
    hc.cpu_period = keep_or(req.cpu_period, hc.cpu_period);
    hc.cpu_quota = keep_or(req.cpu_quota, hc.cpu_quota);
    for (new, old) in [
        (&req.cpuset_cpus, &mut hc.cpuset_cpus),
        (&req.cpuset_mems, &mut hc.cpuset_mems),
    ] {
        if new.as_deref().is_some_and(|s| !s.is_empty()) {
            old.clone_from(new);
        }
    }
    if n(req.memory) != 0 {
        // Docker's wording, though the check is that the memory exceeds the swap limit.
        if n(req.memory) > n(hc.memory_swap) && n(req.memory_swap) == 0 {
            return Err("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into());
        }
        hc.memory = req.memory;
    }
    hc.memory_swap = keep_or(req.memory_swap, hc.memory_swap);
    hc.memory_reservation = keep_or(req.memory_reservation, hc.memory_reservation);
    if req.pids_limit.is_some() {
        hc.pids_limit = req.pids_limit;
    }
    if let Some(policy) = req
        .restart_policy
        .as_ref()
        .filter(|p| p.name.is_some_and(|n| n != RestartPolicyNameEnum::EMPTY))
    {
        let none = policy.name == Some(RestartPolicyNameEnum::NO);
        if current.auto_remove == Some(true) && !none {
            return Err(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            );
        }
        hc.restart_policy = Some(policy.clone());
    }
    Ok(hc)
}

/// The limits to write into a running container's cgroup: only what the request changes
/// (Docker's `toContainerdResources`, where a zero leaves a value alone).
fn live_resources(r: &HostConfig, swap_limit: bool) -> std::result::Result<LinuxResources, String> {
    let n = |v: Option<i64>| v.unwrap_or(0);
    let mut out = Map::new();
    let mut memory = Map::new();
    if n(r.memory) != 0 {
        memory.insert("limit".into(), json!(n(r.memory)));
    }
    if n(r.memory_reservation) != 0 {
        memory.insert("reservation".into(), json!(n(r.memory_reservation)));
    }
    if n(r.memory_swap) != 0 && swap_limit {
        memory.insert("swap".into(), json!(n(r.memory_swap)));
    }
    let mut cpu = Map::new();
    if n(r.cpu_shares) != 0 {
        cpu.insert("shares".into(), json!(n(r.cpu_shares)));
    }
    const PERIOD: i64 = 100_000;
    if n(r.nano_cpus) != 0 {
        cpu.insert("period".into(), json!(PERIOD));
        cpu.insert(
            "quota".into(),
            json!(n(r.nano_cpus) * PERIOD / 1_000_000_000),
        );
    } else {
        if n(r.cpu_period) != 0 {
            cpu.insert("period".into(), json!(n(r.cpu_period)));
        }
        if n(r.cpu_quota) != 0 {
            cpu.insert("quota".into(), json!(n(r.cpu_quota)));
        }
    }
    for (key, list) in [("cpus", &r.cpuset_cpus), ("mems", &r.cpuset_mems)] {
        if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
            cpu.insert(key.into(), json!(list));
        }
    }
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(limit) = r.pids_limit {
        // Zero and negative values both mean "no limit" in Docker's API.
        out.insert(
            "pids".into(),
            json!({"limit": if limit > 0 { limit } else { -1 }}),
        );
    }
    if let Some(weight) = r.blkio_weight.filter(|w| *w != 0) {
        out.insert("blockIO".into(), json!({"weight": weight}));
    }
    serde_json::from_value(Value::Object(out)).map_err(|e| format!("invalid resources: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::RestartPolicy;

    const MB: i64 = 1 << 20;

    fn host() -> HostResources {
        HostResources {
            ncpu: 2,
            cpuset: true,
            cpus: "0-1".into(),
            mems: "0".into(),
            swap_limit: true,
            blkio_weight: true,
        }
    }

    fn check(r: HostConfig) -> std::result::Result<Vec<String>, String> {
        verify(&mut r.clone(), 0, &host())
    }

    #[test]
    fn verify_uses_dockers_messages() {
        let err = |r: HostConfig| check(r).unwrap_err();
        assert_eq!(
            err(HostConfig {
                memory: Some(4 * MB),
                ..Default::default()
            }),
            "Minimum memory limit allowed is 6MB"
        );
        assert_eq!(
            err(HostConfig {
                memory: Some(100 * MB),
                memory_swap: Some(50 * MB),
                ..Default::default()
            }),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert_eq!(
            err(HostConfig {
                memory_reservation: Some(MB),
                ..Default::default()
            }),
            "Minimum memory reservation allowed is 6MB"
        );
        assert_eq!(
            err(HostConfig {
                memory: Some(64 * MB),
                memory_reservation: Some(128 * MB),
                ..Default::default()
            }),
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        );
        assert_eq!(
            err(HostConfig {
                nano_cpus: Some(500_000_000),
                cpu_period: Some(1000),
                ..Default::default()
            }),
            "Conflicting options: Nano CPUs and CPU Period cannot both be set"
        );
        assert_eq!(
            err(HostConfig {
                nano_cpus: Some(100_000_000_000),
                ..Default::default()
            }),
            "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"
        );
        assert_eq!(
            err(HostConfig {
                cpu_period: Some(500),
                ..Default::default()
            }),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        );
        assert_eq!(
            err(HostConfig {
                cpu_quota: Some(500),
                ..Default::default()
            }),
            "CPU cfs quota can not be less than 1ms (i.e. 1000)"
        );
        assert_eq!(
            err(HostConfig {
                cpuset_cpus: Some("5".into()),
                ..Default::default()
            }),
            "Requested CPUs are not available - requested 5, available: 0-1"
        );
        assert_eq!(
            err(HostConfig {
                cpuset_mems: Some("3".into()),
                ..Default::default()
            }),
            "Requested memory nodes are not available - requested 3, available: 0"
        );
        assert_eq!(
            err(HostConfig {
                cpuset_cpus: Some("a".into()),
                ..Default::default()
            }),
            "Invalid value a for cpuset cpus: invalid format: a"
        );
        assert_eq!(
            err(HostConfig {
                cpuset_cpus: Some("0-".into()),
                ..Default::default()
            }),
            "Invalid value 0- for cpuset cpus: invalid format: 0-"
        );
        assert_eq!(
            err(HostConfig {
                cpuset_cpus: Some("9000".into()),
                ..Default::default()
            }),
            "Invalid value 9000 for cpuset cpus: value of out range, maximum is 8192"
        );
        assert_eq!(
            err(HostConfig {
                blkio_weight: Some(5),
                ..Default::default()
            }),
            "Range of blkio weight is from 10 to 1000"
        );
        assert_eq!(
            verify(&mut HostConfig::default(), MB, &host()).unwrap_err(),
            "Minimum kernel memory limit allowed is 6MB"
        );
        assert!(check(HostConfig {
            cpuset_cpus: Some("0,1".into()),
            cpuset_mems: Some("0".into()),
            ..Default::default()
        })
        .unwrap()
        .is_empty());
    }

    #[test]
    fn verify_drops_what_the_host_cannot_do() {
        let poor = HostResources {
            cpuset: false,
            swap_limit: false,
            blkio_weight: false,
            ..host()
        };
        let mut r = HostConfig {
            memory: Some(64 * MB),
            blkio_weight: Some(500),
            cpuset_cpus: Some("0".into()),
            ..Default::default()
        };
        let warnings = verify(&mut r, 10 * MB, &poor).unwrap();
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings[0].starts_with("Your kernel does not support swap limit"));
        assert!(warnings[1].starts_with("Specifying a kernel memory limit is deprecated"));
        assert_eq!(r.memory_swap, Some(-1));
        assert_eq!((r.blkio_weight, r.cpuset_cpus), (None, None));
    }

    #[test]
    fn merge_follows_docker() {
        let running = HostConfig {
            memory: Some(64 * MB),
            nano_cpus: Some(500_000_000),
            ..Default::default()
        };
        // The implied swap (2x) is written down; memory within it may change alone.
        let hc = merge(
            &running,
            &HostConfig {
                memory: Some(100 * MB),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (hc.memory, hc.memory_swap),
            (Some(100 * MB), Some(128 * MB))
        );
        assert_eq!(
            hc.nano_cpus,
            Some(500_000_000),
            "zero keeps the current value"
        );
        assert_eq!(
            merge(&running, &HostConfig { memory: Some(300 * MB), ..Default::default() }).unwrap_err(),
            "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
        );
        let hc = merge(
            &running,
            &HostConfig {
                memory: Some(300 * MB),
                memory_swap: Some(-1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((hc.memory, hc.memory_swap), (Some(300 * MB), Some(-1)));
        // Without a memory limit there is no swap limit to stay under: Docker refuses too.
        assert!(merge(
            &HostConfig::default(),
            &HostConfig {
                memory: Some(64 * MB),
                ..Default::default()
            }
        )
        .is_err());
        assert_eq!(
            merge(
                &running,
                &HostConfig {
                    cpu_quota: Some(50_000),
                    ..Default::default()
                }
            )
            .unwrap_err(),
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
        );
        let quota = HostConfig {
            cpu_period: Some(100_000),
            ..Default::default()
        };
        assert_eq!(
            merge(
                &quota,
                &HostConfig {
                    nano_cpus: Some(1),
                    ..Default::default()
                }
            )
            .unwrap_err(),
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"
        );
        let hc = merge(
            &running,
            &HostConfig {
                pids_limit: Some(-1),
                cpuset_cpus: Some("0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (hc.pids_limit, hc.cpuset_cpus.as_deref()),
            (Some(-1), Some("0"))
        );
    }

    #[test]
    fn restart_policy_is_stored_unless_auto_remove() {
        let always = RestartPolicy {
            name: Some(RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        };
        let req = HostConfig {
            restart_policy: Some(always.clone()),
            ..Default::default()
        };
        assert_eq!(
            merge(&HostConfig::default(), &req).unwrap().restart_policy,
            Some(always)
        );
        let rm = HostConfig {
            auto_remove: Some(true),
            ..Default::default()
        };
        assert_eq!(
            merge(&rm, &req).unwrap_err(),
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        );
        let empty = RestartPolicy {
            name: Some(RestartPolicyNameEnum::EMPTY),
            maximum_retry_count: Some(0),
        };
        let kept = HostConfig {
            restart_policy: req.restart_policy.clone(),
            ..Default::default()
        };
        let hc = merge(
            &kept,
            &HostConfig {
                restart_policy: Some(empty),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            hc.restart_policy, req.restart_policy,
            "an empty name keeps the policy"
        );
    }

    #[test]
    fn live_resources_carry_only_changes() {
        let r = HostConfig {
            memory: Some(64 * MB),
            pids_limit: Some(0),
            nano_cpus: Some(1_500_000_000),
            ..Default::default()
        };
        let v = serde_json::to_value(live_resources(&r, true).unwrap()).unwrap();
        assert_eq!(v["memory"]["limit"], 64 * MB);
        assert!(v["memory"].get("swap").is_none());
        assert_eq!(v["pids"]["limit"], -1);
        assert_eq!(
            (v["cpu"]["period"].as_i64(), v["cpu"]["quota"].as_i64()),
            (Some(100_000), Some(150_000))
        );
        assert!(v.get("blockIO").is_none() && v["cpu"].get("shares").is_none());
        let r = HostConfig {
            memory_swap: Some(-1),
            cpuset_cpus: Some("1".into()),
            ..Default::default()
        };
        let v = serde_json::to_value(live_resources(&r, true).unwrap()).unwrap();
        assert_eq!(
            (v["memory"]["swap"].as_i64(), v["cpu"]["cpus"].as_str()),
            (Some(-1), Some("1"))
        );
        let v = serde_json::to_value(live_resources(&r, false).unwrap()).unwrap();
        assert!(
            v["memory"].get("swap").is_none(),
            "no swap accounting, no swap limit"
        );
    }

    #[test]
    fn probes_v1_and_v2_layouts() {
        let v1 = tempfile::tempdir().unwrap();
        for (file, text) in [
            ("cpuset/cpuset.cpus", "0-3\n"),
            ("cpuset/cpuset.mems", "0\n"),
            (
                "memory/memory.memsw.limit_in_bytes",
                "9223372036854771712\n",
            ),
            ("blkio/blkio.throttle.read_bps_device", ""),
        ] {
            let p = v1.path().join(file);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let h = HostResources::probe(v1.path());
        assert!(h.cpuset && h.swap_limit && !h.blkio_weight);
        assert_eq!((h.cpus.as_str(), h.mems.as_str()), ("0-3", "0"));

        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(
            v2.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        std::fs::write(v2.path().join("cpuset.cpus.effective"), "0-7\n").unwrap();
        std::fs::write(v2.path().join("cpuset.mems.effective"), "0-1\n").unwrap();
        let h = HostResources::probe(v2.path());
        assert!(h.cpuset && h.swap_limit && h.blkio_weight);
        assert_eq!((h.cpus.as_str(), h.mems.as_str()), ("0-7", "0-1"));
        std::fs::write(v2.path().join("cgroup.controllers"), "cpu pids\n").unwrap();
        let h = HostResources::probe(v2.path());
        assert!(!h.cpuset && !h.swap_limit && !h.blkio_weight);
    }
}
