//! A bound on the tar members a reader holds in memory. The tar crate reads a GNU long name
//! or long link (`L`, `K`) and a PAX header (`x`) whole into memory before the entry they
//! describe, whatever size the header claims, so a hostile layer or build context could make
//! the daemon allocate as much as it sends. Go's archive/tar refuses such members over 1 MiB
//! (`maxSpecialFileSize`, "archive/tar: header field too long"), and so does
//! [`CappedTar`]: it sits between the tar crate and the stream, follows the archive's framing
//! as the tar crate does (headers, PAX `size` overrides, GNU sparse extension blocks), and
//! fails the read that brings an oversized header. Bytes pass through unchanged.

use std::io::{self, Read};

/// Go's `maxSpecialFileSize`.
pub const MAX_SPECIAL_FILE_SIZE: u64 = 1 << 20;

/// Go's `ErrFieldTooLong`.
pub const FIELD_TOO_LONG: &str = "archive/tar: header field too long";

const BLOCK: usize = 512;

/// Where in the archive the next byte is.
enum Phase {
    /// Inside a header block.
    Header,
    /// Inside a GNU sparse extension block; `data` bytes of content follow the last one.
    SparseExt { data: u64 },
    /// Inside an entry's content and padding; `pax` collects a PAX header's records.
    Data { left: u64, pax: Option<u64> },
    /// Past the end of the archive, or past a header the tar crate itself will refuse.
    Done,
}

/// A reader of a tar stream that refuses special members larger than Go allows.
pub struct CappedTar<R> {
    inner: R,
    phase: Phase,
    block: Vec<u8>,
    /// Records of the PAX header before the next entry, as they arrive.
    pax: Vec<u8>,
    /// The `size` a complete PAX header gives the next entry.
    pax_size: Option<u64>,
}

impl<R: Read> CappedTar<R> {
    pub fn new(inner: R) -> CappedTar<R> {
        CappedTar {
            inner,
            phase: Phase::Header,
            block: Vec::with_capacity(BLOCK),
            pax: Vec::new(),
            pax_size: None,
        }
    }

    /// Follows the framing through `bytes`, the next bytes the tar crate reads.
    fn observe(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.phase {
                Phase::Done => return Ok(()),
                Phase::Header | Phase::SparseExt { .. } => {
                    let n = (BLOCK - self.block.len()).min(bytes.len());
                    self.block.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.block.len() == BLOCK {
                        self.phase = self.next_phase()?;
                        self.block.clear();
                    }
                }
                Phase::Data { left, pax } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    if let Some(want) = pax {
                        let take = (*want - self.pax.len() as u64).min(n as u64) as usize;
                        self.pax.extend_from_slice(&bytes[..take]);
                    }
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        if pax.is_some() {
                            self.pax_size = pax_size(&self.pax);
                            self.pax.clear();
                        }
                        self.phase = Phase::Header;
                    }
                }
            }
        }
        Ok(())
    }

    /// What follows the block just completed.
    fn next_phase(&mut self) -> io::Result<Phase> {
        if let Phase::SparseExt { data } = self.phase {
            return Ok(match self.block[504] == 1 {
                true => Phase::SparseExt { data },
                false => data_phase(data, None),
            });
        }
        // The tar crate ends the archive at the first zero block.
        if self.block.iter().all(|&b| b == 0) {
            return Ok(Phase::Done);
        }
        let mut header = tar::Header::new_old();
        header.as_mut_bytes().copy_from_slice(&self.block);
        let sum: u32 = self.block[..148]
            .iter()
            .chain(&self.block[156..])
            .map(|&b| b as u32)
            .sum::<u32>()
            + 8 * 32;
        let Ok(size) = header.entry_size() else {
            return Ok(Phase::Done);
        };
        if header.cksum().ok() != Some(sum) {
            return Ok(Phase::Done);
        }
        let kind = header.entry_type();
        let special = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        // Only headers with a ustar or GNU magic are read as special (the tar crate's rule).
        let recognized = header.as_ustar().is_some() || header.as_gnu().is_some();
        if recognized && special && size > MAX_SPECIAL_FILE_SIZE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, FIELD_TOO_LONG));
        }
        // Long names and PAX headers describe the next entry; anything else is that entry.
        let describes_next = recognized && special && !kind.is_pax_global_extensions();
        if describes_next {
            let pax = kind.is_pax_local_extensions().then_some(size);
            return Ok(data_phase(size, pax));
        }
        let size = match special {
            true => size,
            false => self.pax_size.unwrap_or(size),
        };
        self.pax_size = None;
        let sparse_ext = kind.is_gnu_sparse() && header.as_gnu().is_some() && self.block[482] == 1;
        Ok(match sparse_ext {
            true => Phase::SparseExt { data: size },
            false => data_phase(size, None),
        })
    }
}

/// An entry's content of `size` bytes and its padding to a whole block.
fn data_phase(size: u64, pax: Option<u64>) -> Phase {
    match size.checked_add(BLOCK as u64 - 1) {
        Some(0..=511) => Phase::Header,
        Some(n) => Phase::Data {
            left: n & !(BLOCK as u64 - 1),
            pax,
        },
        None => Phase::Done, // the tar crate fails on it
    }
}

/// The PAX `size` record, read as the tar crate reads it (any malformed record: none).
fn pax_size(records: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(records) {
        let record = record.ok()?;
        if record.key() == Ok("size") {
            return record.value().ok()?.parse().ok();
        }
    }
    None
}

impl<R: Read> Read for CappedTar<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.observe(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    }

    /// An archive: (header, content) members, then the end marker.
    fn archive(members: &[(tar::Header, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (h, data) in members {
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        out.extend_from_slice(&[0; 1024]);
        out
    }

    /// Every entry's path and content, read through the cap.
    fn read_all(bytes: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut a = tar::Archive::new(CappedTar::new(bytes));
        let mut out = Vec::new();
        for e in a.entries()? {
            let mut e = e?;
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            out.push((e.path()?.to_string_lossy().into_owned(), data));
        }
        Ok(out)
    }

    fn pax(records: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions(records.iter().map(|(k, v)| (*k, v.as_bytes())))
            .unwrap();
        let mut v = b.into_inner().unwrap();
        v.truncate(v.len() - 1024); // the builder's end marker
        v
    }

    #[test]
    fn long_names_and_pax_headers_up_to_the_limit_pass_unchanged() {
        let name = "d/".repeat(3000) + "f";
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &name, &b"abc"[..]).unwrap();
        let mut bytes = b.into_inner().unwrap();
        bytes.truncate(bytes.len() - 1024);
        bytes.extend(pax(&[("path", "p"), ("mtime", "1.5")]));
        bytes.extend(archive(&[(
            header("ignored", tar::EntryType::Regular, 2),
            b"xy".to_vec(),
        )]));
        let got = read_all(&bytes).unwrap();
        assert_eq!(got, [(name, b"abc".to_vec()), ("p".into(), b"xy".to_vec())]);
    }

    #[test]
    fn an_oversized_long_name_or_pax_header_is_refused_before_it_is_read() {
        for kind in [
            tar::EntryType::GNULongName,
            tar::EntryType::GNULongLink,
            tar::EntryType::XHeader,
            tar::EntryType::XGlobalHeader,
        ] {
            let mut h = header("././@LongLink", kind, MAX_SPECIAL_FILE_SIZE + 1);
            if kind.is_gnu_longname() || kind.is_gnu_longlink() {
                // GNU's own magic, as GNU tar writes these.
                h.as_mut_bytes()[257..265].copy_from_slice(b"ustar  \0");
                h.set_cksum();
            }
            // Only the header: a reader holding the member would fail on the EOF instead.
            let err = read_all(h.as_bytes()).unwrap_err();
            assert_eq!(err.to_string(), FIELD_TOO_LONG, "{kind:?}");
        }
        let at_limit = header("x", tar::EntryType::XHeader, MAX_SPECIAL_FILE_SIZE);
        let err = read_all(at_limit.as_bytes()).unwrap_err();
        assert_ne!(err.to_string(), FIELD_TOO_LONG);
    }

    #[test]
    fn a_pax_size_and_sparse_extension_blocks_are_followed() {
        // A PAX size longer than the header's: the member after it is read where it is.
        let mut bytes = pax(&[("size", "1000")]);
        bytes.extend(archive(&[
            (header("big", tar::EntryType::Regular, 0), vec![7u8; 1000]),
            (header("tail", tar::EntryType::Regular, 1), b"t".to_vec()),
        ]));
        let got = read_all(&bytes).unwrap();
        assert_eq!(got[0], ("big".into(), vec![7u8; 1000]));
        assert_eq!(got[1], ("tail".into(), b"t".to_vec()));
        // Content that looks like an oversized long-name header is only content.
        let fake = header("L", tar::EntryType::GNULongName, 1 << 40);
        let bytes = archive(&[
            (
                header("f", tar::EntryType::Regular, 512),
                fake.as_bytes().to_vec(),
            ),
            (header("g", tar::EntryType::Regular, 1), b"g".to_vec()),
        ]);
        assert_eq!(read_all(&bytes).unwrap().len(), 2);
        // A GNU sparse file with an extension block before its data.
        let mut h = tar::Header::new_gnu();
        h.set_path("sparse").unwrap();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_size(512);
        h.set_mode(0o644);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].offset = *b"00000000000\0";
        gnu.sparse[0].numbytes = *b"00000000000\0";
        gnu.isextended[0] = 1;
        gnu.realsize = *b"00000002000\0";
        h.set_cksum();
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.sparse[0].offset = *b"00000001000\0";
        ext.sparse[0].numbytes = *b"00000001000\0";
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend_from_slice(ext.as_bytes());
        bytes.extend(archive(&[
            // Shaped like an oversized long name, but the sparse file's data.
            (fake.clone(), vec![]),
            (header("after", tar::EntryType::Regular, 1), b"a".to_vec()),
        ]));
        let got = read_all(&bytes).unwrap();
        assert_eq!(got[0].0, "sparse");
        assert_eq!(got[0].1.len(), 1024);
        assert_eq!(got[1], ("after".into(), b"a".to_vec()));
    }
}
