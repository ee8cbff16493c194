//! Docker's JSON progress messages (`jsonmessage.JSONMessage`), as the daemon streams them
//! for pull and push: `{"status":"Downloading","progressDetail":{"current":1,"total":2},
//! "progress":"[=>   ] 1B/2B","id":"a1b2c3d4e5f6"}`.

use serde_json::{json, Value};

/// One progress message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The line it updates: a short layer ID, a tag; `None` for whole-operation messages.
    pub id: Option<String>,
    pub status: String,
    /// Bytes done and the total, for a progress bar.
    pub progress: Option<(u64, u64)>,
    /// Whether the message carries an (empty) `progressDetail`, as Docker's layer messages do.
    pub detail: bool,
}

impl Message {
    /// A message about the whole operation ("Digest: …", "Status: …").
    pub fn status(status: impl Into<String>) -> Message {
        Message {
            id: None,
            status: status.into(),
            progress: None,
            detail: false,
        }
    }

    /// A message on the line of `id` without progressDetail ("Pulling from x" under the tag).
    pub fn titled(id: impl Into<String>, status: impl Into<String>) -> Message {
        Message {
            id: Some(id.into()),
            status: status.into(),
            progress: None,
            detail: false,
        }
    }

    /// A layer's status ("Pulling fs layer", "Pull complete").
    pub fn layer(id: &str, status: impl Into<String>) -> Message {
        Message {
            id: Some(id.to_string()),
            status: status.into(),
            progress: None,
            detail: true,
        }
    }

    /// A layer's byte progress ("Downloading", "Extracting").
    pub fn bytes(id: &str, status: impl Into<String>, current: u64, total: u64) -> Message {
        Message {
            id: Some(id.to_string()),
            status: status.into(),
            progress: Some((current, total)),
            detail: true,
        }
    }

    /// The JSON object Docker sends.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "status": self.status });
        if let Some((current, total)) = self.progress {
            v["progressDetail"] = json!({ "current": current, "total": total });
            v["progress"] = json!(progress_bar(current, total));
        } else if self.detail {
            v["progressDetail"] = json!({});
        }
        if let Some(id) = &self.id {
            v["id"] = json!(id);
        }
        v
    }
}

/// Docker's error message in a progress stream.
pub fn error_json(message: &str) -> Value {
    json!({ "errorDetail": { "message": message }, "error": message })
}

/// `JSONProgress.String()` as the daemon renders it (no terminal, so the 200-column form):
/// `[=====>      ]  1.234MB/5.678MB`.
pub fn progress_bar(current: u64, total: u64) -> String {
    if total == 0 {
        return if current == 0 {
            String::new()
        } else {
            human_size(current)
        };
    }
    let percentage = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let bar = format!(
        "[{}>{}] ",
        "=".repeat(percentage),
        " ".repeat(50 - percentage)
    );
    let numbers = if current > total {
        String::new()
    } else {
        format!("{:>8}/{}", human_size(current), human_size(total))
    };
    bar + &numbers
}

/// go-units' `HumanSize`: decimal units, four significant digits ("1.235MB", "512B", "1kB").
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    let decimals = if size < 10.0 {
        3
    } else if size < 100.0 {
        2
    } else {
        1
    };
    let mut s = format!("{size:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(772_788), "772.8kB");
        assert_eq!(progress_bar(0, 0), "");
        let bar = progress_bar(500, 1000);
        assert_eq!(
            bar,
            format!("[{}>{}]     500B/1kB", "=".repeat(25), " ".repeat(25))
        );
        // Go's field order: status, progressDetail, progress, id.
        let m = Message::bytes("abc", "Downloading", 1, 2).to_json();
        assert_eq!(m["progressDetail"]["total"], 2);
        assert_eq!(
            Message::layer("abc", "Waiting").to_json().to_string(),
            r#"{"status":"Waiting","progressDetail":{},"id":"abc"}"#
        );
    }
}
