//! End-to-end tests of `berth-shim`: a busybox rootfs on overlayfs, run through libcontainer.
//! They need root (mounts, namespaces, cgroups); under CI=true a missing privilege fails.

use std::io::{Read, Write};
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use berth_runtime::{Mount, ShimConfig, StartErrorKind, StartReport, Status};

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "these tests need root under CI"
        );
        eprintln!("skipping: not root");
    }
    root
}

fn unique_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    format!(
        "{:016x}{:016x}{:016x}{:016x}",
        nanos,
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        0xbe27u64
    )
}

struct Opts {
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    memory_limit: Option<i64>,
}

const PLAIN: Opts = Opts {
    tty: false,
    open_stdin: false,
    stdin_once: false,
    memory_limit: None,
};

struct Fixture {
    _tmp: tempfile::TempDir,
    id: String,
    state_dir: PathBuf,
    rootfs: PathBuf,
    runtime_root: PathBuf,
    log_path: PathBuf,
}

fn busybox_lower(dir: &Path) {
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "echo", "cat", "sleep", "true", "false", "head", "ls", "stty", "hostname", "wc",
        "test", "mkdir",
    ] {
        symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
}

fn spec(rootfs: &Path, id: &str, args: &[&str], opts: &Opts) -> serde_json::Value {
    let caps = serde_json::json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_KILL",
        "CAP_SETUID",
        "CAP_SETGID"
    ]);
    let mut resources = serde_json::json!({});
    if let Some(limit) = opts.memory_limit {
        resources = serde_json::json!({"memory": {"limit": limit, "swap": limit}});
    }
    serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": opts.tty,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": "shimtest",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}],
            "cgroupsPath": format!("/berth-test/{id}"),
            "resources": resources,
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

fn fixture(args: &[&str], opts: &Opts) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id();
    let base = tmp.path();
    let lower = base.join("lower");
    busybox_lower(&lower);
    for d in ["upper", "work", "bundle", "state", "runtime"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    let bundle = base.join("bundle");
    let rootfs = bundle.join("rootfs");
    let spec = spec(&rootfs, &id, args, opts);
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    let state_dir = base.join("state");
    let cfg = ShimConfig {
        id: id.clone(),
        bundle,
        rootfs_mounts: vec![Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", lower.display()),
                format!("upperdir={}", base.join("upper").display()),
                format!("workdir={}", base.join("work").display()),
            ],
        }],
        runtime_root: base.join("runtime"),
        seccomp_cache: Some(base.join("seccomp")),
        log_path: base.join("container-json.log"),
        log_max_size: 0,
        log_max_files: 1,
        log_disabled: false,
        log_attrs: Default::default(),
        tty: opts.tty,
        open_stdin: opts.open_stdin,
        log_driver: None,
        stdin_once: opts.stdin_once,
    };
    berth_runtime::write_config(&state_dir, &cfg).unwrap();
    Fixture {
        id,
        state_dir,
        rootfs,
        runtime_root: cfg.runtime_root.clone(),
        log_path: cfg.log_path.clone(),
        _tmp: tmp,
    }
}

fn spawn(f: &Fixture) -> i32 {
    match berth_runtime::spawn(Path::new(SHIM), &f.state_dir).unwrap() {
        StartReport::Created { pid, shim_pid } => {
            assert!(pid > 0 && shim_pid > 0);
            // SAFETY: getsid/getppid-style queries take plain integers.
            assert_eq!(
                unsafe { libc::getsid(shim_pid) },
                shim_pid,
                "shim leads its own session"
            );
            let stat = std::fs::read_to_string(format!("/proc/{shim_pid}/stat")).unwrap();
            let ppid: i32 = stat
                .rsplit(") ")
                .next()
                .unwrap()
                .split(' ')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            assert_ne!(
                ppid as u32,
                std::process::id(),
                "shim must not be our child"
            );
            let init_stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let init_ppid: i32 = init_stat
                .rsplit(") ")
                .next()
                .unwrap()
                .split(' ')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(
                init_ppid, shim_pid,
                "container init is reparented to the shim"
            );
            assert!(
                f.state_dir.join("shim.sock").exists(),
                "socket bound before the report"
            );
            pid
        }
        StartReport::Failed { kind, message } => {
            let log = std::fs::read_to_string(f.state_dir.join("shim.log")).unwrap_or_default();
            panic!("create failed: {kind:?}: {message}\n{log}")
        }
    }
}

/// Splits Docker's multiplexed stream into (stdout, stderr).
fn demux(mut data: &[u8]) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while data.len() >= 8 {
        let len = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
        let payload = &data[8..8 + len];
        match data[0] {
            1 => out.extend_from_slice(payload),
            2 => err.extend_from_slice(payload),
            s => panic!("bad stream id {s}"),
        }
        data = &data[8 + len..];
    }
    assert!(data.is_empty(), "trailing partial frame");
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn read_all(mut s: UnixStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    buf
}

fn log_entries(f: &Fixture) -> Vec<serde_json::Value> {
    std::fs::read_to_string(&f.log_path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The shim removed its mount, cgroup, libcontainer state and socket.
fn assert_clean(f: &Fixture) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(f.rootfs.to_str().unwrap()),
        "rootfs still mounted"
    );
    for ctl in ["memory", "pids", "cpu"] {
        let p = Path::new("/sys/fs/cgroup")
            .join(ctl)
            .join("berth-test")
            .join(&f.id);
        assert!(!p.exists(), "cgroup left behind: {}", p.display());
    }
    assert!(
        !f.runtime_root.join(&f.id).exists(),
        "libcontainer state left behind"
    );
    assert!(
        !f.state_dir.join("shim.sock").exists(),
        "socket left behind"
    );
}

fn patch_spec(f: &Fixture, edit: impl FnOnce(&mut serde_json::Value)) {
    let cfg: ShimConfig =
        serde_json::from_slice(&std::fs::read(f.state_dir.join("shim.json")).unwrap()).unwrap();
    let spec_path = cfg.bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
    edit(&mut spec);
    std::fs::write(&spec_path, serde_json::to_vec(&spec).unwrap()).unwrap();
}

#[test]
fn echo_reaches_attach_and_log() {
    if !privileged() {
        return;
    }
    let f = fixture(
        &["sh", "-c", "echo hello; echo oops >&2; printf tail"],
        &PLAIN,
    );
    spawn(&f);
    assert_eq!(
        berth_runtime::state(&f.state_dir).unwrap().status,
        Status::Created
    );
    let stream = berth_runtime::attach(&f.state_dir, false, true, true).unwrap();
    berth_runtime::start(&f.state_dir).unwrap();
    let (out, err) = demux(&read_all(stream));
    assert!(out.starts_with("hello\n"), "{out:?}");
    assert!(out.ends_with("tail"), "{out:?}");
    assert_eq!(err.trim_end().lines().last(), Some("oops"), "{err:?}");
    let st = berth_runtime::wait(&f.state_dir).unwrap();
    assert_eq!(st.exit_code, 0);
    assert!(!st.oom_killed);
    assert!(
        st.started_at.ends_with('Z') && st.finished_at > st.started_at,
        "{st:?}"
    );
    assert_eq!(berth_runtime::read_exit(&f.state_dir), Some(st));
    let log = log_entries(&f);
    assert_eq!(log[0]["log"], "hello\n");
    assert_eq!(log[0]["stream"], "stdout");
    assert!(
        log.iter()
            .any(|e| e["log"] == "oops\n" && e["stream"] == "stderr"),
        "{log:?}"
    );
    assert!(log.iter().any(|e| e["log"] == "tail"), "{log:?}");
    assert_clean(&f);
}

#[test]
fn exit_codes() {
    if !privileged() {
        return;
    }
    let f = fixture(&["sh", "-c", "exit 3"], &PLAIN);
    spawn(&f);
    berth_runtime::start(&f.state_dir).unwrap();
    assert_eq!(berth_runtime::wait(&f.state_dir).unwrap().exit_code, 3);
    assert_clean(&f);

    let f = fixture(&["sleep", "100"], &PLAIN);
    spawn(&f);
    berth_runtime::start(&f.state_dir).unwrap();
    let st = berth_runtime::state(&f.state_dir).unwrap();
    assert_eq!(st.status, Status::Running);
    berth_runtime::kill(&f.state_dir, 9).unwrap();
    let ex = berth_runtime::wait(&f.state_dir).unwrap();
    assert_eq!(ex.exit_code, 137);
    assert!(!ex.oom_killed);
    assert_clean(&f);
}

#[test]
fn kill_before_start_tears_down() {
    if !privileged() {
        return;
    }
    let f = fixture(&["true"], &PLAIN);
    spawn(&f);
    berth_runtime::kill(&f.state_dir, 9).unwrap();
    let ex = berth_runtime::wait(&f.state_dir).unwrap();
    assert_eq!(ex.exit_code, 137);
    assert_eq!(ex.started_at, "0001-01-01T00:00:00Z");
    assert_clean(&f);
}

#[test]
fn memory_hog_is_oom_killed() {
    if !privileged() {
        return;
    }
    let opts = Opts {
        memory_limit: Some(32 << 20),
        ..PLAIN
    };
    let f = fixture(&["sh", "-c", "x=a; while true; do x=$x$x; done"], &opts);
    spawn(&f);
    berth_runtime::start(&f.state_dir).unwrap();
    let ex = berth_runtime::wait(&f.state_dir).unwrap();
    assert_eq!(ex.exit_code, 137, "{ex:?}");
    assert!(ex.oom_killed, "{ex:?}");
    assert_clean(&f);
}

#[test]
fn missing_command_is_not_found() {
    if !privileged() {
        return;
    }
    let f = fixture(&["nosuchcmd"], &PLAIN);
    let report = berth_runtime::spawn(Path::new(SHIM), &f.state_dir).unwrap();
    assert_eq!(
        report,
        StartReport::Failed {
            kind: StartErrorKind::NotFound,
            message: "exec: \"nosuchcmd\": executable file not found in $PATH".into()
        }
    );
    let f2 = fixture(&["/etc/passwd"], &PLAIN);
    let report = berth_runtime::spawn(Path::new(SHIM), &f2.state_dir).unwrap();
    assert!(
        matches!(
            report,
            StartReport::Failed {
                kind: StartErrorKind::PermissionDenied,
                ..
            }
        ),
        "{report:?}"
    );
    // Give a failed shim a moment to finish exiting, then nothing may remain.
    std::thread::sleep(Duration::from_millis(200));
    assert_clean(&f);
    assert_clean(&f2);
}

#[test]
fn create_failure_is_undone() {
    if !privileged() {
        return;
    }
    let f = fixture(&["true"], &PLAIN);
    patch_spec(&f, |spec| {
        spec["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"destination": "/x", "type": "nosuchfs", "source": "none"}));
    });
    let report = berth_runtime::spawn(Path::new(SHIM), &f.state_dir).unwrap();
    assert!(
        matches!(
            report,
            StartReport::Failed {
                kind: StartErrorKind::Other,
                ..
            }
        ),
        "{report:?}"
    );
    eprintln!("create failure reported as: {report:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert_clean(&f);
}

/// Pins what libcontainer 0.7 does with the spec, so the daemon knows what it must add.
#[test]
fn container_sees_spec() {
    if !privileged() {
        return;
    }
    let script = "hostname; echo masked=$(cat /proc/timer_list | head -c 1 | wc -c); \
                  (echo 1 > /proc/sys/kernel/domainname) 2>/dev/null && echo sys=rw || echo sys=ro; \
                  echo lo=$(cat /sys/class/net/lo/flags); echo pid=$$; test -c /dev/null && echo null=ok; \
                  echo nofile=$(ulimit -n); mkdir /tmp/d 2>/dev/null && echo mkdir=allowed || echo mkdir=denied";
    let f = fixture(&["sh", "-c", script], &PLAIN);
    patch_spec(&f, |spec| {
        spec["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 512}]);
        spec["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    spawn(&f);
    let stream = berth_runtime::attach(&f.state_dir, false, true, true).unwrap();
    berth_runtime::start(&f.state_dir).unwrap();
    let (out, err) = demux(&read_all(stream));
    eprintln!("container saw:\n{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "shimtest");
    assert!(lines.contains(&"masked=0"), "{out}");
    assert!(lines.contains(&"sys=ro"), "{out}");
    assert!(lines.contains(&"pid=1"), "{out}");
    assert!(lines.contains(&"null=ok"), "{out}");
    assert!(lines.contains(&"nofile=512"), "{out}");
    assert!(lines.contains(&"mkdir=denied"), "seccomp applied: {out}");
    // libcontainer leaves loopback down in a new netns (flags 0x8); the daemon/net must raise it.
    assert!(lines.contains(&"lo=0x8"), "{out}");
    assert_eq!(berth_runtime::wait(&f.state_dir).unwrap().exit_code, 0);
    assert_clean(&f);
}

#[test]
fn stdin_reaches_cat() {
    if !privileged() {
        return;
    }
    let opts = Opts {
        open_stdin: true,
        stdin_once: true,
        ..PLAIN
    };
    let f = fixture(&["cat"], &opts);
    spawn(&f);
    let mut stream = berth_runtime::attach(&f.state_dir, true, true, true).unwrap();
    berth_runtime::start(&f.state_dir).unwrap();
    stream.write_all(b"ping\npong").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let (out, _) = demux(&read_all(stream));
    assert_eq!(out, "ping\npong");
    assert_eq!(berth_runtime::wait(&f.state_dir).unwrap().exit_code, 0);
    assert_clean(&f);
}

#[test]
fn tty_output_is_raw() {
    if !privileged() {
        return;
    }
    let opts = Opts {
        tty: true,
        open_stdin: true,
        ..PLAIN
    };
    let f = fixture(&["sh", "-c", "stty size; echo tty-ok; exit 4"], &opts);
    spawn(&f);
    berth_runtime::resize(&f.state_dir, 100, 30).unwrap();
    let stream = berth_runtime::attach(&f.state_dir, true, true, true).unwrap();
    berth_runtime::start(&f.state_dir).unwrap();
    let out = String::from_utf8_lossy(&read_all(stream)).into_owned();
    assert!(out.contains("tty-ok\r\n"), "{out:?}");
    assert!(
        out.contains("30 100\r\n"),
        "resize reached the pty: {out:?}"
    );
    assert_eq!(berth_runtime::wait(&f.state_dir).unwrap().exit_code, 4);
    assert!(log_entries(&f)
        .iter()
        .any(|e| e["log"] == "tty-ok\r\n" && e["stream"] == "stdout"));
    assert_clean(&f);
}

#[test]
fn exit_recorded_without_clients() {
    if !privileged() {
        return;
    }
    let f = fixture(&["sh", "-c", "echo bye; exit 5"], &PLAIN);
    spawn(&f);
    berth_runtime::start(&f.state_dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ex = loop {
        if let Some(ex) = berth_runtime::read_exit(&f.state_dir) {
            break ex;
        }
        assert!(Instant::now() < deadline, "no exit.json");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ex.exit_code, 5);
    assert_eq!(log_entries(&f)[0]["log"], "bye\n");
    // The socket goes away with the shim; wait falls back to exit.json.
    std::thread::sleep(Duration::from_millis(300));
    assert!(berth_runtime::state(&f.state_dir).is_err());
    assert_eq!(berth_runtime::wait(&f.state_dir).unwrap().exit_code, 5);
    assert_clean(&f);
}

/// Writes the process file the daemon would write for an exec.
fn write_exec_process(f: &Fixture, exec_id: &str, args: &[&str]) {
    let caps = serde_json::json!(["CAP_KILL"]);
    let process = serde_json::json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "WHO=exec"],
        "cwd": "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": true
    });
    let dir = f.state_dir.join("execs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{exec_id}.json")), serde_json::to_vec(&process).unwrap()).unwrap();
}

fn exec_start(f: &Fixture, exec_id: &str) -> (UnixStream, berth_runtime::ExecReply) {
    let req = berth_runtime::Request::ExecStart {
        exec_id: exec_id.into(),
        tty: false,
        stdin: false,
        stdout: true,
        stderr: true,
    };
    let (stream, line) = berth_runtime::connect(&f.state_dir, &req).unwrap();
    (stream, serde_json::from_str(&line).unwrap())
}

fn exec_wait(f: &Fixture, exec_id: &str) -> i32 {
    let req = berth_runtime::Request::ExecWait { exec_id: exec_id.into() };
    let (_, line) = berth_runtime::connect(&f.state_dir, &req).unwrap();
    let exit: berth_runtime::ExecExit = serde_json::from_str(&line).unwrap();
    exit.exit_code
}

#[test]
fn exec_joins_the_running_container() {
    if !privileged() {
        return;
    }
    let f = fixture(&["sleep", "1000"], &PLAIN);
    spawn(&f);
    berth_runtime::start(&f.state_dir).unwrap();

    write_exec_process(&f, "aa01", &["sh", "-c", "hostname; echo $WHO; ps -o pid,args | grep -c '^ *1 sleep'; echo e >&2; exit 3"]);
    let (stream, reply) = exec_start(&f, "aa01");
    assert!(reply.ok && reply.pid > 0, "{reply:?}");
    let (out, err) = demux(&read_all(stream));
    assert_eq!(out, "shimtest\nexec\n1\n");
    assert_eq!(err, "e\n");
    // The stream ends after the exit is recorded, so a later wait answers at once.
    assert_eq!(exec_wait(&f, "aa01"), 3);
    assert!(!f.state_dir.join("execs/aa01.json").exists(), "process file left behind");

    write_exec_process(&f, "aa02", &["nosuchcmd"]);
    let (_, reply) = exec_start(&f, "aa02");
    assert!(!reply.ok);
    assert_eq!(reply.kind, Some(StartErrorKind::NotFound));

    // Exec output is not the container's: nothing reaches its log.
    assert!(log_entries(&f).is_empty());

    // A running exec ends with the container, and its waiter hears of it.
    write_exec_process(&f, "aa03", &["sleep", "1000"]);
    let (stream, reply) = exec_start(&f, "aa03");
    assert!(reply.ok);
    berth_runtime::kill(&f.state_dir, libc::SIGKILL).unwrap();
    read_all(stream);
    assert_eq!(berth_runtime::wait(&f.state_dir).unwrap().exit_code, 137);
    assert_clean(&f);
}
