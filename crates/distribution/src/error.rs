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
    /// Getting the authorization for a request failed (the token server refused the
    /// credentials, or could not be reached); Go's client reports it as a failure of that
    /// request: `Head "http://r/v2/app/manifests/v1": unauthorized: incorrect username or password`.
    #[error("{method} \"{url}\": {reason}")]
    AuthFailed {
        method: String,
        url: String,
        reason: String,
    },
    /// The registry refused the session's token (expired, revoked) on a request whose body
    /// cannot be sent again (a streamed upload). The token is forgotten: another attempt
    /// fetches a new one.
    #[error("{method} \"{url}\": the registry refused the bearer token")]
    TokenRefused { method: String, url: String },
    /// The caller went away.
    #[error("context canceled")]
    Cancelled,
    /// A layer's unpacking thread stopped taking bytes (its own error says why).
    #[error("layer unpacking stopped")]
    UnpackStopped,
}

impl Error {
    /// Whether another attempt might succeed (network trouble, 5xx), as Docker retries: not
    /// 429 (moby's `retryOnError` gives up on `TOOMANYREQUESTS`) nor other 4xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::TokenRefused { .. } => true,
            Error::Registry { status, .. } => *status >= 500,
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
    /// The older form token servers (Docker Hub's) answer: `{"details":"incorrect username
    /// or password"}`.
    #[serde(default)]
    details: String,
}

#[derive(Debug, serde::Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

/// The default message of distribution's error codes. An error carrying just that message
/// and no detail is decoded by its client as the bare code, printed without the message
/// ("unauthorized", not "unauthorized: authentication required").
fn default_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "UNKNOWN" => "unknown error",
        "UNSUPPORTED" => "The operation is unsupported.",
        "UNAUTHORIZED" => "authentication required",
        "DENIED" => "requested access to the resource is denied",
        "UNAVAILABLE" => "service unavailable",
        "TOOMANYREQUESTS" => "too many requests",
        "DIGEST_INVALID" => "provided digest did not match uploaded content",
        "SIZE_INVALID" => "provided length did not match content length",
        "NAME_INVALID" => "invalid repository name",
        "TAG_INVALID" => "manifest tag did not match URI",
        "NAME_UNKNOWN" => "repository name not known to registry",
        "MANIFEST_UNKNOWN" => "manifest unknown",
        "MANIFEST_INVALID" => "manifest invalid",
        "MANIFEST_UNVERIFIED" => "manifest failed signature verification",
        "MANIFEST_BLOB_UNKNOWN" | "BLOB_UNKNOWN" => "blob unknown to registry",
        "BLOB_UPLOAD_UNKNOWN" => "blob upload unknown to registry",
        "BLOB_UPLOAD_INVALID" => "blob upload invalid",
        "PAGINATION_NUMBER_INVALID" => "invalid number of results requested",
        "RANGE_INVALID" => "invalid content range",
        _ => return None,
    })
}

/// Distribution's errcode text for a response: "manifest unknown: manifest unknown" (code's
/// description lowercased, then the message), several joined as Go joins them; a `details`
/// body as distribution's client reads it (`unauthorized: <details>` for a 401); else the
/// status as Go's client prints an unexpected one.
pub(crate) fn registry_message(status: u16, body: &[u8]) -> String {
    // Distribution's client reads the body of 4xx answers only (`HandleErrorResponse`).
    let client_error = (400..500).contains(&status);
    let parsed = client_error
        .then(|| serde_json::from_slice::<ErrorBody>(body).ok())
        .flatten();
    if let Some(b) = parsed {
        if !b.details.is_empty() {
            let code = match status {
                401 => "unauthorized",
                429 => "toomanyrequests",
                _ => "unknown",
            };
            return format!("{code}: {}", b.details);
        }
        let items: Vec<String> = b
            .errors
            .iter()
            .map(|e| {
                let code = e.code.to_ascii_lowercase().replace('_', " ");
                let bare = e.detail.as_ref().is_none_or(|d| d.is_null())
                    && default_message(&e.code).is_some_and(|m| m == e.message);
                if e.message.is_empty() || bare {
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
        assert_eq!(
            registry_message(503, br#"{"errors":[{"code":"UNAVAILABLE","message":"x"}]}"#),
            "received unexpected HTTP status: 503 Service Unavailable"
        );
        assert_eq!(go_method(&hyper::Method::GET), "Get");
        // The default message without a detail: the bare code, as distribution decodes it.
        assert_eq!(
            registry_message(
                401,
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
            ),
            "unauthorized"
        );
        assert_eq!(
            registry_message(
                401,
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Type":"repository"}]}]}"#
            ),
            "unauthorized: authentication required"
        );
        assert_eq!(
            registry_message(401, br#"{"details":"incorrect username or password"}"#),
            "unauthorized: incorrect username or password"
        );
    }
}
