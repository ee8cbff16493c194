//! Compression done once: a layer's tar is gzipped into the store's compressed-layer cache
//! (`berth_store::Store::add_compressed`) while the same bytes stream to the registry, so the
//! first push uploads as it compresses and every later push (any registry, any repository)
//! sends the cached blob without compressing again.
//!
//! The gzip is adaptive: each 1 MiB of the tar is deflated at level 1 (zlib-rs: about 140 MB/s
//! a core on a typical layer, 4 times Go's default level) unless its bytes look incompressible
//! (an order-0 entropy near 8 bits a byte: compressed files, random data), which is stored
//! instead: deflating those costs 10 times the time to make the output bigger (level 1's
//! static trees expand random bytes by 5%). The result is one ordinary gzip stream.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use berth_store::{BlobWriter, CompressedLayer, Compression, Store};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// The gzip level pushes use.
pub const GZIP_LEVEL: u32 = 1;
/// How much compressed output is gathered before it is handed to the upload.
const SEND_AT: usize = 1 << 20;

/// Writes into the cache blob and, while anyone listens, into the upload's channel. The upload
/// failing does not stop the cache from being completed: a retry then sends the cached file.
struct Tee {
    blob: BlobWriter,
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    pending: BytesMut,
}

impl Tee {
    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let chunk = self.pending.split().freeze();
        if let Some(tx) = &self.tx {
            if tx.blocking_send(Ok(chunk)).is_err() {
                self.tx = None;
            }
        }
    }
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.blob.write_all(buf)?;
        if self.tx.is_some() {
            self.pending.extend_from_slice(buf);
            if self.pending.len() >= SEND_AT {
                self.flush_pending();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Fills `buf` as far as the file allows (a short read only at its end).
fn read_full(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether `chunk` looks incompressible: the order-0 entropy of (a sample of) its bytes is
/// within 0.05 bit of 8. Judging wrongly only costs ratio or time, never correctness.
fn looks_incompressible(chunk: &[u8]) -> bool {
    let sample = &chunk[..chunk.len().min(64 << 10)];
    if sample.len() < 4096 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &b in sample {
        counts[b as usize] += 1;
    }
    let n = sample.len() as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    entropy > 7.95
}

/// One gzip member (RFC 1952) deflated at [`GZIP_LEVEL`], except for chunks that look
/// incompressible, which go in stored blocks written here. Before a stored run the deflater is
/// sync-flushed (its output ends on a byte boundary) and reset (so none of its later matches
/// reach back across bytes it did not see).
struct AdaptiveGzip<W: Write> {
    out: W,
    z: flate2::Compress,
    crc: flate2::Crc,
    /// The deflater has taken input since its last reset.
    dirty: bool,
    buf: Vec<u8>,
}

impl<W: Write> AdaptiveGzip<W> {
    fn new(mut out: W) -> io::Result<Self> {
        // No name, no mtime (reproducible digests), OS "unknown" as Go and flate2 write it.
        out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
        Ok(AdaptiveGzip {
            out,
            z: flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false),
            crc: flate2::Crc::new(),
            dirty: false,
            buf: vec![0u8; 256 << 10],
        })
    }

    /// Runs the deflater over `input` with `flush`, writing what it produces.
    fn run(&mut self, mut input: &[u8], flush: flate2::FlushCompress) -> io::Result<()> {
        loop {
            let (before_in, before_out) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .compress(input, &mut self.buf, flush)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let consumed = (self.z.total_in() - before_in) as usize;
            let produced = (self.z.total_out() - before_out) as usize;
            self.out.write_all(&self.buf[..produced])?;
            input = &input[consumed..];
            let done = match flush {
                flate2::FlushCompress::Finish => status == flate2::Status::StreamEnd,
                // Input used up and the output buffer not filled: nothing is pending.
                _ => input.is_empty() && produced < self.buf.len(),
            };
            if done {
                return Ok(());
            }
        }
    }

    fn write_chunk(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.crc.update(chunk);
        if !looks_incompressible(chunk) {
            self.dirty = true;
            return self.run(chunk, flate2::FlushCompress::None);
        }
        if self.dirty {
            self.run(&[], flate2::FlushCompress::Sync)?;
            self.z.reset();
            self.dirty = false;
        }
        // Stored blocks (BFINAL 0, BTYPE 00; byte aligned), 65535 bytes at most each.
        for piece in chunk.chunks(0xffff) {
            let len = piece.len() as u16;
            let mut header = [0u8; 5];
            header[1..3].copy_from_slice(&len.to_le_bytes());
            header[3..5].copy_from_slice(&(!len).to_le_bytes());
            self.out.write_all(&header)?;
            self.out.write_all(piece)?;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        // The final block: the deflater's (empty after a stored run, which is valid).
        self.run(&[], flate2::FlushCompress::Finish)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.sum().to_le_bytes());
        trailer[4..].copy_from_slice(&self.crc.amount().to_le_bytes());
        self.out.write_all(&trailer)?;
        Ok(self.out)
    }
}

/// Gzips layer `diff_id` into the cache, sending the compressed bytes to `tx` as they come
/// (when given); `read` counts the uncompressed bytes consumed (the progress Docker shows).
/// Blocking: run it on a blocking thread.
pub fn compress_layer(
    store: &Store,
    diff_id: &str,
    tx: Option<mpsc::Sender<io::Result<Bytes>>>,
    read: Arc<AtomicU64>,
) -> Result<CompressedLayer> {
    // The layer's blob, or its tar rebuilt from its index; checked against the diff ID at its end.
    let mut tar = store.layer_tar(diff_id)?;
    let blob = store.compressed_writer()?;
    let tee = Tee {
        blob,
        tx,
        pending: BytesMut::with_capacity(SEND_AT),
    };
    let io_err = |e: io::Error| Error::Invalid(format!("compressing layer {diff_id}: {e}"));
    let mut gz = AdaptiveGzip::new(tee).map_err(io_err)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = read_full(&mut tar, &mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        gz.write_chunk(&buf[..n]).map_err(io_err)?;
        read.fetch_add(n as u64, Ordering::Relaxed);
    }
    let mut tee = gz.finish().map_err(io_err)?;
    tee.flush_pending();
    let Tee { blob, tx, .. } = tee;
    drop(tx); // ends the upload's body
    let pending = blob.finish()?;
    Ok(store.add_compressed(diff_id, Compression::Gzip, pending)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_gzip_is_one_valid_member_of_mixed_chunks() {
        let mut random = vec![0u8; 3 << 20];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for b in random.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let text: Vec<u8> = b"layer tar text "
            .iter()
            .cycle()
            .take(3 << 20)
            .copied()
            .collect();
        let chunks = [
            &random[..1 << 20],
            &text[..1 << 20],
            &random[1 << 20..],
            &text[1 << 20..],
            b"tail",
        ];
        let mut gz = AdaptiveGzip::new(Vec::new()).unwrap();
        let mut all = Vec::new();
        for c in chunks {
            gz.write_chunk(c).unwrap();
            all.extend_from_slice(c);
        }
        let out = gz.finish().unwrap();
        assert!(
            out.len() < random.len() + (64 << 10),
            "text compressed, random stored: {}",
            out.len()
        );
        // Go's reader (what Docker and containerd use) takes one member; so does a plain decoder.
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, all);
        assert!(looks_incompressible(&random) && !looks_incompressible(&text));
    }

    #[test]
    fn compresses_once_and_streams_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("db")).unwrap());
        let store = Store::open(&dir.path().join("root"), db).unwrap();
        // A real layer: import a tiny tar.
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "hello.txt", &b"hello"[..]).unwrap();
        let data = tar.into_inner().unwrap();
        let image = store.import(&mut &data[..], Default::default()).unwrap();
        let diff_id = image.config.rootfs().diff_ids()[0].clone();

        let (tx, mut rx) = mpsc::channel(64);
        let read = Arc::new(AtomicU64::new(0));
        let layer = std::thread::scope(|s| {
            let h = s.spawn(|| compress_layer(&store, &diff_id, Some(tx), read.clone()));
            let mut streamed = Vec::new();
            while let Some(chunk) = rx.blocking_recv() {
                streamed.extend_from_slice(&chunk.unwrap());
            }
            let layer = h.join().unwrap().unwrap();
            assert_eq!(
                std::fs::read(store.compressed_path(&layer.digest).unwrap()).unwrap(),
                streamed
            );
            layer
        });
        assert_eq!(read.load(Ordering::Relaxed), data.len() as u64);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(
            std::fs::File::open(store.compressed_path(&layer.digest).unwrap()).unwrap(),
        )
        .read_to_end(&mut out)
        .unwrap();
        assert_eq!(out, data);
        assert_eq!(
            store.compressed(&diff_id, Compression::Gzip).unwrap(),
            Some(layer)
        );
    }
}
