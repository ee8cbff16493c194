//! `--ipc`, `--pid`, `--uts`, `--userns`, `--device`, `--device-cgroup-rule` and `--sysctl`:
//! what the process inside sees (its namespaces against the host's and other containers',
//! /dev/shm, device nodes, /proc/sys), and dockerd 20.10's errors for what cannot be done.

use berth_e2e::{eventually, Daemon};

/// Our own namespace of `kind` (`ipc:[4026531839]`): the host's, as the tests run there.
fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// What `readlink /proc/self/ns/<kind>` prints inside a running container.
fn container_ns(d: &Daemon, name: &str, kind: &str) -> String {
    d.ok(&["exec", name, "readlink", &format!("/proc/self/ns/{kind}")])
}

/// Makes a character device node (`mode` its permission bits).
fn mknod(path: &std::path::Path, mode: u32, major: u32, minor: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mknod(2) with a valid C string naming a path in our own temporary directory.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | mode, libc::makedev(major, minor)) };
    assert_eq!(made, 0, "mknod {}: {}", path.display(), std::io::Error::last_os_error());
}

#[test]
fn host_modes_use_the_hosts_namespaces() {
    let d = Daemon::start();
    let script = "for n in ipc pid uts; do readlink /proc/self/ns/$n; done";
    let own = d.ok(&["run", "--rm", "busybox", "sh", "-c", script]);
    let host = d.ok(&[
        "run", "--rm", "--ipc", "host", "--pid", "host", "--uts", "host", "busybox", "sh", "-c", script,
    ]);
    let expected: Vec<String> = ["ipc", "pid", "uts"].iter().map(|k| host_ns(k)).collect();
    assert_eq!(host.lines().collect::<Vec<_>>(), expected);
    for (line, host) in own.lines().zip(&expected) {
        assert_ne!(line, host, "a default container has its own namespaces");
    }

    // --ipc host binds the host's /dev/shm: a file made there is seen inside.
    let marker = format!("/dev/shm/berth-e2e-ns-{}", std::process::id());
    std::fs::write(&marker, "from the host").unwrap();
    let seen = d.berth(&["run", "--rm", "--ipc", "host", "busybox", "cat", &marker]);
    let _ = std::fs::remove_file(&marker);
    assert_eq!(
        (seen.code, seen.stdout.as_str()),
        (0, "from the host"),
        "{}",
        seen.stderr
    );

    // --ipc none: an IPC namespace of its own and no /dev/shm at all.
    let none = d.ok(&[
        "run",
        "--rm",
        "--ipc",
        "none",
        "busybox",
        "sh",
        "-c",
        "grep -c ' /dev/shm ' /proc/self/mounts; readlink /proc/self/ns/ipc",
    ]);
    let lines: Vec<&str> = none.lines().collect();
    assert_eq!(lines[0], "0", "{none}");
    assert_ne!(lines[1], host_ns("ipc"));
    // The default is dockerd's: private, as inspect says.
    let id = d.ok(&["create", "busybox"]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.HostConfig.IpcMode}}", &id]), "private");

    // --uts host: the host's name (the container keeps its own /etc/hostname, as in Docker).
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let names = d.ok(&["run", "--rm", "--uts", "host", "busybox", "hostname"]);
    assert_eq!(names, host_name);
    let r = d.berth(&["run", "--rm", "--uts", "host", "--hostname", "foo", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .contains("Error response from daemon: conflicting options: hostname and the UTS mode"),
        "{}",
        r.stderr
    );

    // --userns host is the only mode there is without userns-remap; the CLI refuses others.
    d.ok(&["run", "--rm", "--userns", "host", "busybox", "true"]);
    for (flag, msg) in [
        ("--userns", "--userns: invalid USER mode"),
        ("--uts", "--uts: invalid UTS mode"),
        ("--pid", "--pid: invalid PID mode"),
        ("--ipc", "--ipc: invalid IPC mode"),
    ] {
        let r = d.berth(&["run", "--rm", flag, "bogus", "busybox", "true"]);
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (125, format!("berth: {msg}.\nSee 'berth run --help'.\n").as_str())
        );
    }
    // The API takes an unknown IPC mode and fails its start, as dockerd does.
    let r = d.docker(&["run", "--rm", "--ipc", "bogus", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("Error response from daemon: Invalid IPC mode: bogus"),
        "{}",
        r.stderr
    );
}

#[test]
fn joins_share_a_running_containers_namespaces() {
    let d = Daemon::start();
    let owner = d.ok(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "busybox",
        "sh",
        "-c",
        "echo shared > /dev/shm/f; sleep 1000",
    ]);
    let plain = d.ok(&["run", "-d", "--name", "plain", "busybox", "sleep", "1000"]);
    assert!(eventually(10, || d
        .berth(&["exec", "donor", "cat", "/dev/shm/f"])
        .stdout
        == "shared\n"));

    // The joiner is in the donor's IPC namespace and sees its /dev/shm.
    let out = d.ok(&[
        "run",
        "--rm",
        "--ipc",
        "container:donor",
        "busybox",
        "sh",
        "-c",
        "cat /dev/shm/f; readlink /proc/self/ns/ipc",
    ]);
    assert_eq!(out, format!("shared\n{}", container_ns(&d, "donor", "ipc")));
    // The real docker CLI gets the same.
    let r = d.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:donor",
        "busybox",
        "cat",
        "/dev/shm/f",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "shared\n"), "{}", r.stderr);

    // Only a shareable, running container can be joined; dockerd's words for each.
    let r = d.berth(&["run", "--rm", "--ipc", "container:plain", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains(&format!("can't join IPC of container {plain}: non-shareable IPC (hint: use IpcMode:shareable for the donor container)")),
        "{}",
        r.stderr
    );
    let created = d.ok(&["create", "--name", "idle", "--ipc", "shareable", "busybox", "true"]);
    let r = d.berth(&["run", "--rm", "--ipc", "container:idle", "busybox", "true"]);
    assert!(
        r.stderr.contains(&format!(
            "can't join IPC of container {created}: container {created} is not running"
        )),
        "{}",
        r.stderr
    );
    let r = d.berth(&["run", "--rm", "--pid", "container:idle", "busybox", "true"]);
    assert!(
        r.stderr.contains(&format!(
            "Error response from daemon: container {created} is not running"
        )),
        "{}",
        r.stderr
    );
    for flag in ["--ipc", "--pid"] {
        let r = d.berth(&["create", flag, "container:nonexistent", "busybox"]);
        assert_eq!(r.code, 1);
        assert!(
            r.stderr
                .contains("Error response from daemon: No such container: nonexistent"),
            "{}",
            r.stderr
        );
    }

    // A PID join sees the other container's processes; inspect keeps the IDs.
    let joiner = d.ok(&[
        "run",
        "-d",
        "--name",
        "joiner",
        "--ipc",
        "container:donor",
        "--pid",
        "container:plain",
        "busybox",
        "sleep",
        "999",
    ]);
    assert_eq!(container_ns(&d, "joiner", "pid"), container_ns(&d, "plain", "pid"));
    let ps = d.ok(&["exec", "joiner", "ps", "-o", "args"]);
    assert!(ps.contains("sleep 1000") && ps.contains("sleep 999"), "{ps}");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.IpcMode}} {{.HostConfig.PidMode}}",
            &joiner
        ]),
        format!("container:{owner} container:{plain}")
    );

    // Stopping the PID namespace's owner ends the joiner (the kernel kills the namespace);
    // it starts again only once the owner runs, as under Docker.
    d.ok(&["stop", "-t", "1", "plain"]);
    assert!(eventually(10, || d.ok(&[
        "inspect",
        "-f",
        "{{.State.Running}}",
        "joiner"
    ]) == "false"));
    let r = d.berth(&["start", "joiner"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!("container {plain} is not running")),
        "{}",
        r.stderr
    );
    d.ok(&["start", "plain"]);
    d.ok(&["start", "joiner"]);
    assert_eq!(container_ns(&d, "joiner", "ipc"), container_ns(&d, "donor", "ipc"));

    // The shared /dev/shm is Docker's: a tmpfs of --shm-size, nosuid, nodev and noexec.
    let shm_line = "grep ' /dev/shm ' /proc/self/mounts";
    let expected = "shm /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=65536k 0 0";
    assert_eq!(d.ok(&["exec", "donor", "sh", "-c", shm_line]), expected);
    assert_eq!(d.ok(&["exec", "joiner", "sh", "-c", shm_line]), expected);

    // Removing the IPC donor leaves the joiner running in the namespace, with the /dev/shm
    // it shares (writable still); a later start of the joiner gets dockerd's error.
    d.ok(&["rm", "-f", "donor"]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Running}}", "joiner"]), "true");
    assert_eq!(
        d.ok(&[
            "exec",
            "joiner",
            "sh",
            "-c",
            "echo more > /dev/shm/g; cat /dev/shm/f /dev/shm/g"
        ]),
        "shared\nmore"
    );
    // The donor's host mount went with it; the joiner's bind keeps the tmpfs.
    let host_mount = d.exec_root.join("shm").join(&owner);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(host_mount.to_str().unwrap()), "{mountinfo}");
    assert!(!host_mount.exists());
    assert_eq!(d.ok(&["exec", "joiner", "cat", "/dev/shm/f"]), "shared");
    d.ok(&["stop", "-t", "1", "joiner"]);
    let r = d.berth(&["start", "joiner"]);
    assert!(
        r.stderr.contains(&format!(
            "can't join IPC of container {owner}: No such container: {owner}"
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn devices_are_created_and_allowed() {
    let d = Daemon::start();
    // A node of the local/experimental major 60 (no driver claims it): opening it reaches
    // the driver (ENXIO) where the device cgroup allows it, and fails with EPERM where not.
    let dir = berth_e2e::tempdir::TempDir::new();
    mknod(&dir.path().join("exp"), 0o600, 60, 0);
    let mapping = format!("{}:/dev/exp:r", dir.path().join("exp").display());
    let script = "stat -c '%F %a %t:%T' /dev/exp; cat /dev/exp; echo x > /dev/exp";
    let r = d.berth(&["run", "--rm", "--device", &mapping, "busybox", "sh", "-c", script]);
    assert_eq!(r.stdout, "character special file 600 3c:0\n", "{}", r.stderr);
    assert_eq!(
        r.stderr,
        "cat: can't open '/dev/exp': No such device or address\nsh: can't create /dev/exp: Operation not permitted\n"
    );
    // A device cgroup rule adds the write permission.
    let r = d.berth(&[
        "run",
        "--rm",
        "--device",
        &mapping,
        "--device-cgroup-rule",
        "c 60:0 rwm",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert!(
        r.stderr
            .ends_with("sh: can't create /dev/exp: No such device or address\n"),
        "{}",
        r.stderr
    );

    // A directory brings the device nodes below it (and nothing else: the plain file stays out).
    let tree = berth_e2e::tempdir::TempDir::new();
    std::fs::create_dir(tree.path().join("sub")).unwrap();
    mknod(&tree.path().join("sub/zero"), 0o640, 1, 5);
    std::fs::write(tree.path().join("plain"), "not a device").unwrap();
    let mapping = format!("{}:/dev/mine", tree.path().display());
    let script = "ls /dev/mine; stat -c '%A %t:%T' /dev/mine/sub/zero; head -c3 /dev/mine/sub/zero | od -An -tx1";
    let out = d.ok(&["run", "--rm", "--device", &mapping, "busybox", "sh", "-c", script]);
    assert_eq!(out, "sub\ncrw-r----- 1:5\n 00 00 00");

    // dockerd's errors: a missing host path at start, bad syntax in the CLI.
    let r = d.berth(&["run", "--rm", "--device", "/dev/berth-nonexistent", "busybox", "true"]);
    assert!(
        r.stderr.contains("error gathering device information while adding custom device \"/dev/berth-nonexistent\": no such file or directory"),
        "{}",
        r.stderr
    );
    assert_eq!(r.code, 127, "docker's exit code for a missing file");
    let r = d.berth(&["run", "--rm", "--device", "/dev/null:/dev/x:rwq", "busybox", "true"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (125, "berth: bad mode specified: rwq.\nSee 'berth run --help'.\n")
    );
    let r = d.berth(&["run", "--rm", "--device-cgroup-rule", "x 1:3 rwm", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.starts_with("invalid argument \"x 1:3 rwm\" for \"--device-cgroup-rule\" flag: invalid device cgroup format 'x 1:3 rwm'"), "{}", r.stderr);
    assert_eq!(d.ok(&["ps", "-aq"]), "", "failed runs leave nothing behind");

    // inspect shows the host config as sent.
    let id = d.ok(&[
        "create",
        "--device",
        "/dev/null:/dev/mynull:r",
        "--device-cgroup-rule",
        "c 1:3 rwm",
        "busybox",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.Devices}} {{json .HostConfig.DeviceCgroupRules}}",
            &id
        ]),
        r#"[{"PathOnHost":"/dev/null","PathInContainer":"/dev/mynull","CgroupPermissions":"r"}] ["c 1:3 rwm"]"#
    );
}

#[test]
fn sysctls_are_set_in_the_containers_namespaces() {
    let d = Daemon::start();
    let script = "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/fs/mqueue/msg_max";
    let out = d.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.shmmax=1234567",
        "--sysctl",
        "fs.mqueue.msg_max=99",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(out, "1\n1234567\n99");
    // The host's values are untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap().trim(),
        "1234567"
    );
    let r = d.docker(&[
        "run",
        "--rm",
        "--sysctl",
        "kernel.shmmax=7654321",
        "busybox",
        "cat",
        "/proc/sys/kernel/shmmax",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "7654321\n"), "{}", r.stderr);
    let id = d.ok(&["create", "--sysctl", "net.ipv4.ip_forward=1", "busybox"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.Sysctls}}", &id]),
        r#"{"net.ipv4.ip_forward":"1"}"#
    );
    d.ok(&["rm", &id]);

    // Namespaced only where the container has the namespace, in runc's words.
    for (args, why) in [
        (
            ["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace",
        ),
        (
            ["--ipc", "host", "--sysctl", "kernel.shmmax=1"],
            "sysctl \"kernel.shmmax\" is not allowed in the hosts ipc namespace",
        ),
    ] {
        let mut full = vec!["run", "--rm"];
        full.extend(args);
        full.extend(["busybox", "true"]);
        let r = d.berth(&full);
        assert_eq!(r.code, 125);
        let expected = format!("Error response from daemon: failed to create shim task: OCI runtime create failed: runc create failed: {why}: unknown");
        assert!(r.stderr.contains(&expected), "{}", r.stderr);
    }
    // The CLI lets only namespaced ones through, as docker 20.10's does.
    let r = d.berth(&["run", "--rm", "--sysctl", "vm.swappiness=1", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.starts_with(
            "invalid argument \"vm.swappiness=1\" for \"--sysctl\" flag: sysctl 'vm.swappiness=1' is not whitelisted"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "", "failed runs leave nothing behind");
}
