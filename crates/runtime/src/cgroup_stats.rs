//! Resource readings for `docker stats`: one container's cgroup (v1 or v2) and the host
//! figures Docker puts beside them (system CPU time, online CPUs, total memory, and the
//! network counters of the container's namespace).
//!
//! Plain file reads, no libcontainer: the daemon reads these on every stats request and
//! shapes them into Docker's `StatsJSON`; which fields Docker shows is its business, so the
//! values here are the kernel's, unfiltered.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// USER_HZ, the unit of `/proc/stat` and `cpuacct.stat`. Linux fixes it at 100 for user
/// space whatever the kernel's HZ, which is why Docker hard-codes it too.
const CLOCK_TICKS_PER_SECOND: u64 = 100;
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// What went wrong reading a cgroup or a host file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cgroup does not exist (the container is not running, or has just exited).
    #[error("cgroup {0} does not exist")]
    NotFound(PathBuf),
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("unexpected content in {path}: {line:?}")]
    Parse { path: PathBuf, line: String },
}

/// The cgroup hierarchy a host runs containers under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// One hierarchy per controller (`/sys/fs/cgroup/memory/…`); also hybrid hosts, where
    /// youki, like runc, uses the v1 hierarchies.
    V1,
    /// The unified hierarchy (`/sys/fs/cgroup/cgroup.controllers` exists).
    V2,
}

/// One container's cgroup.
#[derive(Debug, Clone)]
pub struct Cgroup {
    version: Version,
    root: PathBuf,
    /// The OCI `cgroupsPath`, relative to each hierarchy's root.
    path: PathBuf,
}

/// Everything read from a cgroup at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
}

/// CPU time, in nanoseconds, since the cgroup was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    pub total_ns: u64,
    /// Per CPU (v1 `cpuacct.usage_percpu`); empty on v2, which has no such file.
    pub per_cpu_ns: Vec<u64>,
    pub user_ns: u64,
    pub kernel_ns: u64,
    /// CFS bandwidth periods, those in which the cgroup was throttled, and for how long.
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

/// Memory, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Memory {
    pub usage: u64,
    /// The high-water mark (v1 `memory.max_usage_in_bytes`); v2 has none.
    pub max_usage: Option<u64>,
    /// The limit as the kernel reports it: `u64::MAX` for v2's `max`, and v1's page-rounded
    /// huge number when unlimited.
    pub limit: u64,
    /// v1 `memory.failcnt`; v2 `memory.events`' `oom`, which Docker reports in its place.
    pub failcnt: u64,
    /// `memory.stat`, every key the kernel wrote.
    pub stat: BTreeMap<String, u64>,
}

/// Process counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pids {
    pub current: u64,
    /// `None` when `pids.max` is `max`.
    pub limit: Option<u64>,
}

/// One block-I/O counter of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    /// v1: the kernel's `Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`; v2: `read`
    /// and `write`, as Docker names the `io.stat` fields.
    pub op: String,
    pub value: u64,
}

/// Block I/O per device and operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blkio {
    /// Bytes transferred.
    pub service_bytes: Vec<BlkioEntry>,
    /// Operations done.
    pub serviced: Vec<BlkioEntry>,
}

impl Cgroup {
    /// The cgroup at `cgroups_path` (as in the OCI spec, e.g. `/berth/<id>`) under the
    /// cgroup file system mounted at `root` (normally `/sys/fs/cgroup`).
    pub fn locate(root: &Path, cgroups_path: &str) -> Cgroup {
        let version = if root.join("cgroup.controllers").exists() {
            Version::V2
        } else {
            Version::V1
        };
        Cgroup {
            version,
            root: root.to_path_buf(),
            path: PathBuf::from(cgroups_path.trim_start_matches('/')),
        }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The directory holding `controller`'s files (v2 has one directory for all).
    fn dir(&self, controller: &str) -> PathBuf {
        match self.version {
            Version::V1 => self.root.join(controller).join(&self.path),
            Version::V2 => self.root.join(&self.path),
        }
    }

    /// Reads every figure. A controller file that is missing (a controller not mounted or
    /// not delegated) reads as zero; a cgroup that is missing altogether is `NotFound`.
    pub fn read(&self) -> Result<CgroupStats, Error> {
        match self.version {
            Version::V1 => self.read_v1(),
            Version::V2 => self.read_v2(),
        }
    }

    fn read_v1(&self) -> Result<CgroupStats, Error> {
        let (cpu, cpuacct, memory, pids, blkio) = (
            self.dir("cpu"),
            self.dir("cpuacct"),
            self.dir("memory"),
            self.dir("pids"),
            self.dir("blkio"),
        );
        if ![&cpuacct, &memory, &pids].iter().any(|d| d.is_dir()) {
            return Err(Error::NotFound(memory));
        }
        let acct = read_kv(&cpuacct.join("cpuacct.stat"))?;
        let throttling = read_kv(&cpu.join("cpu.stat"))?;
        let ticks_to_ns = |key: &str| {
            acct.get(key).copied().unwrap_or(0) * NANOS_PER_SECOND / CLOCK_TICKS_PER_SECOND
        };
        let cpu = Cpu {
            total_ns: read_u64(&cpuacct.join("cpuacct.usage"))?.unwrap_or(0),
            per_cpu_ns: read_u64_list(&cpuacct.join("cpuacct.usage_percpu"))?,
            user_ns: ticks_to_ns("user"),
            kernel_ns: ticks_to_ns("system"),
            periods: throttling.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: throttling.get("nr_throttled").copied().unwrap_or(0),
            throttled_ns: throttling.get("throttled_time").copied().unwrap_or(0),
        };
        let memory = Memory {
            usage: read_u64(&memory.join("memory.usage_in_bytes"))?.unwrap_or(0),
            max_usage: read_u64(&memory.join("memory.max_usage_in_bytes"))?,
            limit: read_u64(&memory.join("memory.limit_in_bytes"))?.unwrap_or(u64::MAX),
            failcnt: read_u64(&memory.join("memory.failcnt"))?.unwrap_or(0),
            stat: read_kv(&memory.join("memory.stat"))?,
        };
        Ok(CgroupStats {
            cpu,
            memory,
            pids: read_pids(&pids)?,
            blkio: read_blkio_v1(&blkio)?,
        })
    }

    fn read_v2(&self) -> Result<CgroupStats, Error> {
        let dir = self.dir("");
        if !dir.is_dir() {
            return Err(Error::NotFound(dir));
        }
        let stat = read_kv(&dir.join("cpu.stat"))?;
        let usec = |key: &str| stat.get(key).copied().unwrap_or(0) * 1000;
        let cpu = Cpu {
            total_ns: usec("usage_usec"),
            per_cpu_ns: Vec::new(),
            user_ns: usec("user_usec"),
            kernel_ns: usec("system_usec"),
            periods: stat.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: stat.get("nr_throttled").copied().unwrap_or(0),
            throttled_ns: usec("throttled_usec"),
        };
        let memory = Memory {
            usage: read_u64(&dir.join("memory.current"))?.unwrap_or(0),
            max_usage: None,
            limit: read_u64(&dir.join("memory.max"))?.unwrap_or(u64::MAX),
            failcnt: read_kv(&dir.join("memory.events"))?
                .get("oom")
                .copied()
                .unwrap_or(0),
            stat: read_kv(&dir.join("memory.stat"))?,
        };
        let io = read_opt(&dir.join("io.stat"))?.unwrap_or_default();
        Ok(CgroupStats {
            cpu,
            memory,
            pids: read_pids(&dir)?,
            blkio: parse_io_stat(&io),
        })
    }
}

fn read_pids(dir: &Path) -> Result<Pids, Error> {
    let path = dir.join("pids.max");
    let limit = match read_opt(&path)?.as_deref().map(str::trim) {
        None | Some("max") => None,
        Some(text) => Some(parse_u64(&path, text)?),
    };
    Ok(Pids {
        current: read_u64(&dir.join("pids.current"))?.unwrap_or(0),
        limit,
    })
}

/// v1 block I/O, from the files Docker reads: the CFQ scheduler's when the kernel has them
/// and they count anything, else the throttle policy's (which the kernel only fills once
/// some throttle rule exists for the device). The `_recursive` throttle files include
/// child cgroups; a container's cgroup has none, so they read as the plain ones, which
/// kernels before 4.19 offer alone.
fn read_blkio_v1(dir: &Path) -> Result<Blkio, Error> {
    let cfq = Blkio {
        service_bytes: read_blkio_file(&dir.join("blkio.io_service_bytes_recursive"))?,
        serviced: read_blkio_file(&dir.join("blkio.io_serviced_recursive"))?,
    };
    if !cfq.service_bytes.is_empty() || !cfq.serviced.is_empty() {
        return Ok(cfq);
    }
    let throttle = |name: &str| -> Result<Vec<BlkioEntry>, Error> {
        let recursive = dir.join(format!("blkio.throttle.{name}_recursive"));
        if recursive.exists() {
            read_blkio_file(&recursive)
        } else {
            read_blkio_file(&dir.join(format!("blkio.throttle.{name}")))
        }
    };
    Ok(Blkio {
        service_bytes: throttle("io_service_bytes")?,
        serviced: throttle("io_serviced")?,
    })
}

fn read_blkio_file(path: &Path) -> Result<Vec<BlkioEntry>, Error> {
    match read_opt(path)? {
        Some(text) => parse_blkio_v1(path, &text),
        None => Ok(Vec::new()),
    }
}

/// Parses v1 `blkio.*` lines, `MAJ:MIN Op value` (or `MAJ:MIN value`), skipping the
/// closing `Total value` line.
fn parse_blkio_v1(path: &Path, text: &str) -> Result<Vec<BlkioEntry>, Error> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split([' ', ':']).filter(|f| !f.is_empty()).collect();
        let bad = || Error::Parse {
            path: path.to_path_buf(),
            line: line.to_string(),
        };
        let (major, minor, op, value) = match fields.as_slice() {
            [] | ["Total", _] => continue,
            [major, minor, op, value] => (major, minor, *op, value),
            [major, minor, value] => (major, minor, "", value),
            _ => return Err(bad()),
        };
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        out.push(BlkioEntry {
            major: num(major)?,
            minor: num(minor)?,
            op: op.to_string(),
            value: num(value)?,
        });
    }
    Ok(out)
}

/// Parses v2 `io.stat` (`MAJ:MIN rbytes=… wbytes=… rios=… wios=… …`) into read and write
/// entries per device, as Docker names them.
fn parse_io_stat(text: &str) -> Blkio {
    let mut out = Blkio::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        let values: BTreeMap<&str, u64> = fields
            .filter_map(|f| f.split_once('='))
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        let entry = |op: &str, key: &str| BlkioEntry {
            major,
            minor,
            op: op.to_string(),
            value: values.get(key).copied().unwrap_or(0),
        };
        out.service_bytes
            .extend([entry("read", "rbytes"), entry("write", "wbytes")]);
        out.serviced
            .extend([entry("read", "rios"), entry("write", "wios")]);
    }
    out
}

/// A file's text, or `None` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A single-number file; `max` reads as `u64::MAX`.
fn read_u64(path: &Path) -> Result<Option<u64>, Error> {
    match read_opt(path)? {
        None => Ok(None),
        Some(text) if text.trim() == "max" => Ok(Some(u64::MAX)),
        Some(text) => parse_u64(path, text.trim()).map(Some),
    }
}

fn parse_u64(path: &Path, text: &str) -> Result<u64, Error> {
    text.parse().map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        line: text.to_string(),
    })
}

fn read_u64_list(path: &Path) -> Result<Vec<u64>, Error> {
    let text = read_opt(path)?.unwrap_or_default();
    text.split_whitespace()
        .map(|v| parse_u64(path, v))
        .collect()
}

/// A `key value` file (`memory.stat`, `cpu.stat`, `memory.events`); lines whose value is
/// not a count are skipped, and a missing file is empty.
fn read_kv(path: &Path) -> Result<BTreeMap<String, u64>, Error> {
    Ok(parse_kv(&read_opt(path)?.unwrap_or_default()))
}

fn parse_kv(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The host's CPU time in nanoseconds, as Docker computes `system_cpu_usage`: the sum of
/// the first seven fields of `/proc/stat`'s `cpu` line (user to softirq; not steal).
pub fn system_cpu_usage() -> Result<u64, Error> {
    let path = Path::new("/proc/stat");
    let text = read_opt(path)?.unwrap_or_default();
    parse_system_cpu_usage(&text).ok_or_else(|| Error::Parse {
        path: path.into(),
        line: "cpu …".into(),
    })
}

fn parse_system_cpu_usage(proc_stat: &str) -> Option<u64> {
    let line = proc_stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if ticks.len() < 7 {
        return None;
    }
    Some(ticks.iter().sum::<u64>() * NANOS_PER_SECOND / CLOCK_TICKS_PER_SECOND)
}

/// The CPUs this process may run on, which is what Docker reports as `online_cpus`.
pub fn online_cpus() -> u32 {
    // SAFETY: a zeroed cpu_set_t is a valid empty set, and sched_getaffinity writes at
    // most `size_of::<cpu_set_t>()` bytes into it.
    let count = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        }
        libc::CPU_COUNT(&set)
    };
    count.max(1) as u32
}

/// The host's memory in bytes (`MemTotal`), which Docker reports as the limit of a
/// container without one.
pub fn machine_memory() -> Result<u64, Error> {
    let path = Path::new("/proc/meminfo");
    let text = read_opt(path)?.unwrap_or_default();
    parse_mem_total(&text).ok_or_else(|| Error::Parse {
        path: path.into(),
        line: "MemTotal".into(),
    })
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Counters of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// The counters of every interface but loopback in the network namespace of `pid`
/// (`/proc/<pid>/net/dev` shows the namespace of the process that reads through it).
/// Docker reports the container's own interfaces, never `lo`.
pub fn network_counters(pid: u32) -> Result<Vec<(String, NetDev)>, Error> {
    let path = PathBuf::from(format!("/proc/{pid}/net/dev"));
    match read_opt(&path)? {
        Some(text) => parse_net_dev(&path, &text),
        None => Err(Error::NotFound(path)),
    }
}

fn parse_net_dev(path: &Path, text: &str) -> Result<Vec<(String, NetDev)>, Error> {
    let mut out = Vec::new();
    // Two header lines, then `name: 16 counters` (long names run into the colon).
    for line in text.lines().skip(2) {
        let bad = || Error::Parse {
            path: path.to_path_buf(),
            line: line.to_string(),
        };
        let (name, counters) = line.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = counters
            .split_whitespace()
            .map(|f| f.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if v.len() < 12 {
            return Err(bad());
        }
        out.push((
            name.to_string(),
            NetDev {
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Writes `files` (name, content) into `dir`, creating it.
    fn write_all(dir: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(dir).unwrap();
        for (name, content) in files {
            fs::write(dir.join(name), content).unwrap();
        }
    }

    const ID: &str = "0123abcd";

    #[test]
    fn reads_a_v1_cgroup() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        let at = |c: &str| r.join(c).join("berth").join(ID);
        write_all(
            &at("cpuacct"),
            &[
                ("cpuacct.usage", "3133379015\n"),
                ("cpuacct.usage_percpu", "907454691 2225924324 \n"),
                ("cpuacct.stat", "user 312\nsystem 5\n"),
            ],
        );
        write_all(
            &at("cpu"),
            &[(
                "cpu.stat",
                "nr_periods 10\nnr_throttled 4\nthrottled_time 123456\nnr_bursts 0\n",
            )],
        );
        write_all(&at("memory"), &[
            ("memory.usage_in_bytes", "2633728\n"),
            ("memory.max_usage_in_bytes", "4087808\n"),
            ("memory.limit_in_bytes", "67108864\n"),
            ("memory.failcnt", "0\n"),
            ("memory.stat", "cache 1982464\nrss 57344\ntotal_inactive_file 1982464\nhierarchical_memory_limit 67108864\n"),
        ]);
        write_all(
            &at("pids"),
            &[("pids.current", "3\n"), ("pids.max", "max\n")],
        );
        write_all(&at("blkio"), &[
            ("blkio.throttle.io_service_bytes_recursive",
             "254:0 Read 163840\n254:0 Write 8585216\n254:0 Sync 8749056\n254:0 Async 0\n254:0 Discard 0\n254:0 Total 8749056\nTotal 8749056\n"),
            ("blkio.throttle.io_serviced_recursive", "254:0 Read 4\n254:0 Write 9\nTotal 13\n"),
            // The CFQ file exists but counts nothing (a device on another scheduler).
            ("blkio.io_serviced_recursive", "Total 0\n"),
        ]);
        let cg = Cgroup::locate(r, &format!("/berth/{ID}"));
        assert_eq!(cg.version(), Version::V1);
        let s = cg.read().unwrap();
        assert_eq!(s.cpu.total_ns, 3133379015);
        assert_eq!(s.cpu.per_cpu_ns, [907454691, 2225924324]);
        assert_eq!(
            (s.cpu.user_ns, s.cpu.kernel_ns),
            (3_120_000_000, 50_000_000)
        );
        assert_eq!(
            (s.cpu.periods, s.cpu.throttled_periods, s.cpu.throttled_ns),
            (10, 4, 123456)
        );
        assert_eq!(
            (s.memory.usage, s.memory.max_usage, s.memory.limit),
            (2633728, Some(4087808), 67108864)
        );
        assert_eq!(s.memory.stat["total_inactive_file"], 1982464);
        assert_eq!(s.memory.stat.len(), 4);
        assert_eq!(
            s.pids,
            Pids {
                current: 3,
                limit: None
            }
        );
        assert_eq!(
            s.blkio.service_bytes.len(),
            6,
            "every op line but the Total line"
        );
        assert_eq!(
            s.blkio.service_bytes[1],
            BlkioEntry {
                major: 254,
                minor: 0,
                op: "Write".into(),
                value: 8585216
            }
        );
        assert_eq!(s.blkio.serviced.len(), 2);
    }

    #[test]
    fn v1_falls_back_to_plain_throttle_files_and_reads_limits() {
        let root = tempfile::tempdir().unwrap();
        let at = |c: &str| root.path().join(c).join("c1");
        write_all(
            &at("memory"),
            &[
                ("memory.usage_in_bytes", "100\n"),
                ("memory.limit_in_bytes", "9223372036854771712\n"),
            ],
        );
        write_all(
            &at("pids"),
            &[("pids.current", "1\n"), ("pids.max", "50\n")],
        );
        write_all(
            &at("blkio"),
            &[(
                "blkio.throttle.io_service_bytes",
                "8:0 Read 4096\n8:0 Write 0\nTotal 4096\n",
            )],
        );
        let s = Cgroup::locate(root.path(), "c1").read().unwrap();
        assert_eq!(s.memory.limit, 9223372036854771712);
        assert_eq!(s.memory.max_usage, None, "missing file");
        assert_eq!(s.cpu, Cpu::default(), "no cpu controller mounted");
        assert_eq!(s.pids.limit, Some(50));
        assert_eq!(s.blkio.service_bytes[0].value, 4096);
    }

    #[test]
    fn reads_a_v2_cgroup() {
        let root = tempfile::tempdir().unwrap();
        write_all(
            root.path(),
            &[("cgroup.controllers", "cpuset cpu io memory pids\n")],
        );
        write_all(&root.path().join("berth").join(ID), &[
            ("cpu.stat", "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 30\n"),
            ("memory.current", "5242880\n"),
            ("memory.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\n"),
            ("memory.stat", "anon 4096\nfile 8192\ninactive_file 4096\nactive_file 4096\n"),
            ("pids.current", "4\n"),
            ("pids.max", "100\n"),
            ("io.stat", "8:16 rbytes=1024 wbytes=8388608 rios=1 wios=128 dbytes=0 dios=0\n253:0 rbytes=0 wbytes=512 rios=0 wios=1 dbytes=0 dios=0\n"),
        ]);
        let cg = Cgroup::locate(root.path(), &format!("/berth/{ID}"));
        assert_eq!(cg.version(), Version::V2);
        let s = cg.read().unwrap();
        assert_eq!(s.cpu.total_ns, 2_500_000);
        assert_eq!((s.cpu.user_ns, s.cpu.kernel_ns), (2_000_000, 500_000));
        assert_eq!(
            (s.cpu.periods, s.cpu.throttled_periods, s.cpu.throttled_ns),
            (7, 2, 30_000)
        );
        assert!(s.cpu.per_cpu_ns.is_empty());
        assert_eq!(
            (s.memory.usage, s.memory.limit, s.memory.failcnt),
            (5242880, u64::MAX, 2)
        );
        assert_eq!(s.memory.max_usage, None);
        assert_eq!(s.memory.stat["inactive_file"], 4096);
        assert_eq!(
            s.pids,
            Pids {
                current: 4,
                limit: Some(100)
            }
        );
        let ops: Vec<(u64, &str, u64)> = s
            .blkio
            .service_bytes
            .iter()
            .map(|e| (e.minor, e.op.as_str(), e.value))
            .collect();
        assert_eq!(
            ops,
            [
                (16, "read", 1024),
                (16, "write", 8388608),
                (0, "read", 0),
                (0, "write", 512)
            ]
        );
        assert_eq!(s.blkio.serviced[1].value, 128);
    }

    #[test]
    fn a_missing_cgroup_is_not_found() {
        let root = tempfile::tempdir().unwrap();
        assert!(matches!(
            Cgroup::locate(root.path(), "/berth/gone").read(),
            Err(Error::NotFound(_))
        ));
        write_all(root.path(), &[("cgroup.controllers", "")]);
        assert!(matches!(
            Cgroup::locate(root.path(), "/berth/gone").read(),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn malformed_files_are_errors() {
        let root = tempfile::tempdir().unwrap();
        write_all(
            &root.path().join("memory").join("c"),
            &[("memory.usage_in_bytes", "lots\n")],
        );
        assert!(matches!(
            Cgroup::locate(root.path(), "c").read(),
            Err(Error::Parse { .. })
        ));
        assert!(parse_blkio_v1(Path::new("x"), "8:0 Read\n").is_err());
    }

    #[test]
    fn host_readings() {
        let stat = "cpu  847141 0 157061 890653 13236 0 1778 5360 0 0\ncpu0 415188 0 74413 460970 4204 0 133 2684 0 0\n";
        // user+nice+system+idle+iowait+irq+softirq, in ticks of 10 ms; steal is left out.
        assert_eq!(parse_system_cpu_usage(stat), Some(1_909_869 * 10_000_000));
        assert_eq!(parse_system_cpu_usage("cpu 1 2\n"), None);
        assert_eq!(
            parse_mem_total("MemTotal:        8131364 kB\nMemFree: 1 kB\n"),
            Some(8131364 * 1024)
        );
        assert!(online_cpus() >= 1);
        assert!(system_cpu_usage().unwrap() > 0);
        assert!(machine_memory().unwrap() > 0);
    }

    #[test]
    fn network_counters_skip_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:    6386      58    0    0    0     0          0         0     6386      58    0    0    0     0       0          0\n  \
            eth0:     736       8    1    2    0     0          0         0      516       6    3    4    0     0       0          0\n\
            veth1234567890ab:1 2 0 0 0 0 0 0 3 4 0 0 0 0 0 0\n";
        let devs = parse_net_dev(Path::new("net/dev"), text).unwrap();
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0].0, "eth0");
        assert_eq!(
            devs[0].1,
            NetDev {
                rx_bytes: 736,
                rx_packets: 8,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 516,
                tx_packets: 6,
                tx_errors: 3,
                tx_dropped: 4
            }
        );
        assert_eq!(
            (devs[1].0.as_str(), devs[1].1.tx_bytes),
            ("veth1234567890ab", 3)
        );
        // Our own namespace always has lo; whatever else it has is reported.
        let own = network_counters(std::process::id()).unwrap();
        assert!(own.iter().all(|(name, _)| name != "lo"));
    }
}
