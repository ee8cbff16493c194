//! Removing what a stopped container leaves: its cgroups and libcontainer's state directory.
//! The shim does it when its container exits; the daemon again when it removes a container
//! whose shim was killed before it could.
//!
//! libcontainer's `Container::delete` does the same for a stopped container (berth sets no
//! poststop hooks and no Intel RDT), but its cgroup manager locates every hierarchy through a
//! hardened procfs walk: some 500 system calls per container, on the CPU the next container
//! is starting on. The paths are known here: the spec's `cgroupsPath` under each mounted
//! hierarchy.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Removes the container's cgroup in every hierarchy, killing any process still in it first
/// (none normally: the container's pid namespace died with its init).
pub fn remove_cgroups(cgroups_path: &Path) -> Result<(), String> {
    let failures: Vec<String> = cgroup_dirs(Path::new(CGROUP_ROOT), cgroups_path)
        .iter()
        .filter_map(|dir| remove_cgroup(dir).err().map(|e| format!("remove cgroup {}: {e}", dir.display())))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// Removes libcontainer's state directory of the container.
pub fn remove_runtime_state(dir: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(format!("remove {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// The container's cgroup directories that exist: one on a pure v2 host, one per hierarchy
/// (`cpu`, `memory`, ...) on v1 and hybrid hosts. Links such as `cpu -> cpu,cpuacct` name a
/// directory twice; the second removal finds nothing.
fn cgroup_dirs(root: &Path, cgroups_path: &Path) -> Vec<PathBuf> {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    if rel.as_os_str().is_empty() {
        return Vec::new();
    }
    if root.join("cgroup.controllers").exists() {
        return vec![root.join(rel)];
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path().join(rel))
        .filter(|d| d.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Kills what is left in one cgroup and removes it, retrying while the kernel still counts
/// exiting tasks (as libcgroups does: 10, 20, 60, 100 ms).
fn remove_cgroup(dir: &Path) -> std::io::Result<()> {
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) takes plain integers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let mut delay = Duration::from_millis(10);
    for attempt in 1..=4u32 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if attempt == 4 => return Err(e),
            Err(_) => {
                std::thread::sleep(delay);
                delay = (delay * (attempt + 1)).min(Duration::from_millis(100));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup_in_each_v1_hierarchy_or_the_v2_one() {
        let v1 = tempfile::tempdir().unwrap();
        for h in ["cpu", "memory", "pids"] {
            std::fs::create_dir_all(v1.path().join(h).join("berth/abc")).unwrap();
        }
        std::fs::create_dir_all(v1.path().join("freezer")).unwrap();
        assert_eq!(
            cgroup_dirs(v1.path(), Path::new("/berth/abc")),
            ["cpu", "memory", "pids"].map(|h| v1.path().join(h).join("berth/abc"))
        );
        assert!(cgroup_dirs(v1.path(), Path::new("/")).is_empty());

        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(v2.path().join("cgroup.controllers"), "memory pids").unwrap();
        assert_eq!(
            cgroup_dirs(v2.path(), Path::new("/berth/abc")),
            [v2.path().join("berth/abc")]
        );
    }

    #[test]
    fn removes_an_empty_directory_and_accepts_a_missing_one() {
        let d = tempfile::tempdir().unwrap();
        let c = d.path().join("c");
        std::fs::create_dir(&c).unwrap();
        remove_cgroup(&c).unwrap();
        assert!(!c.exists());
        remove_cgroup(&c).unwrap();
    }
}
