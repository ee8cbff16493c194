//! Finding the command inside the rootfs the way execvp would, before creating the container,
//! so a missing command is reported like Docker does instead of as an opaque init failure.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::protocol::StartErrorKind;

/// execvp's fallback search path.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What one candidate path turned out to be.
enum Probe {
    Executable,
    Denied,
    Missing(std::io::Error),
}

/// Opens `path` with every symlink resolved as if `root` were `/`; the kernel guarantees
/// the walk never leaves `root`.
fn open_in_root(root: &OwnedFd, path: &str) -> std::io::Result<OwnedFd> {
    let c =
        CString::new(path).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: open_how is a plain C struct of integers; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT;
    // SAFETY: the pointers are valid for the call (c and how live on this frame) and the size
    // matches the struct we pass; the kernel returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the syscall succeeded, so fd is a fresh descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn probe(root: &OwnedFd, path: &str) -> Probe {
    let fd = match open_in_root(root, path) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => return Probe::Denied,
        Err(e) => return Probe::Missing(e),
    };
    match File::from(fd).metadata() {
        Ok(md) if md.is_dir() => Probe::Denied,
        Ok(md) if md.mode() & 0o111 == 0 => Probe::Denied,
        Ok(_) => Probe::Executable,
        Err(e) => Probe::Missing(e),
    }
}

/// Joins a relative `path` onto the container's working directory.
fn absolutize(cwd: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{}/{}", cwd.trim_end_matches('/'), path)
    }
}

/// Checks that `arg0` names an executable inside `rootfs`; `env` is the process env (for PATH).
pub fn check_command(
    rootfs: &Path,
    cwd: &str,
    arg0: &str,
    env: &[String],
) -> Result<(), (StartErrorKind, String)> {
    let root: OwnedFd = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(rootfs)
        .map_err(|e| {
            (
                StartErrorKind::Other,
                format!("open rootfs {}: {e}", rootfs.display()),
            )
        })?
        .into();
    let denied = || {
        (
            StartErrorKind::PermissionDenied,
            format!("exec: \"{arg0}\": permission denied"),
        )
    };
    if arg0.is_empty() {
        return Err((
            StartErrorKind::NotFound,
            "exec: \"\": executable file not found in $PATH".into(),
        ));
    }
    if arg0.contains('/') {
        return match probe(&root, &absolutize(cwd, arg0)) {
            Probe::Executable => Ok(()),
            Probe::Denied => Err(denied()),
            Probe::Missing(e) => Err((
                StartErrorKind::NotFound,
                format!("exec: \"{arg0}\": stat {arg0}: {}", describe(&e)),
            )),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut saw_denied = false;
    for dir in path.split(':') {
        // execvp treats an empty PATH entry as the current directory.
        let dir = if dir.is_empty() { "." } else { dir };
        match probe(&root, &absolutize(cwd, &format!("{dir}/{arg0}"))) {
            Probe::Executable => return Ok(()),
            Probe::Denied => saw_denied = true,
            Probe::Missing(_) => {}
        }
    }
    if saw_denied {
        Err(denied())
    } else {
        Err((
            StartErrorKind::NotFound,
            format!("exec: \"{arg0}\": executable file not found in $PATH"),
        ))
    }
}

/// Go-style lower-case error text ("no such file or directory"), which scripts grep for.
fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::Error::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("bin/tool"), b"#!").unwrap();
        std::fs::set_permissions(r.join("bin/tool"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(r.join("etc/passwd"), b"root").unwrap();
        std::fs::set_permissions(r.join("etc/passwd"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        // An absolute symlink must resolve inside the rootfs, not on the host.
        symlink("/bin/tool", r.join("bin/link")).unwrap();
        symlink("/bin/bash", r.join("bin/hostbash")).unwrap();
        d
    }

    #[test]
    fn resolves_like_execvp() {
        let d = rootfs();
        let r = d.path();
        assert!(check_command(r, "/", "tool", &[]).is_ok());
        assert!(check_command(r, "/", "link", &[]).is_ok());
        assert!(check_command(r, "/", "/bin/link", &[]).is_ok());
        assert!(check_command(r, "/bin", "./tool", &[]).is_ok());
        let (k, m) = check_command(r, "/", "nosuchcmd", &[]).unwrap_err();
        assert_eq!(k, StartErrorKind::NotFound);
        assert_eq!(m, "exec: \"nosuchcmd\": executable file not found in $PATH");
        // The host has /bin/bash, the rootfs does not.
        let (k, _) = check_command(r, "/", "hostbash", &[]).unwrap_err();
        assert_eq!(k, StartErrorKind::NotFound);
        let (k, m) = check_command(r, "/", "/etc/passwd", &[]).unwrap_err();
        assert_eq!(k, StartErrorKind::PermissionDenied);
        assert_eq!(m, "exec: \"/etc/passwd\": permission denied");
        let (k, _) = check_command(r, "/", "/etc", &[]).unwrap_err();
        assert_eq!(k, StartErrorKind::PermissionDenied);
        let (k, m) = check_command(r, "/", "/nope", &[]).unwrap_err();
        assert_eq!(k, StartErrorKind::NotFound);
        assert_eq!(m, "exec: \"/nope\": stat /nope: no such file or directory");
        // PATH from the env wins over the default.
        let env = vec!["PATH=/etc".to_string()];
        assert!(check_command(r, "/", "tool", &env).is_err());
    }
}
