//! Wire types shared by the daemon and `berth-shim`: the config file the daemon writes, the
//! launcher's one-line report, and the JSON-line requests and replies on `shim.sock`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything the shim needs to run one container; the daemon writes it to `<state_dir>/shim.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimConfig {
    /// Container id (64 hex); also the libcontainer id.
    pub id: String,
    /// Directory holding `config.json`; `spec.root.path` is an absolute path the shim mounts.
    pub bundle: PathBuf,
    /// Mounted by the shim, in order, onto `spec.root.path` before the container is created.
    pub rootfs_mounts: Vec<Mount>,
    /// libcontainer's state root, e.g. `/run/berth/runtime`.
    pub runtime_root: PathBuf,
    /// Compiled seccomp programs shared by all shims (see `shim::seccomp_bpf`); none: each
    /// shim compiles its container's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_cache: Option<PathBuf>,
    /// json-file log to append to.
    pub log_path: PathBuf,
    /// Rotate when the file would exceed this many bytes; 0 = never.
    pub log_max_size: u64,
    /// Keep this many files in all (`log`, `log.1`, ...); at least 1.
    pub log_max_files: u32,
    /// The `none` log driver: output reaches attachers only and no log file is written.
    #[serde(default)]
    pub log_disabled: bool,
    /// json-file `attrs` added to every entry (from the labels, env and tag log options).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub log_attrs: std::collections::BTreeMap<String, String>,
    /// Give the container a pty instead of pipes.
    pub tty: bool,
    /// Container stdin is something attachers can write to; otherwise `/dev/null`.
    pub open_stdin: bool,
    /// Close container stdin when the first attacher that wrote stdin disconnects.
    pub stdin_once: bool,
    /// A log driver other than json-file (and `none`, which is `log_disabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<LogDriver>,
}

/// Starts the gzip header comment of a local log's rotated file; the inode the file had
/// before it was compressed follows, so a reader following the log by inode finds where its
/// file went.
pub const LOG_GZ_INODE_COMMENT: &str = "berth-inode=";

/// A log driver the shim runs besides json-file (`log_path`, `log_max_size` and
/// `log_max_files` keep their meaning for `local`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "kebab-case")]
pub enum LogDriver {
    /// dockerd's `local`: rotated files, the rotated ones gzip-compressed when `compress`.
    Local { compress: bool },
    /// dockerd's `syslog`: each line sent as one message.
    Syslog(SyslogTarget),
}

/// Where and how the syslog driver sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyslogTarget {
    /// `unix`, `unixgram`, `udp`, `tcp`; empty for the local syslog daemon (`/dev/log`, ...).
    pub network: String,
    /// A socket path or `host:port`.
    pub address: String,
    /// The facility, already shifted (`daemon` = 3 << 3).
    pub facility: u8,
    /// `syslog-format`: empty (dockerd's default, the local "unix" form), `rfc3164`,
    /// `rfc5424` or `rfc5424micro`.
    pub format: String,
    /// The rendered `tag` template (dockerd's default: the short container ID).
    pub tag: String,
}

/// One filesystem mount, described as data (the snapshotter never mounts for us).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `"overlay"` or `"bind"`.
    pub kind: String,
    /// Source path (`"overlay"` for overlayfs).
    pub source: String,
    /// e.g. `"lowerdir=a:b"`, `"upperdir=.."`, `"workdir=.."`, or `"ro"`, `"rbind"`.
    pub options: Vec<String>,
}

/// The one line the launcher prints on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StartReport {
    /// The container exists (not started yet) and `shim.sock` is listening.
    Created {
        /// Container init pid (host pid namespace).
        pid: i32,
        /// Pid of the long-lived shim process.
        shim_pid: i32,
    },
    /// Nothing is left behind.
    Failed {
        /// Lets the daemon pick Docker's status code (404-ish / 403-ish / 500).
        kind: StartErrorKind,
        /// Docker/runc-style message.
        message: String,
    },
}

/// Why creating the container failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartErrorKind {
    /// The command was not found in the rootfs.
    NotFound,
    /// The command is a directory or not executable.
    PermissionDenied,
    /// Anything else.
    Other,
}

/// One request per connection to `shim.sock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Start the created container.
    Start,
    /// Turn the connection into a stdio stream.
    Attach {
        /// Forward client bytes to container stdin (only if `open_stdin`).
        stdin: bool,
        /// Send stdout.
        stdout: bool,
        /// Send stderr.
        stderr: bool,
    },
    /// Signal the container init.
    Kill {
        /// Signal number.
        signal: i32,
    },
    /// Set the pty window size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// Reply with [`ExitStatus`] once the container has exited.
    Wait,
    /// Reply with [`StateReply`].
    State,
    /// Run a process in the running container (`docker exec`), described by the OCI process
    /// in `<state_dir>/execs/<exec_id>.json`. Replied with [`ExecReply`]; on success the
    /// connection then carries the process's stdio like `Attach` (framed unless `tty`) and
    /// closes once the process has exited and its output is drained.
    ExecStart {
        /// The daemon's exec id (64 hex); names the process file.
        exec_id: String,
        /// Give the process a pty.
        tty: bool,
        /// Connect the process's stdin to this connection (else `/dev/null`).
        stdin: bool,
        /// Send stdout on this connection.
        stdout: bool,
        /// Send stderr on this connection.
        stderr: bool,
    },
    /// Reply with [`ExecExit`] once the exec process has exited (at once if it has).
    ExecWait {
        /// The exec id given to `ExecStart`.
        exec_id: String,
    },
    /// Set an exec's pty window size; answered by [`OkReply`].
    ExecResize {
        /// The exec id given to `ExecStart`.
        exec_id: String,
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// Freeze every process of the container (`docker pause`); answered by [`OkReply`].
    Pause,
    /// Thaw a paused container; answered by [`OkReply`].
    Resume,
    /// Apply new cgroup limits to the running container (`docker update`); answered by
    /// [`OkReply`]. Limits the request leaves out keep their current values.
    Update {
        /// OCI `linux.resources` holding only the values to change.
        resources: oci_spec::runtime::LinuxResources,
    },
}

/// Reply to `ExecStart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecReply {
    /// Whether the process runs.
    pub ok: bool,
    /// Its pid (host pid namespace).
    #[serde(default)]
    pub pid: i32,
    /// Why it does not run: lets the daemon pick Docker's exit code (127/126).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<StartErrorKind>,
    /// Docker/runc-style message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reply to `ExecWait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecExit {
    /// Exit code, or 128+signal.
    pub exit_code: i32,
}

/// Reply to `Start`, `Attach`, `Kill`, `Resize` (and to malformed requests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OkReply {
    /// Whether the operation succeeded.
    pub ok: bool,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl OkReply {
    /// Success.
    pub fn ok() -> Self {
        OkReply {
            ok: true,
            error: None,
        }
    }
    /// Failure with a message.
    pub fn err(msg: impl Into<String>) -> Self {
        OkReply {
            ok: false,
            error: Some(msg.into()),
        }
    }
}

/// How the container ended; also the content of `<state_dir>/exit.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, or 128+signal.
    pub exit_code: i32,
    /// The memory cgroup recorded an OOM kill.
    pub oom_killed: bool,
    /// RFC 3339, nanoseconds, UTC; `0001-01-01T00:00:00Z` if never started.
    pub started_at: String,
    /// RFC 3339, nanoseconds, UTC.
    pub finished_at: String,
}

/// Container life-cycle state as the shim sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, waiting for `start`.
    Created,
    /// Started and not yet exited.
    Running,
    /// Exited (the shim is finishing up).
    Exited,
}

/// Reply to `State`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReply {
    /// Life-cycle state.
    pub status: Status,
    /// Container init pid.
    pub pid: i32,
    /// The container's cgroup is frozen (read from the kernel, not remembered).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// Names of the files in the state dir; one place so both sides agree.
pub mod files {
    /// Written by the daemon.
    pub const CONFIG: &str = "shim.json";
    /// The shim's pid.
    pub const PID: &str = "shim.pid";
    /// The shim's socket.
    pub const SOCKET: &str = "shim.sock";
    /// Written when the container has exited.
    pub const EXIT: &str = "exit.json";
    /// The shim's own diagnostics (its stderr).
    pub const LOG: &str = "shim.log";
    /// Directory of exec process files (`<exec_id>.json`, an OCI `process`).
    pub const EXECS: &str = "execs";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        let r = StartReport::Created {
            pid: 5,
            shim_pid: 4,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status":"created","pid":5,"shim_pid":4}"#
        );
        let f = StartReport::Failed {
            kind: StartErrorKind::NotFound,
            message: "x".into(),
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"status":"failed","kind":"not_found","message":"x"}"#
        );
        let q: Request =
            serde_json::from_str(r#"{"op":"attach","stdin":true,"stdout":true,"stderr":false}"#)
                .unwrap();
        assert_eq!(
            q,
            Request::Attach {
                stdin: true,
                stdout: true,
                stderr: false
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::Start).unwrap(),
            r#"{"op":"start"}"#
        );
        assert_eq!(
            serde_json::to_string(&OkReply::ok()).unwrap(),
            r#"{"ok":true}"#
        );
        let s = StateReply {
            status: Status::Running,
            pid: 9,
            paused: false,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"status":"running","pid":9}"#
        );
    }
}
