//! System calls newer than a container's seccomp profile get ENOSYS (runc's stub), so that
//! libc falls back to older ones, while calls the profile leaves out below its newest one keep
//! the profile's EPERM. Checked with a static probe that makes raw system calls, in berth's
//! containers (run, exec, the docker CLI, a profile file, unconfined) and in a private dockerd
//! with runc, which must answer the same.
//!
//! The numbers are x86_64's (the probe and the profiles name them), hence the whole file is.
#![cfg(target_arch = "x86_64")]

use std::path::Path;
use std::process::Command;

use berth_e2e::{tempdir::TempDir, Daemon, Dockerd, Run};

/// Makes each system call named on the command line (`name=number`) with harmless
/// arguments and prints `name ok` or `name ERRNO`; `pause` waits instead, for exec tests.
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "pause") == 0) {
        for (;;) pause();
    }
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) return 2;
        *eq = 0;
        long nr = strtol(eq + 1, NULL, 10);
        /* Zero arguments: NULL pointers, length 0, fd 0 (or EFAULT before any effect). */
        long rc = syscall(nr, 0L, 0L, 0L, 0L, 0L, 0L);
        if (rc < 0) printf("%s %s\n", argv[i], strerrorname_np(errno));
        else printf("%s ok\n", argv[i]);
    }
    return 0;
}
"#;

/// get_mempolicy: left out of the default profile (CAP_SYS_NICE's), older than its newest
/// call; fchmodat2 (glibc 2.39 falls back on ENOSYS): newer than any profile here knows;
/// getrandom: allowed by the default profile, newer than the narrow profile's newest.
const CALLS: &[&str] = &["get_mempolicy=239", "fchmodat2=452", "getrandom=318"];

/// The probe, built static, in a one-file image tar.
fn probe_image(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("probe.c");
    std::fs::write(&src, PROBE_C).unwrap();
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    let cc = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(root.join("probe"))
        .arg(&src)
        .output()
        .expect("cc (scripts/deps.sh --test installs gcc and libc6-dev)");
    assert!(
        cc.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let tar = dir.join("probe.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("probe")
        .status()
        .unwrap();
    assert!(status.success());
    tar
}

/// A profile allowing every x86_64 system call numbered below 310 but get_mempolicy (from
/// the C library's table), EPERM for the rest: calls from 310 up are newer than it.
fn narrow_profile(dir: &Path) -> std::path::PathBuf {
    let header = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
        .expect("libc6-dev's system call table");
    let names: Vec<String> = header
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("#define __NR_")?.split_whitespace();
            let (name, nr) = (w.next()?, w.next()?.parse::<u32>().ok()?);
            (nr < 310 && name != "get_mempolicy").then(|| format!("\"{name}\""))
        })
        .collect();
    assert!(names.len() > 300, "{} names", names.len());
    let path = dir.join("narrow.json");
    std::fs::write(
        &path,
        format!(
            "{{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"architectures\": [\"SCMP_ARCH_X86_64\"],\n \"syscalls\": [{{\"names\": [{}], \"action\": \"SCMP_ACT_ALLOW\"}}]}}\n",
            names.join(", ")
        ),
    )
    .unwrap();
    path
}

/// A permissive profile: no stub, new calls reach the kernel.
fn allow_profile(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("allow.json");
    std::fs::write(
        &path,
        "{\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": [{\"names\": [\"mkdirat\"], \"action\": \"SCMP_ACT_ERRNO\"}]}\n",
    )
    .unwrap();
    path
}

fn run_probe(run: impl Fn(&[&str]) -> Run, opts: &[&str]) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["probe", "/probe"]);
    args.extend_from_slice(CALLS);
    let r = run(&args);
    assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    r.stdout
}

/// What each case must print (the kernel's own answer where no filter intervenes: EFAULT
/// for fchmodat2's NULL path).
fn cases(dir: &Path) -> Vec<(Vec<String>, &'static str)> {
    let narrow = format!("seccomp={}", narrow_profile(dir).display());
    let allow = format!("seccomp={}", allow_profile(dir).display());
    vec![
        (
            vec![],
            "get_mempolicy EPERM\nfchmodat2 ENOSYS\ngetrandom ok\n",
        ),
        (
            vec!["--security-opt".into(), narrow],
            "get_mempolicy EPERM\nfchmodat2 ENOSYS\ngetrandom ENOSYS\n",
        ),
        (
            vec!["--security-opt".into(), allow],
            "get_mempolicy ok\nfchmodat2 EFAULT\ngetrandom ok\n",
        ),
        (
            vec!["--security-opt".into(), "seccomp=unconfined".into()],
            "get_mempolicy ok\nfchmodat2 EFAULT\ngetrandom ok\n",
        ),
        // CAP_SYS_NICE brings get_mempolicy into the default profile.
        (
            vec!["--cap-add".into(), "SYS_NICE".into()],
            "get_mempolicy ok\nfchmodat2 ENOSYS\ngetrandom ok\n",
        ),
    ]
}

#[test]
fn new_system_calls_get_enosys_and_left_out_ones_eperm_as_under_runc() {
    let d = Daemon::start();
    let dir = TempDir::new();
    let tar = probe_image(dir.path());
    d.ok(&["import", tar.to_str().unwrap(), "probe"]);

    for (opts, want) in cases(dir.path()) {
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        assert_eq!(run_probe(|a| d.berth(a), &opts), want, "berth {opts:?}");
        assert_eq!(
            run_probe(|a| d.docker(a), &opts),
            want,
            "docker CLI {opts:?}"
        );
    }

    // An exec process gets the same filter, stub included.
    let id = d.ok(&["run", "-d", "probe", "/probe", "pause"]);
    let mut args = vec!["exec", id.as_str(), "/probe"];
    args.extend_from_slice(CALLS);
    assert_eq!(
        d.ok(&args),
        "get_mempolicy EPERM\nfchmodat2 ENOSYS\ngetrandom ok"
    );
    d.ok(&["rm", "-f", &id]);
}

#[test]
fn dockerd_with_runc_answers_the_same() {
    let docker = Dockerd::start();
    let dir = TempDir::new();
    let tar = probe_image(dir.path());
    let r = docker.docker(&["import", tar.to_str().unwrap(), "probe"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (opts, want) in cases(dir.path()) {
        let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
        assert_eq!(
            run_probe(|a| docker.docker(a), &opts),
            want,
            "dockerd {opts:?}"
        );
    }
}
