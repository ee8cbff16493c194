//! `--device` and `--device-cgroup-rule` as dockerd 20.10 applies them at start: each host
//! device node (or every node under a host directory) is created in the container with the
//! host's type, numbers, mode and owner, and allowed in its device cgroup with the given
//! permissions; each rule is added to the cgroup's allow-list as written.

use crate::spec::SpecError;
use berth_api::models::{DeviceMapping, HostConfig};
use serde_json::{json, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Adds the host config's devices and device cgroup rules to the spec.
pub fn apply(spec: &mut Value, hc: &HostConfig) -> Result<(), SpecError> {
    let mut nodes = Vec::new();
    let mut allowed = Vec::new();
    for mapping in hc.devices.iter().flatten() {
        for node in devices_from_path(mapping).map_err(SpecError)? {
            if !node.access.is_empty() {
                allowed.push(json!({
                    "allow": true, "type": node.kind, "major": node.major, "minor": node.minor, "access": node.access,
                }));
            }
            nodes.push(json!({
                "path": node.path, "type": node.kind, "major": node.major, "minor": node.minor,
                "fileMode": node.mode, "uid": node.uid, "gid": node.gid,
            }));
        }
    }
    for rule in hc.device_cgroup_rules.iter().flatten() {
        allowed.push(parse_cgroup_rule(rule).map_err(SpecError)?);
    }
    if !nodes.is_empty() {
        // Nodes already listed (a privileged container's host devices) stay as they are.
        let mut all = spec["linux"]["devices"].as_array().cloned().unwrap_or_default();
        nodes.retain(|n| !all.iter().any(|d| d["path"] == n["path"]));
        all.extend(nodes);
        spec["linux"]["devices"] = Value::Array(all);
    }
    if let Some(list) = spec["linux"]["resources"]["devices"].as_array_mut() {
        list.extend(allowed);
    }
    Ok(())
}

/// One device node to create in the container.
#[derive(Debug, PartialEq, Eq)]
struct Node {
    path: String,
    kind: &'static str,
    major: u64,
    minor: u64,
    /// Permission bits of the host's node.
    mode: u32,
    uid: u32,
    gid: u32,
    access: String,
}

/// The node at `path`, or `None` when it is not a device (`Err` when it cannot be read).
fn node_at(path: &Path, in_container: String, access: &str) -> std::io::Result<Option<Node>> {
    let meta = std::fs::metadata(path)?;
    let kind = match meta.file_type() {
        t if t.is_char_device() => "c",
        t if t.is_block_device() => "b",
        _ => return Ok(None),
    };
    let rdev = meta.rdev();
    Ok(Some(Node {
        path: in_container,
        kind,
        major: nix::sys::stat::major(rdev),
        minor: nix::sys::stat::minor(rdev),
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        access: access.to_string(),
    }))
}

/// dockerd's `DevicesFromPath`: the node itself (a link to one followed), else every node
/// under a directory (its tree mapped below the container path); none is an error.
fn devices_from_path(mapping: &DeviceMapping) -> Result<Vec<Node>, String> {
    let on_host = mapping.path_on_host.as_deref().unwrap_or_default();
    let in_container = mapping
        .path_in_container
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(on_host);
    // The cgroup takes only r, w and m; runc drops other letters rather than failing.
    let access: String = match mapping.cgroup_permissions.as_deref().filter(|p| !p.is_empty()) {
        Some(given) => ['r', 'w', 'm'].into_iter().filter(|c| given.contains(*c)).collect(),
        None => "rwm".into(),
    };
    let access = access.as_str();
    let fail =
        |why: &str| format!("error gathering device information while adding custom device \"{on_host}\": {why}");
    let host = Path::new(on_host);
    let meta = std::fs::metadata(host).map_err(|e| fail(&io_reason(&e)))?;
    if let Some(node) = node_at(host, in_container.to_string(), access).map_err(|e| fail(&io_reason(&e)))? {
        return Ok(vec![node]);
    }
    let mut nodes = Vec::new();
    if meta.is_dir() {
        let resolved = std::fs::canonicalize(host).map_err(|e| fail(&io_reason(&e)))?;
        collect_nodes(&resolved, &resolved, in_container, access, &mut nodes);
    }
    if nodes.is_empty() {
        return Err(fail("not a device node"));
    }
    Ok(nodes)
}

/// Walks `dir` (not following links to directories, as Go's `filepath.Walk`), adding its nodes.
fn collect_nodes(top: &Path, dir: &Path, in_container: &str, access: &str, nodes: &mut Vec<Node>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(top) else { continue };
        let target = format!("{}/{}", in_container.trim_end_matches('/'), rel.display());
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_nodes(top, &path, in_container, access, nodes),
            Ok(t) if t.is_symlink() => {}
            _ => nodes.extend(node_at(&path, target, access).ok().flatten()),
        }
    }
}

/// The errno text Go prints (`no such file or directory`), not Rust's.
fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_ascii_lowercase(),
        None => e.to_string(),
    }
}

/// One `--device-cgroup-rule` (`type major:minor access`, `*` for any number), as dockerd
/// parses it.
fn parse_cgroup_rule(rule: &str) -> Result<Value, String> {
    let invalid = || format!("invalid device cgroup rule format: '{rule}'");
    let parts: Vec<&str> = rule.split(' ').collect();
    let [kind, numbers, access] = parts[..] else {
        return Err(invalid());
    };
    if !matches!(kind, "a" | "b" | "c") {
        return Err(invalid());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(invalid)?;
    let number = |n: &str| -> Result<Option<i64>, String> {
        match n {
            "*" => Ok(None),
            _ if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n.parse().map(Some).map_err(|_| invalid()),
            _ => Err(invalid()),
        }
    };
    let (major, minor) = (number(major)?, number(minor)?);
    if access.is_empty() || access.len() > 3 || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(invalid());
    }
    let mut rule = json!({"allow": true, "type": kind, "access": access});
    if let Some(major) = major {
        rule["major"] = json!(major);
    }
    if let Some(minor) = minor {
        rule["minor"] = json!(minor);
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(host: &str, container: &str, perms: &str) -> DeviceMapping {
        DeviceMapping {
            path_on_host: Some(host.into()),
            path_in_container: Some(container.into()),
            cgroup_permissions: Some(perms.into()),
        }
    }

    #[test]
    fn a_device_node_keeps_its_numbers_under_the_new_path() {
        let nodes = devices_from_path(&mapping("/dev/null", "/dev/mynull", "r")).unwrap();
        assert_eq!(nodes.len(), 1);
        let n = &nodes[0];
        assert_eq!(
            (n.path.as_str(), n.kind, n.major, n.minor, n.access.as_str()),
            ("/dev/mynull", "c", 1, 3, "r")
        );
        let odd = devices_from_path(&mapping("/dev/null", "/dev/mynull", "mwz")).unwrap();
        assert_eq!(odd[0].access, "wm", "letters the cgroup does not know are dropped");
    }

    #[test]
    fn a_directory_adds_the_nodes_under_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("sub/zero")).unwrap();
        std::fs::write(dir.path().join("plain"), "").unwrap();
        let err = devices_from_path(&mapping(dir.path().to_str().unwrap(), "/dev/x", "rwm")).unwrap_err();
        assert!(err.ends_with(": not a device node"), "{err}");
        // Only real nodes count: a link inside the tree is skipped, as Go's Walk does.
        nix::sys::stat::mknod(
            &dir.path().join("sub/null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, 3),
        )
        .unwrap();
        let nodes = devices_from_path(&mapping(dir.path().to_str().unwrap(), "/dev/x", "rwm")).unwrap();
        assert_eq!(
            nodes.iter().map(|n| n.path.as_str()).collect::<Vec<_>>(),
            ["/dev/x/sub/null"]
        );
    }

    #[test]
    fn missing_and_plain_files_get_dockerd_errors() {
        assert_eq!(
            devices_from_path(&mapping("/dev/nonexist", "/dev/x", "rwm")).unwrap_err(),
            "error gathering device information while adding custom device \"/dev/nonexist\": no such file or directory"
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        let path = file.path().to_str().unwrap();
        assert_eq!(
            devices_from_path(&mapping(path, "/dev/x", "rwm")).unwrap_err(),
            format!("error gathering device information while adding custom device \"{path}\": not a device node")
        );
    }

    #[test]
    fn cgroup_rules_parse_as_dockerd() {
        assert_eq!(
            parse_cgroup_rule("c 1:3 rwm").unwrap(),
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
        );
        assert_eq!(
            parse_cgroup_rule("b 7:* r").unwrap(),
            json!({"allow": true, "type": "b", "major": 7, "access": "r"})
        );
        assert_eq!(
            parse_cgroup_rule("a *:* m").unwrap(),
            json!({"allow": true, "type": "a", "access": "m"})
        );
        for bad in [
            "bogus",
            "x 1:3 rwm",
            "c 1 rwm",
            "c 1:3 rwx",
            "c 1:3",
            "c a:3 r",
            "c 1:3 rwmr",
        ] {
            assert_eq!(
                parse_cgroup_rule(bad).unwrap_err(),
                format!("invalid device cgroup rule format: '{bad}'")
            );
        }
    }
}
