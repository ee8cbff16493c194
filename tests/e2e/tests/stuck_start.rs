//! SIGTERM stops berthd even while a container start never finishes. The runtime looks up
//! the user's HOME in the image's /etc/passwd inside the container before creating it (as
//! runc does); a FIFO there blocks that forever (Docker hangs on it too). dockerd still exits
//! after its shutdown timeout; so must berthd, leaving the container in a state the next
//! daemon understands and no runtime process behind.

use berth_e2e::{eventually, Daemon};
use std::process::Stdio;

/// The process of the daemon serving `d` (its command line names the socket).
fn berthd_pid(d: &Daemon) -> i32 {
    let host = d.host();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"/berthd")) && args.contains(&host.as_bytes())
        {
            return pid;
        }
    }
    panic!("no berthd serving {host}");
}

/// Whether `pid` still runs (a zombie has exited: the harness reaps it later).
fn runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// The processes in container `id`'s cgroup (berth's default parent, cgroup v1 or v2).
fn cgroup_procs(id: &str) -> Vec<i32> {
    [
        format!("/sys/fs/cgroup/berth/{id}/cgroup.procs"),
        format!("/sys/fs/cgroup/pids/berth/{id}/cgroup.procs"),
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .flat_map(|t| {
        t.lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect::<Vec<_>>()
    })
    .collect()
}

#[test]
fn sigterm_stops_the_daemon_during_a_start_that_never_finishes() {
    // A short timeout keeps the test quick; the default (15 s, dockerd's) works alike.
    let mut d = Daemon::start_with(&["--shutdown-timeout", "2"]);
    let ctx = d.root.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN rm /etc/passwd && mkfifo /etc/passwd\n",
    )
    .unwrap();
    d.ok(&["build", "-t", "fifo-passwd", ctx.to_str().unwrap()]);
    // A running container, which the shutdown must leave running (live restore).
    d.ok(&["run", "-d", "--name", "keep", "busybox", "sleep", "1000"]);

    // A numeric user: the daemon needs no passwd for it, the runtime reads it for HOME.
    // (A user name fails at once under berth: the daemon never opens a FIFO passwd.)
    let mut run = d
        .berth_cmd(&[
            "run",
            "-d",
            "--name",
            "stuck",
            "-u",
            "4242",
            "fifo-passwd",
            "sleep",
            "1000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    let blocked = eventually(60, || {
        if id.is_empty() {
            id = d
                .berth(&["inspect", "-f", "{{.Id}}", "stuck"])
                .stdout
                .trim()
                .to_string();
        }
        !id.is_empty() && !cgroup_procs(&id).is_empty()
    });
    assert!(
        blocked,
        "the start never reached the container's init\n{}",
        d.log()
    );
    assert!(
        run.try_wait().unwrap().is_none(),
        "the start finished: {}",
        d.log()
    );

    let pid = berthd_pid(&d);
    // SAFETY: kill(2) of the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let exited = eventually(120, || !runs(pid));
    if !exited {
        // Leave nothing behind before failing: the daemon and the blocked init (its shim
        // then fails the create and cleans up).
        for p in cgroup_procs(&id).into_iter().chain([pid]) {
            // SAFETY: kill(2) of processes this test made.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
    assert!(exited, "berthd did not exit on SIGTERM:\n{}", d.log());
    assert!(
        d.log()
            .contains("still starting after the shutdown timeout"),
        "{}",
        d.log()
    );
    // The client's start failed (with the error, or the connection closed as the daemon went).
    let out = run.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", d.log());

    // The blocked init is gone, and with it the runtime's shim (it cleaned up after the
    // failed create: no rootfs mount left).
    assert!(cgroup_procs(&id).is_empty());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts
            .lines()
            .any(|l| l.contains(&id) && l.contains("rootfs")),
        "{mounts}"
    );

    // The next daemon finds a created container that failed to start, and the running one.
    d.kill_daemon(libc::SIGTERM); // reaps the exited process
    d.spawn();
    let state = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "stuck",
    ]);
    assert_eq!(state, "created 128");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "keep"]),
        "running"
    );
    d.ok(&["rm", "stuck"]);
}
