//! Container output streams: demultiplexing docker's framed stdout/stderr (8-byte headers,
//! see `berth_api::frame`), copying raw TTY bytes, and the attach session that ties our
//! stdin/stdout to a container.

use std::io::Write;

use berth_api::frame::{self, Stream};
use hyper::body::Incoming;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// Attaches to a container: returns once the daemon accepted, with a task that ends when
/// the container's output has been fully copied. With `stdin`, our stdin is copied in and
/// the connection half-closed at its end, so the container sees EOF.
pub async fn attach(
    client: &Client,
    id: &str,
    s: AttachStreams,
) -> Result<JoinHandle<Result<(), String>>, ClientError> {
    let flag = |b: bool| if b { "1" } else { "0" };
    let path = format!(
        "/containers/{}/attach?stream=1&stdin={}&stdout={}&stderr={}",
        client::enc(id),
        flag(s.stdin),
        flag(s.stdout),
        flag(s.stderr)
    );
    hijack(client, &path, s).await
}

/// Opens the hijacked stream at `path` (attach, exec start) and wires it to our stdio as
/// `attach` describes.
pub async fn hijack(
    client: &Client,
    path: &str,
    s: AttachStreams,
) -> Result<JoinHandle<Result<(), String>>, ClientError> {
    match client.upgrade(path).await? {
        Hijacked::Upgraded(io) => {
            let (mut rd, mut wr) = tokio::io::split(io);
            if s.stdin {
                tokio::spawn(async move {
                    let mut stdin = tokio::io::stdin();
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match stdin.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if wr.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                                let _ = wr.flush().await;
                            }
                        }
                    }
                    // Half-close: the container reads EOF, its output keeps flowing back.
                    let _ = wr.shutdown().await;
                });
            }
            // Without stdin the write half is simply dropped: that closes nothing, the
            // connection lives as long as the read half.
            Ok(tokio::spawn(async move {
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
            }))
        }
        Hijacked::Body(body) => Ok(tokio::spawn(copy_body(body, s.tty))),
    }
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
