//! Docker's checks of a container's resource limits against this host, at create and at
//! update: values the host cannot honour are dropped with a warning, invalid ones refused.

use crate::spec::MIN_MEMORY;
use berth_api::models::HostConfig;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
