//! Docker's json-file log driver: one JSON object per line of output, rotated by size; the
//! `local` driver, the same entries with rotated files gzip-compressed (dockerd's framing is
//! its own protobuf records; berth's reader needs only its own); `syslog` (see `log_syslog`);
//! and the `none` driver, which keeps nothing.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::exit::now_rfc3339;
use crate::protocol::{LogDriver, ShimConfig, LOG_GZ_INODE_COMMENT};

#[path = "log_syslog.rs"]
mod log_syslog;

/// The container's log: a json-file or local log, a syslog connection, or nothing for the
/// `none` driver.
pub struct JsonLog {
    file: Option<Rotating>,
    syslog: Option<log_syslog::Syslog>,
    /// `,"attrs":{...}` as Docker writes it between `stream` and `time`; empty without attrs.
    attrs: String,
    /// Entries of the current write, sent to the file in one go.
    buf: Vec<u8>,
}

/// A file that is rotated to `.1`, `.2`, ... when it would grow past `max_size`.
struct Rotating {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    /// Rotated files are gzipped to `log.N.gz` (the local driver).
    compress: bool,
}

/// Opens for appending, creating with Docker's mode for logs (0640).
fn open_append(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// `log` for 0, `log.N` otherwise.
fn numbered(path: &Path, n: u32) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Splits output into Docker's entries: each line with its newline, plus a trailing partial line.
pub fn split_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split_inclusive(|b| *b == b'\n')
}

impl JsonLog {
    /// Opens (creating) the json-file log at `path`, without attrs.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            file: Some(Rotating {
                path: path.to_path_buf(),
                file,
                size,
                max_size,
                max_files: max_files.max(1),
                compress: false,
            }),
            syslog: None,
            attrs: String::new(),
            buf: Vec::new(),
        })
    }

    /// The log the shim's config asks for: nothing for the `none` driver, else the
    /// json-file log with its rotation and attrs.
    pub fn from_config(cfg: &ShimConfig) -> io::Result<Self> {
        let attrs = cfg.log_attrs.clone();
        let driver = cfg.log_driver.clone();
        let mut none = JsonLog {
            file: None,
            syslog: None,
            attrs: String::new(),
            buf: Vec::new(),
        };
        if cfg.log_disabled {
            return Ok(none);
        }
        if let Some(LogDriver::Syslog(target)) = &driver {
            none.syslog = Some(log_syslog::Syslog::connect(target)?);
            return Ok(none);
        }
        let mut log = Self::open(&cfg.log_path, cfg.log_max_size, cfg.log_max_files)?;
        if let (Some(LogDriver::Local { compress }), Some(file)) = (&driver, log.file.as_mut()) {
            file.compress = *compress && file.max_files > 1;
        }
        log.attrs = attrs_fragment(&attrs)?;
        Ok(log)
    }

    /// Appends `data` from `stream` ("stdout"/"stderr"), one entry per line.
    pub fn write(&mut self, stream: &str, data: &[u8]) -> io::Result<()> {
        if let Some(syslog) = self.syslog.as_mut() {
            // dockerd sends no message for an empty line.
            for line in split_lines(data).filter(|l| *l != b"\n") {
                syslog.send(stream, line.strip_suffix(b"\n").unwrap_or(line))?;
            }
            return Ok(());
        }
        let Some(out) = self.file.as_mut() else {
            return Ok(());
        };
        let time = now_rfc3339();
        self.buf.clear();
        for line in split_lines(data) {
            let start = self.buf.len();
            encode_entry(&mut self.buf, line, stream, &self.attrs, &time)?;
            let len = (self.buf.len() - start) as u64;
            // Rotate before the entry that would overflow the file; never split an entry.
            if out.max_size > 0
                && out.size + start as u64 > 0
                && out.size + start as u64 + len > out.max_size
            {
                out.append(&self.buf[..start])?;
                self.buf.drain(..start);
                out.rotate()?;
            }
        }
        out.append(&self.buf)
    }
}

/// One json-file line, with Docker's key order: log, stream, attrs, time.
fn encode_entry(
    out: &mut Vec<u8>,
    line: &[u8],
    stream: &str,
    attrs: &str,
    time: &str,
) -> io::Result<()> {
    out.extend_from_slice(b"{\"log\":");
    serde_json::to_writer(&mut *out, &String::from_utf8_lossy(line)).map_err(io::Error::other)?;
    out.extend_from_slice(b",\"stream\":\"");
    out.extend_from_slice(stream.as_bytes());
    out.push(b'"');
    out.extend_from_slice(attrs.as_bytes());
    out.extend_from_slice(b",\"time\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"}\n");
    Ok(())
}

/// The attrs member, serialised once: every entry carries the same one.
fn attrs_fragment(attrs: &BTreeMap<String, String>) -> io::Result<String> {
    if attrs.is_empty() {
        return Ok(String::new());
    }
    let json = serde_json::to_string(attrs).map_err(io::Error::other)?;
    Ok(format!(",\"attrs\":{json}"))
}

impl Rotating {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// log.(n-2) → log.(n-1), ..., log → log.1; the oldest falls off.
    fn rotate(&mut self) -> io::Result<()> {
        if self.compress {
            return self.rotate_compressed();
        }
        if self.max_files > 1 {
            let _ = fs::remove_file(numbered(&self.path, self.max_files - 1));
            for n in (0..self.max_files - 1).rev() {
                let from = numbered(&self.path, n);
                if from.exists() {
                    fs::rename(&from, numbered(&self.path, n + 1))?;
                }
            }
            self.file = open_append(&self.path)?;
        } else {
            // A single file is truncated in place, as Docker does with max-file=1.
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }

    /// log.(n-2).gz → log.(n-1).gz, ..., then log → log.1, gzipped to log.1.gz. The gzip is
    /// written beside and renamed in, and log.1 removed only after: a reader always finds
    /// each entry in one whole file. Done here, in the poll loop: at berth's sizes this is
    /// milliseconds, and it keeps the shim one thread.
    fn rotate_compressed(&mut self) -> io::Result<()> {
        let _ = fs::remove_file(gz(&numbered(&self.path, self.max_files - 1)));
        for n in (1..self.max_files - 1).rev() {
            let from = gz(&numbered(&self.path, n));
            if from.exists() {
                fs::rename(&from, gz(&numbered(&self.path, n + 1)))?;
            }
        }
        let first = numbered(&self.path, 1);
        fs::rename(&self.path, &first)?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        gzip_file(&first)?;
        fs::remove_file(&first)
    }
}

/// `path.gz`.
fn gz(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".gz");
    PathBuf::from(s)
}

/// Writes `path.gz` from `path` (through a temporary name, so it appears whole).
fn gzip_file(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let target = gz(path);
    let mut tmp = target.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let out = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    let mut plain = File::open(path)?;
    // The source's inode in the header lets a reader following the log by inode find where
    // its file went (see the daemon's io/logs.rs).
    let inode = std::os::unix::fs::MetadataExt::ino(&plain.metadata()?);
    let mut enc = flate2::GzBuilder::new()
        .comment(format!("{LOG_GZ_INODE_COMMENT}{inode}"))
        .write(out, flate2::Compression::fast());
    io::copy(&mut plain, &mut enc)?;
    enc.finish()?;
    fs::rename(&tmp, &target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(p: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn entries_and_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 200, 3).unwrap();
        log.write("stdout", b"hello\nwor").unwrap();
        let lines = entries(&p);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["log"], "hello\n");
        assert_eq!(lines[1]["log"], "wor");
        assert_eq!(lines[0]["stream"], "stdout");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert!(lines[0].get("attrs").is_none());
        for _ in 0..20 {
            log.write("stderr", b"0123456789\n").unwrap();
        }
        // One write spanning several rotations keeps every file under the limit too.
        log.write("stdout", "x\n".repeat(40).as_bytes()).unwrap();
        assert!(numbered(&p, 1).exists());
        assert!(numbered(&p, 2).exists());
        assert!(!numbered(&p, 3).exists());
        for n in 0..3 {
            let len = fs::metadata(numbered(&p, n)).unwrap().len();
            assert!(len > 0 && len <= 200, "file {n} has {len} bytes");
        }
        assert_eq!(entries(&p).last().unwrap()["log"], "x\n");
    }

    #[test]
    fn single_file_truncates() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 150, 1).unwrap();
        for i in 0..10 {
            log.write("stdout", format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(!numbered(&p, 1).exists());
        assert!(fs::metadata(&p).unwrap().len() <= 150);
        assert_eq!(entries(&p).last().unwrap()["log"], "line 9\n");
    }

    fn config(dir: &Path) -> ShimConfig {
        ShimConfig {
            id: "x".into(),
            bundle: dir.into(),
            rootfs_mounts: Vec::new(),
            runtime_root: dir.into(),
            seccomp_cache: None,
            log_path: dir.join("c-json.log"),
            log_max_size: 0,
            log_max_files: 1,
            log_disabled: false,
            log_attrs: BTreeMap::new(),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            log_driver: None,
        }
    }

    #[test]
    fn attrs_in_docker_order() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = config(d.path());
        cfg.log_attrs.insert("tag".into(), "web/1".into());
        cfg.log_attrs.insert("a b".into(), "\"q\"".into());
        let mut log = JsonLog::from_config(&cfg).unwrap();
        log.write("stdout", b"hi\n").unwrap();
        let text = fs::read_to_string(&cfg.log_path).unwrap();
        assert!(
            text.starts_with(
                r#"{"log":"hi\n","stream":"stdout","attrs":{"a b":"\"q\"","tag":"web/1"},"time":""#
            ),
            "{text}"
        );
    }

    #[test]
    fn local_driver_gzips_rotated_files() {
        use std::io::Read;
        let d = tempfile::tempdir().unwrap();
        let mut cfg = config(d.path());
        cfg.log_max_size = 300;
        cfg.log_max_files = 3;
        cfg.log_driver = Some(LogDriver::Local { compress: true });
        let mut log = JsonLog::from_config(&cfg).unwrap();
        for i in 0..30 {
            log.write("stdout", format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let p = &cfg.log_path;
        assert!(!numbered(p, 1).exists(), "rotated files are compressed");
        assert!(gz(&numbered(p, 1)).exists() && gz(&numbered(p, 2)).exists());
        assert!(
            !gz(&numbered(p, 3)).exists(),
            "max-file counts the current file"
        );
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(gz(&numbered(p, 1))).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert!(first["log"].as_str().unwrap().starts_with("line "));
        assert!(
            first.get("attrs").is_none(),
            "the driver key is not an attr"
        );
        assert_eq!(entries(p).last().unwrap()["log"], "line 29\n");
    }

    #[test]
    fn none_driver_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = config(d.path());
        cfg.log_disabled = true;
        let mut log = JsonLog::from_config(&cfg).unwrap();
        log.write("stdout", b"hi\n").unwrap();
        assert!(!cfg.log_path.exists());
    }
}
