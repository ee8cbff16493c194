//! `stats`: resource usage read from the containers' cgroups, shown by berth and by the
//! docker CLI.

use berth_e2e::{eventually, Daemon};
use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

/// One field of one container's `stats --no-stream` row.
fn field(d: &Daemon, container: &str, template: &str) -> String {
    d.ok(&["stats", "--no-stream", "--format", template, container])
}

/// Docker's human sizes (`8.59MB`, `442kB`, `0B`) back in bytes.
fn bytes(size: &str) -> f64 {
    let digits = size
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(size.len());
    let (number, unit) = size.split_at(digits);
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unexpected unit {other:?} in {size:?}"),
    };
    number.parse::<f64>().unwrap() * scale
}

#[test]
fn stats_show_limits_cpu_and_processes() {
    let d = Daemon::start();
    d.ok(&[
        "run", "-d", "--name", "capped", "-m", "64m", "busybox", "sleep", "300",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "spin",
        "busybox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "forks",
        "busybox",
        "sh",
        "-c",
        "sleep 300 & sleep 301 & wait",
    ]);
    d.ok(&["create", "--name", "idle", "busybox", "true"]);

    let usage = field(&d, "capped", "{{.MemUsage}}");
    assert!(usage.ends_with(" / 64MiB"), "{usage}");
    let cpu = field(&d, "spin", "{{.CPUPerc}}");
    let percent: f64 = cpu.trim_end_matches('%').parse().unwrap();
    assert!(percent > 10.0, "a busy loop uses the CPU: {cpu}");
    assert!(
        eventually(10, || field(&d, "forks", "{{.PIDs}}") == "3"),
        "sh and its two sleeps"
    );

    // The default table: every running container, in docker's columns.
    let table = d.ok(&["stats", "--no-stream"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0]
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>(),
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        ],
        "{table}"
    );
    assert_eq!(lines.len(), 4, "three running containers: {table}");
    let capped_id = d.ok(&["inspect", "-f", "{{.Id}}", "capped"]);
    let row = lines.iter().find(|l| l.contains(" capped ")).unwrap();
    assert!(
        row.starts_with(&capped_id[..12]) && !row.contains(&capped_id),
        "short IDs: {row}"
    );
    assert!(
        !table.contains("idle"),
        "created containers only with -a: {table}"
    );
    let all = d.ok(&["stats", "--no-stream", "-a", "--no-trunc"]);
    assert!(
        all.contains(&capped_id),
        "--no-trunc shows whole IDs: {all}"
    );
    let idle = all
        .lines()
        .find(|l| l.contains(" idle "))
        .unwrap_or_else(|| panic!("{all}"));
    let idle_cells: Vec<&str> = idle
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        idle_cells[2..],
        ["0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0"],
        "{idle}"
    );

    // Templates: fields, table headers, json; containers named twice show once.
    let custom = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "table {{.Container}}\t{{.Name}}\t{{.PIDs}}",
        "forks",
        "forks",
    ]);
    assert_eq!(
        custom,
        "CONTAINER   NAME      PIDS\nforks       forks     3"
    );
    let json = d.ok(&["stats", "--no-stream", "--format", "{{json .}}", "capped"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "BlockIO",
            "CPUPerc",
            "Container",
            "ID",
            "MemPerc",
            "MemUsage",
            "Name",
            "NetIO",
            "PIDs"
        ]
    );
    assert_eq!(v["Name"], "capped");

    // Streaming redraws the table, clearing the screen first, until interrupted.
    let mut child = d
        .berth_cmd(&["stats", "spin"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = out.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let redraws = || out.lock().unwrap().matches("\x1b[2J\x1b[H").count();
    let streamed = eventually(15, || redraws() >= 3);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    assert!(streamed, "{:?}", out.lock().unwrap());
    let text = out.lock().unwrap().clone();
    let last = text.rsplit("\x1b[2J\x1b[H").next().unwrap();
    assert!(
        last.starts_with("CONTAINER ID") && last.contains(" spin "),
        "{last:?}"
    );
}

#[test]
fn block_io_counts_a_containers_direct_writes() {
    let d = Daemon::start();
    // A bind mount on a disk-backed file system, so the writes reach a block device.
    let dir = std::path::PathBuf::from(format!("/var/tmp/berth-e2e-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cleanup = RemoveOnDrop(dir.clone());
    let disk = whole_disk_of(&dir);
    let bind = format!("{}:/out", dir.display());
    d.ok(&[
        "run", "-d", "--name", "writer", "-v", &bind, "busybox", "sleep", "300",
    ]);
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // cgroup v2 counts every container's I/O in io.stat.
    } else {
        // cgroup v1 counts a cgroup's I/O only once some throttle rule exists for the
        // device; give the container one that never throttles (1 TiB/s), as
        // `--device-write-bps` would, in its own blkio cgroup.
        let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "writer"]);
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let blkio = cgroups
            .lines()
            .find_map(|l| l.split_once(":blkio:"))
            .map(|(_, path)| path)
            .unwrap();
        std::fs::write(
            format!("/sys/fs/cgroup/blkio{blkio}/blkio.throttle.write_bps_device"),
            format!("{disk} 1099511627776"),
        )
        .unwrap();
    }
    let before = bytes(
        field(&d, "writer", "{{.BlockIO}}")
            .rsplit(" / ")
            .next()
            .unwrap(),
    );
    d.ok(&[
        "exec",
        "writer",
        "dd",
        "if=/dev/zero",
        "of=/out/f",
        "bs=1M",
        "count=8",
        "oflag=direct",
    ]);
    let io = field(&d, "writer", "{{.BlockIO}}");
    let written = bytes(io.rsplit(" / ").next().unwrap());
    assert!(
        written - before >= 8.0 * 1024.0 * 1024.0 * 0.99,
        "8 MiB written: {io}"
    );
    drop(cleanup);
}

/// `MAJ:MIN` of the whole disk holding `path` (throttle rules name disks, not partitions).
fn whole_disk_of(path: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    assert_ne!(
        major,
        0,
        "{} is not on a block device; the test needs one",
        path.display()
    );
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).unwrap();
    let disk = if sys.join("partition").exists() {
        sys.parent().unwrap().to_path_buf()
    } else {
        sys
    };
    std::fs::read_to_string(disk.join("dev"))
        .unwrap()
        .trim()
        .to_string()
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn docker_cli_stats_and_bad_input() {
    let d = Daemon::start();
    d.ok(&[
        "run", "-d", "--name", "web", "-m", "32m", "busybox", "sleep", "300",
    ]);

    let r = d.docker(&["stats", "--no-stream"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME") && lines[0].ends_with("PIDS"),
        "{}",
        r.stdout
    );
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(
        lines[1].contains(" web ") && lines[1].contains(" / 32MiB "),
        "{}",
        r.stdout
    );
    let r = d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemPerc}}",
        "web",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let cells: Vec<&str> = r.stdout.split_whitespace().collect();
    assert_eq!(cells[..2], ["web", "1"], "{}", r.stdout);
    assert!(cells[2].ends_with('%') && cells[2] != "--", "{}", r.stdout);

    // Unknown containers: docker's message and exit code, from both CLIs, and no table.
    for r in [
        d.berth(&["stats", "--no-stream", "nope", "web"]),
        d.docker(&["stats", "--no-stream", "nope"]),
    ] {
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert_eq!(
            r.stderr.trim(),
            "Error response from daemon: No such container: nope"
        );
        assert_eq!(r.stdout, "");
    }
    let r = d.berth(&["stats", "--no-stream", "--format", "{{.Bad", "web"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "template parsing error: template: :1: unclosed action")
    );
    let r = d.berth(&["stats", "--bogus"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.starts_with("unknown flag: --bogus"),
        "{}",
        r.stderr
    );
}
