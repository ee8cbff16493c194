//! Layer and archive compression: gzip, zstd or none, chosen by media type or by the stream's
//! first bytes (Docker's `DetectCompression` magic numbers).
//!
//! zstd is decoded by `ruzstd` (pure Rust, no C toolchain in the build). A zstd stream may hold
//! several frames and skippable frames (`zstd` and `pigz`-like tools write them); all are read.

use std::io::{self, BufRead, BufReader, Cursor, Read};

use flate2::bufread::MultiGzDecoder;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use crate::error::Error;
use crate::unpack::BUF_SIZE;

/// How a stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Skippable zstd frames start with 0x184D2A50..=0x184D2A5F (little endian).
fn is_zstd_skippable(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18]
}

impl Compression {
    /// What the first bytes of a stream say it is. bzip2 and xz (which `docker import` of
    /// Docker also reads) are refused by name rather than mistaken for a plain tar.
    pub fn sniff(head: &[u8]) -> Result<Compression, Error> {
        if head.starts_with(GZIP_MAGIC) {
            Ok(Compression::Gzip)
        } else if head.starts_with(ZSTD_MAGIC) || is_zstd_skippable(head) {
            Ok(Compression::Zstd)
        } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Err(Error::InvalidArchive(
                "unsupported compression (use gzip, zstd or none)".into(),
            ))
        } else {
            Ok(Compression::None)
        }
    }

    /// Checks that `media_type` is a layer we can unpack. Like containerd's unpacker, the
    /// bytes then decide the compression: registries and old tools have stored plain tars
    /// under "gzip" types, and a zstd layer is recognised by its magic number whatever its label.
    pub fn check_layer_media_type(media_type: &str) -> Result<(), Error> {
        use crate::manifest::media;
        match media_type {
            media::OCI_LAYER
            | media::OCI_LAYER_GZIP
            | media::OCI_LAYER_ZSTD
            | media::OCI_LAYER_NONDIST
            | media::OCI_LAYER_NONDIST_GZIP
            | media::OCI_LAYER_NONDIST_ZSTD
            | media::DOCKER_LAYER_GZIP
            | media::DOCKER_LAYER_FOREIGN_GZIP => Ok(()),
            other => Err(Error::InvalidArchive(format!(
                "unsupported layer media type {other}"
            ))),
        }
    }

    /// Wraps `input` (positioned at the start of the compressed stream) in its decoder.
    pub fn reader<'a>(self, input: impl BufRead + 'a) -> Box<dyn Read + 'a> {
        match self {
            Compression::None => Box::new(input),
            Compression::Gzip => Box::new(MultiGzDecoder::new(input)),
            Compression::Zstd => Box::new(ZstdReader {
                src: input,
                dec: FrameDecoder::new(),
                in_frame: false,
            }),
        }
    }
}

/// A reader of `input` with its compression undone, judged by its first bytes (an import, a
/// save archive, or one of its layers).
pub(crate) fn decompress<'a>(input: &'a mut dyn Read) -> Result<Box<dyn Read + 'a>, Error> {
    // Peek the magic without a BufReader, which can't guarantee six bytes from a pipe.
    let mut head = [0u8; 6];
    let mut n = 0;
    while n < head.len() {
        match input.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
    if n == 0 {
        return Err(Error::InvalidArchive("empty archive".into()));
    }
    let kind = Compression::sniff(&head[..n])?;
    let raw = BufReader::with_capacity(BUF_SIZE, Cursor::new(head[..n].to_vec()).chain(input));
    Ok(kind.reader(raw))
}

/// A zstd stream of any number of frames, skippable frames skipped, each frame's checksum (when
/// it has one) checked.
struct ZstdReader<R> {
    src: R,
    dec: FrameDecoder,
    in_frame: bool,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for ZstdReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.dec.can_collect() == 0 && !self.dec.is_finished() {
                    self.dec
                        .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBlocks(1))
                        .map_err(invalid)?;
                }
                let n = self.dec.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if let (Some(want), Some(got)) = (
                    self.dec.get_checksum_from_data(),
                    self.dec.get_calculated_checksum(),
                ) {
                    if want != got {
                        return Err(invalid("frame checksum mismatch"));
                    }
                }
                self.in_frame = false;
            }
            if self.src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.dec.reset(&mut self.src) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(
                        &mut (&mut self.src).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd: truncated skippable frame",
                        ));
                    }
                }
                Err(e) => return Err(invalid(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};

    fn roundtrip(bytes: &[u8]) -> Vec<u8> {
        let mut input: &[u8] = bytes;
        let mut out = Vec::new();
        decompress(&mut input)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut e, data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn sniffs_every_supported_kind() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let zst = compress_to_vec(&data[..], CompressionLevel::Fastest);
        assert_eq!(Compression::sniff(&zst).unwrap(), Compression::Zstd);
        assert_eq!(roundtrip(&zst), data);
        assert_eq!(roundtrip(&gzip(&data)), data);
        assert_eq!(roundtrip(&data), data);
        assert!(matches!(
            Compression::sniff(b"BZh91AY"),
            Err(Error::InvalidArchive(_))
        ));
    }

    #[test]
    fn zstd_reads_every_frame_and_skips_skippable_ones() {
        let mut stream = compress_to_vec(&b"first "[..], CompressionLevel::Fastest);
        // A skippable frame: magic 0x184D2A5A, length 3, payload.
        stream.extend_from_slice(&[0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
        stream.extend(compress_to_vec(&b"second"[..], CompressionLevel::Fastest));
        assert_eq!(roundtrip(&stream), b"first second");
    }

    #[test]
    fn corrupt_zstd_is_an_error_not_a_short_read() {
        let data = vec![42u8; 100_000];
        let mut zst = compress_to_vec(&data[..], CompressionLevel::Fastest);
        let cut = zst.len() / 2;
        zst.truncate(cut);
        let mut input: &[u8] = &zst;
        let mut out = Vec::new();
        assert!(decompress(&mut input)
            .unwrap()
            .read_to_end(&mut out)
            .is_err());
    }

    #[test]
    fn layer_media_types() {
        use crate::manifest::media;
        for ok in [
            media::OCI_LAYER_ZSTD,
            media::DOCKER_LAYER_GZIP,
            media::OCI_LAYER,
        ] {
            Compression::check_layer_media_type(ok).unwrap();
        }
        assert!(Compression::check_layer_media_type(
            "application/vnd.oci.image.layer.v1.tar+encrypted"
        )
        .is_err());
    }
}
