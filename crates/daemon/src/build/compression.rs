//! Docker's `DecompressStream`: a stream that may be gzip, bzip2 or xz compressed, or plain,
//! told apart by its first bytes. One sniffer for the build context a docker CLI uploads and
//! for the local archives ADD unpacks (`IsArchivePath`).

use std::io::{self, BufRead, BufReader, Read};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08];
const BZIP2_MAGIC: &[u8] = b"BZh";
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
/// The longest magic number.
const HEAD: usize = 6;

/// `r` with its compression undone, as its first bytes say; a stream that matches no magic
/// number (or is shorter than one) is read as it is.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, r);
    // fill_buf may return fewer bytes than a magic number (a chunked request body): top it up.
    let mut head = Vec::with_capacity(HEAD);
    while head.len() < HEAD {
        let got = buffered.fill_buf()?;
        if got.is_empty() {
            break;
        }
        let n = got.len().min(HEAD - head.len());
        head.extend_from_slice(&got[..n]);
        buffered.consume(n);
    }
    let stream = io::Cursor::new(head.clone()).chain(buffered);
    Ok(if head.starts_with(GZIP_MAGIC) {
        Box::new(flate2::read::MultiGzDecoder::new(stream))
    } else if head.starts_with(BZIP2_MAGIC) {
        Box::new(bzip2::read::MultiBzDecoder::new(stream))
    } else if head.starts_with(XZ_MAGIC) {
        Box::new(lzma_rust2::XzReader::new(stream, true))
    } else {
        Box::new(stream)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Hands out one byte per read, as a slow chunked body does.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    fn read_all(r: impl Read) -> Vec<u8> {
        let mut out = Vec::new();
        decompress(r).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn each_format_is_told_by_its_magic_number() {
        let data = b"hello, context\n".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(&data).unwrap();
        let bz = bz.finish().unwrap();
        let mut xz =
            lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
        xz.write_all(&data).unwrap();
        let xz = xz.finish().unwrap();
        for packed in [&gz, &bz, &xz, &data] {
            assert_eq!(read_all(&packed[..]), data);
            assert_eq!(read_all(Trickle(packed)), data);
        }
        // Shorter than any magic number, or nothing at all: plain.
        assert_eq!(read_all(&b"BZ"[..]), b"BZ");
        assert_eq!(read_all(&b""[..]), b"");
    }
}
