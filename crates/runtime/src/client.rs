//! The daemon's side: write the config, launch the shim, and talk to its socket.
//! Everything here blocks; the daemon calls it from `spawn_blocking` or wraps the raw fd.

use std::os::fd::AsRawFd;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::fsutil::write_replace;
use crate::protocol::{files, ExitStatus, OkReply, Request, ShimConfig, StartReport, StateReply};

/// Errors talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Launching the shim binary failed.
    #[error("failed to run shim {path}: {source}")]
    Spawn {
        /// Shim binary.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The shim socket is missing or does not answer: the shim is gone.
    #[error("shim is not running ({path}): {source}")]
    Gone {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Reading or writing a file or the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The shim sent something we do not understand.
    #[error("bad reply from shim: {0}")]
    Protocol(String),
    /// The shim answered `{"ok":false,"error":..}`.
    #[error("{0}")]
    Shim(String),
}

/// Writes `<state_dir>/shim.json` atomically (runtime state: not flushed to disk).
pub fn write_config(state_dir: &Path, config: &ShimConfig) -> Result<(), Error> {
    let data = serde_json::to_vec_pretty(config).map_err(|e| Error::Protocol(e.to_string()))?;
    write_replace(&state_dir.join(files::CONFIG), &data)?;
    Ok(())
}

/// Runs `shim_binary <state_dir>`, reads its one-line report and reaps the launcher.
/// The long-lived shim has already detached (new session, reparented to init).
pub fn spawn(shim_binary: &Path, state_dir: &Path) -> Result<StartReport, Error> {
    let spawn_err = |source| Error::Spawn {
        path: shim_binary.to_path_buf(),
        source,
    };
    let mut child = Command::new(shim_binary)
        .arg(state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(spawn_err)?;
    let mut line = String::new();
    let read = match child.stdout.take() {
        Some(out) => BufReader::new(out).read_line(&mut line),
        None => Ok(0),
    };
    let status = child.wait().map_err(spawn_err)?;
    read?;
    if line.trim().is_empty() {
        return Err(Error::Protocol(format!(
            "shim exited ({status}) without a report"
        )));
    }
    serde_json::from_str(line.trim()).map_err(|e| Error::Protocol(format!("{e}: {line}")))
}

/// Calls `f` with a path to `<state_dir>/shim.sock` that fits in a socket address.
///
/// `sun_path` holds 108 bytes and a state dir under a long `--exec-root` can exceed it, so a
/// long path is reached through the directory's descriptor: `/proc/self/fd/N/shim.sock`.
pub fn with_socket_path<T>(state_dir: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    const SUN_PATH_MAX: usize = 100;
    let full = state_dir.join(files::SOCKET);
    if full.as_os_str().len() < SUN_PATH_MAX {
        return f(&full);
    }
    let dir = std::fs::File::open(state_dir)?;
    let short = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string()).join(files::SOCKET);
    f(&short)
}

/// Connects to `<state_dir>/shim.sock`, sends `req`, and returns the stream and the first
/// reply line (without its newline). For `Attach` the stream then carries stdio.
pub fn connect(state_dir: &Path, req: &Request) -> Result<(UnixStream, String), Error> {
    let path = state_dir.join(files::SOCKET);
    let gone = |source| Error::Gone {
        path: path.clone(),
        source,
    };
    let mut stream = with_socket_path(state_dir, |p| UnixStream::connect(p)).map_err(gone)?;
    let mut msg = serde_json::to_vec(req).map_err(|e| Error::Protocol(e.to_string()))?;
    msg.push(b'\n');
    stream.write_all(&msg).map_err(gone)?;
    // Read byte by byte so nothing after the line (attach output) is swallowed by a buffer.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte) {
            Ok(0) => {
                return Err(gone(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "shim closed the connection",
                )))
            }
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(gone(e)),
        }
    }
    let line = String::from_utf8(line).map_err(|e| Error::Protocol(e.to_string()))?;
    Ok((stream, line))
}

fn ok_request(state_dir: &Path, req: &Request) -> Result<UnixStream, Error> {
    let (stream, line) = connect(state_dir, req)?;
    let reply: OkReply =
        serde_json::from_str(&line).map_err(|e| Error::Protocol(format!("{e}: {line}")))?;
    if reply.ok {
        Ok(stream)
    } else {
        Err(Error::Shim(
            reply.error.unwrap_or_else(|| "unknown shim error".into()),
        ))
    }
}

/// Starts the created container.
pub fn start(state_dir: &Path) -> Result<(), Error> {
    ok_request(state_dir, &Request::Start).map(drop)
}

/// Sends `signal` to the container init.
pub fn kill(state_dir: &Path, signal: i32) -> Result<(), Error> {
    ok_request(state_dir, &Request::Kill { signal }).map(drop)
}

/// Sets the pty window size (a no-op without a tty).
pub fn resize(state_dir: &Path, width: u16, height: u16) -> Result<(), Error> {
    ok_request(state_dir, &Request::Resize { width, height }).map(drop)
}

/// Attaches; the returned stream carries output (multiplexed unless tty) and takes stdin.
pub fn attach(
    state_dir: &Path,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Result<UnixStream, Error> {
    ok_request(
        state_dir,
        &Request::Attach {
            stdin,
            stdout,
            stderr,
        },
    )
}

/// Blocks until the container has exited. If the shim is gone, falls back to `exit.json`.
pub fn wait(state_dir: &Path) -> Result<ExitStatus, Error> {
    match connect(state_dir, &Request::Wait) {
        Ok((mut stream, line)) => {
            // The shim closes the connection once it has unmounted the rootfs and removed the
            // cgroup, so returning after EOF means the container is fully gone.
            let _ = stream.read_to_end(&mut Vec::new());
            serde_json::from_str(&line).map_err(|e| Error::Protocol(format!("{e}: {line}")))
        }
        Err(err @ Error::Gone { .. }) => read_exit(state_dir).ok_or(err),
        Err(err) => Err(err),
    }
}

/// The shim's view of the container; `Error::Gone` if the shim does not answer.
pub fn state(state_dir: &Path) -> Result<StateReply, Error> {
    let (_, line) = connect(state_dir, &Request::State)?;
    serde_json::from_str(&line).map_err(|e| Error::Protocol(format!("{e}: {line}")))
}

/// Reads `<state_dir>/exit.json` if the shim has recorded an exit.
pub fn read_exit(state_dir: &Path) -> Option<ExitStatus> {
    let data = std::fs::read(state_dir.join(files::EXIT)).ok()?;
    serde_json::from_slice(&data).ok()
}
