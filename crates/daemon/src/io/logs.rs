//! Reads json-file and local logs (written by the shim; a local log's rotated files are
//! gzipped, `log.N.gz`), for `GET /containers/{id}/logs`: the tail,
//! then (when following) what is appended, across rotations. Entries are streamed as they
//! are read, so memory stays flat whatever the size of the log.

pub mod driver;

use berth_api::frame::{self, Stream};
use berth_runtime::protocol::LOG_GZ_INODE_COMMENT;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How much a reader buffers from the file.
const READ_BUFFER: usize = 64 << 10;
/// The most rotated files looked at (`log.1` .. `log.N`); dockerd has no limit on max-file,
/// but a log of more files than this is not something berth writes by default.
const MAX_ROTATED: u32 = 1000;

/// One line of a json-file log.
#[derive(Debug, serde::Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
    /// From the labels, env and tag log options; shown by `logs --details`.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
}

/// What the client asked for.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
    /// Prefix each line with its attrs, as `logs --details` shows them.
    pub details: bool,
    /// Frame entries in Docker's multiplexed format (no TTY) or send them raw (TTY).
    pub multiplexed: bool,
    /// Only entries at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries at or before this time.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The API's `since`/`until`: Unix `seconds[.nanoseconds]`, as Docker's clients send them;
/// `0` or empty means unset. `None` inside `Ok` when unset.
pub fn parse_time(value: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let Some(v) = value.filter(|v| !v.is_empty() && *v != "0") else {
        return Ok(None);
    };
    let bad = || format!("invalid timestamp: {v:?}");
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else if frac.len() <= 9 && frac.chars().all(|c| c.is_ascii_digit()) {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    chrono::DateTime::from_timestamp(secs, nanos)
        .map(Some)
        .ok_or_else(bad)
}

impl Options {
    /// Whether an entry falls inside `since`..`until`.
    pub fn in_window(&self, entry: &Entry) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(&entry.time) else {
            return true;
        };
        let t = t.with_timezone(&chrono::Utc);
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }

    /// Appends the entry as sent on the wire to `out`, unless its stream or time was not
    /// asked for; returns whether it did. dockerd's order: timestamp, details, line.
    pub fn encode_into(&self, entry: &Entry, out: &mut Vec<u8>) -> bool {
        if !self.in_window(entry) {
            return false;
        }
        let stream = match entry.stream.as_str() {
            "stderr" => Stream::Stderr,
            _ => Stream::Stdout,
        };
        let wanted = match stream {
            Stream::Stderr => self.stderr,
            _ => self.stdout,
        };
        if !wanted {
            return false;
        }
        let mut payload = String::new();
        if self.timestamps {
            payload.push_str(&entry.time);
            payload.push(' ');
        }
        if self.details {
            payload.push_str(&details_prefix(&entry.attrs));
        }
        payload.push_str(&entry.log);
        if self.multiplexed {
            frame::encode(stream, payload.as_bytes(), out);
        } else {
            out.extend_from_slice(payload.as_bytes());
        }
        true
    }

    /// The entry as sent on the wire, or `None` if its stream or time was not asked for.
    #[cfg(test)]
    pub fn encode(&self, entry: &Entry) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.encode_into(entry, &mut out).then_some(out)
    }
}

/// dockerd's `--details` prefix: the attrs sorted by key, query-escaped, as
/// `k=v,k2=v2`, then a space (a lone space without attrs).
pub fn details_prefix(attrs: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = attrs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    format!("{} ", pairs.join(","))
}

/// Go's `url.QueryEscape`: unreserved bytes stay, space becomes `+`, the rest `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `log` for 0, `log.N` otherwise.
fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// One file of the log, read line by line; knows its inode so rotation can be followed.
pub struct LogFile {
    reader: BufReader<File>,
    inode: u64,
    /// Offset just past what has been read (whole lines and `partial`).
    pos: u64,
    /// The start of a line the shim is still writing.
    partial: Vec<u8>,
    /// For a gzipped file: the `.gz` itself, held open so that its inode (this file's
    /// identity) cannot be given to a new file while it is followed.
    _gz: Option<File>,
}

impl LogFile {
    fn open(path: &Path) -> Option<LogFile> {
        let f = File::open(path).ok()?;
        let inode = f.metadata().ok()?.ino();
        Some(LogFile {
            reader: BufReader::with_capacity(READ_BUFFER, f),
            inode,
            pos: 0,
            partial: Vec::new(),
            _gz: None,
        })
    }

    /// A gzipped rotated file, decompressed into an anonymous memory file so it reads (and
    /// tails) as a plain one; known by the inode of the `.gz`.
    fn open_gz(path: &Path) -> Option<LogFile> {
        use std::os::fd::FromRawFd;
        let held = File::open(path).ok()?;
        let inode = held.metadata().ok()?.ino();
        let gz = flate2::read::GzDecoder::new(held.try_clone().ok()?);
        // SAFETY: a constant C string and flags; a non-negative result is a new fd we own.
        let raw = unsafe { libc::memfd_create(c"berth-log".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let mut plain = unsafe { File::from_raw_fd(raw) };
        let mut gz = gz;
        std::io::copy(&mut gz, &mut plain).ok()?;
        plain.seek(SeekFrom::Start(0)).ok()?;
        Some(LogFile {
            reader: BufReader::with_capacity(READ_BUFFER, plain),
            inode,
            pos: 0,
            partial: Vec::new(),
            _gz: Some(held),
        })
    }

    /// File `n` of the log: `log.N`, or else its gzipped form `log.N.gz`.
    fn open_numbered(path: &Path, n: u32) -> Option<LogFile> {
        LogFile::open(&numbered(path, n)).or_else(|| {
            let gz = PathBuf::from(format!("{}.gz", numbered(path, n).display()));
            (n > 0).then(|| LogFile::open_gz(&gz)).flatten()
        })
    }

    fn seek(&mut self, pos: u64) {
        if self.reader.seek(SeekFrom::Start(pos)).is_ok() {
            self.pos = pos;
        }
        self.partial.clear();
    }

    /// Hands every whole line up to the end of the file to `f`, until `f` returns false
    /// (then returns false too).
    pub fn read_entries(&mut self, f: &mut dyn FnMut(Entry) -> bool) -> bool {
        loop {
            match self.reader.read_until(b'\n', &mut self.partial) {
                Ok(0) | Err(_) => return true,
                Ok(n) => {
                    self.pos += n as u64;
                    if self.partial.last() != Some(&b'\n') {
                        // A line the shim is still writing: the rest comes with the next read.
                        return true;
                    }
                    let entry = serde_json::from_slice::<Entry>(&self.partial);
                    self.partial.clear();
                    if let Ok(entry) = entry {
                        if !f(entry) {
                            return false;
                        }
                    }
                }
            }
        }
    }
}

/// The inode a gzipped rotated file had before the shim compressed it (written in the gzip
/// header's comment), so a follower holding the old file finds its place among the new ones.
fn gz_source_inode(gz: &flate2::read::GzDecoder<File>) -> Option<u64> {
    let comment = gz.header()?.comment()?;
    std::str::from_utf8(comment)
        .ok()?
        .strip_prefix(LOG_GZ_INODE_COMMENT)?
        .parse()
        .ok()
}

/// File `n` of the log as a follower knows it: its inode, and for `log.N.gz` also the inode
/// of the plain file it was compressed from (a follower may still hold that one).
fn file_identity(path: &Path, n: u32) -> Option<Identity> {
    if let Ok(m) = std::fs::metadata(numbered(path, n)) {
        return Some(Identity {
            n,
            inode: m.ino(),
            source: None,
        });
    }
    if n == 0 {
        return None;
    }
    let gz = File::open(format!("{}.gz", numbered(path, n).display())).ok()?;
    let inode = gz.metadata().ok()?.ino();
    let source = gz_source_inode(&flate2::read::GzDecoder::new(gz));
    Some(Identity { n, inode, source })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    n: u32,
    inode: u64,
    source: Option<u64>,
}

impl Identity {
    /// Whether this is the file a follower holds by `inode`. A held inode cannot belong to
    /// another file at the same time; only older `.gz`s may name it as a source (an inode
    /// reused), and the newest-first search meets the right one first.
    fn is(&self, inode: u64) -> bool {
        self.inode == inode || self.source == Some(inode)
    }
}

/// The log's files, oldest first, opened before any is read and positioned so that only
/// the last `tail` entries remain.
pub fn open_tail(path: &Path, tail: Option<usize>) -> Vec<LogFile> {
    // Newest first: rotation only moves files to higher numbers, so going up meets every
    // file at least once; one met twice (moved meanwhile) is kept once. A rotation under
    // way leaves one number missing, so only a second gap ends the list.
    let mut files: Vec<LogFile> = Vec::new();
    let mut missing = 0;
    for n in 0..MAX_ROTATED {
        match LogFile::open_numbered(path, n) {
            Some(f) => {
                missing = 0;
                if !files.iter().any(|seen| seen.inode == f.inode) {
                    files.push(f);
                }
            }
            None if missing == 0 && n > 0 => missing += 1,
            None => break,
        }
    }
    files.reverse();
    let Some(mut need) = tail else { return files };
    // Newest first: count lines back from the end until `need` are found.
    for i in (0..files.len()).rev() {
        let (start, found) = tail_start(files[i].reader.get_mut(), need);
        files[i].seek(start);
        need -= found;
        if need == 0 {
            // Older files hold nothing more to send; `i` may be the current one, kept for following.
            files.drain(..i);
            break;
        }
    }
    files
}

/// Where the last `need` whole lines of `f` start, and how many whole lines (up to `need`)
/// that is; a trailing partial line is not counted.
fn tail_start(f: &mut File, need: usize) -> (u64, usize) {
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return (0, 0);
    };
    let mut buf = vec![0u8; READ_BUFFER];
    let mut end = len;
    // Newlines seen so far, going back; the first one ends the last whole line.
    let mut newlines = 0usize;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(chunk).is_err() {
            return (0, 0);
        }
        for (i, b) in chunk.iter().enumerate().rev() {
            if *b == b'\n' {
                newlines += 1;
                if newlines == need + 1 {
                    return (start + i as u64 + 1, need);
                }
            }
        }
        end = start;
    }
    (0, newlines)
}

/// Follows a log as the shim appends to it, across rotations: renamed files are read to
/// their end before going on with the next newer one; a file truncated in place
/// (max-file=1) is read again from its start.
pub struct Follower {
    path: PathBuf,
    current: Option<LogFile>,
    /// Wakes the follower when the log's directory changes; `None` where inotify fails.
    watch: Option<DirWatch>,
}

impl Follower {
    /// Follows `path`, continuing `current` (the newest file read so far) when given.
    pub fn new(path: &Path, current: Option<LogFile>) -> Follower {
        let watch = path.parent().and_then(DirWatch::new);
        Follower {
            path: path.to_path_buf(),
            current,
            watch,
        }
    }

    /// Waits until the log may have changed, or `timeout` has passed. Waking at once
    /// matters: a fast writer rotates files away within milliseconds.
    pub fn wait(&self, timeout: std::time::Duration) {
        match &self.watch {
            Some(w) => w.wait(timeout),
            None => std::thread::sleep(timeout),
        }
    }

    /// Hands every entry appended since the last call to `f`; false once `f` has said stop.
    pub fn poll(&mut self, f: &mut dyn FnMut(Entry) -> bool) -> bool {
        loop {
            if self.current.is_none() {
                self.current = LogFile::open(&self.path);
            }
            let Some(cur) = self.current.as_mut() else {
                return true;
            };
            if !cur.read_entries(f) {
                return false;
            }
            // Between the shim's rename and its new file, the path may be missing for a moment.
            let Ok(meta) = std::fs::metadata(&self.path) else {
                return true;
            };
            if meta.ino() == cur.inode {
                if meta.len() < cur.pos {
                    cur.seek(0);
                    continue;
                }
                return true;
            }
            // Rotated: what the old file got before the rename is all it will get.
            if !cur.read_entries(f) {
                return false;
            }
            match self.next_newer() {
                Some(next) => self.current = Some(next),
                // Nothing to go on with yet: keep the old file and look again next time.
                None => return true,
            }
        }
    }

    /// The file written after the current one: the nearest lower-numbered file, or the
    /// oldest left if it has been rotated away entirely. The shim may rotate while we look,
    /// so the look is taken twice and must agree, and the file opened must be the one seen.
    fn next_newer(&self) -> Option<LogFile> {
        let inode = self.current.as_ref().map(|c| c.inode);
        loop {
            let seen = rotated_files(&self.path);
            if seen != rotated_files(&self.path) {
                continue;
            }
            // Mid-rotation one number is missing, with the moved files above it: the nearest
            // lower number is the successor on either side of the gap.
            let at = inode.and_then(|i| seen.iter().position(|id| id.is(i)));
            let next = match at {
                Some(0) => return None,
                Some(at) => seen[at - 1],
                None => *seen.last()?,
            };
            let file = LogFile::open_numbered(&self.path, next.n)?;
            if file.inode == next.inode {
                return Some(file);
            }
        }
    }
}

/// The numbers and inodes of the log's files, newest first. A rotation under way leaves
/// one number missing, so only a second gap ends the list.
fn rotated_files(path: &Path) -> Vec<Identity> {
    let mut out: Vec<Identity> = Vec::new();
    for n in 0..MAX_ROTATED {
        match file_identity(path, n) {
            Some(id) => out.push(id),
            None if n > 0 && out.last().is_some_and(|last| last.n == n - 1) => {}
            None => break,
        }
    }
    out
}

/// An inotify watch on a directory: written, created, renamed or removed files.
struct DirWatch {
    fd: std::os::fd::OwnedFd,
}

impl DirWatch {
    fn new(dir: &Path) -> Option<DirWatch> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let dir = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        // SAFETY: inotify_init1 takes flags only; a non-negative result is a new fd we own.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let mask = libc::IN_MODIFY
            | libc::IN_CREATE
            | libc::IN_MOVED_TO
            | libc::IN_MOVED_FROM
            | libc::IN_DELETE;
        // SAFETY: `dir` is a valid C string for the call; the fd is ours.
        let wd = unsafe {
            libc::inotify_add_watch(std::os::fd::AsRawFd::as_raw_fd(&fd), dir.as_ptr(), mask)
        };
        (wd >= 0).then_some(DirWatch { fd })
    }

    fn wait(&self, timeout: std::time::Duration) {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe {
            libc::poll(
                &mut pfd,
                1,
                timeout.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        // The events only say "look again"; drain them so the next wait blocks.
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a buffer we own, of the length given; the fd is non-blocking.
        while unsafe { libc::read(pfd.fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str, stream: &str) -> String {
        format!(
            "{{\"log\":\"{s}\\n\",\"stream\":\"{stream}\",\"time\":\"2026-01-01T00:00:00Z\"}}\n"
        )
    }

    fn read_all(files: Vec<LogFile>) -> Vec<Entry> {
        let mut out = Vec::new();
        for mut f in files {
            f.read_entries(&mut |e| {
                out.push(e);
                true
            });
        }
        out
    }

    fn logs(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.log.trim()).collect()
    }

    #[test]
    fn tails_across_rotated_files_and_frames() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        std::fs::write(format!("{}.2", log.display()), line("zero", "stdout")).unwrap();
        std::fs::write(
            format!("{}.1", log.display()),
            line("one", "stdout") + &line("two", "stderr"),
        )
        .unwrap();
        std::fs::write(&log, line("three", "stdout") + "{\"log\":\"partial").unwrap();
        assert_eq!(
            logs(&read_all(open_tail(&log, None))),
            ["zero", "one", "two", "three"]
        );
        assert_eq!(logs(&read_all(open_tail(&log, Some(2)))), ["two", "three"]);
        assert_eq!(
            logs(&read_all(open_tail(&log, Some(3)))),
            ["one", "two", "three"]
        );
        assert_eq!(
            logs(&read_all(open_tail(&log, Some(9)))),
            ["zero", "one", "two", "three"]
        );
        assert!(read_all(open_tail(&log, Some(0))).is_empty());
        let last = read_all(open_tail(&log, Some(2)));
        let opts = Options {
            stdout: true,
            stderr: false,
            timestamps: false,
            details: false,
            multiplexed: true,
            since: None,
            until: None,
        };
        assert!(opts.encode(&last[0]).is_none(), "stderr not asked for");
        assert_eq!(
            opts.encode(&last[1]).unwrap(),
            [&[1u8, 0, 0, 0, 0, 0, 0, 6][..], b"three\n"].concat()
        );
        let later = Options {
            since: parse_time(Some("1767225600.5")).unwrap(),
            ..opts
        };
        assert!(
            later.encode(&last[1]).is_none(),
            "2026-01-01T00:00:00Z is before since"
        );
        let earlier = Options {
            until: parse_time(Some("1767225599")).unwrap(),
            ..opts
        };
        assert!(earlier.encode(&last[1]).is_none(), "after until");
        assert!(parse_time(Some("yesterday")).is_err());
        assert_eq!(parse_time(Some("0")).unwrap(), None);
    }

    #[test]
    fn reads_gzipped_rotated_files() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        for (n, text) in [
            (2, line("zero", "stdout")),
            (1, line("one", "stdout") + &line("two", "stderr")),
        ] {
            let f = File::create(format!("{}.{n}.gz", log.display())).unwrap();
            let mut enc = flate2::GzBuilder::new()
                .comment(format!("{LOG_GZ_INODE_COMMENT}{}", 1000 + n))
                .write(f, flate2::Compression::fast());
            enc.write_all(text.as_bytes()).unwrap();
            enc.finish().unwrap();
        }
        std::fs::write(&log, line("three", "stdout")).unwrap();
        assert_eq!(
            logs(&read_all(open_tail(&log, None))),
            ["zero", "one", "two", "three"]
        );
        assert_eq!(
            logs(&read_all(open_tail(&log, Some(3)))),
            ["one", "two", "three"]
        );
    }

    #[test]
    fn follows_into_files_compressed_meanwhile() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        // The shim's local rotation: log → log.1, gzipped to log.1.gz naming its inode.
        let rotate = |log: &Path| {
            let gz1 = PathBuf::from(format!("{}.1.gz", log.display()));
            if gz1.exists() {
                std::fs::rename(&gz1, format!("{}.2.gz", log.display())).unwrap();
            }
            let ino = std::fs::metadata(log).unwrap().ino();
            let text = std::fs::read(log).unwrap();
            std::fs::remove_file(log).unwrap();
            let mut enc = flate2::GzBuilder::new()
                .comment(format!("{LOG_GZ_INODE_COMMENT}{ino}"))
                .write(File::create(&gz1).unwrap(), flate2::Compression::fast());
            enc.write_all(&text).unwrap();
            enc.finish().unwrap();
        };
        std::fs::write(&log, line("a", "stdout")).unwrap();
        let mut follower = Follower::new(&log, LogFile::open(&log));
        let mut seen = Vec::new();
        let mut collect = |e: Entry| {
            seen.push(e.log.trim().to_string());
            true
        };
        follower.poll(&mut collect);
        // Two rotations before the follower looks again: b's file is only in log.1.gz.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(line("a2", "stdout").as_bytes())
            .unwrap();
        // The follower's open file keeps its data; the shim's rename is modelled by a
        // hard link, so the follower's descriptor stays on the old inode.
        let keep = dir.path().join("held");
        std::fs::hard_link(&log, &keep).unwrap();
        rotate(&log);
        std::fs::write(&log, line("b", "stdout")).unwrap();
        rotate(&log);
        std::fs::write(&log, line("c", "stdout")).unwrap();
        follower.poll(&mut collect);
        assert_eq!(seen, ["a", "a2", "b", "c"]);
    }

    #[test]
    fn details_as_dockerd() {
        let entry: Entry = serde_json::from_str(
            r#"{"log":"hi\n","stream":"stdout","attrs":{"tag":"lg/ba3d","b":"y z","Q":"a&b"},"time":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let opts = Options {
            stdout: true,
            stderr: true,
            timestamps: true,
            details: true,
            multiplexed: false,
            since: None,
            until: None,
        };
        assert_eq!(
            String::from_utf8(opts.encode(&entry).unwrap()).unwrap(),
            "2026-01-01T00:00:00Z Q=a%26b,b=y+z,tag=lg%2Fba3d hi\n"
        );
        assert_eq!(details_prefix(&BTreeMap::new()), " ");
    }

    #[test]
    fn finds_the_next_file_in_the_middle_of_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        // a (oldest) .. e (current); the shim has moved a and b up and left .3 empty.
        for (n, name) in [(5, "a"), (4, "b"), (2, "c"), (1, "d"), (0, "e")] {
            std::fs::write(numbered(&log, n), line(name, "stdout")).unwrap();
        }
        let mut follower = Follower::new(&log, LogFile::open(&numbered(&log, 5)));
        let mut seen = Vec::new();
        follower.poll(&mut |e| {
            seen.push(e.log.trim().to_string());
            true
        });
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn follows_appends_rotations_and_truncation() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        std::fs::write(&log, line("a", "stdout")).unwrap();
        let mut files = open_tail(&log, None);
        let mut seen = Vec::new();
        let mut collect = |e: Entry| {
            seen.push(e.log.trim().to_string());
            true
        };
        let current = files.pop();
        let mut follower = Follower::new(&log, current);
        follower.poll(&mut collect);
        let append = |s: &str| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .unwrap()
                .write_all(s.as_bytes())
                .unwrap()
        };
        // A line written in two pieces is read once whole.
        let b = line("b", "stdout");
        append(&b[..5]);
        follower.poll(&mut collect);
        append(&b[5..]);
        follower.poll(&mut collect);
        // Two rotations between polls: log → .1 → .2, each read in order.
        append(&line("c", "stdout"));
        std::fs::rename(&log, numbered(&log, 1)).unwrap();
        std::fs::write(&log, line("d", "stdout")).unwrap();
        std::fs::rename(numbered(&log, 1), numbered(&log, 2)).unwrap();
        std::fs::rename(&log, numbered(&log, 1)).unwrap();
        std::fs::write(&log, line("eeee", "stdout")).unwrap();
        follower.poll(&mut collect);
        // Truncated in place and rewritten shorter.
        std::fs::write(&log, line("f", "stdout")).unwrap();
        follower.poll(&mut collect);
        assert_eq!(seen, ["a", "b", "c", "d", "eeee", "f"]);
    }
}
