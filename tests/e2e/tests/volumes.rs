//! Volumes and mounts: data that outlives containers, with the berth and docker CLIs.

use berth_e2e::Daemon;
use std::process::Command;

/// Mounts of this test's daemon still on the host (a volume must never leak one).
fn mounts_under(d: &Daemon) -> Vec<String> {
    let root = d.root.path().to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&root))
        .map(String::from)
        .collect()
}

#[test]
fn named_volume_is_shared_and_outlives_containers() {
    let d = Daemon::start();
    assert_eq!(d.ok(&["volume", "create", "--label", "team=a", "shared"]), "shared");
    d.ok(&["run", "--name", "writer", "-v", "shared:/data", "busybox", "sh", "-c", "echo hello > /data/greeting"]);
    d.ok(&["rm", "writer"]);
    assert_eq!(d.ok(&["run", "--rm", "-v", "shared:/in", "busybox", "cat", "/in/greeting"]), "hello");
    // The data is on disk, in Docker's layout.
    let on_disk = d.data_root.join("volumes/shared/_data/greeting");
    assert_eq!(std::fs::read_to_string(on_disk).unwrap(), "hello\n");

    assert_eq!(d.ok(&["volume", "ls", "-q"]), "shared");
    assert_eq!(d.ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}} {{.Labels}}"]), "shared local team=a");
    let table = d.ok(&["volume", "ls"]);
    assert!(table.starts_with("DRIVER    VOLUME NAME\nlocal     shared"), "{table}");
    let mp = d.ok(&["volume", "inspect", "-f", "{{.Mountpoint}} {{.Scope}}", "shared"]);
    assert_eq!(mp, format!("{} local", d.data_root.join("volumes/shared/_data").display()));

    // In use: refused with Docker's message, listing the container.
    let id = d.ok(&["create", "-v", "shared:/data", "busybox", "true"]);
    assert_eq!(d.ok(&["volume", "ls", "-q", "-f", "dangling=true"]), "");
    let r = d.berth(&["volume", "rm", "shared"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim(), format!("Error response from daemon: remove shared: volume is in use - [{id}]"));
    d.ok(&["rm", &id]);
    assert_eq!(d.ok(&["volume", "ls", "-q", "-f", "dangling=true"]), "shared");
    // prune keeps named volumes unless -a.
    d.ok(&["volume", "prune", "-f"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "shared");
    let out = d.ok(&["volume", "prune", "-f", "-a"]);
    assert!(out.starts_with("Deleted Volumes:\nshared\n"), "{out}");
    assert!(!d.data_root.join("volumes/shared").exists());
    let r = d.berth(&["volume", "rm", "shared"]);
    assert_eq!((r.code, r.stderr.trim()), (1, "Error response from daemon: get shared: no such volume"));
    assert_eq!(d.berth(&["volume", "rm", "-f", "shared"]).code, 0);
}

#[test]
fn read_only_mounts_and_root_refuse_writes() {
    let d = Daemon::start();
    d.ok(&["volume", "create", "ro-data"]);
    let r = d.berth(&["run", "--rm", "-v", "ro-data:/data:ro", "busybox", "touch", "/data/x"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    let r = d.berth(&["run", "--rm", "--mount", "type=volume,source=ro-data,target=/data,readonly", "busybox", "touch", "/data/x"]);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    let host = d.root.path().join("host-dir");
    std::fs::create_dir(&host).unwrap();
    let bind = format!("{}:/h:ro", host.display());
    let r = d.berth(&["run", "--rm", "-v", &bind, "busybox", "touch", "/h/x"]);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    assert!(!host.join("x").exists());
    let r = d.berth(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    // A writable bind writes through to the host.
    let bind = format!("{}:/h", host.display());
    d.ok(&["run", "--rm", "-v", &bind, "busybox", "sh", "-c", "echo through > /h/y"]);
    assert_eq!(std::fs::read_to_string(host.join("y")).unwrap(), "through\n");
}

#[test]
fn tmpfs_is_empty_at_each_start() {
    let d = Daemon::start();
    d.ok(&["create", "--name", "tmp1", "--tmpfs", "/scratch", "busybox", "sh", "-c", "ls /scratch; echo x > /scratch/f; grep ' /scratch ' /proc/mounts"]);
    d.ok(&["start", "tmp1"]);
    d.ok(&["wait", "tmp1"]);
    d.ok(&["start", "tmp1"]);
    d.ok(&["wait", "tmp1"]);
    let logs = d.ok(&["logs", "tmp1"]);
    let lines: Vec<&str> = logs.lines().collect();
    // `ls` printed nothing either time: only the two mount lines.
    assert_eq!(lines.len(), 2, "{logs}");
    assert!(lines[0].starts_with("tmpfs /scratch tmpfs rw,nosuid,nodev,noexec"), "{logs}");
    // --tmpfs is not listed in Mounts (as Docker); --mount type=tmpfs is.
    assert_eq!(d.ok(&["inspect", "-f", "{{len .Mounts}}", "tmp1"]), "0");
    let out = d.ok(&["run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "busybox", "grep", " /t ", "/proc/mounts"]);
    assert!(out.contains("size=1024k"), "{out}");
}

#[test]
fn image_volume_copies_content_with_ownership_and_anonymous_volumes_go_with_rm_v() {
    let d = Daemon::start();
    // An image whose /data (owned by 65534) is a VOLUME.
    let src = d.root.path().join("img");
    std::fs::create_dir_all(src.join("data")).unwrap();
    std::fs::write(src.join("data/file"), "from the image\n").unwrap();
    let tar = d.root.path().join("img.tar");
    let st = Command::new("tar")
        .args(["--owner=65534", "--group=65534", "--mode=u=rwX,g=rX,o=", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("data")
        .status()
        .unwrap();
    assert!(st.success());
    d.ok(&["import", "-c", "VOLUME /data", tar.to_str().unwrap(), "withvol"]);
    // The image has no shell: create is enough for the copy-up; read it from busybox.
    d.ok(&["create", "--name", "holder", "withvol", "true"]);
    let vol = d.ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}} {{.Destination}} {{.RW}}{{end}}", "holder"]);
    let (name, rest) = vol.split_once(' ').unwrap();
    assert_eq!((name.len(), rest), (64, "/data true"));
    let out = d.ok(&["run", "--rm", "--volumes-from", "holder", "busybox", "sh", "-c", "stat -c '%u:%g %a' /data /data/file; cat /data/file"]);
    assert_eq!(out, "65534:65534 750\n65534:65534 640\nfrom the image");
    let out = d.ok(&["run", "--rm", "--volumes-from", "holder:ro", "busybox", "sh", "-c", "touch /data/x 2>&1; true"]);
    assert!(out.contains("Read-only file system"), "{out}");
    // `-v /path` makes an anonymous volume too; `rm` keeps them, `rm -v` removes them.
    d.ok(&["create", "--name", "anon", "-v", "/scratch", "busybox", "true"]);
    let anon = d.ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "anon"]);
    d.ok(&["rm", "anon"]);
    assert!(d.ok(&["volume", "ls", "-q"]).contains(&anon));
    d.ok(&["rm", "-v", "holder"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]), anon);
    // `--rm` removes the anonymous volumes as well.
    d.ok(&["run", "--rm", "-v", "/tmpdata", "busybox", "true"]);
    assert!(berth_e2e::eventually(10, || d.ok(&["volume", "ls", "-q"]) == anon));
    let out = d.ok(&["volume", "prune", "-f"]);
    assert!(out.starts_with(&format!("Deleted Volumes:\n{anon}\n")), "{out}");
    assert!(mounts_under(&d).is_empty(), "{:?}", mounts_under(&d));
}

#[test]
fn volume_data_survives_a_killed_daemon() {
    let mut d = Daemon::start();
    d.ok(&["run", "-d", "--name", "durable-writer", "-v", "durable:/data", "busybox", "sh", "-c", "echo kept > /data/f; sync; sleep 300"]);
    assert!(berth_e2e::eventually(10, || d.data_root.join("volumes/durable/_data/f").exists()));
    d.kill_daemon(libc::SIGKILL);
    d.spawn();
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "durable");
    assert_eq!(d.ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}:{{.Destination}}{{end}}", "durable-writer"]), "durable:/data");
    d.ok(&["rm", "-f", "durable-writer"]);
    d.kill_daemon(libc::SIGTERM);
    d.spawn();
    assert_eq!(d.ok(&["run", "--rm", "-v", "durable:/data", "busybox", "cat", "/data/f"]), "kept");
}

#[test]
fn bad_mounts_are_refused_and_leave_nothing() {
    let d = Daemon::start();
    let cases: &[(&[&str], &str)] = &[
        (&["--mount", "type=bind,source=/nonexistent-berth-src,target=/x"], "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-berth-src"),
        (&["-v", "bad/name:/x"], "create bad/name: \"bad/name\" includes invalid characters for a local volume name"),
        (&["-v", "v1:/x:bogus"], "invalid mode: bogus"),
        (&["-v", "/tmp:rel"], "invalid volume specification: '/tmp:rel': invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"),
        (&["-v", "v1:/x", "-v", "v2:/x"], "Duplicate mount point: /x"),
        (&["--tmpfs", "rel"], "invalid mount path: 'rel' mount path must be absolute"),
        (&["--volumes-from", "ghost"], "No such container: ghost"),
        (&["--mount", "type=volume,target=/x,volume-driver=nope"], "error looking up volume plugin nope: plugin \"nope\" not found"),
        (&["--mount", "type=volume,target=/x,volume-opt=foo=bar"], "invalid option: \"foo\""),
    ];
    for (flags, want) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let r = d.berth(&args);
        assert_eq!(r.code, 125, "{flags:?}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{flags:?}: {}", r.stderr);
    }
    let r = d.berth(&["run", "--rm", "--mount", "type=volume", "busybox", "true"]);
    assert!(r.stderr.contains("invalid argument \"type=volume\" for \"--mount\" flag: target is required"), "{}", r.stderr);
    let r = d.berth(&["volume", "create", "-d", "nope", "vx"]);
    assert_eq!((r.code, r.stderr.trim()), (1, "Error response from daemon: create vx: error looking up volume plugin nope: plugin \"nope\" not found"));
    let r = d.berth(&["volume", "create", "-o", "foo=bar", "vx"]);
    assert_eq!(r.stderr.trim(), "Error response from daemon: create vx: invalid option: \"foo\"");
    let r = d.berth(&["volume", "create", "../escape"]);
    assert!(r.stderr.contains("includes invalid characters for a local volume name"), "{}", r.stderr);
    // Nothing was created: no volume, no container, no directory.
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("volumes")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!d.root.path().join("escape").exists());
    // `-v` creates a missing host directory, as Docker does.
    let auto = d.root.path().join("auto/sub");
    let bind = format!("{}:/x", auto.display());
    d.ok(&["run", "--rm", "-v", &bind, "busybox", "true"]);
    assert!(auto.is_dir());
}

#[test]
fn docker_cli_uses_volumes() {
    let d = Daemon::start();
    let r = d.docker(&["volume", "create", "dv"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "dv"), "{}", r.stderr);
    let r = d.docker(&["run", "--rm", "-v", "dv:/data", "busybox", "sh", "-c", "echo from-docker > /data/f"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = d.docker(&["run", "--rm", "--mount", "source=dv,target=/in,readonly", "busybox", "cat", "/in/f"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "from-docker\n"), "{}", r.stderr);
    let r = d.docker(&["run", "--rm", "--mount", "source=dv,target=/in,readonly", "busybox", "touch", "/in/g"]);
    assert!(r.stderr.contains("Read-only file system"), "{}", r.stderr);
    let r = d.docker(&["run", "--rm", "--tmpfs", "/t", "busybox", "sh", "-c", "grep ' /t ' /proc/mounts"]);
    assert!(r.stdout.starts_with("tmpfs /t tmpfs rw,nosuid,nodev,noexec"), "{}{}", r.stdout, r.stderr);
    let r = d.docker(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert_eq!(r.stdout.trim(), "local dv", "{}", r.stderr);
    let r = d.docker(&["volume", "inspect", "-f", "{{.Name}} {{.Driver}} {{.Scope}}", "dv"]);
    assert_eq!(r.stdout.trim(), "dv local local", "{}", r.stderr);
    let id = d.docker(&["create", "-v", "dv:/data", "-v", "/anon", "busybox", "true"]).stdout.trim().to_string();
    let r = d.docker(&["inspect", "-f", "{{range .Mounts}}{{.Type}},{{.Destination}},{{.Mode}},{{.RW}};{{end}}", &id]);
    assert_eq!(r.stdout.trim(), "volume,/data,z,true;volume,/anon,,true;", "{}", r.stderr);
    let r = d.docker(&["volume", "rm", "dv"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim(), format!("Error response from daemon: remove dv: volume is in use - [{id}]"));
    let r = d.docker(&["ps", "-a", "--format", "{{.Mounts}}"]);
    assert!(r.stdout.contains("dv"), "{}", r.stdout);
    assert_eq!(d.docker(&["rm", "-v", &id]).code, 0);
    assert_eq!(d.docker(&["volume", "ls", "-q"]).stdout.trim(), "dv");
    let r = d.docker(&["run", "--rm", "--mount", "type=bind,source=/nonexistent-berth-src,target=/x", "busybox", "true"]);
    assert!(r.stderr.contains("invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-berth-src"), "{}", r.stderr);
    assert_eq!(d.docker(&["volume", "rm", "dv"]).stdout.trim(), "dv");
    assert!(mounts_under(&d).is_empty(), "{:?}", mounts_under(&d));
}
