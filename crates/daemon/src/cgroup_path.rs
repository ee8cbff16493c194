//! Where a container's cgroup lives (the OCI `cgroupsPath`), as dockerd 20.10 places it with
//! the cgroupfs driver: `<parent>/<id>`, the parent being `--cgroup-parent`
//! (`HostConfig.CgroupParent`, also `docker build --cgroup-parent` for RUN containers) or
//! berth's own `/berth`.
//!
//! An absolute parent is taken from the root of each hierarchy (`/a/../b` is `/b`). A relative
//! one is, as runc does it, under the cgroup the runtime itself runs in: on cgroup v2 the
//! parent of the daemon's cgroup (the daemon's own holds processes, so it can have no
//! controller-enabled children), on v1 the daemon's cgroup. runc reads that per v1 hierarchy;
//! youki takes one path for all of them, so berth uses the path most of the daemon's v1
//! hierarchies share (they agree on most hosts). `..` never climbs above that base.
//!
//! The path is resolved to an absolute one here, so the spec, `stats`, `top` and the shim's
//! freezer/OOM checks all see the same directory; youki removes the container's own directory
//! when it is deleted and, as with Docker, the parent stays (other containers may share it,
//! and the user may have set limits on it).

use std::sync::OnceLock;

/// The parent of containers that name none.
pub const DEFAULT_PARENT: &str = "/berth";

/// The absolute `cgroupsPath` of container `id` with `HostConfig.CgroupParent` = `parent`.
pub fn container_cgroup(id: &str, parent: Option<&str>) -> String {
    static BASE: OnceLock<String> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let pure_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        relative_base(&own, pure_v2)
    });
    resolve(id, parent, base)
}

/// `parent/id`, cleaned; a relative parent goes under `base`.
fn resolve(id: &str, parent: Option<&str>, base: &str) -> String {
    let parent = parent.filter(|p| !p.is_empty()).unwrap_or(DEFAULT_PARENT);
    let inner = clean(&format!("{parent}/{id}"));
    if parent.starts_with('/') {
        inner
    } else {
        clean(&format!("{base}{inner}"))
    }
}

/// The path with `.`, `..` and empty components resolved lexically, never above `/`; always
/// absolute, no trailing slash (Go's `filepath.Clean("/" + p)`, runc's `CleanPath`).
fn clean(path: &str) -> String {
    berth_context::path::clean(&format!("/{path}"))
}

/// The cgroup a relative parent is resolved in, from `/proc/self/cgroup` (`id:controllers:path`
/// lines): on a pure v2 host the parent of the `0::` path; on v1 the path most controller
/// hierarchies give (named ones like `name=systemd` left out; ties go to the earliest line).
fn relative_base(proc_self_cgroup: &str, pure_v2: bool) -> String {
    let lines = proc_self_cgroup.lines().filter_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        Some((controllers, path))
    });
    if pure_v2 {
        let own = lines
            .filter(|(c, _)| c.is_empty())
            .map(|(_, p)| p)
            .next()
            .unwrap_or("/");
        let own = clean(own);
        return match own.rsplit_once('/') {
            Some((dir, _)) if !dir.is_empty() => dir.to_string(),
            _ => "/".to_string(),
        };
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (controllers, path) in lines {
        if controllers.is_empty() || controllers.starts_with("name=") {
            continue;
        }
        let path = clean(path);
        match counts.iter_mut().find(|(p, _)| *p == path) {
            Some((_, n)) => *n += 1,
            None => counts.push((path, 1)),
        }
    }
    // max_by_key keeps the last of equals; the earliest should win, so walk backwards.
    counts
        .into_iter()
        .rev()
        .max_by_key(|(_, n)| *n)
        .map(|(p, _)| p)
        .unwrap_or_else(|| "/".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "c0ffee";

    #[test]
    fn no_parent_is_berths_own() {
        assert_eq!(resolve(ID, None, "/"), "/berth/c0ffee");
        assert_eq!(resolve(ID, Some(""), "/x"), "/berth/c0ffee");
    }

    #[test]
    fn absolute_parents_start_at_the_root() {
        assert_eq!(resolve(ID, Some("/h5abs"), "/base"), "/h5abs/c0ffee");
        assert_eq!(resolve(ID, Some("/a/b/"), "/base"), "/a/b/c0ffee");
        assert_eq!(resolve(ID, Some("/x/../../up"), "/base"), "/up/c0ffee");
        assert_eq!(resolve(ID, Some("a:b.slice"), "/"), "/a:b.slice/c0ffee");
    }

    #[test]
    fn relative_parents_go_under_the_base_and_cannot_climb_out() {
        assert_eq!(resolve(ID, Some("rel"), "/"), "/rel/c0ffee");
        assert_eq!(
            resolve(ID, Some("rel"), "/process_api/9"),
            "/process_api/9/rel/c0ffee"
        );
        assert_eq!(
            resolve(ID, Some("../../dots"), "/process_api/9"),
            "/process_api/9/dots/c0ffee"
        );
        assert_eq!(resolve(ID, Some("./a//b"), "/s"), "/s/a/b/c0ffee");
    }

    #[test]
    fn the_base_is_the_v2_parent_or_the_common_v1_path() {
        assert_eq!(
            relative_base("0::/user.slice/session-1.scope\n", true),
            "/user.slice"
        );
        assert_eq!(relative_base("0::/\n", true), "/");
        assert_eq!(relative_base("0::/top\n", true), "/");
        let hybrid =
            "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/5e\n3:cpuset:/\n1:cpu:/\n0::/\n";
        assert_eq!(relative_base(hybrid, false), "/");
        let service = "5:name=systemd:/system.slice/docker.service\n4:memory:/system.slice/docker.service\n\
                       3:pids:/system.slice/docker.service\n2:freezer:/\n1:cpu,cpuacct:/system.slice/docker.service\n";
        assert_eq!(
            relative_base(service, false),
            "/system.slice/docker.service"
        );
        assert_eq!(relative_base("2:memory:/a\n1:cpu:/b\n", false), "/a");
        assert_eq!(relative_base("", false), "/");
    }
}
