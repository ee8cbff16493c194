//! A blocking writer that gathers bytes into chunks and sends each one through a channel:
//! tar made on one thread and read on another. `commit` feeds the store's reader over a std
//! channel; `export` feeds an HTTP body over a tokio one.

use bytes::Bytes;
use std::io::{self, Write};

/// The sending half of a channel of chunks, whichever kind it is.
pub trait ChunkSender {
    /// Sends one chunk; `false` once the receiving side has gone.
    fn send_chunk(&self, chunk: Vec<u8>) -> bool;
    /// Sends the producer's error, for the reader to fail on.
    fn send_error(&self, e: io::Error);
}

impl ChunkSender for std::sync::mpsc::SyncSender<io::Result<Vec<u8>>> {
    fn send_chunk(&self, chunk: Vec<u8>) -> bool {
        self.send(Ok(chunk)).is_ok()
    }

    fn send_error(&self, e: io::Error) {
        let _ = self.send(Err(e));
    }
}

impl ChunkSender for tokio::sync::mpsc::Sender<io::Result<Bytes>> {
    fn send_chunk(&self, chunk: Vec<u8>) -> bool {
        self.blocking_send(Ok(Bytes::from(chunk))).is_ok()
    }

    fn send_error(&self, e: io::Error) {
        let _ = self.blocking_send(Err(e));
    }
}

/// Buffers writes into chunks of `size` bytes and sends each whole, so the reader wakes
/// once per chunk rather than once per tar header. Must be flushed at the end.
pub struct ChunkWriter<S: ChunkSender> {
    tx: S,
    buf: Vec<u8>,
    size: usize,
}

impl<S: ChunkSender> ChunkWriter<S> {
    pub fn new(tx: S, size: usize) -> ChunkWriter<S> {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(size),
            size,
        }
    }

    /// Ends the stream with the producer's error: the reader fails on it, so a half-written
    /// tar never passes for a whole one. Whatever was buffered is dropped.
    pub fn fail(self, e: io::Error) {
        self.tx.send_error(e);
    }
}

impl<S: ChunkSender> Write for ChunkWriter<S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.size {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(self.size));
        if self.tx.send_chunk(chunk) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the reader went away",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_whole_and_the_rest_comes_with_flush() {
        let (tx, rx) = std::sync::mpsc::sync_channel(8);
        let mut w = ChunkWriter::new(tx, 4);
        w.write_all(b"abcdef").unwrap();
        w.write_all(b"g").unwrap();
        w.flush().unwrap();
        drop(w);
        let got: Vec<Vec<u8>> = rx.iter().map(Result::unwrap).collect();
        assert_eq!(got, [b"abcdef".to_vec(), b"g".to_vec()]);
    }

    #[test]
    fn a_gone_reader_is_a_broken_pipe() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(rx);
        let mut w = ChunkWriter::new(tx, 4);
        let e = w.write_all(b"abcdef").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
