//! `--cgroup-parent` (`HostConfig.CgroupParent`): the container's cgroup is `<parent>/<id>` as
//! dockerd 20.10 makes it with the cgroupfs driver (checked with `/proc/<pid>/cgroup`), the
//! limits land there, `top` finds it, and removing the container removes its directory in
//! every hierarchy (the parent stays, as with Docker; the tests remove theirs).

use berth_e2e::{tempdir::TempDir, Daemon};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this host is pure cgroup v2.
fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The cgroup of `pid` in the hierarchy that holds the pids controller (v1) or in the unified
/// one (pure v2), from /proc/<pid>/cgroup.
fn cgroup_of(pid: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let wanted = |controllers: &str| {
        if pure_v2() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == "pids")
        }
    };
    text.lines()
        .filter_map(|l| l.splitn(3, ':').nth(1).zip(l.splitn(3, ':').nth(2)))
        .find(|(c, _)| wanted(c))
        .map(|(_, p)| p.to_string())
        .unwrap_or_else(|| panic!("no cgroup line in {text}"))
}

/// Every directory standing for cgroup path `path` (absolute, as in /proc/<pid>/cgroup) in
/// the hierarchies mounted under /sys/fs/cgroup that have it.
fn dirs_of(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if !pure_v2() {
        roots = std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    }
    roots
        .into_iter()
        .map(|r| r.join(rel))
        .filter(|d| d.is_dir())
        .collect()
}

/// Removes the parent cgroups a test made (children first), as Docker leaves them too.
struct Parents(Vec<String>);

impl Drop for Parents {
    fn drop(&mut self) {
        for parent in &self.0 {
            let mut dirs = dirs_of(parent);
            // Nested parents: the deepest first.
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            for d in dirs {
                let _ = std::fs::remove_dir(&d);
            }
            if let Some((up, _)) = parent.rsplit_once('/').filter(|(up, _)| !up.is_empty()) {
                for d in dirs_of(up) {
                    let _ = std::fs::remove_dir(&d);
                }
            }
        }
    }
}

fn pid_of(d: &Daemon, id: &str) -> String {
    d.ok(&["inspect", "-f", "{{.State.Pid}}", id])
}

#[test]
fn absolute_parent_holds_the_container_and_its_limits() {
    let d = Daemon::start();
    let top = format!("/berth-e2e-cgp-{}", std::process::id());
    let parent = format!("{top}/abs");
    let _cleanup = Parents(vec![parent.clone(), top.clone()]);
    // Go's filepath.Join cleans the parent: `/x/../<parent>/` is `<parent>`.
    let given = format!("/x/..{parent}/");
    let id = d.ok(&[
        "run",
        "-d",
        "--cgroup-parent",
        &given,
        "-m",
        "32m",
        "busybox",
        "sleep",
        "60",
    ]);
    let path = format!("{parent}/{id}");
    assert_eq!(cgroup_of(&pid_of(&d, &id)), path);
    // `inspect` shows the value as given, as Docker does.
    assert_eq!(
        d.ok(&["inspect", "-f", "{{json .HostConfig.CgroupParent}}", &id]),
        format!("\"{given}\"")
    );
    let limit = if pure_v2() {
        PathBuf::from(format!("/sys/fs/cgroup{path}/memory.max"))
    } else {
        PathBuf::from(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"))
    };
    assert_eq!(
        std::fs::read_to_string(&limit).unwrap().trim(),
        (32u64 << 20).to_string()
    );
    assert!(d.ok(&["top", &id]).contains("sleep 60"));
    let dirs = dirs_of(&path);
    assert!(!dirs.is_empty());
    d.ok(&["rm", "-f", &id]);
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    // The parent stays, as with Docker.
    assert!(!dirs_of(&parent).is_empty());
}

#[test]
fn relative_parent_is_under_the_daemons_cgroup_and_cannot_climb_out() {
    let d = Daemon::start();
    let name = format!("berth-e2e-cgp-rel-{}", std::process::id());
    // The daemon runs where this test runs (its child); Docker takes a relative parent from
    // the runtime's own cgroup.
    let own = cgroup_of("self");
    let base = if pure_v2() {
        own.rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or("")
            .to_string()
    } else {
        own
    };
    let base = base.trim_end_matches('/').to_string();
    let parent = format!("{base}/{name}");
    let _cleanup = Parents(vec![parent.clone()]);
    // Through the docker CLI: create, then start.
    let created = d.docker(&[
        "create",
        "--cgroup-parent",
        &format!("../../{name}"),
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let id = created.stdout.trim().to_string();
    d.ok(&["start", &id]);
    assert_eq!(cgroup_of(&pid_of(&d, &id)), format!("{parent}/{id}"));
    let dirs = dirs_of(&format!("{parent}/{id}"));
    d.ok(&["rm", "-f", &id]);
    assert!(
        dirs.iter().all(|d| !d.exists()),
        "cgroups left behind: {dirs:?}"
    );
}

#[test]
fn a_parent_that_is_no_directory_fails_the_start_and_leaves_nothing() {
    let d = Daemon::start();
    // Docker creates the container, fails its start (exit 125) and keeps it as Created.
    let r = d.berth(&[
        "run",
        "-d",
        "--name",
        "badparent",
        "--cgroup-parent",
        "/cgroup.procs",
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125, "{}{}", r.stdout, r.stderr);
    assert!(!r.stderr.is_empty());
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "badparent"]),
        "created"
    );
    d.ok(&["rm", "badparent"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn build_run_steps_go_under_the_builds_cgroup_parent() {
    let d = Daemon::start();
    let parent = format!("/berth-e2e-cgp-build-{}", std::process::id());
    let _cleanup = Parents(vec![parent.clone()]);
    let ctx = TempDir::new();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN cat /proc/self/cgroup\n",
    )
    .unwrap();
    let out = Command::new(berth_e2e::docker_cli())
        .args(["build", "--no-cache", "--cgroup-parent", &parent])
        .arg(ctx.path())
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ` ---> Running in <short id>`, then the RUN's output.
    let short = stdout
        .lines()
        .find_map(|l| l.strip_prefix(" ---> Running in "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .trim()
        .to_string();
    let wanted = if pure_v2() {
        "0::".to_string()
    } else {
        ":pids:".to_string()
    };
    let line = stdout
        .lines()
        .find(|l| l.contains(&wanted))
        .unwrap_or_else(|| panic!("{stdout}"));
    let path = line.splitn(3, ':').nth(2).unwrap();
    assert!(path.starts_with(&format!("{parent}/{short}")), "{line}");
    // The step container is gone, and so is its cgroup; only the (empty) parent remains.
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    for dir in dirs_of(&parent) {
        let children: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .collect();
        assert!(
            children.is_empty(),
            "{} keeps {:?}",
            dir.display(),
            children.iter().map(|e| e.path()).collect::<Vec<_>>()
        );
    }
}
