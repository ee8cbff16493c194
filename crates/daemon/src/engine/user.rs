//! Resolves `--user` (`name`, `uid`, `name:group`, `uid:gid`) against the container's own
//! /etc/passwd and /etc/group, read from the rootfs layers without mounting them.

use super::nofollow;
use crate::spec::ProcessUser;
use std::path::{Path, PathBuf};

/// The directories of a rootfs, topmost first: overlay's upper, then its lowers; or the one
/// directory a vfs rootfs binds.
pub fn layer_dirs(mounts: &[berth_store::Mount]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for m in mounts {
        if m.kind == "bind" {
            dirs.push(PathBuf::from(&m.source));
            continue;
        }
        for opt in &m.options {
            if let Some(upper) = opt.strip_prefix("upperdir=") {
                dirs.insert(0, PathBuf::from(upper));
            } else if let Some(lowers) = opt.strip_prefix("lowerdir=") {
                dirs.extend(lowers.split(':').map(PathBuf::from));
            }
        }
    }
    dirs
}

/// The largest /etc/passwd or /etc/group read (a real one with 100k users is ~6 MB).
const MAX_ETC_FILE: u64 = 32 << 20;

/// Reads `etc/<file>` from the topmost layer that has it. The layers may belong to a running
/// container (`exec -u`), which can swap `/etc` or the file for a symlink to the host's at any
/// moment: the path is opened beneath the layer without following any symlink on the way, and
/// only a regular file is read (a FIFO would hang the daemon). Anything else there — a
/// symlink, a whiteout, a directory — hides the lower layers, so the answer is "none".
pub(crate) fn read_etc(dirs: &[PathBuf], file: &str) -> Option<String> {
    use std::io::Read;
    let rel = Path::new("etc").join(file);
    for dir in dirs {
        let Ok(layer) = nofollow::open_trusted_dir(dir) else {
            continue;
        };
        match nofollow::Node::open_beneath(&layer, &rel) {
            Ok(node) => {
                // Bounded: an image's sparse terabyte passwd would take the daemon's memory.
                // Bigger reads as unreadable (Docker's line scanner fails on it as well).
                let mut content = String::new();
                let f = node.open_file().ok()?;
                f.take(MAX_ETC_FILE + 1).read_to_string(&mut content).ok()?;
                return (content.len() as u64 <= MAX_ETC_FILE).then_some(content);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return None,
        }
    }
    None
}

/// Finds `name` (or a numeric id) in a passwd/group-format file: (id, primary gid).
fn find_entry(content: &str, name: &str) -> Option<(u32, u32)> {
    content.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 3 {
            return None;
        }
        let id: u32 = fields[2].parse().ok()?;
        if fields[0] != name && fields[2] != name {
            return None;
        }
        let gid = fields.get(3).and_then(|g| g.parse().ok()).unwrap_or(id);
        Some((id, gid))
    })
}

/// Supplementary groups that list `user` as a member.
fn member_groups(content: &str, user: &str) -> Vec<u32> {
    content
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let members = fields.get(3)?;
            members
                .split(',')
                .any(|m| m == user)
                .then(|| fields[2].parse().ok())?
        })
        .collect()
}

/// Resolves a `--user` value. Empty means root.
pub fn resolve(spec: &str, dirs: &[PathBuf]) -> Result<ProcessUser, String> {
    if spec.is_empty() {
        return Ok(ProcessUser::default());
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_etc(dirs, "passwd").unwrap_or_default();
    let (uid, mut gid, name) = match (user.parse::<u32>(), find_entry(&passwd, user)) {
        (_, Some((uid, gid))) => (uid, gid, passwd_name(&passwd, uid)),
        (Ok(uid), None) => (uid, 0, None),
        (Err(_), None) => {
            return Err(format!(
                "unable to find user {user}: no matching entries in passwd file"
            ))
        }
    };
    let groups = read_etc(dirs, "group").unwrap_or_default();
    if let Some(group) = group {
        gid = match (group.parse::<u32>(), find_entry(&groups, group)) {
            (_, Some((g, _))) => g,
            (Ok(g), None) => g,
            (Err(_), None) => {
                return Err(format!(
                    "unable to find group {group}: no matching entries in group file"
                ))
            }
        };
    }
    let additional_gids = name.map(|n| member_groups(&groups, &n)).unwrap_or_default();
    Ok(ProcessUser {
        uid,
        gid,
        additional_gids,
    })
}

fn passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2)?.parse::<u32>().ok()? == uid).then(|| fields[0].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nnogroup:x:65534:\nwheel:x:10:nobody\n",
        )
        .unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        assert_eq!(resolve("", &dirs).unwrap(), ProcessUser::default());
        let nobody = resolve("nobody", &dirs).unwrap();
        assert_eq!(
            (nobody.uid, nobody.gid, nobody.additional_gids),
            (65534, 65534, vec![10])
        );
        assert_eq!(resolve("1000:1000", &dirs).unwrap().uid, 1000);
        assert_eq!(resolve("nobody:wheel", &dirs).unwrap().gid, 10);
        let err = resolve("ghost", &dirs).unwrap_err();
        assert_eq!(
            err,
            "unable to find user ghost: no matching entries in passwd file"
        );
    }

    #[test]
    fn never_reads_through_a_symlink_or_a_fifo() {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(
            host.path().join("passwd"),
            "hostonly:x:4242:4242::/:/bin/sh\n",
        )
        .unwrap();
        let upper = tempfile::tempdir().unwrap();
        let lower = tempfile::tempdir().unwrap();
        std::fs::create_dir(lower.path().join("etc")).unwrap();
        std::fs::write(
            lower.path().join("etc/passwd"),
            "app:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        let dirs = vec![upper.path().to_path_buf(), lower.path().to_path_buf()];
        assert_eq!(resolve("app", &dirs).unwrap().uid, 1000);

        // A container swapped its /etc for a link to a host directory: hidden, not followed.
        std::os::unix::fs::symlink(host.path(), upper.path().join("etc")).unwrap();
        assert!(resolve("hostonly", &dirs).is_err());
        assert!(resolve("app", &dirs).is_err());

        // A FIFO in place of the file is not opened (opening it would block).
        std::fs::remove_file(upper.path().join("etc")).unwrap();
        std::fs::create_dir(upper.path().join("etc")).unwrap();
        nix::unistd::mkfifo(
            &upper.path().join("etc/passwd"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        assert!(resolve("app", &dirs).is_err());
    }

    #[test]
    fn a_huge_file_is_not_read() {
        let layer = tempfile::tempdir().unwrap();
        std::fs::create_dir(layer.path().join("etc")).unwrap();
        let passwd = layer.path().join("etc/passwd");
        std::fs::write(&passwd, "app:x:1000:1000::/:/bin/sh\n").unwrap();
        let dirs = vec![layer.path().to_path_buf()];
        assert_eq!(resolve("app", &dirs).unwrap().uid, 1000);
        // Sparse: no disk, but a read of it all would take that much memory.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&passwd)
            .unwrap()
            .set_len(MAX_ETC_FILE + 1)
            .unwrap();
        assert!(read_etc(&dirs, "passwd").is_none());
        assert!(resolve("app", &dirs).is_err());
    }
}
