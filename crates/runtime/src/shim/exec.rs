//! `docker exec`: extra processes in the running container. libcontainer's tenant builder
//! joins them to the container's namespaces and cgroup; the shim holds their stdio like the
//! init's, is their subreaper, and keeps their exit codes for the daemon.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Instant;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use oci_spec::runtime::{Process, Spec};

use super::conn::{frame, Role, MAX_PENDING};
use super::create::{dev_null, error_chain, pipe, receive_pty, set_nonblocking, Stdio};
use super::filter_exec::{lend_sys_admin, DropSysAdmin, FilterExecutor};
use super::resolve;
use super::seccomp_bpf::{self, ExecFilter};
use super::supervise::{Shim, DRAIN_TIMEOUT, EOT};
use crate::protocol::{
    files, ExecExit, ExecReply, OkReply, Request, ShimConfig, StartErrorKind, Status,
};

/// One exec process the shim supervises.
pub struct Exec {
    /// Identifies the exec's connections (`Role::ExecStream`/`ExecWait`) while it runs.
    pub key: u32,
    /// The daemon's exec id.
    pub id: String,
    /// Host pid.
    pub pid: i32,
    /// Output is raw (pty) rather than framed.
    pub tty: bool,
    /// Our ends of its stdio.
    pub stdio: Stdio,
    /// Attacher input not yet taken by the process.
    pub stdin_buf: Vec<u8>,
    /// Close stdin once `stdin_buf` is written.
    pub stdin_close_pending: bool,
    /// Stdin has been closed (or EOT sent).
    pub stdin_closed: bool,
    /// Every slave fd of the pty is closed; the master leaves the poll set.
    pub pty_eof: bool,
    /// Exit code once reaped.
    pub exited: Option<i32>,
    /// Stop waiting for output at this point after the exit.
    pub drain_deadline: Option<Instant>,
}

impl Exec {
    /// Whether the process is gone and its output drained (or the drain timed out).
    pub fn done(&self, now: Instant) -> bool {
        if self.exited.is_none() {
            return false;
        }
        let open = self.stdio.stdout.is_some()
            || self.stdio.stderr.is_some()
            || (self.stdio.pty.is_some() && !self.pty_eof);
        !open || self.drain_deadline.is_some_and(|d| now >= d)
    }
}

/// Exec ids name files in the state dir, so only what the daemon generates is accepted.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The process file the daemon wrote for `exec_id`.
pub fn process_path(state_dir: &Path, exec_id: &str) -> PathBuf {
    state_dir.join(files::EXECS).join(format!("{exec_id}.json"))
}

/// Runs the exec process described by its process file. Blocks until the process has
/// executed its command (or failed to); the shim loop is paused meanwhile, which is short.
pub fn spawn(
    cfg: &ShimConfig,
    state_dir: &Path,
    init_pid: i32,
    exec_id: &str,
    tty: bool,
    open_stdin: bool,
) -> Result<(i32, Stdio), (StartErrorKind, String)> {
    let other = |m: String| (StartErrorKind::Other, m);
    if !valid_id(exec_id) {
        return Err(other(format!("invalid exec id {exec_id:?}")));
    }
    let path = process_path(state_dir, exec_id);
    let result = spawn_from(cfg, init_pid, exec_id, &path, tty, open_stdin);
    // The file is only the hand-over from the daemon; an exec runs at most once.
    let _ = std::fs::remove_file(&path);
    result
}

fn spawn_from(
    cfg: &ShimConfig,
    init_pid: i32,
    exec_id: &str,
    path: &Path,
    tty: bool,
    open_stdin: bool,
) -> Result<(i32, Stdio), (StartErrorKind, String)> {
    let other = |m: String| (StartErrorKind::Other, m);
    let data = std::fs::read(path).map_err(|e| other(format!("read {}: {e}", path.display())))?;
    let mut process: Process =
        serde_json::from_slice(&data).map_err(|e| other(format!("parse exec process: {e}")))?;
    let args = process.args().clone().unwrap_or_default();
    let arg0 = args
        .first()
        .ok_or_else(|| other("No exec command specified".into()))?;
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd().to_string_lossy().into_owned();
    // The container's own view of its filesystem, volumes included, is its init's root.
    let root = PathBuf::from(format!("/proc/{init_pid}/root"));
    resolve::check_command(&root, &cwd, arg0, &env)?;

    let seccomp = seccomp_bpf::for_container(cfg.seccomp_cache.as_deref(), || {
        let spec = Spec::load(cfg.bundle.join("config.json"))
            .map_err(|e| format!("load OCI spec: {e}"))?;
        Ok(spec.linux().as_ref().and_then(|l| l.seccomp().clone()))
    })
    .map_err(other)?;
    let drop_sys_admin = match seccomp {
        ExecFilter::None => DropSysAdmin::default(),
        _ => lend_sys_admin(&mut process),
    };
    process.set_terminal(Some(tty));
    let run_path = path.with_extension("run.json");
    let json = serde_json::to_vec(&process).map_err(|e| other(e.to_string()))?;
    std::fs::write(&run_path, json)
        .map_err(|e| other(format!("write {}: {e}", run_path.display())))?;
    let executor = FilterExecutor {
        seccomp,
        drop_sys_admin,
    };
    let result = build(cfg, exec_id, &run_path, executor, tty, open_stdin);
    let _ = std::fs::remove_file(&run_path);
    result.map_err(other)
}

fn build(
    cfg: &ShimConfig,
    exec_id: &str,
    process: &Path,
    executor: FilterExecutor,
    tty: bool,
    open_stdin: bool,
) -> Result<(i32, Stdio), String> {
    let mut builder = ContainerBuilder::new(cfg.id.clone(), SyscallType::default())
        .with_root_path(&cfg.runtime_root)
        .map_err(|e| e.to_string())?
        .with_executor(executor);
    let mut stdio = Stdio::default();
    let mut console = None;
    // Relative to the shim's cwd (the state dir); libcontainer wants it absolute.
    let console_name = format!("exec-{}.sock", &exec_id[..exec_id.len().min(12)]);
    if tty {
        let _ = std::fs::remove_file(&console_name);
        let listener =
            UnixListener::bind(&console_name).map_err(|e| format!("bind console socket: {e}"))?;
        let abs = std::env::current_dir()
            .map_err(|e| e.to_string())?
            .join(&console_name);
        builder = builder.with_console_socket(Some(abs));
        console = Some(listener);
    } else {
        let stdin: OwnedFd = if open_stdin {
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
    let built = builder
        .as_tenant()
        .with_process(Some(process))
        .with_detach(true)
        .build();
    let result = match built {
        Ok(pid) => {
            if let Some(listener) = &console {
                match receive_pty(listener) {
                    Ok(pty) => stdio.pty = Some(pty),
                    Err(e) => {
                        // SAFETY: kill(2) takes plain integers; pid is our unreaped child.
                        unsafe { libc::kill(pid.as_raw(), libc::SIGKILL) };
                        return Err(e);
                    }
                }
            }
            Ok((pid.as_raw(), stdio))
        }
        Err(e) => Err(error_chain(&e)),
    };
    if console.is_some() {
        let _ = std::fs::remove_file(&console_name);
    }
    remove_tenant_sockets(&cfg.runtime_root.join(&cfg.id));
    let (pid, stdio) = result?;
    for f in [&stdio.stdin, &stdio.stdout, &stdio.stderr, &stdio.pty]
        .into_iter()
        .flatten()
    {
        set_nonblocking(f.as_raw_fd()).map_err(|e| format!("set O_NONBLOCK: {e}"))?;
    }
    Ok((pid, stdio))
}

/// libcontainer leaves one notify (and console) socket per exec in the container's state
/// dir; they are only used until `build` returns, and the shim builds one exec at a time.
fn remove_tenant_sockets(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("tenant-notify-") || name.starts_with("tenant-tty-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Which of an exec's descriptors a poll slot is.
#[derive(Clone, Copy)]
pub enum ExecFd {
    /// Stdout pipe.
    Stdout,
    /// Stderr pipe.
    Stderr,
    /// Pty master (output, and input when `POLLOUT`).
    Pty,
    /// Stdin pipe, polled for writing.
    StdinW,
}

impl Exec {
    /// The descriptors to poll and for what.
    pub fn poll_fds(&self) -> Vec<(RawFd, libc::c_short, ExecFd)> {
        let mut v = Vec::new();
        if let Some(f) = &self.stdio.stdout {
            v.push((f.as_raw_fd(), libc::POLLIN, ExecFd::Stdout));
        }
        if let Some(f) = &self.stdio.stderr {
            v.push((f.as_raw_fd(), libc::POLLIN, ExecFd::Stderr));
        }
        if let Some(f) = &self.stdio.pty {
            let mut ev = 0;
            if !self.pty_eof {
                ev |= libc::POLLIN;
            }
            if !self.stdin_buf.is_empty() {
                ev |= libc::POLLOUT;
            }
            if ev != 0 {
                v.push((f.as_raw_fd(), ev, ExecFd::Pty));
            }
        }
        if let (Some(f), false) = (&self.stdio.stdin, self.stdin_buf.is_empty()) {
            v.push((f.as_raw_fd(), libc::POLLOUT, ExecFd::StdinW));
        }
        v
    }

    fn flush_stdin(&mut self) {
        while !self.stdin_buf.is_empty() {
            let w = if self.stdio.pty.is_some() {
                self.stdio.pty.as_mut()
            } else {
                self.stdio.stdin.as_mut()
            };
            let Some(w) = w else {
                self.stdin_buf.clear();
                return;
            };
            match w.write(&self.stdin_buf) {
                Ok(n) => {
                    self.stdin_buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    // The reader is gone; nothing will ever take these bytes.
                    self.stdin_buf.clear();
                    self.stdio.stdin = None;
                    self.stdin_closed = true;
                    return;
                }
            }
        }
        if self.stdin_close_pending {
            self.stdin_close_pending = false;
            self.stdio.stdin = None;
        }
    }

    /// The attacher's input ended: the process reads EOF (EOT on a terminal).
    fn close_stdin(&mut self) {
        if self.stdin_closed {
            return;
        }
        self.stdin_closed = true;
        if self.stdio.pty.is_some() {
            self.stdin_buf.push(EOT);
        } else {
            self.stdin_close_pending = true;
        }
        self.flush_stdin();
    }
}

impl Shim {
    /// Handles `ExecStart`, `ExecWait` and `ExecResize` on connection `i`.
    pub(super) fn exec_request(&mut self, i: usize, req: Request) {
        match req {
            Request::ExecStart {
                exec_id,
                tty,
                stdin,
                stdout,
                stderr,
            } => {
                let reply = self.exec_start(&exec_id, tty, stdin);
                let c = &mut self.state.conns[i];
                c.reply(&reply);
                c.role = match reply.ok {
                    true => match self.state.execs.last() {
                        Some(e) => Role::ExecStream {
                            key: e.key,
                            stdin,
                            stdout,
                            stderr,
                        },
                        None => Role::Closing,
                    },
                    false => Role::Closing,
                };
                if reply.ok {
                    let early = c.take_leftover();
                    if !early.is_empty() {
                        self.exec_stdin_from(i, early);
                    }
                }
            }
            Request::ExecWait { exec_id } => {
                let c = &mut self.state.conns[i];
                if let Some(code) = self.state.exec_exits.get(&exec_id) {
                    c.reply(&ExecExit { exit_code: *code });
                    c.role = Role::Closing;
                } else if let Some(e) = self.state.execs.iter().find(|e| e.id == exec_id) {
                    c.role = Role::ExecWait { key: e.key };
                } else {
                    c.reply(&OkReply::err(format!("No such exec instance: {exec_id}")));
                    c.role = Role::Closing;
                }
            }
            Request::ExecResize {
                exec_id,
                width,
                height,
            } => {
                let reply = match self.state.execs.iter().find(|e| e.id == exec_id) {
                    Some(Exec {
                        stdio: Stdio { pty: Some(pty), .. },
                        ..
                    }) => set_winsize(pty, width, height),
                    // Docker accepts a resize of an exec without a terminal and ignores it.
                    Some(_) => OkReply::ok(),
                    None => OkReply::err(format!("No such exec instance: {exec_id}")),
                };
                let c = &mut self.state.conns[i];
                c.reply(&reply);
                c.role = Role::Closing;
            }
            _ => {}
        }
    }

    fn exec_start(&mut self, exec_id: &str, tty: bool, stdin: bool) -> ExecReply {
        let refuse = |kind, msg: String| ExecReply {
            ok: false,
            pid: 0,
            kind: Some(kind),
            error: Some(msg),
        };
        if self.state.exited.is_some() || self.state.status != Some(Status::Running) {
            return refuse(
                StartErrorKind::Other,
                format!("container {} is not running", self.cfg.id),
            );
        }
        // A process joining a frozen cgroup freezes too, and the single-threaded shim would
        // wait for it; the daemon refuses such an exec first, this closes the race.
        if self.frozen() {
            return refuse(
                StartErrorKind::Other,
                format!("container {} is paused", self.cfg.id),
            );
        }
        if self.state.exec_exits.contains_key(exec_id)
            || self.state.execs.iter().any(|e| e.id == exec_id)
        {
            return refuse(
                StartErrorKind::Other,
                format!("exec {exec_id} already started"),
            );
        }
        let spawned = spawn(&self.cfg, &self.state_dir, self.pid, exec_id, tty, stdin);
        match spawned {
            Ok((pid, stdio)) => {
                self.state.next_exec_key = self.state.next_exec_key.wrapping_add(1);
                let stdin_closed = !stdio_has_input(&stdio);
                self.state.execs.push(Exec {
                    key: self.state.next_exec_key,
                    id: exec_id.to_string(),
                    pid,
                    tty,
                    stdio,
                    stdin_buf: Vec::new(),
                    stdin_close_pending: false,
                    stdin_closed,
                    pty_eof: false,
                    exited: None,
                    drain_deadline: None,
                });
                // It may already have exited while we were setting up; reaping only now,
                // with the exec registered, is what keeps that exit from being lost.
                self.reap();
                ExecReply {
                    ok: true,
                    pid,
                    kind: None,
                    error: None,
                }
            }
            Err((kind, msg)) => {
                self.reap();
                refuse(kind, msg)
            }
        }
    }

    /// Records an exec's exit if `pid` is one; returns whether it was.
    pub(super) fn exec_reaped(&mut self, pid: i32, code: i32) -> bool {
        match self
            .state
            .execs
            .iter_mut()
            .find(|e| e.pid == pid && e.exited.is_none())
        {
            Some(e) => {
                e.exited = Some(code);
                e.drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                true
            }
            None => false,
        }
    }

    /// Readiness on one of exec `i`'s descriptors.
    pub(super) fn exec_fd(&mut self, i: usize, which: ExecFd, revents: libc::c_short) {
        match which {
            ExecFd::StdinW => self.state.execs[i].flush_stdin(),
            ExecFd::Pty => {
                if revents & libc::POLLOUT != 0 {
                    self.state.execs[i].flush_stdin();
                }
                if revents & !libc::POLLOUT != 0 && !self.state.execs[i].pty_eof {
                    self.exec_read(i, which);
                }
            }
            _ => self.exec_read(i, which),
        }
    }

    fn exec_read(&mut self, i: usize, which: ExecFd) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let e = &mut self.state.execs[i];
            let file = match which {
                ExecFd::Stdout => e.stdio.stdout.as_mut(),
                ExecFd::Stderr => e.stdio.stderr.as_mut(),
                _ => e.stdio.pty.as_mut(),
            };
            let Some(file) = file else { return };
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let stream = if matches!(which, ExecFd::Stderr) {
                        2
                    } else {
                        1
                    };
                    let (key, tty) = (e.key, e.tty);
                    self.exec_dispatch(key, tty, stream, &buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // EIO is how a pty master reports that every slave fd is closed.
                Err(_) => break,
            }
        }
        let e = &mut self.state.execs[i];
        match which {
            ExecFd::Stdout => e.stdio.stdout = None,
            ExecFd::Stderr => e.stdio.stderr = None,
            // Keep the master while the process runs: closing it would hang up its terminal.
            _ if e.exited.is_some() => e.stdio.pty = None,
            _ => e.pty_eof = true,
        }
    }

    /// Exec output goes only to that exec's stream (Docker does not log it).
    fn exec_dispatch(&mut self, key: u32, tty: bool, stream: u8, data: &[u8]) {
        for c in &mut self.state.conns {
            let Role::ExecStream {
                key: k,
                stdout,
                stderr,
                ..
            } = c.role
            else {
                continue;
            };
            let wanted = if stream == 2 { stderr } else { stdout };
            if k != key || !wanted {
                continue;
            }
            if tty {
                c.out.extend_from_slice(data);
            } else {
                frame(stream, data, &mut c.out);
            }
            if c.out.len() > MAX_PENDING {
                eprintln!("berth-shim: dropping slow exec attacher");
                c.dead = true;
            }
        }
    }

    /// Input from exec stream connection `i`.
    pub(super) fn exec_stdin_from(&mut self, i: usize, data: Vec<u8>) {
        let Role::ExecStream {
            key, stdin: true, ..
        } = self.state.conns[i].role
        else {
            return;
        };
        if let Some(e) = self.state.execs.iter_mut().find(|e| e.key == key) {
            if !e.stdin_closed {
                e.stdin_buf.extend_from_slice(&data);
                e.flush_stdin();
            }
        }
    }

    /// The exec stream on connection `i` stopped sending (EOF or gone).
    pub(super) fn exec_input_ended(&mut self, i: usize) {
        let Role::ExecStream {
            key, stdin: true, ..
        } = self.state.conns[i].role
        else {
            return;
        };
        if let Some(e) = self.state.execs.iter_mut().find(|e| e.key == key) {
            e.close_stdin();
        }
    }

    /// Once per loop turn: closes stdin of execs whose attacher left, and completes execs
    /// that have exited and drained.
    pub(super) fn exec_after_events(&mut self) {
        for i in 0..self.state.conns.len() {
            if self.state.conns[i].dead {
                self.exec_input_ended(i);
            }
        }
        let now = Instant::now();
        let done: Vec<usize> = (0..self.state.execs.len())
            .filter(|&i| self.state.execs[i].done(now))
            .collect();
        for i in done.into_iter().rev() {
            let e = self.state.execs.remove(i);
            self.exec_complete(e);
        }
    }

    /// Records the exit code, answers its waiters and ends its streams.
    fn exec_complete(&mut self, e: Exec) {
        let code = e.exited.unwrap_or(255);
        self.state.exec_exits.insert(e.id.clone(), code);
        for c in &mut self.state.conns {
            match c.role {
                Role::ExecWait { key } if key == e.key => {
                    c.reply(&ExecExit { exit_code: code });
                    c.role = Role::Closing;
                }
                Role::ExecStream { key, .. } if key == e.key => c.role = Role::Closing,
                _ => {}
            }
        }
    }

    /// The earliest drain deadline of an exited exec.
    pub(super) fn exec_deadline(&self) -> Option<Instant> {
        self.state
            .execs
            .iter()
            .filter_map(|e| e.drain_deadline)
            .min()
    }

    /// The container is gone: its pid namespace took the execs with it; make sure of it,
    /// reap them, and answer everyone still waiting.
    pub(super) fn exec_finalize(&mut self) {
        for e in &self.state.execs {
            if e.exited.is_none() {
                // SAFETY: kill(2) takes plain integers; the pid is our unreaped child.
                unsafe { libc::kill(e.pid, libc::SIGKILL) };
            }
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.state.execs.iter().any(|e| e.exited.is_none()) && Instant::now() < deadline {
            self.reap();
            if self.state.execs.iter().any(|e| e.exited.is_none()) {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        for e in std::mem::take(&mut self.state.execs) {
            let mut e = e;
            e.exited.get_or_insert(128 + libc::SIGKILL);
            e.stdio = Stdio::default();
            self.exec_complete(e);
        }
    }
}

fn stdio_has_input(stdio: &Stdio) -> bool {
    stdio.stdin.is_some() || stdio.pty.is_some()
}

/// TIOCSWINSZ on a pty master.
pub fn set_winsize(pty: &File, width: u16, height: u16) -> OkReply {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer; the fd is a pty master we own.
    let rc = unsafe {
        libc::ioctl(
            pty.as_raw_fd(),
            libc::TIOCSWINSZ,
            &ws as *const libc::winsize,
        )
    };
    if rc == 0 {
        OkReply::ok()
    } else {
        OkReply::err(format!("resize: {}", io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_only() {
        assert!(valid_id("abc123"));
        assert!(!valid_id("../x"));
        assert!(!valid_id(""));
    }
}
