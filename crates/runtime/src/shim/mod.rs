//! The `berth-shim` process: a launcher that forks the long-lived shim and relays its report.

mod cgroup;
mod conn;
mod create;
mod exec;
mod exit;
mod filter_exec;
mod logger;
mod memory;
mod resolve;
mod rootfs;
mod seccomp_bpf;
mod seccomp_enosys;
mod supervise;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{dup2, fork, pipe2, setsid, ForkResult};
use oci_spec::runtime::Spec;

use crate::fsutil::write_replace;
use crate::protocol::{files, ShimConfig, StartErrorKind, StartReport};
use supervise::Shim;

type Failure = (StartErrorKind, String);

fn other(msg: impl Into<String>) -> Failure {
    (StartErrorKind::Other, msg.into())
}

/// Ignored signals stay ignored across exec, so whatever the shim ignores its containers and
/// execs would too: Rust ignores SIGPIPE, and a shell's `cmd &` ignores SIGINT and SIGQUIT. A
/// container starts with every signal at its default, as in Docker. The shim itself keeps
/// surviving broken pipes through a handler that does nothing (handlers reset on exec).
fn default_signal_dispositions() {
    extern "C" fn ignore(_: libc::c_int) {}
    for signal in 1..=libc::SIGRTMAX() {
        // SAFETY: reading and setting dispositions with a zeroed sigaction and plain handlers;
        // nothing else runs yet (no threads), and SIGKILL/SIGSTOP simply fail.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
                // glibc keeps the first real-time signals for itself and refuses them; the
                // kernel takes them, and glibc installs its own handlers when it needs them.
                let default = [0u64; 4]; // the kernel's sigaction: handler SIG_DFL, no flags, empty mask
                libc::syscall(libc::SYS_rt_sigaction, signal, default.as_ptr(), std::ptr::null_mut::<u64>(), 8);
                continue;
            }
            if current.sa_sigaction != libc::SIG_IGN {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = if signal == libc::SIGPIPE { ignore as extern "C" fn(libc::c_int) as usize } else { libc::SIG_DFL };
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// Entry point of the binary; returns the launcher's exit code.
pub fn main() -> i32 {
    default_signal_dispositions();
    let Some(arg) = std::env::args_os().nth(1) else {
        eprintln!("usage: berth-shim <state_dir>");
        return 2;
    };
    let state_dir = match std::fs::canonicalize(&arg) {
        Ok(p) => p,
        Err(e) => {
            print_report(&failed(other(format!(
                "state dir {}: {e}",
                PathBuf::from(arg).display()
            ))));
            return 0;
        }
    };
    let (r, w) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            print_report(&failed(other(format!("pipe: {e}"))));
            return 0;
        }
    };
    // SAFETY: nothing in this process has started a thread yet, so the child may run
    // arbitrary code after fork.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(r);
            std::process::exit(shim_child(&state_dir, File::from(w)))
        }
        Ok(ForkResult::Parent { .. }) => {
            drop(w);
            // The child is not waited for: once we exit it is reparented to init, which reaps it.
            let mut line = String::new();
            let _ = BufReader::new(File::from(r)).read_line(&mut line);
            if line.trim().is_empty() {
                print_report(&failed(other("shim exited before reporting; see shim.log")));
            } else {
                println!("{}", line.trim_end());
            }
            0
        }
        Err(e) => {
            print_report(&failed(other(format!("fork: {e}"))));
            0
        }
    }
}

fn failed((kind, message): Failure) -> StartReport {
    StartReport::Failed { kind, message }
}

fn print_report(r: &StartReport) {
    match serde_json::to_string(r) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("berth-shim: {e}"),
    }
}

/// The long-lived shim. Returns its exit code.
fn shim_child(state_dir: &Path, mut report: File) -> i32 {
    if let Err(e) = detach(state_dir) {
        let _ = send(&mut report, &failed(other(e)));
        return 1;
    }
    match setup(state_dir) {
        Ok(shim) => {
            let created = StartReport::Created {
                pid: shim.pid,
                shim_pid: std::process::id() as i32,
            };
            // If the launcher is gone the daemon learns the state from the socket instead.
            let _ = send(&mut report, &created);
            drop(report);
            // The code the create path touched is dropped a moment later (see `Shim::new`),
            // not here: the daemon's start request is already on its way.
            shim.run();
            0
        }
        Err(f) => {
            eprintln!("berth-shim: {}", f.1);
            let _ = send(&mut report, &failed(f));
            1
        }
    }
}

fn send(report: &mut File, r: &StartReport) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
    line.push(b'\n');
    report.write_all(&line)
}

/// New session (survive the daemon's process group), subreaper (the container init is
/// reparented to us), stdio off the daemon's pipe (so it sees EOF when the launcher exits).
fn detach(state_dir: &Path) -> Result<(), String> {
    setsid().map_err(|e| format!("setsid: {e}"))?;
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "set subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join(files::LOG));
    let err_target = log
        .as_ref()
        .map(|f| f.as_raw_fd())
        .unwrap_or(null.as_raw_fd());
    for (src, dst) in [
        (null.as_raw_fd(), 0),
        (null.as_raw_fd(), 1),
        (err_target, 2),
    ] {
        dup2(src, dst).map_err(|e| format!("dup2: {e}"))?;
    }
    // Relative names (console socket) stay short whatever the state dir's length.
    std::env::set_current_dir(state_dir).map_err(|e| format!("chdir {}: {e}", state_dir.display()))
}

/// Reads the config, mounts the rootfs, checks the command, creates the container and binds
/// the socket. On failure everything done so far is undone.
fn setup(state_dir: &Path) -> Result<Shim, Failure> {
    // Pays the cgroup attach lock's grace period (see `cgroup_warmup`) while the rootfs is
    // mounted, in a child process: a thread would leave a malloc arena behind in the shim.
    // SAFETY: the shim has no other thread yet; the child writes one file and exits at once.
    let warmer = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            crate::cgroup_warmup::warm_attach_lock();
            // SAFETY: _exit skips destructors and atexit handlers that belong to the shim.
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => Some(child),
        Err(_) => None,
    };
    let cfg_bytes = std::fs::read(state_dir.join(files::CONFIG))
        .map_err(|e| other(format!("read {}: {e}", files::CONFIG)))?;
    let cfg: ShimConfig = serde_json::from_slice(&cfg_bytes)
        .map_err(|e| other(format!("parse {}: {e}", files::CONFIG)))?;
    let spec = Spec::load(cfg.bundle.join("config.json"))
        .map_err(|e| other(format!("load OCI spec: {e}")))?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| other("spec has no root"))?;
    let rootfs = cfg.bundle.join(root.path());
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| other("spec has no process"))?;
    let args = process.args().clone().unwrap_or_default();
    let arg0 = command_to_check(&args, &spec).ok_or_else(|| other("spec has no process.args"))?;
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd().to_string_lossy().into_owned();
    let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());

    let log = logger::JsonLog::from_config(&cfg)
        .map_err(|e| other(format!("open log {}: {e}", cfg.log_path.display())))?;
    rootfs::mount_all(&cfg.rootfs_mounts, &rootfs).map_err(other)?;
    let unmount = || rootfs::unmount_n(&rootfs, cfg.rootfs_mounts.len());
    if let Err(f) = resolve::check_command(&rootfs, &cwd, arg0, &env) {
        unmount();
        return Err(f);
    }
    // Reaped before libcontainer forks: the lock is warm for the container's cgroup move.
    if let Some(pid) = warmer {
        let _ = nix::sys::wait::waitpid(pid, None);
    }
    let created = match create::create(&cfg, &spec, Path::new("console.sock")) {
        Ok(c) => c,
        Err(e) => {
            create::cleanup_failed(&cfg);
            unmount();
            return Err(other(e));
        }
    };
    let pid = created.pid;
    let rest = listen_and_watch(state_dir);
    let (listener, sigfd) = match rest {
        Ok(v) => v,
        Err(e) => {
            let mut c = created.container;
            // SAFETY: kill(2) takes plain integers; pid is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            if let Err(de) = c.delete(true) {
                eprintln!("berth-shim: delete after failure: {de}");
            }
            unmount();
            return Err(other(e));
        }
    };
    Ok(Shim::new(
        cfg,
        state_dir.to_path_buf(),
        rootfs,
        cgroups_path,
        created.container,
        pid,
        created.stdio,
        log,
        listener,
        sigfd,
    ))
}

/// Binds `shim.sock`, writes `shim.pid`, and routes SIGCHLD (and termination signals, which
/// the shim must survive) to a signalfd. Blocking signals only now keeps the container init,
/// created earlier, from inheriting a blocked mask.
fn listen_and_watch(state_dir: &Path) -> Result<(UnixListener, SignalFd), String> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| format!("sigprocmask: {e}"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;
    let sock = state_dir.join(files::SOCKET);
    let _ = std::fs::remove_file(&sock);
    let listener =
        UnixListener::bind(files::SOCKET).map_err(|e| format!("bind {}: {e}", sock.display()))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    write_replace(
        &state_dir.join(files::PID),
        format!("{}\n", std::process::id()).as_bytes(),
    )
    .map_err(|e| format!("write {}: {e}", files::PID))?;
    Ok((listener, sigfd))
}

/// The program whose absence should fail the start. An init bind-mounted from the host
/// (`--init`) is not in the rootfs yet and runs the real command after `--`: that one is
/// what the user asked for.
fn command_to_check<'a>(args: &'a [String], spec: &Spec) -> Option<&'a String> {
    let arg0 = args.first()?;
    let mounted = spec.mounts().iter().flatten().any(|m| m.destination().as_os_str() == arg0.as_str());
    match args.iter().position(|a| a == "--") {
        Some(i) if mounted => args.get(i + 1),
        _ => Some(arg0),
    }
}
