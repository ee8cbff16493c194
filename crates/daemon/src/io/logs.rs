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
    /// Only entries at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries at or before this time.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The API's `since`/`until`: Unix `seconds[.nanoseconds]`, as Docker's clients send them;
/// `0` or empty means unset. `None` inside `Ok` when unset.
pub fn parse_time(value: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    let Some(v) = value.filter(|v| !v.is_empty() && *v != "0") else { return Ok(None) };
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
    chrono::DateTime::from_timestamp(secs, nanos).map(Some).ok_or_else(bad)
}

impl Options {
    /// Whether an entry falls inside `since`..`until`.
    pub fn in_window(&self, entry: &Entry) -> bool {
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(&entry.time) else { return true };
        let t = t.with_timezone(&chrono::Utc);
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }

    /// Encodes an entry for the wire, or `None` if its stream or time was not asked for.
    pub fn encode(&self, entry: &Entry) -> Option<Vec<u8>> {
        if !self.in_window(entry) {
            return None;
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
        let opts = Options { stdout: true, stderr: false, timestamps: false, multiplexed: true, since: None, until: None };
        assert!(opts.encode(&last[0]).is_none(), "stderr not asked for");
        assert_eq!(opts.encode(&last[1]).unwrap(), [&[1u8, 0, 0, 0, 0, 0, 0, 6][..], b"three\n"].concat());
        let later = Options { since: parse_time(Some("1767225600.5")).unwrap(), ..opts };
        assert!(later.encode(&last[1]).is_none(), "2026-01-01T00:00:00Z is before since");
        let earlier = Options { until: parse_time(Some("1767225599")).unwrap(), ..opts };
        assert!(earlier.encode(&last[1]).is_none(), "after until");
        assert!(parse_time(Some("yesterday")).is_err());
        assert_eq!(parse_time(Some("0")).unwrap(), None);
    }
}
