//! One client connection on `shim.sock`: request line in, replies and attach stream out.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use crate::protocol::Request;

/// Outbuffered bytes beyond which a slow attacher is dropped rather than stall the container.
pub const MAX_PENDING: usize = 8 << 20;
const MAX_REQUEST: usize = 64 << 10;

/// What the connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Still reading the request line.
    Request,
    /// Streaming stdio.
    Attach {
        /// Client bytes go to container stdin.
        stdin: bool,
        /// Receives stdout.
        stdout: bool,
        /// Receives stderr.
        stderr: bool,
    },
    /// Waiting for the exit record.
    Wait,
    /// Carrying one exec process's stdio (see `Request::ExecStart`).
    ExecStream {
        /// `Exec::key` of the process.
        key: u32,
        /// Client bytes go to the process's stdin.
        stdin: bool,
        /// Receives stdout.
        stdout: bool,
        /// Receives stderr.
        stderr: bool,
    },
    /// Waiting for an exec process's exit code.
    ExecWait {
        /// `Exec::key` of the process.
        key: u32,
    },
    /// Reply queued; close once it is written.
    Closing,
}

/// A client connection.
pub struct Conn {
    /// The socket (non-blocking).
    pub stream: UnixStream,
    /// Current role.
    pub role: Role,
    /// Bytes queued for the client.
    pub out: Vec<u8>,
    inbuf: Vec<u8>,
    /// The client closed its sending side.
    pub read_eof: bool,
    /// Fatal error or peer gone: drop this connection.
    pub dead: bool,
}

/// Docker's stdcopy header: stream id, three zero bytes, big-endian payload length.
pub fn frame(stream: u8, payload: &[u8], out: &mut Vec<u8>) {
    for chunk in payload.chunks(u32::MAX as usize) {
        out.push(stream);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Result of reading from a connection.
pub enum Input {
    /// Nothing (more) for now.
    None,
    /// A complete request line (or its parse error).
    Request(Result<Request, String>),
    /// Stream data from an attacher (for stdin).
    Data(Vec<u8>),
}

impl Conn {
    /// Wraps an accepted stream.
    pub fn new(stream: UnixStream) -> Self {
        Conn {
            stream,
            role: Role::Request,
            out: Vec::new(),
            inbuf: Vec::new(),
            read_eof: false,
            dead: false,
        }
    }

    /// Queues one JSON line.
    pub fn reply<T: serde::Serialize>(&mut self, value: &T) {
        match serde_json::to_vec(value) {
            Ok(mut line) => {
                line.push(b'\n');
                self.out.extend_from_slice(&line);
            }
            Err(e) => eprintln!("berth-shim: serialize reply: {e}"),
        }
    }

    /// Reads what is available. In `Request` role, returns the request once its line is in;
    /// bytes after the newline are returned as data on the next call.
    pub fn read(&mut self) -> Input {
        let mut buf = [0u8; 32 << 10];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.read_eof = true;
                    break;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    if self.role == Role::Request && self.inbuf.contains(&b'\n') {
                        break;
                    }
                    if self.inbuf.len() > MAX_REQUEST && self.role == Role::Request {
                        self.dead = true;
                        return Input::None;
                    }
                    if self.role != Role::Request {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.dead = true;
                    return Input::None;
                }
            }
        }
        if self.role == Role::Request {
            if let Some(pos) = self.inbuf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.inbuf.drain(..=pos).collect();
                let req =
                    serde_json::from_slice(&line[..line.len() - 1]).map_err(|e| e.to_string());
                return Input::Request(req);
            }
            if self.read_eof {
                self.dead = true;
            }
            return Input::None;
        }
        if self.inbuf.is_empty() {
            Input::None
        } else {
            Input::Data(std::mem::take(&mut self.inbuf))
        }
    }

    /// Bytes that arrived together with the request line (stdin typed ahead).
    pub fn take_leftover(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.inbuf)
    }

    /// Writes as much queued output as the socket takes.
    pub fn flush(&mut self) {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
        if self.role == Role::Closing {
            self.dead = true;
        }
    }

    /// Blocking final flush (bounded by a timeout) and close, used when the shim exits.
    pub fn finish(mut self) {
        self.flush_blocking();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Writes everything queued, waiting (at most 5 s) for a slow reader.
    pub fn flush_blocking(&mut self) {
        let _ = self.stream.set_nonblocking(false);
        let _ = self
            .stream
            .set_write_timeout(Some(std::time::Duration::from_secs(5)));
        let _ = self.stream.write_all(&self.out);
        self.out.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header() {
        let mut out = Vec::new();
        frame(2, b"hi", &mut out);
        assert_eq!(out, [2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn request_then_data() {
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut c = Conn::new(a);
        b.write_all(b"{\"op\":\"attach\",\"stdin\":true,\"stdout\":true,\"stderr\":true}\nabc")
            .unwrap();
        match c.read() {
            Input::Request(Ok(Request::Attach { stdin: true, .. })) => {}
            _ => panic!("expected attach"),
        }
        assert_eq!(c.take_leftover(), b"abc");
    }
}
