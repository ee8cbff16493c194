//! `stats`: a container's resource usage as Docker's `StatsJSON`, read from its cgroup
//! (`berth_runtime::cgroup_stats`), once or every second.
//!
//! Each frame carries the previous frame's CPU figures (`precpu_stats`, `preread`) so that
//! clients can compute CPU % from the difference, as Docker's stream does.

use super::{lock, Container, Engine, Error, Result};
use crate::state::{Status, ZERO_TIME};
use berth_api::models::{
    ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
    ContainerMemoryStats, ContainerNetworkStats, ContainerPidsStats, ContainerStatsResponse,
    ContainerStorageStats, ContainerThrottlingData,
};
use berth_runtime::cgroup_stats::{self, BlkioEntry, Cgroup, CgroupStats, NetDev, Version};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Where cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How often a stream sends a frame, as Docker's stats collector does.
const STREAM_INTERVAL: Duration = Duration::from_secs(1);

/// The time between the two readings behind a `stream=false` answer.
///
/// Docker answers `stream=false` with the second frame of its once-a-second collector, so
/// that `precpu_stats` is set and the client can compute CPU %; every call then takes 1 to
/// 2 seconds, and `docker stats --no-stream` for many containers as long. berth reads the
/// cgroup twice, this far apart, instead. Keeping a recent reading per container to answer
/// at once was the other choice, but it would be stale or missing exactly when a one-off
/// `stats --no-stream` asks, and it needs a cache shared between requests; a short window
/// costs a quarter second, whatever else is running, and is always fresh. The window is
/// long enough for `/proc/stat`, which counts in 10 ms ticks, to put the CPU % within a
/// few points of the truth.
const NO_STREAM_WINDOW: Duration = Duration::from_millis(250);

/// The v1 `memory.stat` keys Docker reports, each present (0 when the kernel has none).
const V1_MEMORY_KEYS: [&str; 32] = [
    "cache",
    "rss",
    "rss_huge",
    "mapped_file",
    "dirty",
    "writeback",
    "pgpgin",
    "pgpgout",
    "pgfault",
    "pgmajfault",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "total_cache",
    "total_rss",
    "total_rss_huge",
    "total_mapped_file",
    "total_dirty",
    "total_writeback",
    "total_pgpgin",
    "total_pgpgout",
    "total_pgfault",
    "total_pgmajfault",
    "total_inactive_anon",
    "total_active_anon",
    "total_inactive_file",
    "total_active_file",
    "total_unevictable",
];

/// The v2 `memory.stat` keys Docker reports.
const V2_MEMORY_KEYS: [&str; 31] = [
    "anon",
    "file",
    "kernel_stack",
    "slab",
    "sock",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "pgfault",
    "pgmajfault",
    "workingset_refault",
    "workingset_activate",
    "workingset_nodereclaim",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "thp_fault_alloc",
    "thp_collapse_alloc",
];

/// The frames of one `GET /containers/{id}/stats` request.
pub struct StatsFeed {
    container: Arc<Container>,
    stream: bool,
    one_shot: bool,
    /// The last frame's `read` and `cpu_stats`, which the next frame carries as `pre…`.
    previous: Option<(String, ContainerCpuStats)>,
    ticker: Option<tokio::time::Interval>,
    done: bool,
}

impl Engine {
    /// Stats of container `name`: one frame unless `stream`; `one_shot` (without `stream`)
    /// answers with a single reading and no `precpu_stats`, as Docker does.
    pub fn stats(&self, name: &str, stream: bool, one_shot: bool) -> Result<StatsFeed> {
        let container = self.container(name)?;
        if stream && one_shot {
            return Err(Error::InvalidParameter(
                "cannot have stream=true and one-shot=true".into(),
            ));
        }
        Ok(StatsFeed {
            container,
            stream,
            one_shot,
            previous: None,
            ticker: None,
            done: false,
        })
    }
}

impl StatsFeed {
    /// The next frame, or `None` once the answer is complete: after the one frame of a
    /// `stream=false` request, or when a streamed container is removed. A container that
    /// is not running gets Docker's empty frame (zeroes, and its name and ID), every second
    /// while streamed.
    pub async fn next(&mut self) -> Option<ContainerStatsResponse> {
        if self.done {
            return None;
        }
        if !self.stream {
            self.done = true;
            return Some(self.single().await);
        }
        let ticker = self.ticker.get_or_insert_with(|| {
            let mut t = tokio::time::interval(STREAM_INTERVAL);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        ticker.tick().await;
        if self.container.events.borrow().removed {
            self.done = true;
            return None;
        }
        let reading = self.read().await;
        Some(self.chain(reading))
    }

    /// The one frame of a `stream=false` request.
    async fn single(&mut self) -> ContainerStatsResponse {
        let first = self.read().await;
        if first.is_none() || self.one_shot {
            return self.chain(first);
        }
        self.chain(first);
        tokio::time::sleep(NO_STREAM_WINDOW).await;
        let second = self.read().await;
        self.chain(second)
    }

    /// Completes a reading (or the empty frame when there is none) with the name, ID and
    /// the previous frame's CPU figures, and remembers it for the next.
    fn chain(&mut self, reading: Option<ContainerStatsResponse>) -> ContainerStatsResponse {
        let (id, name) = {
            let rec = lock(&self.container.rec);
            (rec.id.clone(), rec.name.clone())
        };
        let mut frame = reading.unwrap_or_else(empty_frame);
        frame.id = Some(id);
        frame.name = Some(format!("/{name}"));
        let (preread, precpu) = self
            .previous
            .take()
            .unwrap_or_else(|| (ZERO_TIME.to_string(), zero_cpu()));
        frame.preread = Some(preread);
        frame.precpu_stats = Some(precpu);
        self.previous = Some((
            frame.read.clone().unwrap_or_else(|| ZERO_TIME.into()),
            frame.cpu_stats.clone().unwrap_or_else(zero_cpu),
        ));
        frame
    }

    /// Reads the running container's cgroup; `None` when it is not running (or stopped
    /// while being read), which Docker answers with an empty frame.
    async fn read(&self) -> Option<ContainerStatsResponse> {
        let (cgroups_path, pid, host_network) = {
            let rec = lock(&self.container.rec);
            if rec.state.status != Status::Running || rec.state.pid <= 0 {
                return None;
            }
            let host_network = rec.host_config.network_mode.as_deref() == Some("host");
            let cgroups_path = crate::cgroup_path::container_cgroup(&rec.id, rec.host_config.cgroup_parent.as_deref());
            (cgroups_path, rec.state.pid as u32, host_network)
        };
        let reading = tokio::task::spawn_blocking(move || read_frame(&cgroups_path, pid, host_network)).await;
        match reading {
            Ok(Ok(frame)) => Some(frame),
            Ok(Err(e)) => {
                tracing::debug!("stats of {}: {e}", self.container.id());
                None
            }
            Err(e) => {
                tracing::warn!("stats of {}: {e}", self.container.id());
                None
            }
        }
    }
}

/// One reading of the container's cgroup, its network and the host, shaped as Docker shapes
/// it for this host's cgroup version.
fn read_frame(
    cgroups_path: &str,
    pid: u32,
    host_network: bool,
) -> std::result::Result<ContainerStatsResponse, cgroup_stats::Error> {
    let cgroup = Cgroup::locate(Path::new(CGROUP_ROOT), cgroups_path);
    let read = go_rfc3339_now();
    let stats = cgroup.read()?;
    // Docker samples the host's CPU time right after the container's, so the two
    // differences compare like with like.
    let host = Host {
        system_cpu: cgroup_stats::system_cpu_usage()?,
        online_cpus: cgroup_stats::online_cpus(),
        memory: machine_memory(),
    };
    // A container on the host's network has no interfaces of its own to report (Docker's
    // sandbox then has none either).
    let networks = if host_network {
        Vec::new()
    } else {
        cgroup_stats::network_counters(pid)?
    };
    let mut frame = shape(cgroup.version(), &stats, &host, &networks);
    frame.read = Some(read);
    Ok(frame)
}

/// Host figures that go into a frame.
struct Host {
    system_cpu: u64,
    online_cpus: u32,
    memory: u64,
}

/// The host's memory size, read once: it does not change while berthd runs.
fn machine_memory() -> u64 {
    static MEMORY: OnceLock<u64> = OnceLock::new();
    *MEMORY.get_or_init(|| cgroup_stats::machine_memory().unwrap_or(0))
}

/// Go's `omitempty` for counters: zero is left out.
fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

/// A frame from one reading, field for field as moby's `statsV1`/`statsV2` fill it.
fn shape(
    version: Version,
    s: &CgroupStats,
    host: &Host,
    networks: &[(String, NetDev)],
) -> ContainerStatsResponse {
    let entries = |list: &[BlkioEntry]| -> Vec<ContainerBlkioStatEntry> {
        list.iter()
            .map(|e| ContainerBlkioStatEntry {
                major: Some(e.major),
                minor: Some(e.minor),
                op: Some(e.op.clone()),
                value: Some(e.value),
            })
            .collect()
    };
    let (blkio, memory_keys, pids_limit) = match version {
        Version::V1 => (
            ContainerBlkioStats {
                io_service_bytes_recursive: Some(entries(&s.blkio.service_bytes)),
                io_serviced_recursive: Some(entries(&s.blkio.serviced)),
                io_queue_recursive: Some(Vec::new()),
                io_service_time_recursive: Some(Vec::new()),
                io_wait_time_recursive: Some(Vec::new()),
                io_merged_recursive: Some(Vec::new()),
                io_time_recursive: Some(Vec::new()),
                sectors_recursive: Some(Vec::new()),
            },
            &V1_MEMORY_KEYS[..],
            s.pids.limit.and_then(nonzero),
        ),
        // On v2 Docker fills only the bytes (null when there are no devices), and reports
        // an unlimited `pids.max` as the largest u64, as containerd's reader returns it.
        Version::V2 => (
            ContainerBlkioStats {
                io_service_bytes_recursive: Some(entries(&s.blkio.service_bytes))
                    .filter(|e| !e.is_empty()),
                ..Default::default()
            },
            &V2_MEMORY_KEYS[..],
            Some(s.pids.limit.unwrap_or(u64::MAX)),
        ),
    };
    let cpu = ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(s.cpu.total_ns),
            percpu_usage: Some(s.cpu.per_cpu_ns.clone()).filter(|p| !p.is_empty()),
            usage_in_kernelmode: Some(s.cpu.kernel_ns),
            usage_in_usermode: Some(s.cpu.user_ns),
        }),
        system_cpu_usage: nonzero(host.system_cpu),
        online_cpus: Some(host.online_cpus).filter(|n| *n != 0),
        throttling_data: Some(ContainerThrottlingData {
            periods: Some(s.cpu.periods),
            throttled_periods: Some(s.cpu.throttled_periods),
            throttled_time: Some(s.cpu.throttled_ns),
        }),
    };
    // Without a limit of its own a container is limited by the machine.
    let limit = if host.memory > 0 && s.memory.limit > host.memory {
        host.memory
    } else {
        s.memory.limit
    };
    let memory = ContainerMemoryStats {
        usage: nonzero(s.memory.usage),
        max_usage: s.memory.max_usage.and_then(nonzero),
        stats: Some(
            memory_keys
                .iter()
                .map(|k| (k.to_string(), s.memory.stat.get(*k).copied().unwrap_or(0)))
                .collect(),
        ),
        failcnt: nonzero(s.memory.failcnt),
        limit: nonzero(limit),
        ..Default::default()
    };
    let networks: HashMap<String, ContainerNetworkStats> = networks
        .iter()
        .map(|(name, n)| {
            let stats = ContainerNetworkStats {
                rx_bytes: Some(n.rx_bytes),
                rx_packets: Some(n.rx_packets),
                rx_errors: Some(n.rx_errors),
                rx_dropped: Some(n.rx_dropped),
                tx_bytes: Some(n.tx_bytes),
                tx_packets: Some(n.tx_packets),
                tx_errors: Some(n.tx_errors),
                tx_dropped: Some(n.tx_dropped),
                ..Default::default()
            };
            (name.clone(), stats)
        })
        .collect();
    ContainerStatsResponse {
        pids_stats: Some(ContainerPidsStats {
            current: nonzero(s.pids.current),
            limit: pids_limit,
        }),
        blkio_stats: Some(blkio),
        cpu_stats: Some(cpu),
        memory_stats: Some(memory),
        networks: Some(networks).filter(|n| !n.is_empty()),
        ..empty_frame()
    }
}

/// Docker's frame for a container it cannot read: zeroes, Go's zero time, and (filled in
/// by the caller) the name and ID.
fn empty_frame() -> ContainerStatsResponse {
    ContainerStatsResponse {
        read: Some(ZERO_TIME.into()),
        preread: Some(ZERO_TIME.into()),
        pids_stats: Some(ContainerPidsStats::default()),
        blkio_stats: Some(ContainerBlkioStats::default()),
        num_procs: Some(0),
        storage_stats: Some(ContainerStorageStats::default()),
        cpu_stats: Some(zero_cpu()),
        precpu_stats: Some(zero_cpu()),
        memory_stats: Some(ContainerMemoryStats::default()),
        ..Default::default()
    }
}

/// CPU figures of a frame with no reading: Go's zero value, whose counters are not omitted.
fn zero_cpu() -> ContainerCpuStats {
    ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(0),
            percpu_usage: None,
            usage_in_kernelmode: Some(0),
            usage_in_usermode: Some(0),
        }),
        system_cpu_usage: None,
        online_cpus: None,
        throttling_data: Some(ContainerThrottlingData {
            periods: Some(0),
            throttled_periods: Some(0),
            throttled_time: Some(0),
        }),
    }
}

/// Now in Go's `RFC3339Nano`.
fn go_rfc3339_now() -> String {
    go_rfc3339(chrono::Utc::now())
}

/// A time in Go's `RFC3339Nano`, which drops trailing zeros of the fraction.
fn go_rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    let t = t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let trimmed = t.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::cgroup_stats::{Blkio, Cpu, Memory, Pids};

    fn reading() -> CgroupStats {
        CgroupStats {
            cpu: Cpu {
                total_ns: 3_000,
                per_cpu_ns: vec![1_000, 2_000],
                user_ns: 2_000,
                kernel_ns: 1_000,
                ..Default::default()
            },
            memory: Memory {
                usage: 4096,
                max_usage: Some(8192),
                limit: 9223372036854771712,
                failcnt: 0,
                stat: [
                    ("total_inactive_file".to_string(), 1024),
                    ("swap".to_string(), 0),
                ]
                .into(),
            },
            pids: Pids {
                current: 2,
                limit: None,
            },
            blkio: Blkio {
                service_bytes: vec![BlkioEntry {
                    major: 8,
                    minor: 0,
                    op: "Write".into(),
                    value: 512,
                }],
                serviced: vec![],
            },
        }
    }

    const HOST: Host = Host {
        system_cpu: 1_000_000,
        online_cpus: 2,
        memory: 1 << 30,
    };

    #[test]
    fn v1_frames_have_dockers_shape() {
        let eth0 = NetDev {
            rx_bytes: 736,
            tx_bytes: 516,
            ..Default::default()
        };
        let f = shape(Version::V1, &reading(), &HOST, &[("eth0".into(), eth0)]);
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(
            v["cpu_stats"]["cpu_usage"]["percpu_usage"],
            serde_json::json!([1000, 2000])
        );
        assert_eq!(v["cpu_stats"]["system_cpu_usage"], 1_000_000);
        assert_eq!(
            v["cpu_stats"]["throttling_data"]["periods"], 0,
            "counters are never omitted"
        );
        assert_eq!(
            v["memory_stats"]["limit"],
            1 << 30,
            "an unlimited container is limited by the machine"
        );
        assert_eq!(v["memory_stats"]["max_usage"], 8192);
        assert!(
            v["memory_stats"].get("failcnt").is_none(),
            "omitted when zero"
        );
        let stats = v["memory_stats"]["stats"].as_object().unwrap();
        assert_eq!(stats.len(), 32, "Docker's fixed v1 keys, not the kernel's");
        assert_eq!(stats["total_inactive_file"], 1024);
        assert_eq!(stats["cache"], 0);
        assert!(stats.get("swap").is_none());
        assert_eq!(
            v["pids_stats"],
            serde_json::json!({"current": 2}),
            "no limit: omitted"
        );
        assert_eq!(
            v["blkio_stats"]["io_service_bytes_recursive"][0]["op"],
            "Write"
        );
        assert_eq!(v["blkio_stats"]["sectors_recursive"], serde_json::json!([]));
        assert_eq!(v["networks"]["eth0"]["rx_bytes"], 736);
        assert_eq!(v["num_procs"], 0);
        assert_eq!(v["storage_stats"], serde_json::json!({}));
    }

    #[test]
    fn v2_frames_have_dockers_shape() {
        let mut r = reading();
        r.cpu.per_cpu_ns.clear();
        r.memory.max_usage = None;
        r.memory.limit = 64 << 20;
        r.memory.stat = [("inactive_file".to_string(), 100)].into();
        r.blkio.service_bytes.clear();
        let v = serde_json::to_value(shape(Version::V2, &r, &HOST, &[])).unwrap();
        assert!(v["cpu_stats"]["cpu_usage"].get("percpu_usage").is_none());
        assert!(v["memory_stats"].get("max_usage").is_none());
        assert_eq!(v["memory_stats"]["limit"], 64 << 20);
        assert_eq!(v["memory_stats"]["stats"].as_object().unwrap().len(), 31);
        assert_eq!(v["memory_stats"]["stats"]["inactive_file"], 100);
        assert_eq!(v["pids_stats"]["limit"], u64::MAX);
        assert!(
            v["blkio_stats"].as_object().unwrap().is_empty(),
            "no devices: nothing but nulls"
        );
        assert!(v.get("networks").is_none(), "only lo: omitted");
    }

    #[test]
    fn go_times() {
        let at = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        assert_eq!(
            go_rfc3339(at("2026-11-22T07:29:48.779402790Z")),
            "2026-11-22T07:29:48.77940279Z"
        );
        assert_eq!(
            go_rfc3339(at("2026-11-22T07:29:40Z")),
            "2026-11-22T07:29:40Z"
        );
        chrono::DateTime::parse_from_rfc3339(&go_rfc3339_now()).unwrap();
    }
}
