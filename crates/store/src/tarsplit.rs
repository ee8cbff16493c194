//! Layer tars kept as an index over their snapshot instead of as a second copy (the tar-split
//! idea Docker's layer store uses): a layer's diff ID names the exact bytes of its tar, which
//! `save` and `push` must hand out again, but every regular file's content is already in the
//! layer's snapshot. So while a layer is unpacked, the [`SplitReader`] under the unpacker
//! records every byte that is not regular-file content verbatim (headers, PAX and GNU
//! extension records, padding, the end-of-archive blocks, trailing bytes; runs of zeros as
//! their length) and, for each file's content, only its path in the snapshot and its size.
//! [`Rebuild`] reads the tar back from the index and the snapshot, byte for byte.
//!
//! The headers are parsed here at the 512-byte level, mirroring the tar crate the unpacker
//! uses (PAX `size` overrides the header's, PAX `path` and GNU `L` long names name the entry,
//! extension headers count only with ustar or GNU magic), so the index never depends on what
//! that crate does not show. The splitter sits directly under the unpacker's tar reader, with
//! no buffer between: when it sees a header, every earlier entry is fully in the snapshot.
//!
//! Snapshots are read-only once published, but within one layer a later entry can replace or
//! remove a file whose content is indexed (the same path twice, a whiteout of it, a link or
//! device over a directory of them, a path through a symlink the layer made), and GNU sparse
//! entries are not stored as their content. The header that would do so is seen before the
//! unpacker acts on it, so at that point the splitter falls back: it rebuilds the tar so far
//! into a blob (the files it needs are still intact) and tees the rest of the stream into it.
//! Such a layer keeps its whole tar as a blob, as every layer did before indexes existed.
//!
//! Index file (`layer-index/<diff hex>`, little-endian): the magic, the tar's total size
//! (u64), then segments: `R` len bytes (verbatim), `Z` len (zeros), `F` size path-len(u32)
//! path (a file's content; the path is relative, `/`-separated, without `.` or `..`).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use sha2::{Digest as _, Sha256};

use crate::content::{BlobWriter, ContentStore, PendingBlob};
use crate::digest::{format_digest, hex_part};
use crate::error::{ctx, Error};
use crate::fsutil::{fsync_dir, remove_file, temp_name, TEMP_PREFIX};
use crate::unpack::clean_path;

const MAGIC: &[u8; 8] = b"BTSPLIT1";
const BLOCK: usize = 512;

/// One run of the tar stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Bytes kept as they are.
    Raw(Vec<u8>),
    /// That many zero bytes.
    Zeros(u64),
    /// The whole content of the snapshot file at this path, of this size.
    File { path: Vec<u8>, size: u64 },
}

/// A layer tar as segments; `total` is its size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Index {
    pub(crate) total: u64,
    segments: Vec<Segment>,
}

impl Index {
    /// Keeps `bytes` as they are; runs of zeros (most of a header block, padding, the end
    /// of the archive) as their length.
    pub(crate) fn verbatim(&mut self, bytes: &[u8]) {
        const MIN_ZERO_RUN: usize = 32;
        let (mut i, mut raw_from) = (0, 0);
        while i < bytes.len() {
            if bytes[i] != 0 {
                i += 1;
                continue;
            }
            let run = bytes[i..]
                .iter()
                .position(|&b| b != 0)
                .unwrap_or(bytes.len() - i);
            if run >= MIN_ZERO_RUN {
                self.raw(&bytes[raw_from..i]);
                self.zeros(run as u64);
                raw_from = i + run;
            }
            i += run;
        }
        self.raw(&bytes[raw_from..]);
    }

    fn raw(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.total += bytes.len() as u64;
        if let Some(Segment::Raw(r)) = self.segments.last_mut() {
            r.extend_from_slice(bytes);
        } else {
            self.segments.push(Segment::Raw(bytes.to_vec()));
        }
    }

    fn zeros(&mut self, n: u64) {
        self.total += n;
        if let Some(Segment::Zeros(z)) = self.segments.last_mut() {
            *z += n;
        } else {
            self.segments.push(Segment::Zeros(n));
        }
    }

    pub(crate) fn file(&mut self, path: Vec<u8>, size: u64) {
        self.total += size;
        self.segments.push(Segment::File { path, size });
    }

    /// The index file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.total.to_le_bytes());
        for s in &self.segments {
            match s {
                Segment::Raw(b) => {
                    out.push(b'R');
                    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                    out.extend_from_slice(b);
                }
                Segment::Zeros(n) => {
                    out.push(b'Z');
                    out.extend_from_slice(&n.to_le_bytes());
                }
                Segment::File { path, size } => {
                    out.push(b'F');
                    out.extend_from_slice(&size.to_le_bytes());
                    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
                    out.extend_from_slice(path);
                }
            }
        }
        out
    }

    /// Parses an index file; anything malformed is a corrupt store.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Index, Error> {
        let bad = || Error::Corrupt("malformed layer index".into());
        let mut r = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(bad)?;
        fn take<'a>(r: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            (r.len() >= n).then(|| {
                let (a, b) = r.split_at(n);
                *r = b;
                a
            })
        }
        let u64_of = |r: &mut &[u8]| {
            take(r, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
        };
        let total = u64_of(&mut r).ok_or_else(bad)?;
        let mut index = Index::default();
        while let Some(tag) = take(&mut r, 1) {
            match tag[0] {
                b'R' => {
                    let n = u64_of(&mut r).ok_or_else(bad)?;
                    let b = take(&mut r, usize::try_from(n).map_err(|_| bad())?).ok_or_else(bad)?;
                    index.total += n;
                    index.segments.push(Segment::Raw(b.to_vec()));
                }
                b'Z' => {
                    let n = u64_of(&mut r).ok_or_else(bad)?;
                    index.total += n;
                    index.segments.push(Segment::Zeros(n));
                }
                b'F' => {
                    let size = u64_of(&mut r).ok_or_else(bad)?;
                    let len = take(&mut r, 4).ok_or_else(bad)?;
                    let len = u32::from_le_bytes(len.try_into().map_err(|_| bad())?) as usize;
                    let path = take(&mut r, len).ok_or_else(bad)?;
                    index.file(path.to_vec(), size);
                }
                _ => return Err(bad()),
            }
        }
        if index.total != total {
            return Err(bad());
        }
        Ok(index)
    }
}

/// Reads a layer tar back from its index and its snapshot. A snapshot file that is missing,
/// not a regular file, or not the size the index names is an error, never a different tar.
pub(crate) struct Rebuild {
    root: OwnedFd,
    segments: std::vec::IntoIter<Segment>,
    current: Current,
}

enum Current {
    Done,
    Raw(Vec<u8>, usize),
    Zeros(u64),
    File {
        file: File,
        left: u64,
        path: Vec<u8>,
    },
}

impl Rebuild {
    /// A reader of the tar `index` describes, over the snapshot directory `snapshot`.
    pub(crate) fn new(index: Index, snapshot: &Path) -> Result<Rebuild, Error> {
        let root = File::open(snapshot).map_err(|e| ctx(e, snapshot.display()))?;
        Ok(Rebuild {
            root: OwnedFd::from(root),
            segments: index.segments.into_iter(),
            current: Current::Done,
        })
    }

    fn open(&self, path: &[u8], size: u64) -> io::Result<File> {
        // The index never names a path through a symlink; refusing any keeps reads inside.
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        let what = String::from_utf8_lossy(path);
        let fd = openat2(self.root.as_raw_fd(), OsStr::from_bytes(path), how)
            .map_err(|e| io::Error::other(format!("layer file {what}: {e}")))?;
        // SAFETY: openat2 just returned this descriptor and nothing else owns it.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let meta = file.metadata()?;
        if !meta.is_file() || meta.len() != size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "layer file {what} changed since the layer was stored ({} bytes, expected {size})",
                    meta.len()
                ),
            ));
        }
        Ok(file)
    }
}

impl Read for Rebuild {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.current {
                Current::Done => {
                    self.current = match self.segments.next() {
                        None => return Ok(0),
                        Some(Segment::Raw(b)) => Current::Raw(b, 0),
                        Some(Segment::Zeros(n)) => Current::Zeros(n),
                        Some(Segment::File { path, size }) => {
                            let file = self.open(&path, size)?;
                            Current::File {
                                file,
                                left: size,
                                path,
                            }
                        }
                    };
                }
                Current::Raw(b, at) => {
                    let n = (b.len() - *at).min(buf.len());
                    if n == 0 {
                        self.current = Current::Done;
                        continue;
                    }
                    buf[..n].copy_from_slice(&b[*at..*at + n]);
                    *at += n;
                    return Ok(n);
                }
                Current::Zeros(left) => {
                    let n = (*left).min(buf.len() as u64) as usize;
                    if n == 0 {
                        self.current = Current::Done;
                        continue;
                    }
                    buf[..n].fill(0);
                    *left -= n as u64;
                    return Ok(n);
                }
                Current::File { file, left, path } => {
                    if *left == 0 {
                        self.current = Current::Done;
                        continue;
                    }
                    let want = (*left).min(buf.len() as u64) as usize;
                    let n = file.read(&mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "layer file {} shrank while being read",
                                String::from_utf8_lossy(path)
                            ),
                        ));
                    }
                    *left -= n as u64;
                    return Ok(n);
                }
            }
        }
    }
}

/// What a split layer leaves to publish: its index, or (fallback) its whole tar as a blob.
#[derive(Debug)]
pub(crate) enum Split {
    Index(Index),
    Blob(PendingBlob),
}

/// The reader the unpacker reads a layer tar through: hashes every byte (the diff ID) and
/// splits the stream into an index as it goes.
pub(crate) struct SplitReader<'a, R> {
    inner: R,
    hasher: ParallelHash,
    size: u64,
    splitter: Splitter<'a>,
}

impl<'a, R: Read> SplitReader<'a, R> {
    /// Splits `inner`, a tar being unpacked into `snapshot`; a fallback blob goes to `blobs`.
    pub(crate) fn new(inner: R, snapshot: &'a Path, blobs: &'a ContentStore) -> Self {
        SplitReader {
            inner,
            hasher: ParallelHash::new(),
            size: 0,
            splitter: Splitter {
                snapshot,
                blobs,
                mode: Mode::Index(Box::default()),
            },
        }
    }

    /// Reads what is left (bytes after the end-of-archive marker belong to the tar too) and
    /// returns the diff ID, the tar's size and its index or blob.
    pub(crate) fn finish(mut self) -> Result<(String, u64, Split), Error> {
        let mut buf = vec![0u8; 64 << 10];
        while self.read(&mut buf).map_err(read_err)? > 0 {}
        let digest = self.hasher.finish()?;
        let split = match self.splitter.mode {
            Mode::Index(mut st) => {
                if let State::Header { block, have } = &st.state {
                    st.index.verbatim(&block[..*have]);
                }
                if st.index.total != self.size {
                    return Err(Error::Corrupt("layer index lost bytes".into()));
                }
                Split::Index(st.index)
            }
            Mode::Blob(w) => {
                let pending = w.finish()?;
                if pending.digest != digest {
                    return Err(Error::Corrupt(
                        "layer blob does not match the stream".into(),
                    ));
                }
                Split::Blob(pending)
            }
        };
        Ok((digest, self.size, split))
    }
}

/// sha256 on a second core: the unpacking thread only copies its bytes into batches.
struct ParallelHash {
    batch: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<String>>,
}

impl ParallelHash {
    const BATCH: usize = 1 << 20;

    fn new() -> ParallelHash {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let worker = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            for batch in rx {
                hasher.update(&batch);
            }
            format_digest(hasher.finalize().as_slice())
        });
        ParallelHash {
            batch: Vec::with_capacity(Self::BATCH),
            tx: Some(tx),
            worker: Some(worker),
        }
    }

    fn update(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.batch.extend_from_slice(bytes);
        if self.batch.len() >= Self::BATCH {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(Self::BATCH));
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("hash finished"))?;
        tx.send(batch)
            .map_err(|_| io::Error::other("layer hashing stopped"))
    }

    fn finish(&mut self) -> Result<String, Error> {
        if !self.batch.is_empty() {
            self.send().map_err(Error::Io)?;
        }
        self.tx = None;
        let worker = self
            .worker
            .take()
            .ok_or_else(|| Error::Corrupt("hash finished twice".into()))?;
        worker
            .join()
            .map_err(|_| Error::Corrupt("layer hashing panicked".into()))
    }
}

impl Drop for ParallelHash {
    fn drop(&mut self) {
        // Closing the channel ends the worker; joining it leaves no thread behind.
        self.tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

impl<R: Read> Read for SplitReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n])?;
        self.size += n as u64;
        self.splitter.feed(&buf[..n])?;
        Ok(n)
    }
}

struct Splitter<'a> {
    snapshot: &'a Path,
    blobs: &'a ContentStore,
    mode: Mode,
}

enum Mode {
    Index(Box<Indexing>),
    Blob(BlobWriter),
}

/// The parse state while the layer is still representable as an index.
struct Indexing {
    index: Index,
    state: State,
    /// Paths whose content the index takes from the snapshot, and every directory above one.
    files: HashSet<Vec<u8>>,
    dirs: HashSet<Vec<u8>>,
    /// Symlinks this layer made: a later path through one lands somewhere else.
    symlinks: HashSet<Vec<u8>>,
    /// PAX records and GNU long name waiting for the entry they describe.
    pax: Option<Vec<u8>>,
    long_name: Option<Vec<u8>>,
    /// The path of the entry `entry` just chose to take from the snapshot.
    file_path: Option<Vec<u8>>,
}

impl Default for Indexing {
    fn default() -> Self {
        Indexing {
            index: Index::default(),
            state: State::Header {
                block: Box::new([0; BLOCK]),
                have: 0,
            },
            files: HashSet::new(),
            dirs: HashSet::new(),
            symlinks: HashSet::new(),
            pax: None,
            long_name: None,
            file_path: None,
        }
    }
}

enum State {
    Header {
        block: Box<[u8; BLOCK]>,
        have: usize,
    },
    Data {
        left: u64,
        pad: u64,
        data: Data,
    },
    Pad {
        left: u64,
    },
    /// After the end-of-archive block: whatever follows is kept as it is.
    Trailer,
}

enum Data {
    /// A file's content, which the index takes from the snapshot.
    InSnapshot,
    Verbatim,
    /// An extension header's records, kept and also parsed.
    Capture(Vec<u8>, Ext),
}

#[derive(Clone, Copy)]
enum Ext {
    LongName,
    Pax,
}

/// What a header asks of the splitter.
enum Verdict {
    Continue,
    /// The layer cannot be an index (see the module doc): switch to a blob before this header.
    Fallback(&'static str),
}

impl Splitter<'_> {
    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let st = match &mut self.mode {
                Mode::Blob(w) => return w.write_all(bytes),
                Mode::Index(st) => st,
            };
            match &mut st.state {
                State::Header { block, have } => {
                    let n = (BLOCK - *have).min(bytes.len());
                    block[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == BLOCK {
                        let block = std::mem::replace(block, Box::new([0; BLOCK]));
                        if let Verdict::Fallback(why) = st.header(&block) {
                            self.fall_back(&block[..], why)?;
                        }
                    }
                }
                State::Data { left, pad, data } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    let (now, rest) = bytes.split_at(n);
                    match data {
                        Data::InSnapshot => {}
                        Data::Verbatim => st.index.verbatim(now),
                        Data::Capture(c, _) => {
                            st.index.verbatim(now);
                            c.extend_from_slice(now);
                        }
                    }
                    *left -= n as u64;
                    bytes = rest;
                    if *left == 0 {
                        let pad = *pad;
                        if let State::Data {
                            data: Data::Capture(c, ext),
                            ..
                        } = std::mem::replace(&mut st.state, State::Pad { left: pad })
                        {
                            match ext {
                                Ext::LongName => st.long_name = Some(c),
                                Ext::Pax => st.pax = Some(c),
                            }
                        }
                        if pad == 0 {
                            st.state = State::header();
                        }
                    }
                }
                State::Pad { left } => {
                    let n = (*left).min(bytes.len() as u64) as usize;
                    st.index.verbatim(&bytes[..n]);
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        st.state = State::header();
                    }
                }
                State::Trailer => {
                    st.index.verbatim(bytes);
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Writes the tar so far into a blob and sends the rest of the stream there. Called at a
    /// header, so every file the index so far names is complete and unchanged in the snapshot.
    fn fall_back(&mut self, header: &[u8], why: &str) -> io::Result<()> {
        tracing::debug!(why, "layer kept as a whole tar");
        let Mode::Index(st) = std::mem::replace(&mut self.mode, Mode::Index(Box::default())) else {
            return Ok(());
        };
        let mut blob = self.blobs.writer().map_err(io::Error::other)?;
        let mut so_far = Rebuild::new(st.index, self.snapshot).map_err(io::Error::other)?;
        io::copy(&mut so_far, &mut blob)?;
        blob.write_all(header)?;
        self.mode = Mode::Blob(blob);
        Ok(())
    }
}

impl State {
    fn header() -> State {
        State::Header {
            block: Box::new([0; BLOCK]),
            have: 0,
        }
    }
}

fn join(comps: &[std::ffi::OsString]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c.as_bytes());
    }
    out
}

/// A PAX record's value, read the way the tar crate reads it (`len key=value\n` lines; a
/// malformed line ends the search for `size`, and is skipped in the search for `path`).
fn pax_value<'a>(records: &'a [u8], key: &[u8], stop_at_bad: bool) -> Option<&'a [u8]> {
    for line in records.split(|&b| b == b'\n') {
        if line.is_empty() {
            return None;
        }
        let parsed = line.iter().position(|&b| b == b' ').and_then(|sp| {
            let len: usize = std::str::from_utf8(&line[..sp]).ok()?.parse().ok()?;
            if line.len() + 1 != len {
                return None;
            }
            let eq = line[sp + 1..].iter().position(|&b| b == b'=')?;
            Some((&line[sp + 1..sp + 1 + eq], &line[sp + 2 + eq..]))
        });
        match parsed {
            Some((k, v)) if k == key => return Some(v),
            Some(_) => {}
            None if stop_at_bad => return None,
            None => {}
        }
    }
    None
}

impl Indexing {
    /// Handles one header block (not yet in the index).
    fn header(&mut self, block: &[u8; BLOCK]) -> Verdict {
        if block.iter().all(|&b| b == 0) {
            // The tar crate stops at the first zero block; all that follows is trailer.
            self.index.verbatim(block);
            self.state = State::Trailer;
            return Verdict::Continue;
        }
        let h = tar::Header::from_byte_slice(block);
        let sum: u32 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|&b| u32::from(b))
            .sum::<u32>()
            + 8 * 32;
        if h.cksum().ok() != Some(sum) {
            return Verdict::Fallback("bad header checksum");
        }
        let Ok(mut size) = h.entry_size() else {
            return Verdict::Fallback("bad size field");
        };
        let kind = h.entry_type();
        let recognized = h.as_ustar().is_some() || h.as_gnu().is_some();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if !extension {
            let pax_size = self
                .pax
                .as_deref()
                .and_then(|p| pax_value(p, b"size", true));
            if let Some(s) = pax_size.and_then(|s| std::str::from_utf8(s).ok()?.parse::<u64>().ok())
            {
                size = s;
            }
        }
        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        let data = if recognized && (kind.is_gnu_longname() || kind.is_pax_local_extensions()) {
            if size > 16 << 20 {
                return Verdict::Fallback("huge extension header");
            }
            let ext = if kind.is_gnu_longname() {
                Ext::LongName
            } else {
                Ext::Pax
            };
            Data::Capture(Vec::new(), ext)
        } else if recognized && kind.is_gnu_longlink() {
            Data::Verbatim
        } else {
            match self.entry(&h, kind, size) {
                Ok(d) => d,
                Err(why) => return Verdict::Fallback(why),
            }
        };
        self.index.verbatim(block);
        let data = match data {
            Data::InSnapshot => {
                let path = self.file_path.take().unwrap_or_default();
                self.index.file(path, size);
                Data::InSnapshot
            }
            // An empty extension still applies to the next entry.
            Data::Capture(c, Ext::LongName) if size == 0 => {
                self.long_name = Some(c);
                Data::Verbatim
            }
            Data::Capture(c, Ext::Pax) if size == 0 => {
                self.pax = Some(c);
                Data::Verbatim
            }
            d => d,
        };
        self.state = if size == 0 {
            State::header()
        } else {
            State::Data {
                left: size,
                pad,
                data,
            }
        };
        Verdict::Continue
    }

    /// Decides how an entry's content is kept, and whether the entry could undo what the
    /// index took from the snapshot. Takes the PAX records and long name that describe it.
    fn entry(
        &mut self,
        h: &tar::Header,
        kind: tar::EntryType,
        size: u64,
    ) -> Result<Data, &'static str> {
        let long_name = self.long_name.take();
        let pax = self.pax.take();
        if kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
        {
            // Not consumed as an extension (no ustar or GNU magic): the unpacker skips it.
            return Ok(Data::Verbatim);
        }
        if kind.is_gnu_sparse() {
            return Err("GNU sparse entry");
        }
        let raw = match long_name {
            Some(mut l) => {
                if l.last() == Some(&0) {
                    l.pop();
                }
                l
            }
            None => match pax.as_deref().and_then(|p| pax_value(p, b"path", false)) {
                Some(p) => p.to_vec(),
                None => h.path_bytes().into_owned(),
            },
        };
        let comps = clean_path(&raw).map_err(|_| "bad path")?;
        if !self.symlinks.is_empty()
            && (1..comps.len()).any(|i| self.symlinks.contains(&join(&comps[..i])))
        {
            return Err("path through a symlink of the layer");
        }
        let Some(name) = comps.last() else {
            return Ok(Data::Verbatim); // the layer's root directory
        };
        let path = join(&comps);
        let name = name.as_bytes();
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            // Opaque markers and aufs bookkeeping (`.wh..wh.*`) remove nothing.
            if !name.starts_with(b".wh..wh.") {
                let mut target = join(&comps[..comps.len() - 1]);
                if !target.is_empty() {
                    target.push(b'/');
                }
                target.extend_from_slice(hidden);
                if self.files.contains(&target) || self.dirs.contains(&target) {
                    return Err("whiteout of a file of the same layer");
                }
            }
            return Ok(Data::Verbatim);
        }
        if kind.is_dir() {
            // Directories merge into existing ones; only a file in the way is removed.
            return if self.files.contains(&path) {
                Err("directory over a file of the same layer")
            } else {
                Ok(Data::Verbatim)
            };
        }
        if self.files.contains(&path) || self.dirs.contains(&path) {
            return Err("entry replaces a file of the same layer");
        }
        if kind.is_symlink() {
            self.symlinks.insert(path);
            return Ok(Data::Verbatim);
        }
        if matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) && size > 0 {
            for i in 1..comps.len() {
                self.dirs.insert(join(&comps[..i]));
            }
            self.files.insert(path.clone());
            self.file_path = Some(path);
            return Ok(Data::InSnapshot);
        }
        Ok(Data::Verbatim)
    }
}

/// Truncated or corrupt input is the archive's fault; anything else (a full disk behind the
/// fallback blob) is a real I/O error.
fn read_err(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData | io::ErrorKind::Other => {
            Error::InvalidArchive(e.to_string())
        }
        _ => Error::Io(e),
    }
}

/// The directory of layer indexes: `<root>/layer-index/<diff hex>`.
#[derive(Debug)]
pub(crate) struct IndexDir {
    dir: PathBuf,
}

impl IndexDir {
    pub(crate) fn open(root: &Path) -> Result<IndexDir, Error> {
        let dir = root.join("layer-index");
        std::fs::create_dir_all(&dir).map_err(|e| ctx(e, dir.display()))?;
        Ok(IndexDir { dir })
    }

    /// Where the index of layer `diff_id` is (or would be).
    pub(crate) fn path(&self, diff_id: &str) -> Result<PathBuf, Error> {
        let hex =
            hex_part(diff_id).ok_or_else(|| Error::Corrupt(format!("bad digest {diff_id:?}")))?;
        Ok(self.dir.join(hex))
    }

    /// The index of layer `diff_id`, if it has one.
    pub(crate) fn read(&self, diff_id: &str) -> Result<Option<Index>, Error> {
        let path = self.path(diff_id)?;
        match std::fs::read(&path) {
            Ok(bytes) => Index::decode(&bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ctx(e, path.display())),
        }
    }

    /// Writes the index of `diff_id` under a temp name, durably; `commit` publishes it.
    pub(crate) fn write(&self, diff_id: &str, index: &Index) -> Result<PendingIndex, Error> {
        let to = self.path(diff_id)?;
        let tmp = self.dir.join(temp_name("index"));
        let pending = PendingIndex {
            dir: self.dir.clone(),
            tmp: Some(tmp.clone()),
            to,
        };
        let mut f = File::create(&tmp).map_err(|e| ctx(e, tmp.display()))?;
        f.write_all(&index.encode())
            .and_then(|_| f.sync_all())
            .map_err(|e| ctx(e, tmp.display()))?;
        Ok(pending)
    }

    /// Removes the index of `diff_id`; idempotent.
    pub(crate) fn remove(&self, diff_id: &str) -> Result<(), Error> {
        remove_file(&self.path(diff_id)?)
    }

    /// Removes temp files and the indexes of layers `keep` rejects. Run at open only.
    pub(crate) fn gc(&self, keep: impl Fn(&str) -> bool) -> Result<usize, Error> {
        let mut removed = 0;
        let rd = std::fs::read_dir(&self.dir).map_err(|e| ctx(e, self.dir.display()))?;
        for entry in rd {
            let entry = entry.map_err(|e| ctx(e, self.dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let digest = format!("sha256:{name}");
            if name.starts_with(TEMP_PREFIX) || hex_part(&digest).is_none() || !keep(&digest) {
                remove_file(&entry.path())?;
                removed += 1;
            }
        }
        if removed > 0 {
            fsync_dir(&self.dir)?;
        }
        Ok(removed)
    }
}

/// An index written under a temp name; removed on drop unless committed.
#[derive(Debug)]
pub(crate) struct PendingIndex {
    dir: PathBuf,
    tmp: Option<PathBuf>,
    to: PathBuf,
}

impl PendingIndex {
    /// Publishes the index. Replacing an existing one is harmless: same layer, same bytes.
    pub(crate) fn commit(mut self) -> Result<(), Error> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        if let Err(e) = std::fs::rename(&tmp, &self.to) {
            let _ = std::fs::remove_file(&tmp);
            return Err(ctx(e, self.to.display()));
        }
        fsync_dir(&self.dir)
    }
}

impl Drop for PendingIndex {
    fn drop(&mut self) {
        if let Some(p) = self.tmp.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A layer unpacked into a temp snapshot, with its tar kept as an index (or, when it cannot
/// be, as a blob) under temp names: nothing is visible until [`Store::publish_split`].
#[derive(Debug)]
pub(crate) struct SplitLayer {
    /// sha256 of the uncompressed tar.
    pub(crate) diff_id: String,
    /// Size of the uncompressed tar.
    pub(crate) tar_size: u64,
    /// Unpacked content size (Docker's layer size).
    pub(crate) size: u64,
    pub(crate) snapshot: crate::snapshot::TempSnapshot,
    pub(crate) stored: Stored,
}

/// How a split layer's tar is kept.
#[derive(Debug)]
pub(crate) enum Stored {
    /// The index (also kept in memory, to rebuild the tar before it is published).
    Index(Index, PendingIndex),
    Blob(PendingBlob),
}

impl SplitLayer {
    /// The layer's tar, read back before it is published (a second use of one archive member).
    pub(crate) fn reader(&self) -> Result<Box<dyn Read + '_>, Error> {
        match &self.stored {
            Stored::Index(index, _) => {
                Ok(Box::new(Rebuild::new(index.clone(), self.snapshot.path())?))
            }
            Stored::Blob(blob) => {
                let p = blob
                    .temp_path()
                    .ok_or_else(|| Error::Corrupt("blob already published".into()))?;
                Ok(Box::new(File::open(p).map_err(|e| ctx(e, p.display()))?))
            }
        }
    }
}

/// A layer's uncompressed tar as `save` and `push` read it. Checks at the end that the bytes
/// are the ones its diff ID names: a damaged store fails the reader rather than handing out a
/// different tar.
pub struct LayerTar {
    inner: Box<dyn Read + Send>,
    size: u64,
    diff_id: String,
    hasher: Sha256,
    read: u64,
}

impl LayerTar {
    /// Size of the tar in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for LayerTar {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if n == 0 && !buf.is_empty() {
            let got = format_digest(self.hasher.clone().finalize().as_slice());
            if got != self.diff_id || self.read != self.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "layer {} does not match its digest (read {got}, {} bytes of {})",
                        self.diff_id, self.read, self.size
                    ),
                ));
            }
        }
        Ok(n)
    }
}

impl crate::Store {
    /// Unpacks the uncompressed layer tar `input` into a temp snapshot while splitting it
    /// into an index; reads `input` to its end (trailing bytes are part of the tar).
    pub(crate) fn unpack_split(&self, input: &mut dyn Read) -> Result<SplitLayer, Error> {
        let snapshot = self.snapshots.temp()?;
        // The buffer sits under the splitter, never between it and the unpacker (module doc).
        let buffered = io::BufReader::with_capacity(crate::unpack::BUF_SIZE, input);
        let mut reader = SplitReader::new(buffered, snapshot.path(), &self.content);
        let unpacked = crate::unpack::unpack(&mut reader, snapshot.path())?;
        let (diff_id, tar_size, split) = reader.finish()?;
        let stored = match split {
            Split::Index(index) => {
                let pending = self.indexes.write(&diff_id, &index)?;
                Stored::Index(index, pending)
            }
            Split::Blob(blob) => Stored::Blob(blob),
        };
        Ok(SplitLayer {
            diff_id,
            tar_size,
            size: unpacked.size,
            snapshot,
            stored,
        })
    }

    /// Publishes a split layer's files under `chain`; call under the store lock, before the
    /// transaction that records the layer.
    pub(crate) fn publish_split(&self, layer: SplitLayer, chain: &str) -> Result<(), Error> {
        match layer.stored {
            Stored::Index(_, pending) => pending.commit()?,
            Stored::Blob(blob) => blob.commit()?,
        }
        self.snapshots.commit(layer.snapshot, chain)
    }

    /// Reads layer `diff_id`'s uncompressed tar: its blob where the store keeps one (layers
    /// stored before indexes, or that could not be indexed), else its index over a snapshot
    /// of that layer.
    pub fn layer_tar(&self, diff_id: &str) -> Result<LayerTar, Error> {
        let blob = self.content.path(diff_id)?;
        let (inner, size): (Box<dyn Read + Send>, u64) = match File::open(&blob) {
            Ok(f) => {
                let size = f.metadata().map_err(|e| ctx(e, blob.display()))?.len();
                (Box::new(f), size)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let index = self.indexes.read(diff_id)?.ok_or_else(|| {
                    Error::Corrupt(format!("layer {diff_id} has neither a tar nor an index"))
                })?;
                let snapshot = self.snapshot_of(diff_id)?;
                let size = index.total;
                (Box::new(Rebuild::new(index, &snapshot)?), size)
            }
            Err(e) => return Err(ctx(e, blob.display())),
        };
        Ok(LayerTar {
            inner,
            size,
            diff_id: diff_id.to_string(),
            hasher: Sha256::new(),
            read: 0,
        })
    }

    /// What keeps layer `diff_id`'s tar on disk besides its snapshot (for `system df`): its
    /// blob, else its index.
    pub(crate) fn layer_tar_file(&self, diff_id: &str) -> Result<PathBuf, Error> {
        let blob = self.content.path(diff_id)?;
        if blob.exists() {
            return Ok(blob);
        }
        self.indexes.path(diff_id)
    }

    /// Whether the store keeps layer `diff_id`'s tar (as a blob or an index).
    pub(crate) fn has_layer_tar(&self, diff_id: &str) -> Result<bool, Error> {
        Ok(self.content.path(diff_id)?.exists() || self.indexes.path(diff_id)?.exists())
    }

    /// A snapshot of a layer with diff ID `diff_id` (any chain: a layer's unpacked content
    /// does not depend on its parents).
    fn snapshot_of(&self, diff_id: &str) -> Result<PathBuf, Error> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = self.db.begin_read()?;
        let layers = txn.open_table(crate::images::LAYERS)?;
        for item in layers.iter()? {
            let (k, v) = item?;
            let rec: crate::images::LayerRecord = crate::images::decode("layer record", v.value())?;
            if rec.diff_id == diff_id {
                let path = self.snapshots.path(k.value())?;
                if path.is_dir() {
                    return Ok(path);
                }
            }
        }
        Err(Error::Corrupt(format!(
            "layer {diff_id} has no snapshot to read its tar from"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{require_root, TarBuf};
    use tar::{EntryType, Header};

    /// Unpacks `tar` through a splitter; returns what it kept, the snapshot's dir and the blobs.
    fn split(tar: &[u8]) -> (tempfile::TempDir, Split, String) {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("snap");
        std::fs::create_dir(&snap).unwrap();
        let blobs = ContentStore::open(dir.path()).unwrap();
        let mut reader = SplitReader::new(tar, &snap, &blobs);
        crate::unpack::unpack(&mut reader, &snap).unwrap();
        let (digest, size, split) = reader.finish().unwrap();
        assert_eq!(size, tar.len() as u64);
        (dir, split, digest)
    }

    fn rebuilt(dir: &Path, index: Index) -> Vec<u8> {
        let mut out = Vec::new();
        Rebuild::new(index, &dir.join("snap"))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn special(b: &mut tar::Builder<Vec<u8>>, kind: EntryType, path: &str, link: Option<&str>) {
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o755);
        if kind == EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        match link {
            Some(l) => b.append_link(&mut h, path, l).unwrap(),
            None => b.append_data(&mut h, path, io::empty()).unwrap(),
        }
    }

    #[test]
    fn tricky_tars_are_rebuilt_byte_for_byte() {
        if !require_root("tricky_tars_are_rebuilt_byte_for_byte") {
            return;
        }
        let mut b = tar::Builder::new(Vec::new());
        special(&mut b, EntryType::Directory, "./", None);
        special(&mut b, EntryType::Directory, "etc", None);
        file(&mut b, "etc/hostname", b"box\n");
        file(&mut b, "etc/empty", b"");
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        file(&mut b, "./usr//lib/big", &big);
        // A GNU long name (over 100 bytes) and a PAX header with path, size and xattrs.
        let long = format!("deep/{}/file", "d".repeat(120));
        file(&mut b, &long, b"long named");
        let pax_path = format!("pax/{}/named", "p".repeat(150));
        b.append_pax_extensions([
            ("path", pax_path.as_bytes()),
            ("SCHILY.xattr.user.k", b"v".as_slice()),
            ("mtime", b"1600000000.5".as_slice()),
        ])
        .unwrap();
        file(&mut b, "short-name-replaced-by-pax", b"pax content");
        special(&mut b, EntryType::Symlink, "etc/link", Some("hostname"));
        special(&mut b, EntryType::Link, "etc/hard", Some("etc/hostname"));
        special(&mut b, EntryType::Char, "dev-null", None);
        special(&mut b, EntryType::Fifo, "fifo", None);
        file(&mut b, "etc/.wh.gone", b"");
        file(&mut b, "usr/.wh..wh..opq", b"");
        let mut tar = b.into_inner().unwrap();
        // Docker's tars end with two zero blocks, GNU tar's pad to a record; junk may follow.
        tar.extend_from_slice(&[0u8; 10240]);
        tar.extend_from_slice(b"trailing junk after the end");

        let (dir, split, digest) = split(&tar);
        assert_eq!(digest, crate::digest::sha256_of(&tar));
        let Split::Index(index) = split else {
            panic!("fell back to a blob")
        };
        // The index holds no file content: far smaller than the tar.
        let encoded = index.encode();
        assert!(encoded.len() < 8 << 10, "{} bytes", encoded.len());
        assert_eq!(Index::decode(&encoded).unwrap(), index);
        assert_eq!(rebuilt(dir.path(), index.clone()), tar);
        assert_eq!(
            std::fs::read(dir.path().join("snap").join(&pax_path)).unwrap(),
            b"pax content"
        );

        // A snapshot file whose size changed is an error, never a different tar.
        std::fs::write(dir.path().join("snap/usr/lib/big"), b"short").unwrap();
        let mut out = Vec::new();
        let err = Rebuild::new(index.clone(), &dir.path().join("snap"))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("changed since the layer was stored"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("snap/usr/lib/big")).unwrap();
        assert!(Rebuild::new(index, &dir.path().join("snap"))
            .unwrap()
            .read_to_end(&mut out)
            .is_err());
    }

    #[test]
    fn layers_that_undo_their_own_files_keep_their_whole_tar() {
        if !require_root("layers_that_undo_their_own_files_keep_their_whole_tar") {
            return;
        }
        let twice = {
            let mut t = TarBuf::new();
            t.file("a/f", b"first")
                .file("x", b"kept")
                .file("a/f", b"second");
            t.finish()
        };
        let whiteout = {
            let mut t = TarBuf::new();
            t.file("a/f", b"first").file(".wh.a", b"");
            t.finish()
        };
        let through_symlink = {
            let mut t = TarBuf::new();
            t.file("real/f", b"first")
                .raw(EntryType::Symlink, "alias", Some("real"), b"", 0o777, 0)
                .file("alias/f", b"second");
            t.finish()
        };
        let link_over_dir = {
            let mut t = TarBuf::new();
            t.file("d/f", b"content")
                .raw(EntryType::Symlink, "d", Some("/"), b"", 0o777, 0);
            t.finish()
        };
        for tar in [twice, whiteout, through_symlink, link_over_dir] {
            let (_dir, split, digest) = split(&tar);
            let Split::Blob(blob) = split else {
                panic!("indexed a layer that undoes its files")
            };
            assert_eq!(blob.digest, digest);
            assert_eq!(std::fs::read(blob.temp_path().unwrap()).unwrap(), tar);
        }
        // Directories merge: a later entry for a directory of indexed files is no conflict.
        let mut t = TarBuf::new();
        t.file("d/f", b"content").dir("d/");
        let tar = t.finish();
        let (dir, split, _) = split(&tar);
        let Split::Index(index) = split else {
            panic!("a directory entry forced a blob")
        };
        assert_eq!(rebuilt(dir.path(), index), tar);
    }

    #[test]
    fn a_pax_size_overrides_the_header_size() {
        if !require_root("a_pax_size_overrides_the_header_size") {
            return;
        }
        let mut t = TarBuf::new();
        t.pax(&[("size", b"700")]);
        let mut tar = t.finish();
        tar.truncate(tar.len() - 1024); // the end-of-archive blocks
                                        // A header claiming 0 bytes, then 700 bytes of content, as the PAX record says.
        let mut h = Header::new_ustar();
        h.set_path("f").unwrap();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend((0..700u32).map(|i| (i % 200 + 1) as u8));
        tar.extend_from_slice(&[0u8; 324 + 1024]);
        let (dir, split, _) = split(&tar);
        assert_eq!(
            std::fs::metadata(dir.path().join("snap/f")).unwrap().len(),
            700
        );
        let Split::Index(index) = split else {
            panic!("fell back")
        };
        assert_eq!(rebuilt(dir.path(), index), tar);
    }
}
