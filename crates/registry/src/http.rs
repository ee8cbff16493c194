//! Response building shared by the handlers: the body type, JSON and empty answers, error
//! rendering, query parsing and the absolute `Location` URLs Distribution sends.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Frame;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::error::RegistryError;

/// Every response body.
pub type Body = BoxBody<Bytes, io::Error>;

/// What handlers return.
pub type Reply = Result<Response<Body>, RegistryError>;

/// A response with no body and `Content-Length: 0`.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

/// A response carrying `bytes` with `content_type`.
pub fn full(status: StatusCode, content_type: &str, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(
        Full::new(bytes.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r
}

/// A JSON answer as Distribution sends them.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    full(status, "application/json; charset=utf-8", value.to_string())
}

/// The error response for `e`.
pub fn error(e: &RegistryError) -> Response<Body> {
    let (status, body) = e.render();
    full(status, "application/json; charset=utf-8", body)
}

/// Sets a header whose value was built from validated parts (so it is always valid).
pub fn set(resp: &mut Response<Body>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

/// The query string's parameters (the last of repeated ones).
pub fn query(uri: &hyper::Uri) -> HashMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `scheme://host` the client used, for absolute `Location` headers as Distribution sends.
pub fn base_url(headers: &hyper::HeaderMap, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Bytes handed to hyper per frame when serving a blob: large enough that per-frame costs
/// vanish, small enough that a slow client applies backpressure early.
const CHUNK: usize = 8 << 20;

/// A read-only mapping of a whole blob file. Serving from it spares the copy into a read
/// buffer: the kernel copies straight from the page cache into the socket. Blob files are
/// immutable (published by rename, never rewritten or truncated), so the mapping stays valid
/// even if the blob is deleted meanwhile.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; sharing reads is sound.
unsafe impl Send for Mapping {}
// SAFETY: as above, only shared reads happen through it.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(file: &std::fs::File, len: usize) -> io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh private read-only mapping of `len` bytes of an open file; the
        // result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: advice on the mapping just made; failure is harmless.
        unsafe { libc::madvise(ptr, len, libc::MADV_SEQUENTIAL) };
        Ok(Mapping { ptr, len })
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this value owns; no slice of it outlives the
        // value, since `Bytes::from_owner` keeps the owner alive as long as any slice.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// A body that hands out consecutive slices of a mapped blob.
struct MappedBody {
    data: Bytes,
    offset: usize,
    end: usize,
}

impl hyper::body::Body for MappedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if self.offset >= self.end {
            return Poll::Ready(None);
        }
        let next = (self.offset + CHUNK).min(self.end);
        let frame = self.data.slice(self.offset..next);
        self.offset = next;
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.offset >= self.end
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact((self.end - self.offset) as u64)
    }
}

/// Serves `len` bytes of the `size`-byte blob `file` from `start`.
pub fn file_body(file: std::fs::File, size: u64, start: u64, len: u64) -> io::Result<Body> {
    if len == 0 {
        return Ok(Empty::new().map_err(|never| match never {}).boxed());
    }
    let size = usize::try_from(size).map_err(io::Error::other)?;
    let data = Bytes::from_owner(Mapping::new(&file, size)?);
    let (offset, end) = (start as usize, (start + len) as usize);
    Ok(MappedBody { data, offset, end }.boxed())
}
