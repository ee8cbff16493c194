//! `diff` and `export`: the writable layer's changes as Docker 20.10 lists them (checked
//! against the real dockerd with the same image and commands), and the merged filesystem as
//! a tar that imports and runs again; both for running and stopped containers, through berth
//! and the docker CLI, leaving no mounts behind.

use berth_e2e::{eventually, tempdir::TempDir, Daemon};
use std::process::{Command, Stdio};

/// A touch, a removal, new directories, an append to a file in /etc, and a directory removed
/// and made again (an opaque directory).
const CHANGES: &str = "touch /newfile; rm /bin/ls; mkdir -p /tmp/a/b; echo x >> /etc/passwd; \
                       rm -rf /var; mkdir /var; touch /var/z; echo secret > /data/in-volume";

/// What dockerd 20.10 answers for CHANGES on the same image with `-v /data` (its order
/// within a directory is Go's random map order; ours is sorted, parents first).
const EXPECTED: &[&str] = &[
    "C /bin",
    "D /bin/ls",
    "A /data",
    "C /etc",
    "C /etc/passwd",
    "A /newfile",
    "C /tmp",
    "A /tmp/a",
    "A /tmp/a/b",
    "C /var",
    "A /var/z",
    "D /var/tmp",
];

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

fn sorted(s: &str) -> Vec<&str> {
    let mut v = lines(s);
    v.sort();
    v
}

/// Mounts under the daemon's exec root that export made.
fn export_mounts(d: &Daemon) -> Vec<String> {
    let exports = d.exec_root.join("exports");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| std::path::Path::new(t).starts_with(&exports))
        .map(String::from)
        .collect()
}

fn tar_names(archive: &std::path::Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tf")
        .arg(archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "not a tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn diff_lists_changes_of_running_and_stopped_containers_as_docker() {
    let d = Daemon::start();
    let fresh = d.ok(&["create", "busybox", "true"]);
    assert_eq!(
        d.ok(&["diff", &fresh]),
        "",
        "a container never started changed nothing"
    );

    d.ok(&[
        "run", "-d", "--name", "live", "-v", "/data", "busybox", "sleep", "1000",
    ]);
    // As Docker: the volume's mount point is new in the layer; /etc/hosts & co. are not.
    assert_eq!(d.ok(&["diff", "live"]), "A /data");
    d.ok(&["exec", "live", "sh", "-c", CHANGES]);
    assert_eq!(lines(&d.ok(&["diff", "live"])), EXPECTED, "running");
    let r = d.docker(&["diff", "live"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut expected_sorted = EXPECTED.to_vec();
    expected_sorted.sort();
    assert_eq!(sorted(&r.stdout), expected_sorted, "the docker CLI");

    d.ok(&["stop", "-t", "0", "live"]);
    assert_eq!(lines(&d.ok(&["diff", "live"])), EXPECTED, "stopped");

    let r = d.berth(&["diff", "nosuch"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error response from daemon: No such container: nosuch")
    );
    let r = d.docker(&["diff", "nosuch"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error response from daemon: No such container: nosuch")
    );
}

#[test]
fn export_streams_the_merged_filesystem_which_imports_and_runs() {
    let d = Daemon::start();
    let tmp = TempDir::new();
    d.ok(&[
        "run", "-d", "--name", "live", "-v", "/data", "busybox", "sleep", "1000",
    ]);
    d.ok(&["exec", "live", "sh", "-c", CHANGES]);

    // Running, to stdout.
    let running = tmp.path().join("running.tar");
    let status = d
        .berth_cmd(&["export", "live"])
        .stdout(std::fs::File::create(&running).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let names = tar_names(&running);
    for present in [
        "bin/busybox",
        "etc/passwd",
        "newfile",
        "var/z",
        "tmp/a/b/",
        "data/",
    ] {
        assert!(
            names.iter().any(|n| n == present),
            "{present} missing from {names:?}"
        );
    }
    for absent in ["bin/ls", "var/tmp/", "data/in-volume", "./"] {
        assert!(
            !names.iter().any(|n| n == absent),
            "{absent} must not be exported"
        );
    }

    // Stopped, with -o, from berth and from the docker CLI: the same bytes.
    d.ok(&["stop", "-t", "0", "live"]);
    let stopped = tmp.path().join("stopped.tar");
    d.ok(&["export", "-o", stopped.to_str().unwrap(), "live"]);
    let via_docker = tmp.path().join("via-docker.tar");
    let r = d.docker(&["export", "-o", via_docker.to_str().unwrap(), "live"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read(&stopped).unwrap(),
        std::fs::read(&via_docker).unwrap()
    );
    assert_eq!(
        tar_names(&stopped),
        names,
        "nothing changed since the running export"
    );

    // The round trip: import it back (berth and docker CLI) and run it.
    d.ok(&["import", stopped.to_str().unwrap(), "exported:v1"]);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "exported:v1",
            "/bin/sh",
            "-c",
            "tail -n1 /etc/passwd; ls /var; ls /data"
        ]),
        "x\nz"
    );
    let r = d.docker(&["import", via_docker.to_str().unwrap(), "exported:v2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = d.docker(&[
        "run",
        "--rm",
        "exported:v2",
        "/bin/cat",
        "/newfile",
        "/var/z",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);

    assert!(
        export_mounts(&d).is_empty(),
        "export left mounts: {:?}",
        export_mounts(&d)
    );
    assert_eq!(
        std::fs::read_dir(d.exec_root.join("exports"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn export_refuses_a_terminal_checks_its_output_and_cleans_up_after_a_client_leaves() {
    let d = Daemon::start();
    let tmp = TempDir::new();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "big",
        "busybox",
        "sh",
        "-c",
        "head -c 50000000 /dev/zero > /big; touch /done; sleep 1000",
    ]);
    assert!(eventually(30, || d
        .ok(&["diff", "big"])
        .contains("A /done")));

    // stdout a terminal: `script` gives the command one.
    let berth = berth_e2e::bin_dir().join("berth");
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{} export big", berth.display()),
            "/dev/null",
        ])
        .env("BERTH_HOST", d.host())
        .stdin(Stdio::null())
        .output()
        .expect("script (bsdutils) is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert_eq!(
        text.trim(),
        "cowardly refusing to save to a terminal. Use the -o flag or redirect"
    );

    let r = d.berth(&["export", "-o", tmp.path().to_str().unwrap(), "big"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "failed to export container: cannot write to a directory")
    );
    let r = d.berth(&["export", "-o", "/nonexistent-dir/x.tar", "big"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "failed to export container: invalid output path: stat /nonexistent-dir: no such file or directory")
    );
    let target = tmp.path().join("none.tar");
    let r = d.berth(&["export", "-o", target.to_str().unwrap(), "nosuch"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error response from daemon: No such container: nosuch")
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing written for a failed export"
    );

    // A reader that stops early: berth ends as docker does (SIGPIPE), the daemon unmounts.
    let script = format!(
        "{} export big | head -c 100000 | wc -c; exit ${{PIPESTATUS[0]}}",
        berth.display()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env("BERTH_HOST", d.host())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "100000");
    assert_eq!(
        out.status.code(),
        Some(141),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(10, || export_mounts(&d).is_empty()),
        "left: {:?}",
        export_mounts(&d)
    );
    assert!(eventually(10, || std::fs::read_dir(
        d.exec_root.join("exports")
    )
    .unwrap()
    .count()
        == 0));
}

/// What `docker export | tar tv` of a busybox container showed on dockerd 20.10 for the
/// entries its init layer adds (busybox has /dev, /proc and /sys but no /etc/hosts...):
/// (mode, name), the same whether the container was started or not.
const INIT_LAYER_ENTRIES: &[(&str, &str)] = &[
    ("-rwxr-xr-x", ".dockerenv"),
    ("drwxr-xr-x", "dev/"),
    ("-rwxr-xr-x", "dev/console"),
    ("drwxr-xr-x", "dev/pts/"),
    ("drwxr-xr-x", "dev/shm/"),
    ("drwxr-xr-x", "etc/"),
    ("-rwxr-xr-x", "etc/hostname"),
    ("-rwxr-xr-x", "etc/hosts"),
    ("lrwxrwxrwx", "etc/mtab"),
    ("-rwxr-xr-x", "etc/resolv.conf"),
    ("drwxr-xr-x", "proc/"),
    ("drwxr-xr-x", "sys/"),
];

#[test]
fn export_holds_the_init_layer_as_dockers_does() {
    let d = Daemon::start();
    let id = d.ok(&["create", "busybox", "sleep", "60"]);
    let listing = |d: &Daemon| {
        let out = d.berth_cmd(&["export", &id]).output().unwrap();
        assert!(out.status.success());
        let mut tar = Command::new("tar")
            .args(["-tv"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        tar.stdin.take().unwrap().write_all(&out.stdout).unwrap();
        let out = tar.wait_with_output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let check = |listing: &str| {
        let rows: Vec<(String, String)> = listing
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_string(), f[5].to_string())
            })
            .collect();
        for (mode, name) in INIT_LAYER_ENTRIES {
            assert!(
                rows.iter().any(|(m, n)| m == mode && n == name),
                "{mode} {name} missing:\n{listing}"
            );
            assert_eq!(
                rows.iter().filter(|(_, n)| n == name).count(),
                1,
                "{name} twice"
            );
        }
        assert!(listing.contains("etc/mtab -> /proc/mounts"), "{listing}");
    };
    check(&listing(&d));
    d.ok(&["start", &id]);
    // Running: the runtime's bind targets in the writable layer do not show through.
    check(&listing(&d));
    d.ok(&["rm", "-f", &id]);
}
