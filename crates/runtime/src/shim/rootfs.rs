//! Mounting the snapshotter's mounts onto the container's root path, and undoing it.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::protocol::Mount;

/// Splits `options` into mount flags and the comma-joined data string the filesystem parses.
fn parse_options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for opt in options {
        match opt.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" => flags &= !MsFlags::MS_RDONLY,
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Mounts every entry onto `target` in order. On failure, what was mounted is unmounted.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), String> {
    std::fs::create_dir_all(target)
        .map_err(|e| format!("failed to create rootfs {}: {e}", target.display()))?;
    for (done, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            unmount_n(target, done);
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<(), String> {
    let (mut flags, data) = parse_options(&m.options);
    let fail = |e: nix::Error| {
        format!(
            "failed to mount {} ({}) on {}: {e}",
            m.source,
            m.kind,
            target.display()
        )
    };
    match m.kind.as_str() {
        "bind" => {
            flags |= MsFlags::MS_BIND;
            let ro = flags.contains(MsFlags::MS_RDONLY);
            // The kernel ignores MS_RDONLY on the initial bind; read-only needs a remount.
            mount(
                Some(m.source.as_str()),
                target,
                None::<&str>,
                flags & !MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(fail)?;
            if ro {
                let re = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                if let Err(e) = mount(None::<&str>, target, None::<&str>, re, None::<&str>) {
                    let _ = umount2(target, MntFlags::MNT_DETACH);
                    return Err(fail(e));
                }
            }
            Ok(())
        }
        fstype => {
            let data = (!data.is_empty()).then_some(data.as_str());
            mount(Some(m.source.as_str()), target, Some(fstype), flags, data).map_err(fail)
        }
    }
}

/// Unmounts the top `n` mounts stacked on `target`, lazily when busy.
pub fn unmount_n(target: &Path, n: usize) {
    for _ in 0..n {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => {}
            Err(nix::Error::EBUSY) => {
                if let Err(e) = umount2(target, MntFlags::MNT_DETACH) {
                    eprintln!("berth-shim: lazy unmount {}: {e}", target.display());
                }
            }
            Err(e) => {
                eprintln!("berth-shim: unmount {}: {e}", target.display());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = ["ro", "lowerdir=/a:/b", "upperdir=/u", "nosuid"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, data) = parse_options(&opts);
        assert!(flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert_eq!(data, "lowerdir=/a:/b,upperdir=/u");
    }
}
