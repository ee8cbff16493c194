//! `--privileged`, `--cap-add`/`--cap-drop`, `--security-opt` and `exec --privileged`, checked
//! by what the process inside sees (`/proc/self/status`, its mounts, `/dev`, what the kernel
//! lets it do) and by what inspect shows, from berth and from the docker CLI.

use berth_e2e::{tempdir::TempDir, Daemon};

/// Docker's default capability set as a CapEff mask.
const DEFAULT_CAPS: &str = "00000000a80425fb";

/// One field of a `/proc/<pid>/status` text.
fn status_field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
        .to_string()
}

/// `field` of the container's `/proc/self/status`, run with `flags`.
fn seen(d: &Daemon, flags: &[&str], field: &str) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "cat", "/proc/self/status"]);
    status_field(&d.ok(&args), field)
}

/// The bounding set of this (root) test process: what berthd can give.
fn host_bounding() -> String {
    status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapBnd",
    )
}

#[test]
fn capabilities_are_added_and_dropped_in_dockers_order() {
    let d = Daemon::start();
    assert_eq!(seen(&d, &[], "CapEff"), DEFAULT_CAPS);
    // Lower case and with or without CAP_, as dockerd takes them.
    assert_eq!(
        seen(
            &d,
            &["--cap-add", "sys_admin", "--cap-drop", "CAP_chown"],
            "CapEff"
        ),
        "00000000a82425fa"
    );
    // Dropping ALL leaves only the adds (CAP_KILL is bit 5).
    assert_eq!(
        seen(&d, &["--cap-drop", "ALL", "--cap-add", "kill"], "CapEff"),
        "0000000000000020"
    );
    assert_eq!(
        seen(&d, &["--cap-drop", "all"], "CapBnd"),
        "0000000000000000"
    );
    // Added and dropped: the CLI keeps only the add.
    assert_eq!(
        seen(&d, &["--cap-add", "chown", "--cap-drop", "chown"], "CapEff"),
        DEFAULT_CAPS
    );
    // ALL but one.
    let all = u64::from_str_radix(&host_bounding(), 16).unwrap();
    let got = seen(&d, &["--cap-add", "ALL", "--cap-drop", "chown"], "CapEff");
    assert_eq!(u64::from_str_radix(&got, 16).unwrap(), all & !1);
    // The docker CLI gets the same set.
    let r = d.docker(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(status_field(&r.stdout, "CapEff"), "00000000a80435fb");
    // What is given is what inspect shows (the CLI normalizes it).
    let id = d.ok(&[
        "create",
        "--cap-add",
        "sys_admin",
        "--cap-drop",
        "chown",
        "busybox",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}}",
            &id
        ]),
        r#"["CAP_SYS_ADMIN"] ["CAP_CHOWN"]"#
    );
    d.ok(&["rm", &id]);
}

#[test]
fn unknown_capabilities_fail_like_dockerd_and_leave_nothing() {
    let d = Daemon::start();
    for (flag, field) in [("--cap-add", "CapAdd"), ("--cap-drop", "CapDrop")] {
        for cli in ["berth", "docker"] {
            let args = ["run", "--name", "bad", flag, "foo", "busybox", "true"];
            let r = if cli == "berth" {
                d.berth(&args)
            } else {
                d.docker(&args)
            };
            assert_eq!(r.code, 125, "{cli}: {}", r.stderr);
            assert!(
                r.stderr
                    .contains(&format!("invalid {field}: unknown capability: \"CAP_FOO\"")),
                "{cli}: {}",
                r.stderr
            );
        }
    }
    // CAP_ALL is not ALL.
    let r = d.berth(&["run", "--rm", "--cap-add", "CAP_ALL", "busybox", "true"]);
    assert!(
        r.stderr
            .contains("invalid CapAdd: unknown capability: \"CAP_ALL\""),
        "{}",
        r.stderr
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn seccomp_follows_the_capabilities_and_the_options() {
    let d = Daemon::start();
    assert_eq!(seen(&d, &[], "Seccomp"), "2");
    assert_eq!(
        seen(&d, &["--security-opt", "seccomp=unconfined"], "Seccomp"),
        "0"
    );
    // mount(2) is filtered by the default profile unless CAP_SYS_ADMIN is held.
    let mount = "mkdir -p /m && mount -t tmpfs t /m && echo mounted";
    let r = d.berth(&["run", "--rm", "busybox", "sh", "-c", mount]);
    assert_ne!(r.code, 0, "mounted without CAP_SYS_ADMIN: {}", r.stdout);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--cap-add",
            "SYS_ADMIN",
            "busybox",
            "sh",
            "-c",
            mount
        ]),
        "mounted"
    );
    // A profile file: the CLI sends its JSON, the daemon applies it instead of the default
    // (which allows mkdir).
    let dir = TempDir::new();
    let profile = dir.path().join("profile.json");
    std::fs::write(
        &profile,
        "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": [\n    {\"names\": [\"mkdir\", \"mkdirat\"], \"action\": \"SCMP_ACT_ERRNO\"}\n  ]\n}\n",
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    for cli in ["berth", "docker"] {
        let args = [
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox",
            "sh",
            "-c",
            "mkdir /x || echo refused; grep Seccomp: /proc/self/status",
        ];
        let r = if cli == "berth" {
            d.berth(&args)
        } else {
            d.docker(&args)
        };
        assert_eq!(r.code, 0, "{cli}: {}", r.stderr);
        assert!(r.stdout.contains("refused"), "{cli}: {}", r.stdout);
        assert!(
            r.stderr.contains("Operation not permitted"),
            "{cli}: {}",
            r.stderr
        );
        assert_eq!(status_field(&r.stdout, "Seccomp"), "2", "{cli}");
    }
    let sent = d.ok(&["create", "--security-opt", &opt, "busybox"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.SecurityOpt}}", &sent]),
        r#"["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"mkdir\",\"mkdirat\"],\"action\":\"SCMP_ACT_ERRNO\"}]}"]"#
    );
    d.ok(&["rm", &sent]);
    // A missing file is the CLI's error; nothing is created.
    let r = d.berth(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/nonexistent.json",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125);
    assert_eq!(
        r.stderr.trim(),
        "berth: opening seccomp profile (/nonexistent.json) failed: open /nonexistent.json: no such file or directory.\nSee 'berth run --help'."
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn no_new_privileges_and_invalid_options() {
    let d = Daemon::start();
    assert_eq!(seen(&d, &[], "NoNewPrivs"), "0");
    for form in [
        "no-new-privileges",
        "no-new-privileges:true",
        "no-new-privileges=true",
    ] {
        assert_eq!(
            seen(&d, &["--security-opt", form], "NoNewPrivs"),
            "1",
            "{form}"
        );
    }
    assert_eq!(
        seen(
            &d,
            &["--security-opt", "no-new-privileges=false"],
            "NoNewPrivs"
        ),
        "0"
    );
    // No AppArmor or SELinux here: accepted and recorded, as dockerd does.
    let id = d.ok(&[
        "create",
        "--security-opt",
        "apparmor=foo",
        "--security-opt",
        "label=level:s0",
        "busybox",
    ]);
    assert_eq!(d.ok(&["inspect", "-f", "{{.AppArmorProfile}}", &id]), "foo");
    d.ok(&["start", &id]);
    d.ok(&["rm", "-f", &id]);
    // dockerd's errors, through the docker CLI.
    for (opt, message) in [
        ("foo=bar", "invalid --security-opt 2: \"foo=bar\""),
        (
            "no-new-privileges=maybe",
            "invalid --security-opt 2: \"no-new-privileges=maybe\"",
        ),
    ] {
        let r = d.docker(&["run", "--rm", "--security-opt", opt, "busybox", "true"]);
        assert_eq!(r.code, 125, "{opt}");
        assert!(r.stderr.contains(message), "{opt}: {}", r.stderr);
    }
    let r = d.berth(&["run", "--rm", "--security-opt", "foo", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("Invalid --security-opt: \"foo\""),
        "{}",
        r.stderr
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn systempaths_unconfined_unmasks_proc() {
    let d = Daemon::start();
    let masked = |flags: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "cat", "/proc/self/mountinfo"]);
        let mounts = d.ok(&args);
        let over = |path: &str| mounts.lines().any(|l| l.split(' ').nth(4) == Some(path));
        (over("/proc/keys"), over("/proc/sys"))
    };
    assert_eq!(masked(&[]), (true, true));
    assert_eq!(
        masked(&["--security-opt", "systempaths=unconfined"]),
        (false, false)
    );
    let id = d.ok(&[
        "create",
        "--security-opt",
        "systempaths=unconfined",
        "busybox",
    ]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.SecurityOpt}} {{json .HostConfig.MaskedPaths}} {{json .HostConfig.ReadonlyPaths}}", &id]),
        "null [] []"
    );
    d.ok(&["rm", &id]);
}

#[test]
fn privileged_sees_the_host() {
    let d = Daemon::start();
    let script = "cat /proc/self/status; echo ---; cat /proc/self/mountinfo; echo ---; \
                  for f in /dev/*; do [ -b $f -o -c $f ] && echo $f $(stat -c '%t:%T' $f); done; echo ---; \
                  cat /sys/fs/cgroup/devices/devices.list 2>/dev/null; echo ---; \
                  echo privileged > /proc/sys/kernel/hostname && echo sysctl-written";
    let out = d.ok(&["run", "--rm", "--privileged", "busybox", "sh", "-c", script]);
    let parts: Vec<&str> = out.split("---\n").collect();
    let (status, mountinfo, devices, cgroup_rules, rest) =
        (parts[0], parts[1], parts[2], parts[3], parts[4]);
    assert_eq!(status_field(status, "CapEff"), host_bounding());
    assert_eq!(status_field(status, "Seccomp"), "0");
    // No masked or read-only paths; /sys writable.
    let mount_of = |path: &str| {
        mountinfo
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(path))
            .map(str::to_string)
    };
    assert_eq!(mount_of("/proc/keys"), None);
    assert_eq!(mount_of("/proc/sys"), None);
    let sys = mount_of("/sys").expect("/sys mounted");
    assert!(
        sys.split(' ').nth(5).unwrap().split(',').any(|o| o == "rw"),
        "{sys}"
    );
    assert!(rest.contains("sysctl-written"), "{rest}");
    // Every device node of the host's /dev, with its numbers.
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut checked = 0;
    for entry in std::fs::read_dir("/dev").unwrap().flatten() {
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        let kind = meta.file_type();
        let name = entry.path().display().to_string();
        if !(kind.is_block_device() || kind.is_char_device())
            || name == "/dev/console"
            || name == "/dev/ptmx"
        {
            continue;
        }
        let rdev = meta.rdev();
        let (major, minor) = (libc::major(rdev), libc::minor(rdev));
        let want = format!("{name} {major:x}:{minor:x}");
        assert!(
            devices.lines().any(|l| l == want),
            "{want} missing in the container: {devices}"
        );
        checked += 1;
    }
    assert!(checked > 5, "the host's /dev has few devices: {checked}");
    if std::path::Path::new("/sys/fs/cgroup/devices").exists() {
        assert_eq!(cgroup_rules.trim(), "a *:* rwm");
    }
    // An unprivileged container has only Docker's standard devices, and /proc/sys read-only
    // (the hostname sysctl is the container's own: its UTS namespace).
    let plain = d.ok(&["run", "--rm", "busybox", "ls", "/dev"]);
    assert!(
        !plain.lines().any(|l| l.starts_with("loop") || l == "kmsg"),
        "{plain}"
    );
    let r = d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo plain > /proc/sys/kernel/hostname",
    ]);
    assert_ne!(r.code, 0, "/proc/sys writable without --privileged");
    // inspect: dockerd's generated option.
    let id = d.ok(&["create", "--privileged", "busybox"]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Privileged}} {{json .HostConfig.SecurityOpt}}",
            &id
        ]),
        r#"true ["label=disable"]"#
    );
    d.ok(&["rm", &id]);
    // Appended to given options (none of them a `label=`), as dockerd does.
    let id = d.ok(&[
        "create",
        "--privileged",
        "--security-opt",
        "apparmor=x",
        "busybox",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.AppArmorProfile}} {{json .HostConfig.SecurityOpt}}",
            &id
        ]),
        r#"x ["apparmor=x","label=disable"]"#
    );
    d.ok(&["rm", &id]);
}

#[test]
fn exec_follows_the_container_and_privileged_exec_gets_all() {
    let d = Daemon::start();
    let id = d.ok(&[
        "run",
        "-d",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "KILL",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "sleep",
        "300",
    ]);
    let status = d.ok(&["exec", &id, "cat", "/proc/self/status"]);
    assert_eq!(status_field(&status, "CapEff"), "0000000000000020");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    let status = d.ok(&["exec", "--privileged", &id, "cat", "/proc/self/status"]);
    assert_eq!(status_field(&status, "CapEff"), host_bounding());
    // Still the container's seccomp filter, as runc's exec.
    assert_eq!(status_field(&status, "Seccomp"), "2");
    let r = d.docker(&[
        "exec",
        "--privileged",
        &id,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert_eq!(
        status_field(&r.stdout, "CapEff"),
        host_bounding(),
        "{}",
        r.stderr
    );
    d.ok(&["rm", "-f", &id]);
}

#[test]
fn info_lists_the_seccomp_profile() {
    let d = Daemon::start();
    assert_eq!(
        d.ok(&["info", "-f", "{{json .SecurityOptions}}"]),
        r#"["name=seccomp,profile=default"]"#
    );
}
