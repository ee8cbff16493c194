//! The client's errors. Messages read like Docker's (Go's `net/http` and distribution's
//! `errcode` wording), because scripts grep them.

/// Everything a registry operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request never got an answer: `Get "https://host/v2/": dial tcp host: connect:
    /// connection refused`.
    #[error("{method} \"{url}\": {reason}")]
    Transport {
        method: String,
        url: String,
        reason: String,
    },
    /// The registry answered with an error status; `message` is distribution's errcode text
    /// (`manifest unknown: manifest unknown`) or the status line.
    #[error("{message}")]
    Registry { status: u16, message: String },
    /// 401/403 after authenticating (or without credentials to offer).
    #[error("{0}")]
    Unauthorized(String),
    /// Something the registry sent does not match what it was asked for.
    #[error("{0}")]
    Invalid(String),
    /// The request was refused before going to the network (bad flags, configuration).
    #[error("{0}")]
    InvalidArgument(String),
    /// The image store refused or failed.
    #[error(transparent)]
    Store(#[from] berth_store::Error),
    /// The caller went away.
    #[error("context canceled")]
    Cancelled,
    /// A layer's unpacking thread stopped taking bytes (its own error says why).
    #[error("layer unpacking stopped")]
    UnpackStopped,
}

impl Error {
    /// Whether another attempt might succeed (network trouble, 5xx, 429), as Docker retries.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Registry { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Whether the registry said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Registry { status: 404, .. })
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Go's method spelling in `url.Error`: "Get", "Head", "Post".
pub(crate) fn go_method(m: &hyper::Method) -> String {
    let s = m.as_str().to_ascii_lowercase();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => s,
    }
}

/// The error body of the registry API: `{"errors":[{"code":…,"message":…,"detail":…}]}`.
#[derive(Debug, serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, serde::Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Distribution's errcode text for a response: "manifest unknown: manifest unknown" (code's
/// description lowercased, then the message), several joined as Go joins them; else the
/// status as Go's client prints an unexpected one.
pub(crate) fn registry_message(status: u16, body: &[u8]) -> String {
    if let Ok(b) = serde_json::from_slice::<ErrorBody>(body) {
        let items: Vec<String> = b
            .errors
            .iter()
            .map(|e| {
                let code = e.code.to_ascii_lowercase().replace('_', " ");
                if e.message.is_empty() {
                    code
                } else {
                    format!("{code}: {}", e.message)
                }
            })
            .collect();
        match items.len() {
            0 => {}
            1 => return items[0].clone(),
            _ => return format!("errors:\n{}\n", items.join("\n")),
        }
    }
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    if status == 401 {
        return "unauthorized: authentication required".into();
    }
    format!("received unexpected HTTP status: {status} {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcode_text_like_distribution() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"latest"}}]}"#;
        assert_eq!(
            registry_message(404, body),
            "manifest unknown: manifest unknown"
        );
        assert_eq!(
            registry_message(500, b"oops"),
            "received unexpected HTTP status: 500 Internal Server Error"
        );
        assert_eq!(go_method(&hyper::Method::GET), "Get");
    }
}
