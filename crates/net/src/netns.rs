//! Pinned network namespaces: a namespace kept alive by a bind mount of its nsfs file, so it
//! exists before the container does and can be handed to the runtime by path.

use crate::Error;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;

/// Creates a new network namespace with `lo` up and pins it at `path`.
///
/// Runs on a short-lived thread of its own: `unshare(CLONE_NEWNET)` moves only the calling
/// thread, so the daemon's other threads never leave the host namespace.
pub fn create_netns(path: &Path) -> Result<(), Error> {
    let owned = path.to_path_buf();
    let result = std::thread::spawn(move || pin_new_netns(&owned))
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("netns thread panicked")));
    result.map_err(|source| {
        // Leave no half-made namespace behind: a mount point without a namespace is useless.
        let _ = remove_netns(path);
        Error::Netns { path: path.display().to_string(), source }
    })
}

fn pin_new_netns(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::File::create(path)?;
    unshare(CloneFlags::CLONE_NEWNET)?;
    disable_ipv6()?;
    bring_loopback_up()?;
    mount(
        Some("/proc/thread-self/ns/net"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    Ok(())
}

/// Turns IPv6 off in the calling thread's namespace, for `lo` and every interface moved in
/// later (`default`), as dockerd's sandboxes have it when the network has no IPv6 (berth's
/// never do): `lo` has no `::1`, `eth0` no link-local address. A kernel without IPv6 has
/// nothing to turn off.
fn disable_ipv6() -> std::io::Result<()> {
    for conf in ["all", "default"] {
        // /proc/sys/net is the namespace of the thread that opens it: this one.
        match std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/disable_ipv6"), "1") {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Sets IFF_UP on `lo` of the calling thread's namespace.
fn bring_loopback_up() -> std::io::Result<()> {
    // SAFETY: plain socket(2) call; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
    let sock = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Unpins and removes the namespace at `path`; a missing one is not an error.
pub fn remove_netns(path: &Path) -> Result<(), Error> {
    let wrap = |source| Error::Netns { path: path.display().to_string(), source };
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(wrap(e.into())),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(wrap(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_namespace_has_loopback_up_and_is_removed() {
        let dir = std::env::temp_dir().join(format!("berth-netns-test-{}", std::process::id()));
        let path = dir.join("ns");
        create_netns(&path).expect("create netns (needs root)");
        let ours = std::fs::metadata("/proc/self/ns/net").unwrap();
        let pinned = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_ne!(ours.ino(), pinned.ino(), "a new namespace, not the host's");
        // `ip netns exec` needs the name under /run/netns; nsenter takes any path.
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["ip", "-o", "link", "show", "lo"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("UP"), "lo not up: {text}");
        // IPv4 only, as Docker's sandboxes: no `inet6 ::1` on lo.
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["ip", "-o", "addr", "show", "lo"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("inet 127.0.0.1/8"), "{text}");
        assert!(!text.contains("inet6"), "{text}");
        remove_netns(&path).unwrap();
        assert!(!path.exists());
        remove_netns(&path).expect("removing twice is fine");
        let _ = std::fs::remove_dir(&dir);
    }
}
