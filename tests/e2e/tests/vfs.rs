//! The vfs storage driver (`berthd --storage-driver vfs`): every container gets a full copy
//! of its image, and run, exec, diff, cp, export, system df and rm work on it as on overlay2.
//! Expected outputs were taken from dockerd 20.10 started with `--storage-driver vfs`, same
//! image and commands.

use berth_e2e::{bin_dir, eventually, tempdir::TempDir, Daemon};
use std::process::Command;

/// Changes of every kind: new and removed files, an append, a directory removed and made
/// again, a directory replaced by a file, a new directory in an image directory.
const CHANGES: &str = "touch /newfile; rm /bin/ls; mkdir -p /tmp/a/b; echo x >> /etc/passwd; \
                       rm -rf /var; mkdir /var; touch /var/z; echo secret > /data/in-volume; \
                       rm -rf /usr; touch /usr; mkdir /bin/newdir; touch /bin/newdir/f";

/// dockerd 20.10 on vfs, sorted (its order is Go's random map order; ours is sorted by
/// directory, parents first). A directory replaced by a file is one change, as Docker's
/// naive diff reports it, without the directory's old contents.
const EXPECTED: &[&str] = &[
    "A /bin/newdir",
    "A /bin/newdir/f",
    "A /data",
    "A /newfile",
    "A /tmp/a",
    "A /tmp/a/b",
    "A /var/z",
    "C /bin",
    "C /etc",
    "C /etc/passwd",
    "C /tmp",
    "C /usr",
    "C /var",
    "D /bin/ls",
    "D /var/tmp",
];

fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(String::from).collect();
    v.sort();
    v
}

/// Mounts at or below `dir`.
fn mounts_below(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| std::path::Path::new(t).starts_with(dir))
        .map(String::from)
        .collect()
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn containers_on_vfs_run_exec_diff_cp_export_and_leave_nothing() {
    let d = Daemon::start_with(&["--storage-driver", "vfs"]);
    assert_eq!(
        d.docker(&["info", "-f", "{{.Driver}} {{json .DriverStatus}}"])
            .stdout
            .trim(),
        "vfs null"
    );

    // Running: exec changes the container's own copy, never the image.
    d.ok(&[
        "run", "-d", "--name", "live", "-v", "/data", "busybox", "sleep", "1000",
    ]);
    assert_eq!(d.ok(&["diff", "live"]), "A /data");
    d.ok(&["exec", "live", "sh", "-c", CHANGES]);
    assert_eq!(sorted(&d.ok(&["diff", "live"])), EXPECTED, "running");
    let r = d.docker(&["diff", "live"]);
    assert_eq!(
        (r.code, sorted(&r.stdout)),
        (0, EXPECTED.iter().map(|s| s.to_string()).collect()),
        "{}",
        r.stderr
    );
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "ls", "/bin/ls"]),
        "/bin/ls",
        "the image is untouched"
    );
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.Driver}} {{json .GraphDriver}}", "live"])
            .stdout
            .trim(),
        r#"vfs {"Data":null,"Name":"vfs"}"#
    );
    assert_eq!(
        d.docker(&["image", "inspect", "-f", "{{json .GraphDriver}}", "busybox"])
            .stdout
            .trim(),
        r#"{"Data":null,"Name":"vfs"}"#
    );

    // Stopped: the same changes; cp and export read (and cp writes) its copy.
    d.ok(&["stop", "-t", "0", "live"]);
    assert_eq!(sorted(&d.ok(&["diff", "live"])), EXPECTED, "stopped");
    let tmp = TempDir::new();
    let passwd = tmp.path().join("passwd");
    d.ok(&["cp", "live:/etc/passwd", passwd.to_str().unwrap()]);
    assert!(std::fs::read_to_string(&passwd).unwrap().ends_with("x\n"));
    std::fs::write(tmp.path().join("hello"), "hi\n").unwrap();
    d.ok(&[
        "cp",
        tmp.path().join("hello").to_str().unwrap(),
        "live:/hello",
    ]);
    assert!(d.ok(&["diff", "live"]).lines().any(|l| l == "A /hello"));

    // commit writes the listed deletions as whiteouts: the image shows exactly the changes.
    d.ok(&["commit", "live", "vfsimg"]);
    let check = "cat /hello; test -e /bin/ls || echo no-ls; test -f /usr && echo usr-file; ls /var";
    assert_eq!(d.ok(&["run", "--rm", "vfsimg", "sh", "-c", check]), "hi\nno-ls\nusr-file\nz");
    d.ok(&["rmi", "vfsimg"]);
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "{} export live | tar -t",
            bin_dir().join("berth").display()
        ))
        .env("BERTH_HOST", d.host())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8(out.stdout).unwrap();
    for present in ["hello", "newfile", "var/z", "bin/newdir/f", "usr"] {
        assert!(
            names.lines().any(|n| n == present),
            "{present} missing from export"
        );
    }
    assert!(
        !names
            .lines()
            .any(|n| n == "bin/ls" || n.starts_with("usr/")),
        "deleted files exported"
    );
    assert_eq!(
        mounts_below(&d.exec_root),
        Vec::<String>::new(),
        "cp and export unmount"
    );

    // `system df`: Docker's naive size, the bytes of what was added or changed (/etc/passwd
    // and /hello; the new files are empty).
    let image_passwd = d.ok(&["run", "--rm", "busybox", "wc", "-c", "/etc/passwd"]);
    let passwd_len: u64 = image_passwd
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let df = d.docker(&[
        "system",
        "df",
        "-v",
        "--format",
        "{{range .Containers}}{{.Names}} {{.Size}}\n{{end}}",
    ]);
    assert!(
        df.stdout
            .lines()
            .any(|l| l == format!("live {}B", passwd_len + 2 + 3)),
        "{}",
        df.stdout
    );

    // The container starts again on its copy, changes kept.
    d.ok(&["start", "live"]);
    assert_eq!(d.ok(&["exec", "live", "cat", "/hello"]), "hi");
    d.ok(&["rm", "-f", "live"]);
    let rootfs = d.data_root.join("containers-rootfs");
    assert!(d.ok(&["run", "--rm", "busybox", "true"]).is_empty());
    // `run --rm` removes its container just after the CLI returns.
    assert!(
        eventually(10, || entries(&rootfs).is_empty()),
        "rm leaves no copy behind: {:?}",
        entries(&rootfs)
    );
    assert_eq!(
        mounts_below(&d.root.path().to_path_buf()),
        Vec::<String>::new()
    );
}

#[test]
fn a_data_root_keeps_the_driver_of_its_containers() {
    let mut d = Daemon::start_with(&["--storage-driver", "vfs"]);
    d.ok(&["create", "--name", "kept", "busybox", "true"]);
    d.kill_daemon(libc::SIGTERM);

    // Asked for overlay2: refused, nothing changed.
    let out = Command::new(bin_dir().join("berthd"))
        .args([
            "-H",
            &d.host(),
            "--storage-driver",
            "overlay2",
            "--data-root",
        ])
        .arg(&d.data_root)
        .arg("--exec-root")
        .arg(&d.exec_root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds containers of the vfs storage driver; start with --storage-driver vfs"),
        "{err}"
    );

    // No driver named: the prior one is used, as dockerd does.
    d.extra_args.clear();
    d.spawn();
    assert_eq!(
        d.docker(&["info", "-f", "{{.Driver}}"]).stdout.trim(),
        "vfs"
    );
    d.ok(&["start", "kept"]);

    // An unknown driver is refused as dockerd refuses it.
    let out = Command::new(bin_dir().join("berthd"))
        .args([
            "-H",
            "unix:///nonexistent/x.sock",
            "--storage-driver",
            "zfs",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("error initializing graphdriver: driver not supported"));
}

#[test]
fn overlay2_is_named_as_docker_names_it() {
    let d = Daemon::start_with(&["--storage-driver", "overlay2"]);
    assert_eq!(
        d.docker(&["info", "-f", "{{.Driver}}"]).stdout.trim(),
        "overlay2"
    );
    let id = d.ok(&["create", "busybox", "true"]);
    let data = d.docker(&[
        "inspect",
        "-f",
        "{{.Driver}} {{json .GraphDriver.Data}}",
        &id,
    ]);
    let upper = d
        .data_root
        .join("containers-rootfs")
        .join(&id)
        .join("upper");
    let work = upper.with_file_name("work");
    assert!(data.stdout.starts_with("overlay2 {"), "{}", data.stdout);
    for key in ["LowerDir", "MergedDir", "UpperDir", "WorkDir"] {
        assert!(
            data.stdout.contains(&format!("\"{key}\":")),
            "{key} missing: {}",
            data.stdout
        );
    }
    assert!(data
        .stdout
        .contains(&format!("\"UpperDir\":\"{}\"", upper.display())));
    assert!(data
        .stdout
        .contains(&format!("\"WorkDir\":\"{}\"", work.display())));
}

#[test]
fn identical_built_files_stay_separate_files_on_vfs() {
    let d = Daemon::start_with(&["--storage-driver", "vfs"]);
    // Two context files with the same content and metadata are one stored file; the layer
    // a build makes of them must still have two files, unless the context links them.
    let ctx = TempDir::new();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nCOPY . /c/\n").unwrap();
    for name in ["a", "b", "real"] {
        std::fs::write(ctx.path().join(name), "same\n").unwrap();
    }
    std::fs::hard_link(ctx.path().join("real"), ctx.path().join("link")).unwrap();
    let out = Command::new("touch")
        .args(["-d", "2020-01-01 00:00:00"])
        .args(["a", "b", "real", "link"].map(|n| ctx.path().join(n)))
        .output()
        .unwrap();
    assert!(out.status.success());
    let r = d.docker(&["build", "-q", "-t", "twins", ctx.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let script = "echo changed > /c/a; cat /c/b; echo changed > /c/real; cat /c/link; \
                  stat -c %h /c/a /c/b /c/real";
    let r = d.docker(&["run", "--rm", "twins", "sh", "-c", script]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "same\nchanged\n1\n1\n2\n"),
        "{}",
        r.stderr
    );
}
