//! Docker's JSON message streams (push, pull, build) shown as the docker CLI shows them
//! (its `jsonmessage.DisplayJSONMessagesStream`): on a terminal one line per layer ID, redrawn
//! in place with a progress bar; elsewhere one plain line per status, progress updates left out.

use std::io::Write;

use hyper::body::Incoming;
use serde::Deserialize;

use crate::client;

/// `progressDetail`.
#[derive(Debug, Default, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub current: i64,
    #[serde(default)]
    pub total: i64,
    #[serde(default)]
    pub start: i64,
    #[serde(default, rename = "hidecounts")]
    pub hide_counts: bool,
    #[serde(default)]
    pub units: String,
}

/// One message of the stream.
#[derive(Debug, Default, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub stream: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, rename = "progressDetail")]
    pub progress: Option<Progress>,
    #[serde(default, rename = "progress")]
    pub progress_message: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub from: String,
    #[serde(default, rename = "errorDetail")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub aux: Option<serde_json::Value>,
}

/// `errorDetail`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// Go's `%.4g` as `units.HumanSize` uses it.
fn four_significant(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let exp = x.abs().log10().floor() as i32;
    let decimals = (3 - exp).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// docker's `units.HumanSize`: "1.984MB".
pub fn human_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", four_significant(size), UNITS[i])
}

impl Progress {
    /// The progress text for a terminal `width` columns wide (docker's `JSONProgress.String`).
    pub fn render(&self, width: usize) -> String {
        if self.current <= 0 && self.total <= 0 {
            return String::new();
        }
        if self.total <= 0 {
            return if self.units.is_empty() {
                format!("{:>8}", human_size(self.current as f64))
            } else {
                format!("{} {}", self.current, self.units)
            };
        }
        let pct = ((self.current as f64 / self.total as f64 * 100.0) as i64 / 2).min(50);
        let mut out = String::new();
        if width > 110 {
            let filled = pct.max(0) as usize;
            out.push_str(&format!(
                "[{}>{}] ",
                "=".repeat(filled),
                " ".repeat(50 - filled)
            ));
        }
        if !self.hide_counts {
            if self.units.is_empty() {
                let current = human_size(self.current as f64);
                if self.current > self.total {
                    out.push_str(&format!("{current:>8}"));
                } else {
                    out.push_str(&format!("{current:>8}/{}", human_size(self.total as f64)));
                }
            } else {
                out.push_str(&format!("{}/{} {}", self.current, self.total, self.units));
            }
        }
        if self.current > 0 && self.start > 0 && pct < 50 && width > 50 {
            let now = chrono::Utc::now().timestamp();
            let per = (now - self.start).max(0) as f64 / self.current as f64;
            let left = ((self.total - self.current) as f64 * per) as i64;
            out.push_str(&format!(" {}", go_duration(left)));
        }
        out
    }
}

/// Go's `time.Duration.String` for whole seconds: "1m5s", "0s".
fn go_duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Shows one message; an error message becomes `Err` with its text.
fn display(out: &mut impl Write, m: &Message, tty: bool, width: usize) -> Result<(), String> {
    if let Some(e) = &m.error_detail {
        if e.code == 401 {
            return Err("authentication is required".into());
        }
        return Err(e.message.clone());
    }
    if !m.error.is_empty() {
        return Err(m.error.clone());
    }
    let progress = m.progress.as_ref().map(|p| p.render(width));
    let mut endl = "";
    if tty && m.stream.is_empty() && m.progress.is_some() {
        let _ = write!(out, "\x1b[2K\r");
        endl = "\r";
    } else if progress.as_deref().is_some_and(|p| !p.is_empty()) {
        // No progress bars off a terminal.
        return Ok(());
    }
    if !m.id.is_empty() {
        let _ = write!(out, "{}: ", m.id);
    }
    if !m.from.is_empty() {
        let _ = write!(out, "(from {}) ", m.from);
    }
    if let (Some(p), true) = (&progress, tty) {
        let _ = write!(out, "{} {p}{endl}", m.status);
    } else if !m.progress_message.is_empty() {
        let _ = write!(out, "{} {}{endl}", m.status, m.progress_message);
    } else if !m.stream.is_empty() {
        let _ = write!(out, "{}{endl}", m.stream);
    } else {
        let _ = writeln!(out, "{}{endl}", m.status);
    }
    Ok(())
}

/// Shows a JSON message stream on stdout (or reads it silently with `quiet`) until it ends;
/// `aux` gets every `aux` payload. The stream's error message is returned as `Err`.
pub async fn display_stream(
    mut body: Incoming,
    quiet: bool,
    mut aux: impl FnMut(&serde_json::Value),
) -> Result<(), String> {
    let tty = !quiet && crate::term::is_tty(1);
    let width = crate::term::size(1).map(|(_, c)| c as usize).unwrap_or(200);
    let mut ids: Vec<String> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let stdout = std::io::stdout();
    loop {
        let chunk = client::next_chunk(&mut body)
            .await
            .map_err(|e| e.to_string())?;
        let done = chunk.is_none();
        if let Some(c) = chunk {
            buf.extend_from_slice(&c);
        }
        // Every complete line (a message never holds a raw newline: JSON escapes it).
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + pos];
            start += pos + 1;
            let text = std::str::from_utf8(line).unwrap_or("").trim();
            if text.is_empty() {
                continue;
            }
            let m: Message = serde_json::from_str(text).map_err(|e| e.to_string())?;
            if let Some(a) = &m.aux {
                aux(a);
                continue;
            }
            if quiet {
                if let Some(e) = &m.error_detail {
                    return Err(e.message.clone());
                }
                continue;
            }
            let mut out = stdout.lock();
            let mut diff = 0;
            if !m.id.is_empty() && (m.progress.is_some() || !m.progress_message.is_empty()) {
                let line = match ids.iter().position(|i| *i == m.id) {
                    Some(l) => l,
                    None => {
                        ids.push(m.id.clone());
                        if tty {
                            let _ = writeln!(out);
                        }
                        ids.len() - 1
                    }
                };
                diff = ids.len() - line;
                if tty && diff > 0 {
                    let _ = write!(out, "\x1b[{diff}A");
                }
            } else {
                // Anything without an ID ends the block of per-layer lines.
                ids.clear();
            }
            let shown = display(&mut out, &m, tty, width);
            if !m.id.is_empty() && tty && diff > 0 {
                let _ = write!(out, "\x1b[{diff}B");
            }
            let _ = out.flush();
            shown?;
        }
        buf.drain(..start);
        if done {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(json: &str, tty: bool) -> String {
        let m: Message = serde_json::from_str(json).unwrap();
        let mut out = Vec::new();
        display(&mut out, &m, tty, 200).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_lines_off_a_terminal() {
        assert_eq!(
            shown(
                r#"{"status":"Preparing","progressDetail":{},"id":"a6c1a2ff8063"}"#,
                false
            ),
            "a6c1a2ff8063: Preparing\n"
        );
        assert_eq!(
            shown(
                r#"{"status":"Pushing","progressDetail":{"current":43520,"total":1984241},"progress":"x","id":"a"}"#,
                false
            ),
            ""
        );
        assert_eq!(
            shown(r#"{"status":"The push refers to repository [r/x]"}"#, false),
            "The push refers to repository [r/x]\n"
        );
        let m: Message =
            serde_json::from_str(r#"{"errorDetail":{"message":"boom"},"error":"boom"}"#).unwrap();
        assert_eq!(
            display(&mut Vec::new(), &m, false, 200).unwrap_err(),
            "boom"
        );
    }

    #[test]
    fn bars_on_a_terminal() {
        assert_eq!(
            shown(r#"{"status":"Pushing","progressDetail":{"current":43520,"total":1984241},"id":"a"}"#, true),
            "\x1b[2K\ra: Pushing [=>                                                 ]  43.52kB/1.984MB\r"
        );
        assert_eq!(human_size(2_140_160.0), "2.14MB");
    }
}
