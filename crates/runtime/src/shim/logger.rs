//! Docker's json-file log driver: one JSON object per line of output, rotated by size.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::exit::now_rfc3339;

#[derive(Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

/// An append-only json-file log.
pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
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
    /// Opens (creating) the log at `path`.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }

    /// Appends `data` from `stream` ("stdout"/"stderr"), one entry per line.
    pub fn write(&mut self, stream: &str, data: &[u8]) -> io::Result<()> {
        let time = now_rfc3339();
        for line in split_lines(data) {
            let text = String::from_utf8_lossy(line);
            let mut entry = serde_json::to_vec(&Entry {
                log: &text,
                stream,
                time: &time,
            })
            .map_err(io::Error::other)?;
            entry.push(b'\n');
            let len = entry.len() as u64;
            if self.max_size > 0 && self.size > 0 && self.size + len > self.max_size {
                self.rotate()?;
            }
            self.file.write_all(&entry)?;
            self.size += len;
        }
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

    #[test]
    fn entries_and_rotation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 200, 3).unwrap();
        log.write("stdout", b"hello\nwor").unwrap();
        let text = fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["log"], "hello\n");
        assert_eq!(lines[1]["log"], "wor");
        assert_eq!(lines[0]["stream"], "stdout");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        for _ in 0..20 {
            log.write("stderr", b"0123456789\n").unwrap();
        }
        assert!(numbered(&p, 1).exists());
        assert!(numbered(&p, 2).exists());
        assert!(!numbered(&p, 3).exists());
        for n in 0..3 {
            assert!(fs::metadata(numbered(&p, n)).unwrap().len() <= 200);
        }
    }
}
