//! Container output streams: demultiplexing docker's framed stdout/stderr (8-byte headers,
//! see `berth_api::frame`), copying raw TTY bytes, the attach session that ties our
//! stdin/stdout to a container (and ends on the detach keys), and signal proxying.

use std::io::Write;

use berth_api::detach;
use berth_api::frame::{self, Stream};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{self, Client, ClientError, Hijacked};

/// Splits a byte stream into frames; keeps partial frames until the rest arrives.
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: Vec<u8>,
}

impl Demuxer {
    /// Feeds `data` and returns every frame now complete.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<(Stream, Vec<u8>)>, String> {
        self.buf.extend_from_slice(data);
        let mut frames = Vec::new();
        let mut pos = 0;
        while self.buf.len() - pos >= frame::HEADER_LEN {
            let mut h = [0u8; frame::HEADER_LEN];
            h.copy_from_slice(&self.buf[pos..pos + frame::HEADER_LEN]);
            let (stream, len) = frame::parse_header(&h)
                .ok_or_else(|| format!("Unrecognized input header: {}", h[0]))?;
            if self.buf.len() - pos - frame::HEADER_LEN < len {
                break;
            }
            let start = pos + frame::HEADER_LEN;
            frames.push((stream, self.buf[start..start + len].to_vec()));
            pos = start + len;
        }
        self.buf.drain(..pos);
        Ok(frames)
    }
}

/// Writes container output to our stdout/stderr: raw when the container has a TTY,
/// demultiplexed otherwise.
#[derive(Debug)]
pub struct Output {
    tty: bool,
    demux: Demuxer,
}

impl Output {
    /// An output for a container with (`tty`) or without a terminal.
    pub fn new(tty: bool) -> Output {
        Output {
            tty,
            demux: Demuxer::default(),
        }
    }

    /// Writes one chunk read from the daemon.
    pub fn write(&mut self, data: &[u8]) -> Result<(), String> {
        if self.tty {
            return write_out(Stream::Stdout, data);
        }
        for (stream, payload) in self.demux.push(data)? {
            write_out(stream, &payload)?;
        }
        Ok(())
    }
}

fn write_out(stream: Stream, data: &[u8]) -> Result<(), String> {
    let res = match stream {
        // Docker's stdcopy sends stdin frames (never expected) to stdout too.
        Stream::Stdout | Stream::Stdin => {
            let mut out = std::io::stdout().lock();
            out.write_all(data).and_then(|_| out.flush())
        }
        Stream::Stderr => {
            let mut err = std::io::stderr().lock();
            err.write_all(data).and_then(|_| err.flush())
        }
    };
    res.map_err(|e| e.to_string())
}

/// Copies a streaming response body (logs, or attach answered without an upgrade) to our
/// stdout/stderr until it ends.
pub async fn copy_body(mut body: Incoming, tty: bool) -> Result<(), String> {
    let mut out = Output::new(tty);
    while let Some(chunk) = client::next_chunk(&mut body)
        .await
        .map_err(|e| e.to_string())?
    {
        out.write(&chunk)?;
    }
    Ok(())
}

/// Which of the container's streams to attach.
#[derive(Debug, Clone, Copy)]
pub struct AttachStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// The container has a TTY: output is raw, not framed.
    pub tty: bool,
}

/// How an attached session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container's (or exec's) output ended.
    Finished,
    /// The user typed the detach keys; the container runs on.
    Detached,
}

/// A running attach session.
pub struct Attached {
    output: JoinHandle<Result<(), String>>,
    /// Fires when the user typed the detach keys (only with a TTY and stdin).
    detached: Option<oneshot::Receiver<()>>,
}

impl Attached {
    /// Waits until the output has been fully copied, or the user detached.
    pub async fn finish(mut self) -> Result<Ended, String> {
        if let Some(mut detached) = self.detached.take() {
            tokio::select! {
                out = &mut self.output => return flatten(out),
                d = &mut detached => {
                    // An error means input ended without detaching: the output decides.
                    if d.is_ok() {
                        return Ok(Ended::Detached);
                    }
                }
            }
        }
        flatten(self.output.await)
    }
}

fn flatten(r: Result<Result<(), String>, tokio::task::JoinError>) -> Result<Ended, String> {
    match r {
        Ok(Ok(())) => Ok(Ended::Finished),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(e.to_string()),
    }
}

/// The detach keys to use: `--detach-keys`, else `detachKeys` from the docker CLI's config
/// file (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), as docker does.
pub fn detach_keys(flag: Option<&str>) -> Option<String> {
    if let Some(keys) = flag.filter(|k| !k.is_empty()) {
        return Some(keys.to_string());
    }
    let dir = match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".docker"),
    };
    configured_detach_keys(&dir)
}

/// `detachKeys` from `config.json` in the docker CLI's config directory `dir`.
fn configured_detach_keys(dir: &std::path::Path) -> Option<String> {
    let data = std::fs::read(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_slice(&data).ok()?;
    config
        .get("detachKeys")
        .and_then(|k| k.as_str())
        .filter(|k| !k.is_empty())
        .map(String::from)
}

/// Attaches to a container: returns once the daemon accepted, with the session, which
/// ends when the container's output has been fully copied or the user detached. With
/// `stdin`, our stdin is copied in and the connection half-closed at its end, so the
/// container sees EOF. `detach_keys` goes to the daemon, which also watches for them.
pub async fn attach(
    client: &Client,
    id: &str,
    s: AttachStreams,
    detach_keys: Option<&str>,
) -> Result<Attached, ClientError> {
    let flag = |b: bool| if b { "1" } else { "0" };
    let mut path = format!(
        "/containers/{}/attach?stream=1&stdin={}&stdout={}&stderr={}",
        client::enc(id),
        flag(s.stdin),
        flag(s.stdout),
        flag(s.stderr)
    );
    if let Some(keys) = detach_keys {
        path.push_str(&format!("&detachKeys={}", client::enc(keys)));
    }
    hijack(client, &path, s, detach_keys).await
}

/// Opens the hijacked stream at `path` (attach, exec start) and wires it to our stdio as
/// `attach` describes. With a TTY and stdin, the detach keys typed end the session (the
/// daemon is not told: the connection just closes, as with docker).
pub async fn hijack(
    client: &Client,
    path: &str,
    s: AttachStreams,
    detach_keys: Option<&str>,
) -> Result<Attached, ClientError> {
    match client.upgrade(path).await? {
        Hijacked::Upgraded(io) => {
            let (mut rd, mut wr) = tokio::io::split(io);
            let mut detached = None;
            if s.stdin {
                // Invalid keys were refused by the daemon already; the default then stands.
                let keys = detach_keys
                    .and_then(|k| detach::parse(k).ok())
                    .unwrap_or_default();
                let mut escape = s.tty.then(|| detach::Scanner::new(&keys));
                let (detach_tx, detach_rx) = oneshot::channel();
                detached = escape.is_some().then_some(detach_rx);
                tokio::spawn(async move {
                    let mut stdin = tokio::io::stdin();
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        let n = stdin.read(&mut buf).await.unwrap_or(0);
                        let scanned = match escape.as_mut() {
                            Some(e) if n > 0 => e.feed(&buf[..n]),
                            Some(e) => detach::Scanned {
                                forward: e.finish(),
                                detach: false,
                            },
                            None => detach::Scanned {
                                forward: buf[..n].to_vec(),
                                detach: false,
                            },
                        };
                        if !scanned.forward.is_empty() {
                            if wr.write_all(&scanned.forward).await.is_err() {
                                return;
                            }
                            let _ = wr.flush().await;
                        }
                        if scanned.detach {
                            let _ = detach_tx.send(());
                            return;
                        }
                        if n == 0 {
                            break;
                        }
                    }
                    // Half-close: the container reads EOF, its output keeps flowing back.
                    let _ = wr.shutdown().await;
                });
            }
            // Without stdin the write half is simply dropped: that closes nothing, the
            // connection lives as long as the read half.
            let output = tokio::spawn(async move {
                let mut out = Output::new(s.tty);
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match rd.read(&mut buf).await {
                        Ok(0) => return Ok(()),
                        Ok(n) => out.write(&buf[..n])?,
                        // A reset after the container exited is the normal end of a session.
                        Err(_) => return Ok(()),
                    }
                }
            });
            Ok(Attached { output, detached })
        }
        Hijacked::Body(body) => Ok(Attached {
            output: tokio::spawn(copy_body(body, s.tty)),
            detached: None,
        }),
    }
}

/// Signals `berth` passes on to the container with `--sig-proxy`: every signal a process
/// can catch, except those that concern the CLI itself (as docker-cli: SIGCHLD, SIGPIPE,
/// SIGURG; and SIGWINCH, which resizing handles).
fn proxied_signals() -> Vec<i32> {
    const NOT_PROXIED: [i32; 6] = [
        libc::SIGCHLD,
        libc::SIGPIPE,
        libc::SIGURG,
        libc::SIGWINCH,
        libc::SIGKILL,
        libc::SIGSTOP,
    ];
    // Faults cannot be handled asynchronously (tokio refuses them).
    const FAULTS: [i32; 3] = [libc::SIGILL, libc::SIGFPE, libc::SIGSEGV];
    (1..32)
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
        .filter(|s| !NOT_PROXIED.contains(s) && !FAULTS.contains(s))
        .collect()
}

/// Forwards the signals this process receives to container `id` through the kill API, for
/// as long as the process runs (docker's `--sig-proxy`).
pub fn forward_signals(client: Client, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
    for sig in proxied_signals() {
        let Ok(mut stream) = signal(SignalKind::from_raw(sig)) else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        while let Some(sig) = rx.recv().await {
            let path = format!("/containers/{}/kill?signal={sig}", client::enc(&id));
            // As docker: a container that is not running (yet, or any more) is no error.
            let _ = client.post(&path).await;
        }
    });
}

/// Tells the daemon our terminal's size at `target` (`/containers/{id}` or `/exec/{id}`);
/// failures only cost layout, so they are ignored.
pub async fn resize(client: &Client, target: &str) {
    if let Some((h, w)) = crate::term::size(1).or_else(|| crate::term::size(0)) {
        let _ = client.post(&format!("{target}/resize?h={h}&w={w}")).await;
    }
}

/// Sends the terminal's size again on every SIGWINCH.
pub fn spawn_resize_watch(client: Client, target: String) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut winch) = signal(SignalKind::window_change()) else {
            return;
        };
        while winch.recv().await.is_some() {
            resize(&client, &target).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demuxes_split_frames() {
        let mut data = Vec::new();
        frame::encode(Stream::Stdout, b"hello\n", &mut data);
        frame::encode(Stream::Stderr, b"oops\n", &mut data);
        let mut d = Demuxer::default();
        let first = d.push(&data[..10]).unwrap();
        assert!(first.is_empty());
        let rest = d.push(&data[10..]).unwrap();
        assert_eq!(
            rest,
            vec![
                (Stream::Stdout, b"hello\n".to_vec()),
                (Stream::Stderr, b"oops\n".to_vec())
            ]
        );
        assert!(d.push(&[9, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn proxies_signals_like_docker() {
        let sigs = proxied_signals();
        for s in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGQUIT,
        ] {
            assert!(sigs.contains(&s), "{s}");
        }
        for s in [
            libc::SIGCHLD,
            libc::SIGPIPE,
            libc::SIGURG,
            libc::SIGWINCH,
            libc::SIGKILL,
        ] {
            assert!(!sigs.contains(&s), "{s}");
        }
        assert!(sigs.contains(&libc::SIGRTMIN()));
    }

    #[test]
    fn reads_detach_keys_from_the_config_file() {
        let dir = std::env::temp_dir().join(format!("berth-cli-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(configured_detach_keys(&dir), None);
        std::fs::write(
            dir.join("config.json"),
            r#"{"auths":{},"detachKeys":"ctrl-a,a"}"#,
        )
        .unwrap();
        assert_eq!(configured_detach_keys(&dir).as_deref(), Some("ctrl-a,a"));
        assert_eq!(detach_keys(Some("ctrl-x,y")).as_deref(), Some("ctrl-x,y"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
