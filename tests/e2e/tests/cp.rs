//! `cp` both ways: directories, contents (`dir/.`), files, a stopped container, a volume,
//! tar streams, hostile symlinks and archives, and the real docker CLI. Nothing stays mounted.

use berth_e2e::tempdir::TempDir;
use berth_e2e::Daemon;
use std::io::Write;
use std::process::Stdio;

fn mounts_below(root: &std::path::Path) -> usize {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.contains("/cp/"))
        .filter(|t| std::path::Path::new(t).starts_with(root))
        .count()
}

#[test]
fn cp_both_ways_running_and_stopped() {
    let d = Daemon::start();
    let tmp = TempDir::new();
    let local = tmp.path();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "cpc",
        "-v",
        "vol:/data",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/sub && echo hi > /d/sub/f && echo top > /d/t && sleep 1000",
    ]);
    assert!(berth_e2e::eventually(10, || d
        .berth(&["exec", "cpc", "cat", "/d/t"])
        .stdout
        .trim()
        == "top"));

    // A directory, then its contents.
    d.ok(&["cp", "cpc:/d", local.join("copy").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(local.join("copy/sub/f")).unwrap(),
        "hi\n"
    );
    std::fs::create_dir(local.join("contents")).unwrap();
    d.ok(&["cp", "cpc:/d/.", local.join("contents").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(local.join("contents/t")).unwrap(),
        "top\n"
    );

    // A file into a directory (trailing /), into a volume, and under a new name.
    std::fs::write(local.join("up"), "up\n").unwrap();
    d.ok(&["cp", local.join("up").to_str().unwrap(), "cpc:/d/"]);
    d.ok(&[
        "cp",
        local.join("up").to_str().unwrap(),
        "cpc:/data/renamed",
    ]);
    assert_eq!(
        d.ok(&["exec", "cpc", "cat", "/d/up", "/data/renamed"]),
        "up\nup"
    );

    // Docker's errors.
    let r = d.berth(&["cp", "cpc:/nope", local.to_str().unwrap()]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error: No such container:path: cpc:/nope")
    );
    let r = d.berth(&["cp", local.join("up").to_str().unwrap(), "cpc:/missing/"]);
    assert_eq!((r.code, r.stderr.trim()), (1, "no such directory"));

    // A symlink in the container pointing at the host's /etc: the copy lands in the container.
    d.ok(&[
        "exec",
        "cpc",
        "sh",
        "-c",
        "mkdir -p /trap && ln -s /etc /trap/etc",
    ]);
    let marker = format!("berth-cp-{}", std::process::id());
    std::fs::write(local.join(&marker), "x").unwrap();
    d.ok(&[
        "cp",
        local.join(&marker).to_str().unwrap(),
        "cpc:/trap/etc/",
    ]);
    assert!(
        !std::path::Path::new("/etc").join(&marker).exists(),
        "wrote to the host's /etc"
    );
    d.ok(&["exec", "cpc", "test", "-f", &format!("/etc/{marker}")]);

    // A tar with a ../ entry from stdin is refused and writes nothing outside.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    let name = format!("../../../../../../tmp/{marker}-escape");
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let evil = b.into_inner().unwrap();
    let mut child = d
        .berth_cmd(&["cp", "-", "cpc:/d"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&evil).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(!std::path::Path::new(&format!("/tmp/{marker}-escape")).exists());

    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("is outside of \"/d\""), "{err}");

    // An uploaded entry below the container's /trap/etc -> /etc symlink is resolved by the
    // daemon inside the container (the CLI does not look at entry names).
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, format!("trap/etc/{marker}-via-tar"), &b"in"[..])
        .unwrap();
    let via_tar = b.into_inner().unwrap();
    let mut child = d
        .berth_cmd(&["cp", "-", "cpc:/"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&via_tar).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !std::path::Path::new(&format!("/etc/{marker}-via-tar")).exists(),
        "wrote to the host's /etc"
    );
    assert_eq!(
        d.ok(&["exec", "cpc", "cat", &format!("/etc/{marker}-via-tar")]),
        "in"
    );

    // Copying out a symlink to a host path makes a symlink; nothing is written through it.
    d.ok(&[
        "exec",
        "cpc",
        "sh",
        "-c",
        &format!("mkdir /out && ln -s /tmp /out/tmp && echo x > /out/f"),
    ]);
    d.ok(&["cp", "cpc:/out", local.join("out").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_link(local.join("out/tmp")).unwrap(),
        std::path::Path::new("/tmp")
    );

    // Ownership travels with the file, with and without -a (the container has no User).
    std::fs::write(local.join("owned"), "o").unwrap();
    std::os::unix::fs::chown(local.join("owned"), Some(1234), Some(5678)).unwrap();
    d.ok(&["cp", local.join("owned").to_str().unwrap(), "cpc:/o1"]);
    d.ok(&["cp", "-a", local.join("owned").to_str().unwrap(), "cpc:/o2"]);
    assert_eq!(
        d.ok(&["exec", "cpc", "stat", "-c", "%u:%g", "/o1", "/o2"]),
        "1234:5678\n1234:5678"
    );

    // With a User, -a gives what it extracts to that user (docker's copyUIDGID).
    d.ok(&[
        "create",
        "--name",
        "cpuser",
        "--user",
        "1000:1001",
        "busybox",
        "true",
    ]);
    d.ok(&[
        "cp",
        "-a",
        local.join("owned").to_str().unwrap(),
        "cpuser:/o",
    ]);
    let out = d
        .berth_cmd(&["cp", "cpuser:/o", "-"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let mut a = tar::Archive::new(out.stdout.as_slice());
    let e = a.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(
        (e.header().uid().unwrap(), e.header().gid().unwrap()),
        (1000, 1001)
    );

    // A directory is not replaced by a file, as docker's noOverwriteDirNonDir.
    d.ok(&["exec", "cpc", "mkdir", "-p", "/over/sub"]);
    std::fs::write(local.join("sub"), "f").unwrap();
    let r = d.berth(&["cp", local.join("sub").to_str().unwrap(), "cpc:/over/"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("cannot overwrite directory \"/over/sub\" with non-directory \"/over\""),
        "{}",
        r.stderr
    );
    d.ok(&["exec", "cpc", "test", "-d", "/over/sub"]);

    // Local destination errors.
    let r = d.berth(&["cp", "cpc:/d/t", local.join("nodir/x").to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "invalid output path: directory \"{}\" does not exist",
            local.join("nodir").display()
        )
    );
    let r = d.berth(&["cp", "cpc:/d", local.join("up").to_str().unwrap()]);
    assert_eq!((r.code, r.stderr.trim()), (1, "cannot copy directory"));
    let r = d.berth(&["cp", local.join("up").to_str().unwrap(), "nocontainer:/x"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error: No such container:path: nocontainer:/")
    );

    // Names longer than a tar header holds survive both ways.
    let long = "n".repeat(150);
    std::fs::create_dir(local.join("longdir")).unwrap();
    std::fs::write(local.join("longdir").join(&long), "long").unwrap();
    d.ok(&["cp", local.join("longdir").to_str().unwrap(), "cpc:/"]);
    d.ok(&[
        "cp",
        "cpc:/longdir",
        local.join("longback").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(local.join("longback").join(&long)).unwrap(),
        "long"
    );

    // A tar to stdout.
    let out = d
        .berth_cmd(&["cp", "cpc:/d/t", "-"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let mut a = tar::Archive::new(out.stdout.as_slice());
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, vec!["t"]);

    // Stopped: both ways through a temporary mount that is gone afterwards.
    d.ok(&["stop", "-t", "0", "cpc"]);
    d.ok(&["cp", local.join("up").to_str().unwrap(), "cpc:/stopped"]);
    d.ok(&["cp", "cpc:/stopped", local.join("back").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(local.join("back")).unwrap(), "up\n");
    d.ok(&[
        "cp",
        "cpc:/data/renamed",
        local.join("fromvol").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(local.join("fromvol")).unwrap(),
        "up\n"
    );
    assert_eq!(mounts_below(d.root.path()), 0);

    // The real docker CLI.
    let r = d.docker(&[
        "cp",
        "cpc:/stopped",
        local.join("bydocker").to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(local.join("bydocker")).unwrap(),
        "up\n"
    );
    let r = d.docker(&[
        "cp",
        local.join("up").to_str().unwrap(),
        "cpc:/d/fromdocker",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = d.docker(&["cp", "cpc:/nope", local.to_str().unwrap()]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error: No such container:path: cpc:/nope")
    );
    // `dir/.` into a new directory: docker's CLI rebases the archive's "./" entries.
    let r = d.docker(&["cp", "cpc:/d/.", local.join("dcontents").to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(local.join("dcontents/t")).unwrap(),
        "top\n"
    );
    assert!(
        !local.join("t").exists(),
        "contents landed beside the destination"
    );
    d.ok(&["start", "cpc"]);
    assert_eq!(
        d.ok(&["exec", "cpc", "cat", "/d/fromdocker", "/stopped"]),
        "up\nup"
    );
}

#[test]
fn cp_refuses_read_only_rootfs_and_volumes() {
    let d = Daemon::start();
    let tmp = TempDir::new();
    let file = tmp.path().join("f");
    std::fs::write(&file, "f").unwrap();
    let file = file.to_str().unwrap();
    d.ok(&[
        "create",
        "--name",
        "cpro",
        "--read-only",
        "-v",
        "cpro-ro:/ro:ro",
        "-v",
        "cpro-rw:/rw",
        "busybox",
        "true",
    ]);
    let r = d.berth(&["cp", file, "cpro:/"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: container rootfs is marked read-only"
        )
    );
    let r = d.berth(&["cp", file, "cpro:/ro/"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: mounted volume is marked read-only"
        )
    );
    d.ok(&["cp", file, "cpro:/rw/"]);
    // The volume's root itself, as a directory named after the mount point.
    d.ok(&[
        "cp",
        "cpro:/rw",
        tmp.path().join("rwback").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("rwback/f")).unwrap(),
        "f"
    );
    let r = d.docker(&["cp", file, "cpro:/"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: container rootfs is marked read-only"
        )
    );
}

#[test]
fn cp_paths_that_ask_for_a_directory_and_the_root() {
    let d = Daemon::start();
    let tmp = TempDir::new();
    d.ok(&[
        "run",
        "--name",
        "cpr",
        "busybox",
        "sh",
        "-c",
        "echo x > /f; ln -s /gone /dangling",
    ]);
    let cli = |docker: bool, args: &[&str]| {
        if docker {
            d.docker(args)
        } else {
            d.berth(args)
        }
    };
    for docker in [false, true] {
        // A trailing `/` or `/.` on a file, or a file in the way: Docker's lstat error (it
        // names its own host path there; berth names the container's).
        for (src, quoted) in [
            ("cpr:/f/", "/f/"),
            ("cpr:/f/.", "/f/."),
            ("cpr:/f/x", "/f/x"),
        ] {
            let r = cli(
                docker,
                &["cp", src, tmp.path().join("out").to_str().unwrap()],
            );
            let want = format!("Error response from daemon: lstat {quoted}: not a directory");
            assert_eq!(
                (r.code, r.stderr.trim()),
                (1, want.as_str()),
                "docker={docker} {src}"
            );
        }
        // Through a dangling link it is not found.
        let r = cli(
            docker,
            &[
                "cp",
                "cpr:/dangling/",
                tmp.path().join("out").to_str().unwrap(),
            ],
        );
        assert_eq!(
            (r.code, r.stderr.trim()),
            (1, "Error: No such container:path: cpr:/dangling/"),
            "docker={docker}"
        );
        assert!(!tmp.path().join("out").exists());

        // The root copies as its contents, into a new directory or an existing one.
        let fresh = tmp.path().join(format!("root-{docker}"));
        let r = cli(docker, &["cp", "cpr:/", fresh.to_str().unwrap()]);
        assert_eq!(r.code, 0, "docker={docker}: {}", r.stderr);
        assert_eq!(std::fs::read_to_string(fresh.join("f")).unwrap(), "x\n");
        assert!(fresh.join("bin/busybox").is_file());
        let existing = tmp.path().join(format!("into-{docker}"));
        std::fs::create_dir(&existing).unwrap();
        let r = cli(docker, &["cp", "cpr:/", existing.to_str().unwrap()]);
        assert_eq!(r.code, 0, "docker={docker}: {}", r.stderr);
        assert_eq!(std::fs::read_to_string(existing.join("f")).unwrap(), "x\n");
    }
    // Headers as Docker's archive package writes them: the mode with its file type bits,
    // the owner named from the host's files (uid 0 is root there).
    for args in [&["cp", "cpr:/f", "-"][..], &["export", "cpr"][..]] {
        let out = d.berth_cmd(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let mut archive = tar::Archive::new(&out.stdout[..]);
        let entry = archive
            .entries()
            .unwrap()
            .map(Result::unwrap)
            .find(|e| e.path().unwrap().to_str() == Some("f"))
            .unwrap();
        let h = entry.header();
        assert_eq!(h.mode().unwrap(), 0o100644, "{args:?}");
        assert_eq!(
            (h.username().unwrap(), h.groupname().unwrap()),
            (Some("root"), Some("root")),
            "{args:?}"
        );
    }
}

/// Errors for paths that cannot be copied, through the docker 20.10 CLI, as it prints them
/// against dockerd 20.10 for the same commands (dockerd quotes its host overlay path in
/// `lstat` errors; berth quotes the container's, which is what the user named and all a
/// client can use). The CLI asks HEAD first, so a missing path is its own message.
#[test]
fn cp_errors_read_as_dockerds() {
    let d = Daemon::start();
    d.ok(&["create", "--name", "cpe", "busybox", "sh"]);
    let tmp = berth_e2e::tempdir::TempDir::new();
    let file = tmp.path().join("file");
    std::fs::write(&file, "hi").unwrap();
    let dir = tmp.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    let (file, dir, out) = (
        file.to_str().unwrap().to_string(),
        dir.to_str().unwrap().to_string(),
        tmp.path().join("out").to_str().unwrap().to_string(),
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["cp", "cpe:/nonexistent", &out],
            "Error: No such container:path: cpe:/nonexistent",
        ),
        (
            &["cp", &file, "cpe:/nonexist/x"],
            "Error: No such container:path: cpe:/nonexist",
        ),
        (
            &["cp", &file, "cpe:/etc/passwd/x"],
            "Error response from daemon: extraction point is not a directory",
        ),
        (&["cp", &file, "cpe:/etc/passwd/"], "no such directory"),
        (&["cp", &file, "cpe:/nonexist/dir/"], "no such directory"),
        (&["cp", "cpe:/etc", &file], "cannot copy directory"),
        (
            &["cp", "cpe:/etc/passwd/x", &out],
            "Error response from daemon: lstat /etc/passwd/x: not a directory",
        ),
        (
            &["cp", "nosuch:/etc", &out],
            "Error: No such container:path: nosuch:/etc",
        ),
    ];
    for (args, want) in cases {
        let r = d.docker(args);
        // Uploads are refused while the client's tar writer runs in the background; it may
        // log that its pipe closed first, at random (against dockerd too).
        let last = r.stderr.trim().lines().last().unwrap_or_default();
        assert_eq!((r.code, last), (1, *want), "{args:?}: {}", r.stderr);
    }
    // A directory onto a file: refused by the client (its background tar writer may log
    // that its pipe closed), nothing changed in the container.
    let r = d.docker(&["cp", &dir, "cpe:/etc/passwd"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.trim_end().ends_with("cannot copy directory"),
        "{}",
        r.stderr
    );
    let r = d.docker(&["cp", "cpe:/etc/passwd", &format!("{file}/")]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, format!("stat {file}/: not a directory").as_str())
    );
    assert!(
        !std::path::Path::new(&out).exists(),
        "nothing written on the host"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hi");
    d.ok(&["rm", "cpe"]);
}
