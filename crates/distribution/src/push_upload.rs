//! Blob uploads (the distribution spec's push side): existence checks, cross-repository
//! mounts, monolithic PUTs, chunked PATCHes and one streamed PATCH, with bodies that stream
//! from a file or a channel and count what they send.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use hyper::{Request, StatusCode};
use tokio::sync::mpsc;

use crate::client::{check, empty, full, Body, Repository};
use crate::error::{Error, Result};

/// Blobs up to this size go in one PUT; bigger ones in PATCHes of `CHUNK_SIZE`.
pub const MONOLITHIC_MAX: u64 = 32 << 20;
/// Size of each PATCH of a chunked upload: large, since every chunk is a round trip and a
/// registry fsyncs nothing per chunk, yet small enough that a failed one is cheap to redo.
pub const CHUNK_SIZE: u64 = 256 << 20;
/// Size of the pieces a body is sent in.
const PIECE: usize = 1 << 20;

/// A request body fed by a channel; `len` (when known) becomes its exact size hint, so hyper
/// sends Content-Length instead of chunked encoding.
pub struct ChannelBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    len: Option<u64>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        match self.len {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

impl ChannelBody {
    /// A body and the sender that feeds it (`len`: its exact size, when known).
    pub fn new(len: Option<u64>) -> (mpsc::Sender<std::io::Result<Bytes>>, Body) {
        let (tx, rx) = mpsc::channel(8);
        (tx, ChannelBody { rx, len }.boxed())
    }
}

/// A body streaming `len` bytes of `path` from `offset`, read off the async workers; every
/// byte sent is added to `sent`.
pub fn file_body(path: PathBuf, offset: u64, len: u64, sent: Arc<AtomicU64>) -> Body {
    let (tx, body) = ChannelBody::new(Some(len));
    tokio::task::spawn_blocking(move || {
        let res = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut left = len;
            while left > 0 {
                let mut buf = vec![0u8; PIECE.min(left as usize)];
                f.read_exact(&mut buf)?;
                left -= buf.len() as u64;
                let n = buf.len() as u64;
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return Ok(()); // the request went away
                }
                sent.fetch_add(n, Ordering::Relaxed);
            }
            Ok(())
        })();
        if let Err(e) = res {
            let _ = tx.blocking_send(Err(e));
        }
    });
    body
}

/// Where an upload session lives, as the registry's `Location` header gave it (made absolute).
#[derive(Debug, Clone)]
pub struct Session(pub String);

/// The outcome of starting an upload.
pub enum Started {
    /// The registry mounted the blob from the other repository: nothing to upload.
    Mounted,
    /// An upload session to send the bytes to.
    Upload(Session),
}

fn location(repo: &Repository, resp: &hyper::Response<hyper::body::Incoming>) -> Result<Session> {
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Invalid("registry answered an upload without a Location".into()))?;
    Ok(Session(
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else {
            format!("{}{loc}", repo.endpoint().base)
        },
    ))
}

/// Whether the repository has blob `digest` (HEAD); its size when it does.
pub async fn exists(repo: &Repository, digest: &str) -> Result<Option<u64>> {
    let url = repo.url(&format!("blobs/{digest}"));
    let make = || {
        Request::head(&url)
            .body(empty())
            .unwrap_or_else(|_| Request::new(empty()))
    };
    let resp = repo.send(&make).await?;
    match resp.status() {
        s if s.is_success() => Ok(Some(
            resp.headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )),
        StatusCode::NOT_FOUND => Ok(None),
        _ => check(resp).await.map(|_| None),
    }
}

/// Starts an upload; with `mount` = (digest, repository), asks for a cross-repository mount
/// first (a registry that cannot mount starts a plain upload instead).
pub async fn start(repo: &Repository, mount: Option<(&str, &str)>) -> Result<Started> {
    let mut url = repo.url("blobs/uploads/");
    if let Some((digest, from)) = mount {
        url.push_str(&format!(
            "?mount={digest}&from={}",
            percent_encoding::utf8_percent_encode(from, percent_encoding::NON_ALPHANUMERIC)
        ));
    }
    let make = || {
        Request::post(&url)
            .header("Content-Length", "0")
            .body(empty())
            .unwrap_or_else(|_| Request::new(empty()))
    };
    let resp = check(repo.send(&make).await?).await?;
    if resp.status() == StatusCode::CREATED && mount.is_some() {
        return Ok(Started::Mounted);
    }
    location(repo, &resp).map(Started::Upload)
}

/// `url` with one more query parameter.
fn with_param(url: &str, kv: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{kv}")
}

/// Sends the whole blob in the closing PUT (`body` = its bytes, `len` of them).
pub async fn put_monolithic(
    repo: &Repository,
    session: &Session,
    digest: &str,
    body: impl Fn() -> Body + Sync,
    len: u64,
) -> Result<()> {
    let url = with_param(&session.0, &format!("digest={digest}"));
    let make = || {
        Request::put(&url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len.to_string())
            .body(body())
            .unwrap_or_else(|_| Request::new(empty()))
    };
    check(repo.send(&make).await?).await.map(|_| ())
}

/// Sends one PATCH (a `range` of the blob, or with `range` None a stream of unknown length)
/// and returns where the session continues.
pub async fn patch(
    repo: &Repository,
    session: &Session,
    body: &(dyn Fn() -> Body + Sync),
    range: Option<(u64, u64)>,
) -> Result<Session> {
    let url = session.0.clone();
    let make = || {
        let mut b = Request::patch(&url).header("Content-Type", "application/octet-stream");
        if let Some((start, len)) = range {
            b = b
                .header("Content-Range", format!("{start}-{}", start + len - 1))
                .header("Content-Length", len.to_string());
        }
        b.body(body()).unwrap_or_else(|_| Request::new(empty()))
    };
    let resp = check(repo.send(&make).await?).await?;
    location(repo, &resp)
}

/// Closes a session whose bytes were all PATCHed.
pub async fn finish(repo: &Repository, session: &Session, digest: &str) -> Result<()> {
    let url = with_param(&session.0, &format!("digest={digest}"));
    let make = || {
        Request::put(&url)
            .header("Content-Length", "0")
            .body(empty())
            .unwrap_or_else(|_| Request::new(empty()))
    };
    check(repo.send(&make).await?).await.map(|_| ())
}

/// Uploads the blob in file `path` (`size` bytes, digest `digest`) into `session`: one PUT
/// when small, else PATCHes of [`CHUNK_SIZE`] and a closing PUT.
pub async fn upload_file(
    repo: &Repository,
    session: Session,
    path: &Path,
    digest: &str,
    size: u64,
    sent: Arc<AtomicU64>,
) -> Result<()> {
    if size <= MONOLITHIC_MAX {
        let body = || file_body(path.to_path_buf(), 0, size, sent.clone());
        return put_monolithic(repo, &session, digest, body, size).await;
    }
    let mut session = session;
    let mut offset = 0;
    while offset < size {
        let len = CHUNK_SIZE.min(size - offset);
        let body = || file_body(path.to_path_buf(), offset, len, sent.clone());
        session = patch(repo, &session, &body, Some((offset, len))).await?;
        offset += len;
    }
    finish(repo, &session, digest).await
}

/// Sends a live stream (`body`, of unknown length) in one PATCH and returns where the session
/// continues. The stream cannot be replayed: a refused token is [`Error::TokenRefused`], for
/// the caller to upload again from what it kept.
pub async fn patch_stream(repo: &Repository, session: &Session, body: Body) -> Result<Session> {
    let req = Request::patch(&session.0)
        .header("Content-Type", "application/octet-stream")
        .body(body)
        .map_err(|e| Error::Invalid(format!("upload {}: {e}", session.0)))?;
    let resp = check(repo.send_once(req).await?).await?;
    location(repo, &resp)
}

/// A small blob (a config) from memory.
pub async fn upload_bytes(repo: &Repository, digest: &str, bytes: Bytes) -> Result<()> {
    let Started::Upload(session) = start(repo, None).await? else {
        return Ok(());
    };
    let len = bytes.len() as u64;
    put_monolithic(repo, &session, digest, || full(bytes.clone()), len).await
}
