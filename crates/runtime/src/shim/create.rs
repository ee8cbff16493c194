//! Creating (not starting) the container with libcontainer, wired to pipes or a pty.

use std::fs::File;
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::unistd::pipe2;
use oci_spec::runtime::Spec;

use super::filter_exec::{lend_sys_admin, DropSysAdmin, FilterExecutor};
use super::seccomp_bpf::{self, ExecFilter};
use crate::protocol::ShimConfig;

/// The shim's ends of the container's stdio.
#[derive(Default)]
pub struct Stdio {
    /// Write end of the stdin pipe (`open_stdin`, no tty).
    pub stdin: Option<File>,
    /// Read end of the stdout pipe (no tty).
    pub stdout: Option<File>,
    /// Read end of the stderr pipe (no tty).
    pub stderr: Option<File>,
    /// The pty master (tty): both input and output.
    pub pty: Option<File>,
}

/// A created container.
pub struct Created {
    /// libcontainer's handle (state in `runtime_root/<id>`).
    pub container: Container,
    /// Init pid.
    pub pid: i32,
    /// Our ends of its stdio, non-blocking.
    pub stdio: Stdio,
}

/// Marks `fd` non-blocking so the single-threaded loop never stalls on it.
pub fn set_nonblocking(fd: RawFd) -> nix::Result<()> {
    // SAFETY: fd is open for the duration of this call (callers pass fds they own).
    let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = OFlag::from_bits_truncate(fcntl(bfd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(
        bfd.as_raw_fd(),
        FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
    )
    .map(drop)
}

/// A container's stdin when nothing feeds it: /dev/null, open for writing too, as runc
/// gives it (a process may write to its fd 0).
pub fn dev_null() -> Result<File, String> {
    File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))
}

pub fn pipe() -> Result<(File, File), String> {
    let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    Ok((File::from(r), File::from(w)))
}

/// Creates the container from `spec` (the bundle's). `console_sock` is a path (relative to
/// the cwd = state dir) used to receive the pty master when `tty`.
pub fn create(cfg: &ShimConfig, spec: &Spec, console_sock: &Path) -> Result<Created, String> {
    std::fs::create_dir_all(&cfg.runtime_root)
        .map_err(|e| format!("create {}: {e}", cfg.runtime_root.display()))?;
    let (bundle, executor) = init_bundle(cfg, spec)?;
    let mut builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_root_path(&cfg.runtime_root)
        .map_err(|e| e.to_string())?
        .with_executor(executor);
    let mut stdio = Stdio::default();
    let mut console = None;
    if cfg.tty {
        let _ = std::fs::remove_file(console_sock);
        let listener =
            UnixListener::bind(console_sock).map_err(|e| format!("bind console socket: {e}"))?;
        // libcontainer needs the absolute path: it symlinks it into its own state dir.
        let abs = std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join(console_sock);
        builder = builder.with_console_socket(Some(abs));
        console = Some(listener);
    } else {
        let stdin: OwnedFd = if cfg.open_stdin {
            let (r, w) = pipe()?;
            stdio.stdin = Some(w);
            r.into()
        } else {
            dev_null()?.into()
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        stdio.stdout = Some(out_r);
        stdio.stderr = Some(err_r);
        builder = builder
            .with_stdin(stdin)
            .with_stdout(out_w)
            .with_stderr(err_w);
    }
    let built = builder.validate_id().and_then(|b| {
        b.as_init(&bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
    });
    let result = match built {
        Ok(container) => finish(container, stdio, console.as_ref()),
        Err(e) => Err(error_chain(&e)),
    };
    if console.is_some() {
        let _ = std::fs::remove_file(console_sock);
    }
    result
}

/// The bundle libcontainer creates the container from, and the executor that installs the
/// container's seccomp filter. When the profile compiles here, libcontainer gets a copy of
/// the spec without it (in `init-bundle` beside the bundle), with CAP_SYS_ADMIN lent to
/// load the program (see `filter_exec`); otherwise the bundle as it is.
fn init_bundle(cfg: &ShimConfig, spec: &Spec) -> Result<(PathBuf, FilterExecutor), String> {
    static NO_FILTER: ExecFilter = ExecFilter::None;
    let as_is = FilterExecutor {
        seccomp: &NO_FILTER,
        drop_sys_admin: DropSysAdmin::default(),
    };
    let profile = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
    let filter = seccomp_bpf::for_container(cfg.seccomp_cache.as_deref(), || Ok(profile))?;
    if !matches!(filter, ExecFilter::Program(_)) {
        return Ok((cfg.bundle.clone(), as_is));
    }
    let mut derived = spec.clone();
    let mut linux = derived.linux().clone().unwrap_or_default();
    linux.set_seccomp(None);
    derived.set_linux(Some(linux));
    let mut process = derived.process().clone().ok_or("spec has no process")?;
    let drop_sys_admin = lend_sys_admin(&mut process);
    derived.set_process(Some(process));
    let dir = cfg.bundle.with_file_name("init-bundle");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let json = serde_json::to_vec(&derived).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("config.json"), json)
        .map_err(|e| format!("write {}/config.json: {e}", dir.display()))?;
    Ok((
        dir,
        FilterExecutor {
            seccomp: filter,
            drop_sys_admin,
        },
    ))
}

fn finish(
    container: Container,
    mut stdio: Stdio,
    console: Option<&UnixListener>,
) -> Result<Created, String> {
    let pid = container
        .pid()
        .map(|p| p.as_raw())
        .ok_or("container has no pid")?;
    if let Some(listener) = console {
        stdio.pty = Some(receive_pty(listener)?);
    }
    for f in [&stdio.stdin, &stdio.stdout, &stdio.stderr, &stdio.pty]
        .into_iter()
        .flatten()
    {
        set_nonblocking(f.as_raw_fd()).map_err(|e| format!("set O_NONBLOCK: {e}"))?;
    }
    Ok(Created {
        container,
        pid,
        stdio,
    })
}

/// Accepts libcontainer's connection on the console socket and takes the pty master it sends.
/// The init sends it during `build()`, so it is already queued; the timeout only guards bugs.
pub fn receive_pty(listener: &UnixListener) -> Result<File, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(format!("console socket: {e}")),
        }
    };
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receive pty master: {e}"))?;
    let mut fds = Vec::new();
    for cmsg in msg
        .cmsgs()
        .map_err(|e| format!("receive pty master: {e}"))?
    {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            fds.extend(received);
        }
    }
    let mut fds = fds.into_iter();
    let master = fds.next().ok_or("console socket: no pty master received")?;
    for extra in fds {
        // SAFETY: the kernel installed these fds for us; closing unexpected extras avoids a leak.
        drop(unsafe { OwnedFd::from_raw_fd(extra) });
    }
    // SAFETY: the kernel just installed this fd in our table and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(master) })
}

/// libcontainer nests its errors; Docker users want the innermost cause too.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        src = s.source();
    }
    msg
}

/// Removes whatever a failed `build()` left in libcontainer's state root (it cleans up only
/// failures after the container dir exists, and only partially).
pub fn cleanup_failed(cfg: &ShimConfig) {
    let dir = cfg.runtime_root.join(&cfg.id);
    if let Ok(mut c) = Container::load(dir.clone()) {
        if let Err(e) = c.delete(true) {
            eprintln!("berth-shim: cleanup delete: {e}");
        }
    }
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
