//! The shim's single-threaded poll loop: container output → log and attachers, attacher input
//! → container stdin, requests on `shim.sock`, and reaping via a signalfd.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use libcontainer::container::Container;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::conn::{frame, Conn, Input, Role, MAX_PENDING};
use super::create::Stdio;
use super::exec::{Exec, ExecFd};
use super::exit::{exit_code, now_rfc3339, oom_killed, ZERO_TIME};
use super::logger::JsonLog;
use super::rootfs;
use crate::teardown;
use crate::fsutil::write_replace;
use crate::protocol::{files, ExitStatus, OkReply, Request, ShimConfig, StateReply, Status};

/// A created container the shim stays with until it exits.
const CREATED_TIMEOUT: Duration = Duration::from_secs(600);
/// How long to keep reading output after init exits (something outside the container may
/// still hold the pipe).
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after the start the shim trims its memory (see `memory::release_unused_code`).
const RELEASE_MEMORY_AFTER: Duration = Duration::from_millis(500);
/// Stop reading attacher input while this much is waiting for the container.
const STDIN_HIGH_WATER: usize = 1 << 20;
/// ASCII EOT: what a terminal turns into end-of-file for the reader.
pub(super) const EOT: u8 = 4;

/// Everything the running shim owns.
pub struct Shim {
    /// The config it was started with.
    pub cfg: ShimConfig,
    /// Absolute state dir.
    pub state_dir: PathBuf,
    /// Where the rootfs is mounted.
    pub rootfs: PathBuf,
    /// The container's cgroup (for the OOM counter).
    pub cgroups_path: Option<PathBuf>,
    /// libcontainer handle.
    pub container: Container,
    /// Init pid.
    pub pid: i32,
    /// Our ends of the container's stdio.
    pub stdio: Stdio,
    /// The json-file log.
    pub log: JsonLog,
    /// `shim.sock`.
    pub listener: UnixListener,
    /// SIGCHLD and termination signals.
    pub sigfd: SignalFd,
    pub(super) state: LoopState,
}

#[derive(Default)]
pub(super) struct LoopState {
    pub(super) status: Option<Status>,
    started_at: Option<String>,
    pub(super) exited: Option<(i32, String)>,
    drain_deadline: Option<Instant>,
    /// When to drop the code pages the create and start paths touched: a moment after the
    /// create and again after the start, so neither path nor a short-lived container waits
    /// for it.
    release_memory_at: Option<Instant>,
    created_deadline: Option<Instant>,
    killed_for_timeout: bool,
    stdin_buf: Vec<u8>,
    stdin_close_pending: bool,
    stdin_closed: bool,
    /// Every slave fd of the pty is closed (the container may still run, e.g. daemonized);
    /// the master keeps reporting HUP, so it must leave the poll set to avoid a busy loop.
    pty_eof: bool,
    pub(super) conns: Vec<Conn>,
    /// Exec processes still running or draining.
    pub(super) execs: Vec<Exec>,
    /// Exit codes of finished execs, for late `ExecWait`s (bounded by the container's life).
    pub(super) exec_exits: std::collections::HashMap<String, i32>,
    pub(super) next_exec_key: u32,
}

#[derive(Clone, Copy)]
enum Slot {
    Sig,
    Listener,
    Stdout,
    Stderr,
    Pty,
    StdinW,
    Conn(usize),
    Exec(usize, ExecFd),
}

impl Shim {
    /// Assembles the shim; `run` does the work.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: ShimConfig,
        state_dir: PathBuf,
        rootfs: PathBuf,
        cgroups_path: Option<PathBuf>,
        container: Container,
        pid: i32,
        stdio: Stdio,
        log: JsonLog,
        listener: UnixListener,
        sigfd: SignalFd,
    ) -> Self {
        let state = LoopState {
            status: Some(Status::Created),
            created_deadline: Some(Instant::now() + CREATED_TIMEOUT),
            // A container left created is trimmed too; a start soon after postpones it.
            release_memory_at: Some(Instant::now() + RELEASE_MEMORY_AFTER),
            ..Default::default()
        };
        Shim {
            cfg,
            state_dir,
            rootfs,
            cgroups_path,
            container,
            pid,
            stdio,
            log,
            listener,
            sigfd,
            state,
        }
    }

    fn status(&self) -> Status {
        self.state.status.unwrap_or(Status::Created)
    }

    /// Runs until the container has exited and everything is cleaned up.
    pub fn run(mut self) {
        // SIGCHLD may have fired before the signalfd existed.
        self.reap();
        loop {
            if self.done_draining() {
                break;
            }
            let (mut fds, slots) = self.poll_set();
            let timeout = self.poll_timeout();
            // SAFETY: fds is a valid, exclusively borrowed array of pollfd for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("berth-shim: poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            for (pfd, slot) in fds.iter().zip(slots) {
                if pfd.revents != 0 {
                    self.handle(slot, pfd.revents);
                }
            }
            self.after_events();
            if self
                .state
                .release_memory_at
                .is_some_and(|at| Instant::now() >= at)
            {
                self.state.release_memory_at = None;
                super::memory::release_unused_code();
            }
        }
        self.finalize();
    }

    fn poll_set(&self) -> (Vec<libc::pollfd>, Vec<Slot>) {
        let mut fds = Vec::new();
        let mut slots = Vec::new();
        let mut add = |fd: RawFd, events: libc::c_short, slot: Slot| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            slots.push(slot);
        };
        add(self.sigfd.as_raw_fd(), libc::POLLIN, Slot::Sig);
        add(self.listener.as_raw_fd(), libc::POLLIN, Slot::Listener);
        if let Some(f) = &self.stdio.stdout {
            add(f.as_raw_fd(), libc::POLLIN, Slot::Stdout);
        }
        if let Some(f) = &self.stdio.stderr {
            add(f.as_raw_fd(), libc::POLLIN, Slot::Stderr);
        }
        if let Some(f) = &self.stdio.pty {
            let mut ev = 0;
            if !self.state.pty_eof {
                ev |= libc::POLLIN;
            }
            if !self.state.stdin_buf.is_empty() {
                ev |= libc::POLLOUT;
            }
            if ev != 0 {
                add(f.as_raw_fd(), ev, Slot::Pty);
            }
        }
        if let Some(f) = &self.stdio.stdin {
            if !self.state.stdin_buf.is_empty() {
                add(f.as_raw_fd(), libc::POLLOUT, Slot::StdinW);
            }
        }
        for (i, e) in self.state.execs.iter().enumerate() {
            for (fd, events, which) in e.poll_fds() {
                add(fd, events, Slot::Exec(i, which));
            }
        }
        let stdin_full = self.state.stdin_buf.len() >= STDIN_HIGH_WATER;
        for (i, c) in self.state.conns.iter().enumerate() {
            let mut ev = 0;
            let wants_input = match c.role {
                Role::Request | Role::Wait | Role::ExecWait { .. } => true,
                // An exec's stdin is small and interactive; its buffer is not bounded here.
                Role::ExecStream { .. } => true,
                Role::Attach { .. } => !stdin_full,
                Role::Closing => false,
            };
            if wants_input && !c.read_eof {
                ev |= libc::POLLIN;
            }
            if !c.out.is_empty() {
                ev |= libc::POLLOUT;
            }
            add(c.stream.as_raw_fd(), ev, Slot::Conn(i));
        }
        (fds, slots)
    }

    fn poll_timeout(&self) -> libc::c_int {
        let deadline = match self.status() {
            Status::Created => self.state.created_deadline,
            Status::Exited => self.state.drain_deadline,
            Status::Running => None,
        };
        let deadline = [deadline, self.state.release_memory_at, self.exec_deadline()]
            .into_iter()
            .flatten()
            .min();
        match deadline {
            Some(d) => {
                d.saturating_duration_since(Instant::now())
                    .as_millis()
                    .min(60_000) as libc::c_int
                    + 1
            }
            None => -1,
        }
    }

    fn handle(&mut self, slot: Slot, revents: libc::c_short) {
        match slot {
            Slot::Sig => {
                while let Ok(Some(info)) = self.sigfd.read_signal() {
                    if info.ssi_signo != libc::SIGCHLD as u32 {
                        eprintln!("berth-shim: ignoring signal {}", info.ssi_signo);
                    }
                }
                self.reap();
            }
            Slot::Listener => self.accept(),
            Slot::Stdout => self.read_output(Slot::Stdout),
            Slot::Stderr => self.read_output(Slot::Stderr),
            Slot::Pty => {
                if revents & libc::POLLOUT != 0 {
                    self.flush_stdin();
                }
                if revents & !libc::POLLOUT != 0 && !self.state.pty_eof {
                    self.read_output(Slot::Pty);
                }
            }
            Slot::StdinW => self.flush_stdin(),
            Slot::Conn(i) => self.handle_conn(i, revents),
            Slot::Exec(i, which) => self.exec_fd(i, which, revents),
        }
    }

    fn after_events(&mut self) {
        self.exec_after_events();
        for c in &mut self.state.conns {
            c.flush();
        }
        let stdin_once = self.cfg.stdin_once;
        let mut close_stdin = false;
        self.state.conns.retain(|c| {
            if c.dead && stdin_once && matches!(c.role, Role::Attach { stdin: true, .. }) {
                close_stdin = true;
            }
            !c.dead
        });
        if close_stdin {
            self.close_stdin();
        }
        if self.status() == Status::Created && !self.state.killed_for_timeout {
            if let Some(d) = self.state.created_deadline {
                if Instant::now() >= d {
                    eprintln!("berth-shim: not started within {CREATED_TIMEOUT:?}; killing");
                    self.state.killed_for_timeout = true;
                    self.signal(libc::SIGKILL);
                }
            }
        }
    }

    fn done_draining(&self) -> bool {
        if self.state.exited.is_none() {
            return false;
        }
        let outputs_open = self.stdio.stdout.is_some()
            || self.stdio.stderr.is_some()
            || (self.stdio.pty.is_some() && !self.state.pty_eof);
        !outputs_open
            || self
                .state
                .drain_deadline
                .is_some_and(|d| Instant::now() >= d)
    }

    pub(super) fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(status) => {
                    let pid = status.pid().map(|p| p.as_raw()).unwrap_or(0);
                    let code = exit_code(status);
                    if let (false, Some(code)) = (pid == self.pid, code) {
                        self.exec_reaped(pid, code);
                        continue;
                    }
                    if let Some(code) = code {
                        self.state.exited = Some((code, now_rfc3339()));
                        self.state.status = Some(Status::Exited);
                        self.state.drain_deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                    }
                }
                Err(nix::Error::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = stream.set_nonblocking(true) {
                        eprintln!("berth-shim: accept: {e}");
                        continue;
                    }
                    self.state.conns.push(Conn::new(stream));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn read_output(&mut self, slot: Slot) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let file = match slot {
                Slot::Stdout => self.stdio.stdout.as_mut(),
                Slot::Stderr => self.stdio.stderr.as_mut(),
                _ => self.stdio.pty.as_mut(),
            };
            let Some(file) = file else { return };
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let stream = if matches!(slot, Slot::Stderr) { 2 } else { 1 };
                    self.dispatch(stream, &buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // EIO is how a pty master reports that every slave fd is closed.
                Err(_) => break,
            }
        }
        match slot {
            Slot::Stdout => self.stdio.stdout = None,
            Slot::Stderr => self.stdio.stderr = None,
            // Keep the master while the container runs: closing it would hang up its terminal.
            _ if self.state.exited.is_some() => self.stdio.pty = None,
            _ => self.state.pty_eof = true,
        }
    }

    /// Sends output to the log and to every attacher that asked for this stream.
    fn dispatch(&mut self, stream: u8, data: &[u8]) {
        let name = if stream == 2 { "stderr" } else { "stdout" };
        if let Err(e) = self.log.write(name, data) {
            eprintln!("berth-shim: log write: {e}");
        }
        let tty = self.cfg.tty;
        for c in &mut self.state.conns {
            if let Role::Attach { stdout, stderr, .. } = c.role {
                let wanted = if stream == 2 { stderr } else { stdout };
                if !wanted {
                    continue;
                }
                if tty {
                    c.out.extend_from_slice(data);
                } else {
                    frame(stream, data, &mut c.out);
                }
                if c.out.len() > MAX_PENDING {
                    eprintln!("berth-shim: dropping slow attacher");
                    c.dead = true;
                }
            }
        }
    }

    fn stdin_writer(&mut self) -> Option<&mut File> {
        if self.stdio.pty.is_some() {
            self.stdio.pty.as_mut()
        } else {
            self.stdio.stdin.as_mut()
        }
    }

    fn flush_stdin(&mut self) {
        while !self.state.stdin_buf.is_empty() {
            let buf = std::mem::take(&mut self.state.stdin_buf);
            let Some(w) = self.stdin_writer() else { return };
            match w.write(&buf) {
                Ok(n) => self.state.stdin_buf = buf[n..].to_vec(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.state.stdin_buf = buf,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.state.stdin_buf = buf;
                    return;
                }
                Err(_) => {
                    // The reader is gone; nothing will ever take these bytes.
                    self.stdio.stdin = None;
                    self.state.stdin_closed = true;
                    return;
                }
            }
        }
        if self.state.stdin_close_pending {
            self.state.stdin_close_pending = false;
            self.stdio.stdin = None;
        }
    }

    fn close_stdin(&mut self) {
        if self.state.stdin_closed {
            return;
        }
        self.state.stdin_closed = true;
        if self.stdio.pty.is_some() {
            self.state.stdin_buf.push(EOT);
        } else {
            self.state.stdin_close_pending = true;
        }
        self.flush_stdin();
    }

    fn handle_conn(&mut self, i: usize, revents: libc::c_short) {
        if revents & libc::POLLOUT != 0 {
            self.state.conns[i].flush();
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) == 0 {
            return;
        }
        if self.state.conns[i].read_eof {
            // Already saw EOF; a hang-up now means the peer is fully gone.
            self.state.conns[i].dead = true;
            return;
        }
        match self.state.conns[i].read() {
            Input::Request(Ok(req)) => self.handle_request(i, req),
            Input::Request(Err(e)) => {
                let c = &mut self.state.conns[i];
                c.reply(&OkReply::err(format!("bad request: {e}")));
                c.role = Role::Closing;
            }
            Input::Data(data) if matches!(self.state.conns[i].role, Role::ExecStream { .. }) => {
                self.exec_stdin_from(i, data)
            }
            Input::Data(data) => self.stdin_from(i, data),
            Input::None => {}
        }
        let c = &self.state.conns[i];
        if c.read_eof {
            match c.role {
                Role::Attach { stdin: true, .. } if self.cfg.stdin_once => self.close_stdin(),
                Role::Wait | Role::ExecWait { .. } => self.state.conns[i].dead = true,
                Role::ExecStream { .. } => self.exec_input_ended(i),
                _ => {}
            }
        }
    }

    fn stdin_from(&mut self, i: usize, data: Vec<u8>) {
        let Role::Attach { stdin: true, .. } = self.state.conns[i].role else {
            return;
        };
        if !self.cfg.open_stdin || self.state.stdin_closed {
            return;
        }
        self.state.stdin_buf.extend_from_slice(&data);
        self.flush_stdin();
    }

    fn handle_request(&mut self, i: usize, req: Request) {
        let reply = match req {
            Request::Start => self.start(),
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                let c = &mut self.state.conns[i];
                c.role = Role::Attach {
                    stdin,
                    stdout,
                    stderr,
                };
                c.reply(&OkReply::ok());
                let early = c.take_leftover();
                if !early.is_empty() {
                    self.stdin_from(i, early);
                }
                return;
            }
            Request::Kill { signal } => {
                if self.state.exited.is_some() {
                    OkReply::err(format!("container {} is not running", self.cfg.id))
                } else {
                    self.signal(signal)
                }
            }
            Request::Resize { width, height } => self.resize(width, height),
            Request::Pause => self.pause(),
            Request::Resume => self.resume(),
            Request::Update { resources } => self.update(&resources),
            Request::Wait => {
                self.state.conns[i].role = Role::Wait;
                return;
            }
            req @ (Request::ExecStart { .. }
            | Request::ExecWait { .. }
            | Request::ExecResize { .. }) => {
                self.exec_request(i, req);
                return;
            }
            Request::State => {
                let paused = self.frozen();
                let c = &mut self.state.conns[i];
                c.reply(&StateReply {
                    status: self.state.status.unwrap_or(Status::Created),
                    pid: self.pid,
                    paused,
                });
                c.role = Role::Closing;
                return;
            }
        };
        let c = &mut self.state.conns[i];
        c.reply(&reply);
        c.role = Role::Closing;
    }

    fn start(&mut self) -> OkReply {
        match self.status() {
            Status::Running => return OkReply::err("container already started"),
            Status::Exited => return OkReply::err(format!("container {} has exited", self.cfg.id)),
            Status::Created => {}
        }
        match self.container.start() {
            Ok(()) => {
                self.state.status = Some(Status::Running);
                self.state.started_at = Some(now_rfc3339());
                self.state.release_memory_at = Some(Instant::now() + RELEASE_MEMORY_AFTER);
                OkReply::ok()
            }
            Err(e) => {
                // The init is still parked waiting for the go-ahead; end it so the normal
                // exit path cleans up.
                self.signal(libc::SIGKILL);
                OkReply::err(format!("failed to start container: {e}"))
            }
        }
    }

    fn signal(&mut self, signal: i32) -> OkReply {
        // SAFETY: kill(2) takes plain integers. The pid is our own unreaped child (we are its
        // subreaper and only reap it in `reap`, after which `exited` is set), so it cannot
        // have been reused.
        let rc = unsafe { libc::kill(self.pid, signal) };
        if rc == 0 {
            OkReply::ok()
        } else {
            OkReply::err(format!("kill: {}", io::Error::last_os_error()))
        }
    }

    fn resize(&mut self, width: u16, height: u16) -> OkReply {
        let Some(pty) = &self.stdio.pty else {
            return OkReply::ok();
        };
        let ws = libc::winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from the valid pointer; the fd is our pty master.
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

    /// Records the exit, tells waiters, then cleans up. Waiters' connections stay open until
    /// the cleanup is done, so their EOF tells the daemon the rootfs and cgroup are gone.
    fn finalize(mut self) {
        let (exit_code, finished_at) = self.state.exited.clone().unwrap_or((255, now_rfc3339()));
        let oom = self.cgroups_path.as_deref().is_some_and(oom_killed);
        let status = ExitStatus {
            exit_code,
            oom_killed: oom,
            started_at: self
                .state
                .started_at
                .clone()
                .unwrap_or_else(|| ZERO_TIME.to_string()),
            finished_at,
        };
        match serde_json::to_vec(&status) {
            Ok(data) => {
                if let Err(e) = write_replace(&self.state_dir.join(files::EXIT), &data) {
                    eprintln!("berth-shim: write exit.json: {e}");
                }
            }
            Err(e) => eprintln!("berth-shim: serialize exit: {e}"),
        }
        self.stdio = Stdio::default();
        self.exec_finalize();
        self.read_late_requests();
        let mut waiters = Vec::new();
        for mut c in std::mem::take(&mut self.state.conns) {
            match c.role {
                Role::Wait => {
                    c.reply(&status);
                    c.flush_blocking();
                    waiters.push(c);
                }
                // A request not read yet may be a Wait: holding the connection until the
                // cleanup is done makes its fallback to exit.json safe.
                Role::Request => waiters.push(c),
                _ => c.finish(),
            }
        }
        match self.cgroups_path.as_deref() {
            // The init was reaped: the container is stopped, and only its cgroups and state
            // are left (see `teardown`).
            Some(cgroups_path) => {
                let state = self.cfg.runtime_root.join(&self.cfg.id);
                let removed = teardown::remove_cgroups(cgroups_path).and(teardown::remove_runtime_state(&state));
                if let Err(e) = removed {
                    eprintln!("berth-shim: {e}");
                }
            }
            None => {
                if let Err(e) = self.container.delete(true) {
                    eprintln!("berth-shim: delete container: {e}");
                }
            }
        }
        rootfs::unmount_n(&self.rootfs, self.cfg.rootfs_mounts.len());
        // Clients that connected during the cleanup see the connection close when the shim
        // exits, and later ones find no socket: both fall back to exit.json, by then final.
        let _ = std::fs::remove_file(self.state_dir.join(files::SOCKET));
        for c in waiters {
            c.finish();
        }
    }

    /// Takes the connections that arrived while the container was exiting and reads the
    /// requests already sent on them. The daemon's `Wait` for a short-lived container often
    /// lands here; answering it now, rather than at the connection's close after the cgroup
    /// and rootfs cleanup, keeps that cleanup off `run`'s path. Only `Wait` and `State` are
    /// answered; anything else is refused, the container being gone.
    fn read_late_requests(&mut self) {
        self.accept();
        for i in 0..self.state.conns.len() {
            let c = &mut self.state.conns[i];
            if c.role != Role::Request {
                continue;
            }
            match c.read() {
                Input::Request(Ok(Request::Wait)) => c.role = Role::Wait,
                Input::Request(Ok(req @ Request::State)) => self.handle_request(i, req),
                Input::Request(Ok(_)) => {
                    c.reply(&OkReply::err(format!(
                        "container {} has exited",
                        self.cfg.id
                    )));
                    c.role = Role::Closing;
                }
                Input::Request(Err(e)) => {
                    c.reply(&OkReply::err(format!("bad request: {e}")));
                    c.role = Role::Closing;
                }
                // Not sent yet: held until the cleanup is done, as before.
                Input::Data(_) | Input::None => {}
            }
        }
    }
}
