//! Blob endpoints: `HEAD/GET/DELETE /v2/<name>/blobs/<digest>` (with single byte ranges) and
//! the upload endpoints under `/v2/<name>/blobs/uploads/` (monolithic, chunked, streamed,
//! cross-repository mount, status and cancel).

use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, StatusCode};
use serde_json::json;

use crate::error::{Code, RegistryError};
use crate::http::{self, Reply};
use crate::names::{digest_hex, is_repo_name};
use crate::server::State;
use crate::uploads::Upload;

fn valid_digest(digest: &str) -> Result<(), RegistryError> {
    match digest_hex(digest) {
        Some(_) => Ok(()),
        None => Err(Code::DigestInvalid.detail(json!({ "Digest": digest }))),
    }
}

/// `HEAD/GET /v2/<name>/blobs/<digest>`
pub fn get(state: &State, name: &str, digest: &str, req: &Request<Incoming>) -> Reply {
    valid_digest(digest)?;
    if !state.repos.has_blob(name, digest) {
        return Err(Code::BlobUnknown.detail(digest));
    }
    let path = state.content.path(digest)?;
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // Linked but gone (deleted from disk behind our back): unknown, as Distribution says.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Code::BlobUnknown.detail(digest))
        }
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata()?.len();
    let range = match req.headers().get(hyper::header::RANGE) {
        Some(v) if req.method() == Method::GET => parse_range(v.to_str().unwrap_or(""), size),
        _ => RangeAnswer::Whole,
    };
    let (status, start, len) = match range {
        RangeAnswer::Whole => (StatusCode::OK, 0, size),
        RangeAnswer::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        RangeAnswer::Unsatisfiable => {
            let mut resp = http::full(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "text/plain; charset=utf-8",
                "",
            );
            http::set(&mut resp, "content-range", &format!("bytes */{size}"));
            blob_headers(&mut resp, digest);
            return Ok(resp);
        }
    };
    let mut resp = if req.method() == Method::HEAD {
        http::empty(status)
    } else {
        let mut r = http::empty(status);
        *r.body_mut() = http::file_body(file, size, start, len)?;
        r
    };
    blob_headers(&mut resp, digest);
    http::set(&mut resp, "accept-ranges", "bytes");
    http::set(&mut resp, "content-type", "application/octet-stream");
    http::set(&mut resp, "content-length", &len.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        http::set(
            &mut resp,
            "content-range",
            &format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    Ok(resp)
}

fn blob_headers(resp: &mut hyper::Response<http::Body>, digest: &str) {
    http::set(resp, "docker-content-digest", digest);
    http::set(resp, "etag", &format!("\"{digest}\""));
    http::set(resp, "cache-control", "max-age=31536000");
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range of a `size`-byte blob, as Go's
/// `http.ServeContent` answers it; anything it cannot parse means the whole blob.
fn parse_range(header: &str, size: u64) -> RangeAnswer {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Whole;
    };
    if spec.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let (start, end) = if a.is_empty() {
        let Some(n) = parse(b) else {
            return RangeAnswer::Whole;
        };
        if n == 0 || size == 0 {
            return RangeAnswer::Unsatisfiable;
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let Some(start) = parse(a) else {
            return RangeAnswer::Whole;
        };
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            match parse(b) {
                Some(e) if e >= start => e.min(size.saturating_sub(1)),
                _ => return RangeAnswer::Whole,
            }
        };
        (start, end)
    };
    if start >= size {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Part(start, end)
}

/// `DELETE /v2/<name>/blobs/<digest>`: the blob leaves the repository; its bytes go at the
/// next start's garbage collection once no repository holds it.
pub fn delete(state: &State, name: &str, digest: &str) -> Reply {
    valid_digest(digest)?;
    if !state.repos.unlink_blob(name, digest)? {
        return Err(Code::BlobUnknown.detail(digest));
    }
    Ok(http::empty(StatusCode::ACCEPTED))
}

/// The headers every upload-in-progress answer carries.
fn upload_reply(
    status: StatusCode,
    headers: &HeaderMap,
    state: &State,
    name: &str,
    upload: &Upload,
) -> Reply {
    let mut resp = http::empty(status);
    let base = http::base_url(headers, state.tls);
    http::set(
        &mut resp,
        "location",
        &format!("{base}/v2/{name}/blobs/uploads/{}", upload.id),
    );
    // Distribution's form: "0-<last byte>", and "0-0" before any byte arrived.
    let size = upload.size();
    http::set(&mut resp, "range", &format!("0-{}", size.saturating_sub(1)));
    http::set(&mut resp, "docker-upload-uuid", &upload.id);
    Ok(resp)
}

/// The answer to a blob now in the repository.
fn created(headers: &HeaderMap, state: &State, name: &str, digest: &str) -> Reply {
    let mut resp = http::empty(StatusCode::CREATED);
    let base = http::base_url(headers, state.tls);
    http::set(
        &mut resp,
        "location",
        &format!("{base}/v2/{name}/blobs/{digest}"),
    );
    http::set(&mut resp, "docker-content-digest", digest);
    Ok(resp)
}

/// `POST /v2/<name>/blobs/uploads/`: a mount (`?mount=&from=`), a monolithic upload
/// (`?digest=` with the blob as body), or a new session.
pub async fn start(state: &State, name: &str, req: Request<Incoming>) -> Reply {
    let q = http::query(req.uri());
    if let (Some(digest), Some(from)) = (q.get("mount"), q.get("from")) {
        valid_digest(digest)?;
        // A source the client may not name, or that lacks the blob: start a normal upload,
        // as Distribution does.
        if is_repo_name(from)
            && state.repos.has_blob(from, digest)
            && state.content.path(digest)?.exists()
        {
            state.repos.link_blob(name, digest)?;
            return created(req.headers(), state, name, digest);
        }
    }
    let (parts, body) = req.into_parts();
    let mut upload = state.uploads.start(name).await?;
    let Some(digest) = q.get("digest") else {
        return upload_reply(StatusCode::ACCEPTED, &parts.headers, state, name, &upload);
    };
    let result = async {
        valid_digest(digest)?;
        upload.append(body).await?;
        Ok::<_, RegistryError>(())
    }
    .await;
    if let Err(e) = result {
        state.uploads.cancel(upload)?;
        return Err(e);
    }
    let id = upload.id.clone();
    if let Err(e) = state.uploads.finish(upload, digest).await {
        // A monolithic upload has no session for the client to go on with.
        if let Ok(u) = state.uploads.get(name, &id).await {
            state.uploads.cancel(u)?;
        }
        return Err(e);
    }
    state.repos.link_blob(name, digest)?;
    created(&parts.headers, state, name, digest)
}

/// `GET /v2/<name>/blobs/uploads/<id>`: progress.
pub async fn status(state: &State, name: &str, id: &str, headers: &HeaderMap) -> Reply {
    let upload = state.uploads.get(name, id).await?;
    upload_reply(StatusCode::NO_CONTENT, headers, state, name, &upload)
}

/// `PATCH /v2/<name>/blobs/uploads/<id>`: one more chunk. With `Content-Range: <a>-<b>`, `a`
/// must be where the upload stands (416 otherwise); without it the body is streamed on.
pub async fn patch(state: &State, name: &str, id: &str, req: Request<Incoming>) -> Reply {
    let (parts, body) = req.into_parts();
    let mut upload = state.uploads.get(name, id).await?;
    if let Some(range) = parts.headers.get(hyper::header::CONTENT_RANGE) {
        let range = range.to_str().unwrap_or("");
        let range = range
            .strip_prefix("bytes=")
            .or_else(|| range.strip_prefix("bytes "))
            .unwrap_or(range);
        let bounds = range.split_once('-').and_then(|(a, b)| {
            Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?))
        });
        let Some((start, end)) = bounds else {
            return Err(Code::RangeInvalid.into());
        };
        let declared = parts
            .headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let length_mismatch =
            declared.is_some_and(|len| end.checked_sub(start).map(|d| d + 1) != Some(len));
        if start != upload.size() || end < start || length_mismatch {
            return Err(Code::RangeInvalid
                .detail(json!({ "Range": format!("0-{}", upload.size().saturating_sub(1)) })));
        }
    }
    upload.append(body).await?;
    upload_reply(StatusCode::ACCEPTED, &parts.headers, state, name, &upload)
}

/// `PUT /v2/<name>/blobs/uploads/<id>?digest=`: the last chunk (if any), then the blob is
/// published if its bytes hash to `digest`.
pub async fn finish(state: &State, name: &str, id: &str, req: Request<Incoming>) -> Reply {
    let q = http::query(req.uri());
    let Some(digest) = q.get("digest").cloned() else {
        return Err(Code::DigestInvalid.detail("digest missing"));
    };
    valid_digest(&digest)?;
    let (parts, body) = req.into_parts();
    let mut upload = state.uploads.get(name, id).await?;
    upload.append(body).await?;
    state.uploads.finish(upload, &digest).await?;
    state.repos.link_blob(name, &digest)?;
    created(&parts.headers, state, name, &digest)
}

/// `DELETE /v2/<name>/blobs/uploads/<id>`: cancel.
pub async fn cancel(state: &State, name: &str, id: &str) -> Reply {
    let upload = state.uploads.get(name, id).await?;
    state.uploads.cancel(upload)?;
    Ok(http::empty(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_answered_like_go() {
        use RangeAnswer::*;
        assert_eq!(parse_range("bytes=0-0", 10), Part(0, 0));
        assert_eq!(parse_range("bytes=2-", 10), Part(2, 9));
        assert_eq!(parse_range("bytes=-3", 10), Part(7, 9));
        assert_eq!(parse_range("bytes=5-100", 10), Part(5, 9));
        assert_eq!(parse_range("bytes=10-12", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 10), Whole);
        assert_eq!(parse_range("items=1-2", 10), Whole);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Whole);
    }
}
