//! Docker's json-file log driver: one JSON object per line of output, rotated by size; and
//! the `none` driver, which keeps nothing.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::exit::now_rfc3339;
use crate::protocol::ShimConfig;

/// The container's log: a json-file log, or nothing for the `none` driver.
pub struct JsonLog {
    file: Option<Rotating>,
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
            }),
            attrs: String::new(),
            buf: Vec::new(),
        })
    }

    /// The log the shim's config asks for: nothing for the `none` driver, else the
    /// json-file log with its rotation and attrs.
    pub fn from_config(cfg: &ShimConfig) -> io::Result<Self> {
        if cfg.log_disabled {
            return Ok(JsonLog {
                file: None,
                attrs: String::new(),
                buf: Vec::new(),
            });
        }
        let mut log = Self::open(&cfg.log_path, cfg.log_max_size, cfg.log_max_files)?;
        log.attrs = attrs_fragment(&cfg.log_attrs)?;
        Ok(log)
    }

    /// Appends `data` from `stream` ("stdout"/"stderr"), one entry per line.
    pub fn write(&mut self, stream: &str, data: &[u8]) -> io::Result<()> {
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
    fn none_driver_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = config(d.path());
        cfg.log_disabled = true;
        let mut log = JsonLog::from_config(&cfg).unwrap();
        log.write("stdout", b"hi\n").unwrap();
        assert!(!cfg.log_path.exists());
    }
}
