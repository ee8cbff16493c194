//! The distribution spec's error codes, and their one rendering as an HTTP response:
//! `{"errors":[{"code":…,"message":…,"detail":…}]}` with the status Distribution gives each.

use hyper::StatusCode;
use serde_json::Value;

/// One error code of the distribution spec (plus Distribution's RANGE_INVALID and UNKNOWN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    TagInvalid,
    Unauthorized,
    RangeInvalid,
    Unknown,
}

impl Code {
    fn parts(self) -> (&'static str, &'static str, StatusCode) {
        use Code::*;
        match self {
            BlobUnknown => (
                "BLOB_UNKNOWN",
                "blob unknown to registry",
                StatusCode::NOT_FOUND,
            ),
            BlobUploadInvalid => (
                "BLOB_UPLOAD_INVALID",
                "blob upload invalid",
                StatusCode::BAD_REQUEST,
            ),
            BlobUploadUnknown => (
                "BLOB_UPLOAD_UNKNOWN",
                "blob upload unknown to registry",
                StatusCode::NOT_FOUND,
            ),
            DigestInvalid => (
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
                StatusCode::BAD_REQUEST,
            ),
            ManifestBlobUnknown => (
                "MANIFEST_BLOB_UNKNOWN",
                "blob unknown to registry",
                StatusCode::BAD_REQUEST,
            ),
            ManifestInvalid => (
                "MANIFEST_INVALID",
                "manifest invalid",
                StatusCode::BAD_REQUEST,
            ),
            ManifestUnknown => (
                "MANIFEST_UNKNOWN",
                "manifest unknown",
                StatusCode::NOT_FOUND,
            ),
            NameInvalid => (
                "NAME_INVALID",
                "invalid repository name",
                StatusCode::BAD_REQUEST,
            ),
            NameUnknown => (
                "NAME_UNKNOWN",
                "repository name not known to registry",
                StatusCode::NOT_FOUND,
            ),
            TagInvalid => (
                "TAG_INVALID",
                "manifest tag did not match URI",
                StatusCode::BAD_REQUEST,
            ),
            Unauthorized => (
                "UNAUTHORIZED",
                "authentication required",
                StatusCode::UNAUTHORIZED,
            ),
            RangeInvalid => (
                "RANGE_INVALID",
                "invalid content range",
                StatusCode::RANGE_NOT_SATISFIABLE,
            ),
            Unknown => (
                "UNKNOWN",
                "unknown error",
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        }
    }

    /// This code with a detail value.
    pub fn detail(self, detail: impl Into<Value>) -> RegistryError {
        RegistryError {
            code: self,
            detail: Some(detail.into()),
        }
    }
}

/// An error answer: a code and its detail (None: no `detail` field at all).
#[derive(Debug)]
pub struct RegistryError {
    pub code: Code,
    pub detail: Option<Value>,
}

impl From<Code> for RegistryError {
    fn from(code: Code) -> RegistryError {
        RegistryError { code, detail: None }
    }
}

/// Storage failures are the registry's fault: logged, answered as 500 UNKNOWN.
impl From<std::io::Error> for RegistryError {
    fn from(e: std::io::Error) -> RegistryError {
        eprintln!("berth-registry: {e}");
        Code::Unknown.detail(e.to_string())
    }
}

impl From<berth_store::Error> for RegistryError {
    fn from(e: berth_store::Error) -> RegistryError {
        eprintln!("berth-registry: {e}");
        Code::Unknown.detail(e.to_string())
    }
}

impl RegistryError {
    /// Status and JSON body.
    pub fn render(&self) -> (StatusCode, String) {
        let (code, message, status) = self.code.parts();
        // Distribution's field order, and no `detail` when there is none.
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            detail: &'a Option<Value>,
        }
        #[derive(serde::Serialize)]
        struct Errors<'a> {
            errors: [Entry<'a>; 1],
        }
        let body = Errors {
            errors: [Entry {
                code,
                message,
                detail: &self.detail,
            }],
        };
        (status, serde_json::to_string(&body).unwrap_or_default())
    }
}
