//! Reads json-file logs (written by the shim), for `GET /containers/{id}/logs`: tail, and
//! follow until the container stops.

use berth_api::frame::{self, Stream};
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One line of a json-file log.
#[derive(Debug, serde::Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// What the client asked for.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub stdout: bool,
    pub stderr: bool,
    pub timestamps: bool,
    /// Frame entries in Docker's multiplexed format (no TTY) or send them raw (TTY).
    pub multiplexed: bool,
}

impl Options {
    /// Encodes an entry for the wire, or `None` if its stream was not asked for.
    pub fn encode(&self, entry: &Entry) -> Option<Vec<u8>> {
        let stream = match entry.stream.as_str() {
            "stderr" => Stream::Stderr,
            _ => Stream::Stdout,
        };
        let wanted = match stream {
            Stream::Stderr => self.stderr,
            _ => self.stdout,
        };
        if !wanted {
            return None;
        }
        let payload = if self.timestamps {
            format!("{} {}", entry.time, entry.log).into_bytes()
        } else {
            entry.log.clone().into_bytes()
        };
        if self.multiplexed {
            let mut out = Vec::with_capacity(payload.len() + frame::HEADER_LEN);
            frame::encode(stream, &payload, &mut out);
            Some(out)
        } else {
            Some(payload)
        }
    }
}

/// The log's files, oldest first (`log.2`, `log.1`, `log`).
fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<PathBuf> = (1..10)
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .take_while(|p| p.exists())
        .collect();
    rotated.reverse();
    rotated.push(path.to_path_buf());
    rotated
}

/// Every entry in the log, oldest first, keeping only the last `tail` when given; and the
/// offset in the current file where following should continue.
pub fn read(path: &Path, tail: Option<usize>) -> (Vec<Entry>, u64) {
    let mut entries = Vec::new();
    let mut offset = 0;
    for file in files(path) {
        let Ok(f) = std::fs::File::open(&file) else { continue };
        let mut reader = BufReader::new(f);
        offset = read_from(&mut reader, &mut entries);
        if let Some(n) = tail {
            let excess = entries.len().saturating_sub(n);
            entries.drain(..excess);
        }
    }
    (entries, offset)
}

/// Reads whole lines to the end; returns the offset after the last whole line.
pub fn read_from(reader: &mut BufReader<std::fs::File>, out: &mut Vec<Entry>) -> u64 {
    let mut line = String::new();
    let mut offset = reader.stream_position().unwrap_or(0);
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) if !line.ends_with('\n') => {
                // A line the shim is still writing: read it next time.
                let _ = reader.seek(SeekFrom::Current(-(n as i64)));
                break;
            }
            Ok(n) => {
                offset += n as u64;
                if let Ok(entry) = serde_json::from_str(&line) {
                    out.push(entry);
                }
            }
        }
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_across_rotated_files_and_frames() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c-json.log");
        let line = |s: &str, stream: &str| format!("{{\"log\":\"{s}\\n\",\"stream\":\"{stream}\",\"time\":\"2026-01-01T00:00:00Z\"}}\n");
        std::fs::write(format!("{}.1", log.display()), line("one", "stdout") + &line("two", "stderr")).unwrap();
        std::fs::write(&log, line("three", "stdout") + "{\"log\":\"partial")
            .unwrap();
        let (all, offset) = read(&log, None);
        assert_eq!(all.iter().map(|e| e.log.trim()).collect::<Vec<_>>(), ["one", "two", "three"]);
        assert_eq!(offset as usize, line("three", "stdout").len());
        let (last, _) = read(&log, Some(2));
        assert_eq!(last.len(), 2);
        let opts = Options { stdout: true, stderr: false, timestamps: false, multiplexed: true };
        assert!(opts.encode(&last[0]).is_none(), "stderr not asked for");
        assert_eq!(opts.encode(&last[1]).unwrap(), [&[1u8, 0, 0, 0, 0, 0, 0, 6][..], b"three\n"].concat());
    }
}
