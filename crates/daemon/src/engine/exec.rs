//! `docker exec`: exec instances are configured here and run by the container's shim, which
//! joins them to the container's namespaces and cgroup (see `berth_runtime`'s `ExecStart`).
//! Instances live in memory only, as in Docker: they do not survive a daemon restart.

use super::attach::ClientConn;
use super::{lock, shim, user, Engine, Error, Result};
use crate::state::Status;
use berth_api::models::{ExecConfig, ExecInspectResponse, ProcessConfig};
use berth_runtime::protocol::{files, ExecExit, ExecReply, Request};
use oci_spec::runtime::{Capability, LinuxCapabilities, Process, Spec};
use rand::RngCore;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// How long a resize waits for the exec to start, as Docker does.
const RESIZE_WAIT: Duration = Duration::from_secs(10);

/// Every exec instance of this daemon.
#[derive(Default)]
pub struct Execs {
    map: Mutex<HashMap<String, Arc<ExecInstance>>>,
}

/// One exec instance.
pub struct ExecInstance {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    /// The sequence that detaches a client from the exec's terminal (empty: Docker's default).
    detach_keys: Vec<u8>,
    state: Mutex<ExecState>,
    /// Flips to true once the process runs (or failed to start).
    started: tokio::sync::watch::Sender<bool>,
    /// Flips to true once the exit code is recorded.
    finished: tokio::sync::watch::Sender<bool>,
}

#[derive(Default, Clone)]
struct ExecState {
    /// `start` was called (an instance runs at most once).
    claimed: bool,
    running: bool,
    pid: i64,
    exit_code: Option<i64>,
}

impl ExecInstance {
    fn tty(&self) -> bool {
        self.config.tty == Some(true)
    }

    pub fn exit_code(&self) -> Option<i64> {
        lock(&self.state).exit_code
    }

    /// Ends the process if it still runs (a health probe past its timeout).
    pub fn kill(&self) {
        let s = lock(&self.state);
        if s.running && s.pid > 0 {
            // SAFETY: kill(2) with plain integers; the pid is the shim's unreaped child while
            // `running` holds, so it cannot name another process.
            unsafe { libc::kill(s.pid as i32, libc::SIGKILL) };
        }
    }

    fn record_exit(&self, code: i64) {
        {
            let mut s = lock(&self.state);
            s.running = false;
            s.exit_code = Some(code);
        }
        self.started.send_replace(true);
        self.finished.send_replace(true);
    }
}

/// What the client gets when the exec cannot start: Docker's message and its exit code,
/// 126 whatever the cause as dockerd 20.10 sets it (a missing command too; a `run` of one
/// exits 127, but not an exec).
fn start_failure(message: &str) -> (i64, String) {
    (126, format!("OCI runtime exec failed: exec failed: unable to start container process: {message}: unknown"))
}

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, name: &str, config: ExecConfig) -> Result<String> {
        let c = self.container(name)?;
        let rec = c.snapshot();
        if rec.state.status != Status::Running {
            return Err(Error::Conflict(format!("Container {} is not running", rec.id)));
        }
        if rec.state.paused {
            return Err(Error::Conflict(format!("Container {name} is paused, unpause the container before exec")));
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::InvalidParameter("No exec command specified".into()));
        }
        let keys = config.detach_keys.as_deref().unwrap_or_default();
        // Docker answers this one with a 500.
        let detach_keys = super::attach::parse_detach_keys(keys)
            .map_err(|_| Error::Internal(format!("Invalid escape keys ({keys}) provided")))?;
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        let instance = Arc::new(ExecInstance {
            id: id.clone(),
            container_id: rec.id.clone(),
            config,
            detach_keys,
            state: Mutex::new(ExecState::default()),
            started: tokio::sync::watch::channel(false).0,
            finished: tokio::sync::watch::channel(false).0,
        });
        let mut map = lock(&self.execs.map);
        // Instances of removed containers are of no use to anyone.
        map.retain(|_, e| self.container(&e.container_id).is_ok());
        let command = instance.config.cmd.iter().flatten().cloned().collect::<Vec<_>>().join(" ");
        map.insert(id.clone(), instance);
        self.container_event(&rec, &format!("exec_create: {command}"), &[("execID", id.clone())]);
        Ok(id)
    }

    fn exec_instance(&self, id: &str) -> Result<Arc<ExecInstance>> {
        lock(&self.execs.map)
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {id}")))
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<ExecInspectResponse> {
        let e = self.exec_instance(id)?;
        let s = lock(&e.state).clone();
        let cmd = e.config.cmd.clone().unwrap_or_default();
        let user = e.config.user.clone().filter(|u| !u.is_empty());
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            // Docker sends the parsed bytes, which JSON carries as base64.
            detach_keys: Some(base64(&e.detach_keys)),
            id: Some(e.id.clone()),
            running: Some(s.running),
            exit_code: s.exit_code,
            process_config: Some(ProcessConfig {
                privileged: Some(e.config.privileged == Some(true)),
                user,
                tty: Some(e.tty()),
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: Some(e.config.attach_stdin == Some(true)),
            open_stderr: Some(e.config.attach_stderr == Some(true)),
            open_stdout: Some(e.config.attach_stdout == Some(true)),
            container_id: Some(e.container_id.clone()),
            pid: Some(s.pid),
        })
    }

    /// Checks that exec `id` can start, before the connection is hijacked; claims it.
    pub fn exec_claim(&self, id: &str) -> Result<Arc<ExecInstance>> {
        let e = self.exec_instance(id)?;
        let c = self.container(&e.container_id)?;
        if c.snapshot().state.status != Status::Running {
            return Err(Error::Conflict(format!("Container {} is not running", e.container_id)));
        }
        if c.snapshot().state.paused {
            return Err(Error::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                e.container_id
            )));
        }
        let mut s = lock(&e.state);
        if s.exit_code.is_some() {
            return Err(Error::Conflict(format!("Error: Exec command {id} has already run")));
        }
        if s.claimed {
            return Err(Error::Conflict(format!("Error: Exec command {id} is already running")));
        }
        s.claimed = true;
        drop(s);
        Ok(e)
    }

    /// Whether the instance's output is raw (it has a terminal).
    pub fn exec_tty(e: &ExecInstance) -> bool {
        e.tty()
    }

    /// Starts a claimed instance. With `conn` (attached) the connection carries its stdio
    /// and is closed once the process has exited, its output is drained and its exit code
    /// recorded; without, it runs in the background. Errors are returned only when
    /// detached: an attached client reads them on its stream, as Docker sends them.
    pub async fn exec_start(&self, e: Arc<ExecInstance>, conn: Option<ClientConn>) -> Result<()> {
        let dir = self.paths.run_dir(&e.container_id);
        let attached = conn.is_some();
        let req = Request::ExecStart {
            exec_id: e.id.clone(),
            tty: e.tty(),
            stdin: attached && e.config.attach_stdin == Some(true),
            stdout: attached && e.config.attach_stdout == Some(true),
            stderr: attached && e.config.attach_stderr == Some(true),
        };
        let started = match self.write_exec_process(&e) {
            Ok(()) => shim::request(&dir, &req).await,
            Err(err) => Err(err),
        };
        let failure = match &started {
            Ok((_, line)) => match serde_json::from_str::<ExecReply>(line) {
                Ok(r) if r.ok => {
                    let mut s = lock(&e.state);
                    s.running = true;
                    s.pid = r.pid as i64;
                    None
                }
                Ok(r) => Some(start_failure(r.error.as_deref().unwrap_or("unknown error"))),
                Err(err) => Some((126, format!("bad reply from shim: {err}"))),
            },
            Err(Error::StartFailed { message, not_found }) => {
                Some((if *not_found { 127 } else { 126 }, message.clone()))
            }
            Err(err) => Some((126, err.to_string())),
        };
        let _ = std::fs::remove_file(dir.join(files::EXECS).join(format!("{}.json", e.id)));
        if let Some((code, message)) = failure {
            e.record_exit(code);
            let Some(mut conn) = conn else {
                return Err(Error::StartFailed { message, not_found: code == 127 });
            };
            let mut out = Vec::new();
            let text = format!("{message}\r\n");
            if e.tty() {
                out.extend_from_slice(text.as_bytes());
            } else {
                berth_api::frame::encode(berth_api::frame::Stream::Stdout, text.as_bytes(), &mut out);
            }
            let _ = conn.write_all(&out).await;
            let _ = conn.shutdown().await;
            return Ok(());
        }
        e.started.send_replace(true);
        let Ok((stream, _)) = started else { return Ok(()) };
        let rec = self.container(&e.container_id)?.snapshot();
        let command = e.config.cmd.iter().flatten().cloned().collect::<Vec<_>>().join(" ");
        self.container_event(&rec, &format!("exec_start: {command}"), &[("execID", e.id.clone())]);
        let (events, detach_rec, exec_id) = (self.events.clone(), rec.clone(), e.id.clone());
        self.watch_exec(e.clone(), &dir, rec);
        let Some(mut conn) = conn else {
            // Detached: nobody reads the stream; closing it leaves the process running.
            return Ok(());
        };
        tokio::spawn(async move {
            let early = stream.buffer().to_vec();
            let (shim_out, shim_in) = stream.into_inner().into_split();
            if !early.is_empty() {
                let _ = conn.write_all(&early).await;
            }
            // Docker reports a detach with the keys as an event.
            let on_detach = move || events.container(&detach_rec, "exec_detach", &[("execID", exec_id)]);
            stream_exec(e, conn, shim_out, shim_in, on_detach).await;
        });
        Ok(())
    }

    /// Records the exec's exit code when the shim reports it.
    fn watch_exec(&self, e: Arc<ExecInstance>, dir: &std::path::Path, rec: crate::state::Record) {
        let dir = dir.to_path_buf();
        let events = self.events.clone();
        tokio::spawn(async move {
            let req = Request::ExecWait { exec_id: e.id.clone() };
            let code = match shim::request(&dir, &req).await {
                Ok((_, line)) => match serde_json::from_str::<ExecExit>(&line) {
                    Ok(x) => x.exit_code as i64,
                    Err(err) => {
                        tracing::warn!("exec {}: {err}: {line}", e.id);
                        137
                    }
                },
                // The shim is gone with the container, and the exec with them.
                Err(_) => 137,
            };
            e.record_exit(code);
            events.container(&rec, "exec_die", &[("execID", e.id.clone()), ("exitCode", code.to_string())]);
        });
    }

    /// `POST /exec/{id}/resize`: waits (a while) for the process to start, as Docker does.
    pub async fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let e = self.exec_instance(id)?;
        let mut started = e.started.subscribe();
        if tokio::time::timeout(RESIZE_WAIT, started.wait_for(|s| *s)).await.is_err() {
            return Err(Error::Internal("timeout waiting for exec session ready".into()));
        }
        if !lock(&e.state).running {
            return Ok(());
        }
        let dir = self.paths.run_dir(&e.container_id);
        shim::call(&dir, &Request::ExecResize { exec_id: e.id.clone(), width, height }).await
    }

    /// Writes the process the shim runs: the container's own process (capabilities,
    /// rlimits, no_new_privs, AppArmor) with the exec's command, env, user and cwd.
    fn write_exec_process(&self, e: &ExecInstance) -> Result<()> {
        let c = self.container(&e.container_id)?;
        let rec = c.snapshot();
        let dir = self.paths.run_dir(&rec.id);
        let spec = Spec::load(dir.join("bundle/config.json"))
            .map_err(|err| Error::Internal(format!("load container spec: {err}")))?;
        let mut process = spec.process().clone().ok_or_else(|| Error::Internal("container spec has no process".into()))?;
        process.set_args(e.config.cmd.clone());
        let base_env = process.env().clone().unwrap_or_default();
        let mut extra = e.config.env.clone().unwrap_or_default();
        if e.tty() && !base_env.iter().chain(&extra).any(|v| v.starts_with("TERM=")) {
            extra.insert(0, "TERM=xterm".into());
        }
        process.set_env(Some(merge_env(base_env, &extra)));
        if let Some(wd) = e.config.working_dir.as_deref().filter(|w| !w.is_empty()) {
            if !wd.starts_with('/') {
                return Err(Error::InvalidParameter(format!(
                    "the working directory '{wd}' is invalid, it needs to be an absolute path"
                )));
            }
            process.set_cwd(wd.into());
        }
        let user_spec = e.config.user.clone().filter(|u| !u.is_empty()).or(rec.config.user.clone()).unwrap_or_default();
        // The running container's own files: users added at run time count, as in Docker.
        let user = user::resolve(&user_spec, &[dir.join("rootfs")])
            .map_err(|message| Error::StartFailed { message, not_found: false })?;
        let mut proc_user = process.user().clone();
        proc_user.set_uid(user.uid);
        proc_user.set_gid(user.gid);
        proc_user.set_additional_gids((!user.additional_gids.is_empty()).then_some(user.additional_gids));
        process.set_user(proc_user);
        process.set_terminal(Some(e.tty()));
        process.set_console_size(None);
        if e.config.privileged == Some(true) {
            process.set_capabilities(Some(all_capabilities()));
            process.set_apparmor_profile(None);
        }
        write_process(&dir, &e.id, &process)
    }
}

/// Carries an attached exec's stdio between the client and the shim until the process has
/// exited, its output is drained and its exit code recorded (the client reads the code as
/// soon as its stream ends).
///
/// With a terminal, as in Docker, the client's stdin is watched for the detach keys, and
/// the end of it (detach keys, EOF, or the client gone) only ends the client's stream: the
/// process keeps its terminal and runs on, its output drained to nowhere. Without one, the
/// end of the client's stdin closes the process's stdin.
async fn stream_exec(
    e: Arc<ExecInstance>,
    conn: ClientConn,
    mut shim_out: OwnedReadHalf,
    shim_in: OwnedWriteHalf,
    on_detach: impl FnOnce(),
) {
    let (client_in, client_out) = tokio::io::split(conn);
    let mut client_out = Some(client_out);
    let mut on_detach = Some(on_detach);
    // Carries whether the client left with the detach keys.
    let (left_tx, mut left) = tokio::sync::oneshot::channel::<bool>();
    // Without stdin, the client's input is never read (as in Docker), and the process's
    // input is not ours to close.
    let stdin = match e.config.attach_stdin == Some(true) {
        true => tokio::spawn(forward_exec_stdin(e.clone(), client_in, shim_in, left_tx)),
        false => tokio::spawn(async move {
            let _hold = shim_in;
            std::future::pending::<()>().await
        }),
    };
    let mut buf = vec![0u8; 32 * 1024];
    let mut watch_left = true;
    loop {
        tokio::select! {
            read = shim_out.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(out) = client_out.as_mut() {
                        if out.write_all(&buf[..n]).await.is_err() {
                            client_out = None;
                        }
                    }
                }
                Err(err) => {
                    tracing::debug!("exec stream ended: {err}");
                    break;
                }
            },
            left_now = &mut left, if watch_left => {
                watch_left = false;
                if let Ok(with_keys) = left_now {
                    if let Some(mut out) = client_out.take() {
                        let _ = out.shutdown().await;
                    }
                    if let Some(report) = on_detach.take().filter(|_| with_keys) {
                        report();
                    }
                }
            }
        }
    }
    if let Some(mut out) = client_out {
        let _ = e.finished.subscribe().wait_for(|f| *f).await;
        let _ = out.shutdown().await;
    }
    stdin.abort();
}

/// Copies the client's input to the exec's stdin (see `stream_exec`); tells `left` when the
/// client's stream should end while the process runs on.
async fn forward_exec_stdin(
    e: Arc<ExecInstance>,
    mut client_in: impl tokio::io::AsyncRead + Unpin,
    mut shim_in: OwnedWriteHalf,
    left: tokio::sync::oneshot::Sender<bool>,
) {
    let tty = e.tty();
    let mut escape = tty.then(|| berth_api::detach::Scanner::new(&e.detach_keys));
    let mut buf = vec![0u8; 32 * 1024];
    let with_keys = loop {
        let n = client_in.read(&mut buf).await.unwrap_or(0);
        let scanned = match escape.as_mut() {
            Some(s) if n > 0 => s.feed(&buf[..n]),
            Some(s) => berth_api::detach::Scanned { forward: s.finish(), detach: false },
            None => berth_api::detach::Scanned { forward: buf[..n].to_vec(), detach: false },
        };
        if !scanned.forward.is_empty() && shim_in.write_all(&scanned.forward).await.is_err() {
            return;
        }
        if n == 0 || scanned.detach {
            break scanned.detach;
        }
    };
    if !tty {
        let _ = shim_in.shutdown().await;
        return;
    }
    // Closing our side would end the process's input: hold it until the process ends.
    let _ = left.send(with_keys);
    std::future::pending::<()>().await
}

/// Standard base64 with padding, for the few bytes of detach keys.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn write_process(run_dir: &std::path::Path, id: &str, process: &Process) -> Result<()> {
    let execs = run_dir.join(files::EXECS);
    std::fs::create_dir_all(&execs)?;
    let data = serde_json::to_vec(process).map_err(|err| Error::Internal(err.to_string()))?;
    std::fs::write(execs.join(format!("{id}.json")), data)?;
    Ok(())
}

/// Container env with the exec's `-e` values replacing same-named ones (Docker's order:
/// the container's first, new names appended). `NAME` alone, unset on the host side of
/// the client, removes the variable.
fn merge_env(base: Vec<String>, extra: &[String]) -> Vec<String> {
    let key = |v: &str| v.split('=').next().unwrap_or("").to_string();
    let mut env = base;
    for v in extra {
        let k = key(v);
        let pos = env.iter().position(|e| key(e) == k);
        match (pos, v.contains('=')) {
            (Some(p), true) => env[p] = v.clone(),
            (Some(p), false) => {
                env.remove(p);
            }
            (None, true) => env.push(v.clone()),
            (None, false) => {}
        }
    }
    env
}

/// Every capability berthd can give, for `exec --privileged` (as a privileged container's).
fn all_capabilities() -> LinuxCapabilities {
    let set: HashSet<Capability> = crate::spec_security::all_capabilities()
        .into_iter()
        .filter_map(|n| serde_json::from_value(serde_json::Value::String(n)).ok())
        .collect();
    let mut caps = LinuxCapabilities::default();
    // No inheritable set, as Docker since CVE-2022-24769: capabilities must not pass to
    // programs the process executes beyond what execve grants.
    caps.set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(None)
        .set_ambient(None);
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merges_like_docker() {
        let base = vec!["PATH=/bin".to_string(), "A=1".into(), "B=2".into()];
        let extra = vec!["A=9".to_string(), "C=3".into(), "B".into(), "NOPE".into()];
        assert_eq!(merge_env(base, &extra), vec!["PATH=/bin", "A=9", "C=3"]);
    }

    #[test]
    fn detach_keys_inspect_as_base64() {
        assert_eq!(base64(&[16, 17]), "EBE=");
        assert_eq!(base64(&[]), "");
        assert_eq!(base64(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn privileged_has_every_capability() {
        let caps = all_capabilities();
        let bounding = caps.bounding().clone().unwrap_or_default();
        assert!(bounding.contains(&Capability::SysAdmin));
        assert!(bounding.contains(&Capability::Chown));
    }

    #[test]
    fn start_failures_use_docker_codes() {
        let (code, msg) = start_failure("exec: \"x\": executable file not found in $PATH");
        assert_eq!(code, 126);
        assert!(msg.starts_with("OCI runtime exec failed: exec failed: unable to start container process: exec: \"x\""));
        assert_eq!(start_failure("p").0, 126);
    }
}
