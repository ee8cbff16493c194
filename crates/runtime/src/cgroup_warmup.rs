//! Warming the kernel's cgroup attach lock before a container joins its cgroups.
//!
//! Moving a process into a cgroup (a write to `cgroup.procs`, which libcontainer's
//! intermediate process does for the container) takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing. Unless the host mounted its cgroups with
//! `favordynmods`, taking it from idle waits for a full RCU grace period (measured 5–18 ms on
//! a 2-core VM, most of a `run --rm`'s start), and only the first move in a while pays: the
//! lock stays in its writer-friendly state until about one more grace period after the last
//! writer left. So a process that moves *itself into the cgroup it already is in* (which
//! changes nothing) shortly before the container's move, on another thread or process, pays
//! that wait in parallel with other start-up work, and the container's move then finds the
//! lock warm.

use std::path::PathBuf;

/// Where cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Writes the calling process's pid to the `cgroup.procs` of a cgroup it is already in.
/// Blocks for up to one RCU grace period; errors are ignored (nothing depends on it: at worst
/// the container's own move pays the wait as before).
pub fn warm_attach_lock() {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    let pid = std::process::id().to_string();
    if let Some(procs) = own_procs_files(&own).into_iter().find(|p| p.exists()) {
        let _ = std::fs::write(procs, &pid);
    }
}

/// The `cgroup.procs` files of the caller's cgroups, from `/proc/self/cgroup` lines
/// (`id:controllers:path`): v1 hierarchies under their first controller's directory, the v2
/// one at the cgroup root (pure v2) or at `unified` (hybrid hosts). Named v1 hierarchies
/// (`name=systemd`) are skipped: their directory names vary.
fn own_procs_files(proc_self_cgroup: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            files.push(PathBuf::from(CGROUP_ROOT).join(rel).join("cgroup.procs"));
            files.push(
                PathBuf::from(CGROUP_ROOT)
                    .join("unified")
                    .join(rel)
                    .join("cgroup.procs"),
            );
        } else if let Some(first) = controllers.split(',').find(|c| !c.starts_with("name=")) {
            files.push(
                PathBuf::from(CGROUP_ROOT)
                    .join(first)
                    .join(rel)
                    .join("cgroup.procs"),
            );
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_v1_and_v2_procs_files() {
        let lines = "12:freezer:/berth\n11:name=systemd:/\n3:cpu,cpuacct:/a/b\n0::/user.slice\n";
        let files = own_procs_files(lines);
        assert_eq!(
            files,
            [
                "/sys/fs/cgroup/freezer/berth/cgroup.procs",
                "/sys/fs/cgroup/cpu/a/b/cgroup.procs",
                "/sys/fs/cgroup/user.slice/cgroup.procs",
                "/sys/fs/cgroup/unified/user.slice/cgroup.procs",
            ]
            .map(PathBuf::from)
        );
        assert!(own_procs_files("garbage\n").is_empty());
    }

    #[test]
    fn warming_leaves_the_process_where_it_was() {
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        warm_attach_lock();
        assert_eq!(
            std::fs::read_to_string("/proc/self/cgroup").unwrap(),
            before
        );
    }
}
