//! `ADD <http(s) URL> <dest>` as dockerd 20.10's classic builder does it (`downloadSource`,
//! `remotecontext.GetWithStatusError` in moby `builder/dockerfile/copy.go`), checked against
//! the real dockerd (docs/design/build-transcripts.md, "ADD of a URL"):
//!
//! - one GET per build, cache or not (the cache key is the downloaded file's hash), with Go's
//!   client headers (`User-Agent: Go-http-client/1.1`, `Accept-Encoding: gzip`, a gzip
//!   response decoded as Go's transport does); at most 10 requests through redirects;
//! - a status of 400 or more fails: `failed to GET <url> with status <status>: <body>`;
//! - the file is named after the URL's path (the last component, percent-decoded), else the
//!   `Content-Disposition` filename, else it has no name (`__unnamed__`: the destination must
//!   then not end in `/`); mode 0600, mtime from `Last-Modified` (the epoch without one);
//!   never unpacked, even when it is an archive;
//! - progress: `{"status":"Downloading","progressDetail":…}` lines (no `id`), then a
//!   `{"stream":"\n"}`.
//!
//! The body streams to a file in a store scratch directory (so the commit can hard-link it);
//! a failed or cancelled download leaves nothing.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Request, StatusCode, Uri};

use super::output::{go_json, StageOut};
use super::BuildError;

/// What Go's `http.Client` sends (dockerd downloads with `http.Get`).
const USER_AGENT: &str = "Go-http-client/1.1";
/// Go's client gives up when the 10th response is a redirect too.
const MAX_REQUESTS: usize = 10;
/// Docker's name for a download with no name from its URL or headers.
pub const UNNAMED: &str = "__unnamed__";
/// How often the progress line is updated at most (pkg/progress's reader).
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// A downloaded file, in a scratch directory that lives as long as this does.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The source word as written (the ADD's key for it).
    pub url: String,
    /// The name the URL or the response gave it (`None`: none; the file is `__unnamed__`).
    pub name: Option<String>,
    pub path: PathBuf,
    pub mtime: i64,
    /// Keeps the scratch directory (and the file) until the commit is done.
    pub dir: Arc<berth_store::ScratchDir>,
}

/// Whether a source word is a URL (Docker's `urlutil.IsURL`).
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Downloads `url` into a new scratch directory of `store`, writing Docker's progress lines
/// to `out`. Errors are the whole step message (`ADD failed: …`).
pub async fn download(
    http: &berth_distribution::client::Http,
    store: &berth_store::Store,
    url: &str,
    out: &StageOut,
) -> Result<Downloaded, BuildError> {
    let failed = |e: String| BuildError::msg(format!("ADD failed: {e}"));
    let (uri, path) = parse_url(url).map_err(failed)?;
    let resp = get_following_redirects(http, uri, url)
        .await
        .map_err(failed)?;
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let name = filename_for_download(&path, header("content-disposition").as_deref());
    let mtime = header("last-modified")
        .as_deref()
        .and_then(parse_http_date)
        .unwrap_or(0);
    let gzip = header("content-encoding").is_some_and(|e| e.eq_ignore_ascii_case("gzip"));
    // Go's transport drops the length of a body it decodes.
    let total: i64 = match header("content-length").and_then(|l| l.parse::<i64>().ok()) {
        Some(l) if !gzip => l,
        _ => -1,
    };
    let dir = store
        .scratch_dir()
        .map_err(|e| failed(format!("creating a download directory: {e}")))?;
    let file_path = dir.path().join(name.as_deref().unwrap_or(UNNAMED));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file_path)
        .map_err(|e| failed(format!("open {}: {e}", file_path.display())))?;

    // The body goes to a blocking writer in chunks; reading (and a gzip body's decoding,
    // whose output is what the progress counts, as Go's transport decodes before dockerd
    // reads) stays here.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut file = file;
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk)?;
        }
        file.flush()
    });
    let mut gunzip = gzip.then(|| flate2::write::GzDecoder::new(Vec::new()));
    let mut progress = Progress::new(total);
    let mut body = resp.into_body();
    let read: Result<(), String> = async {
        loop {
            let data = match body.frame().await {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers
                },
                Some(Err(e)) => {
                    progress.end(out, false);
                    return Err(body_error(&e));
                }
                None => {
                    let Some(mut gz) = gunzip.take() else {
                        progress.end(out, false);
                        return Ok(());
                    };
                    gz.try_finish().map_err(|e| gzip_error(&e))?;
                    let rest = Bytes::from(std::mem::take(gz.get_mut()));
                    if !rest.is_empty() {
                        progress.read(rest.len() as u64, out);
                        let _ = tx.send(rest).await;
                    }
                    progress.end(out, true);
                    return Ok(());
                }
            };
            let data = match gunzip.as_mut() {
                None => data,
                Some(gz) => {
                    gz.write_all(&data).map_err(|e| gzip_error(&e))?;
                    Bytes::from(std::mem::take(gz.get_mut()))
                }
            };
            if data.is_empty() {
                continue;
            }
            progress.read(data.len() as u64, out);
            if tx.send(data).await.is_err() {
                return Ok(()); // the writer failed: its error is reported below
            }
        }
    }
    .await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    read.and(written).map_err(failed)?;
    // dockerd's "random blank line" after the download.
    out.text("\n");
    let t = std::time::UNIX_EPOCH + Duration::from_secs(mtime as u64);
    std::fs::File::options()
        .write(true)
        .open(&file_path)
        .and_then(|f| f.set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t)))
        .map_err(|e| failed(format!("chtimes {}: {e}", file_path.display())))?;
    Ok(Downloaded {
        url: url.to_string(),
        name,
        path: file_path,
        mtime,
        dir: Arc::new(dir),
    })
}

/// GETs `uri`, following redirects as Go's client does (10 requests at most), and fails a
/// response with a status of 400 or more the way `GetWithStatusError` words it.
async fn get_following_redirects(
    http: &berth_distribution::client::Http,
    mut uri: Uri,
    original: &str,
) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    for n in 1.. {
        let req = Request::get(uri.clone())
            .header(hyper::header::USER_AGENT, USER_AGENT)
            .header(hyper::header::ACCEPT_ENCODING, "gzip")
            .body(berth_distribution::client::empty())
            .map_err(|e| e.to_string())?;
        let resp = http.send(req, false).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let location = resp
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_string);
        match (is_redirect(status), location) {
            (true, Some(loc)) => {
                if n >= MAX_REQUESTS {
                    return Err(format!("Get {:?}: stopped after 10 redirects", loc));
                }
                uri = resolve_location(&uri, &loc)
                    .ok_or_else(|| format!("failed to parse Location header {loc:?}"))?;
            }
            _ if status.as_u16() >= 400 => {
                let status_text = status_line(&resp);
                let body = read_some(resp.into_body(), 1 << 20).await;
                let msg = format!("failed to GET {original} with status {status_text}");
                return Err(match body {
                    Ok(b) => format!("{msg}: {}", String::from_utf8_lossy(&b).trim()),
                    Err(_) => format!("{msg}: error reading body"),
                });
            }
            _ => return Ok(resp),
        }
    }
    unreachable!()
}

/// The redirects Go's client follows for a GET.
fn is_redirect(s: StatusCode) -> bool {
    matches!(s.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Go's `resp.Status`: the code and the reason phrase the server sent.
fn status_line<B>(resp: &hyper::Response<B>) -> String {
    let reason = resp
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| resp.status().canonical_reason().map(str::to_string))
        .unwrap_or_default();
    format!("{} {reason}", resp.status().as_u16())
}

/// Up to `limit` bytes of a body (an error page).
async fn read_some(mut body: hyper::body::Incoming, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| body_error(&e))?;
        if let Ok(d) = frame.into_data() {
            out.extend_from_slice(&d[..d.len().min(limit - out.len())]);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Go's words for a bad gzip body.
fn gzip_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => "unexpected EOF".into(),
        std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            if e.to_string().contains("header") =>
        {
            "gzip: invalid header".into()
        }
        _ => format!("flate: {e}"),
    }
}

/// Go's words for a body cut short.
fn body_error(e: &hyper::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::UnexpectedEof => "unexpected EOF".into(),
                std::io::ErrorKind::ConnectionReset => "read: connection reset by peer".into(),
                _ => io.to_string(),
            };
        }
        source = s.source();
    }
    if e.is_incomplete_message() {
        "unexpected EOF".into()
    } else {
        e.to_string()
    }
}

/// pkg/progress's reader as dockerd uses it here: an update after each 1% (at most 512 KiB)
/// read, at most every 100 ms, and always when the whole length has arrived — Go's body
/// hands its last bytes over with the end of a body of known length. A body of unknown
/// length, or one cut short, ends with a read of nothing: a last update, which dockerd's
/// JSON progress output follows with an empty `{}` message.
struct Progress {
    total: i64,
    current: u64,
    last_update: u64,
    last_sent: Option<Instant>,
    /// The whole length arrived (no empty last read follows).
    complete: bool,
}

impl Progress {
    fn new(total: i64) -> Progress {
        Progress {
            total,
            current: 0,
            last_update: 0,
            last_sent: None,
            complete: false,
        }
    }

    fn update_every(&self) -> u64 {
        let mut every = 512 * 1024;
        if self.total > 0 {
            every = every.min((0.01 * self.total as f64) as u64);
        }
        every
    }

    /// `n` bytes read.
    fn read(&mut self, n: u64, out: &StageOut) {
        self.current += n;
        self.complete = self.total >= 0 && self.current == self.total as u64;
        if self.current - self.last_update > self.update_every() || self.complete {
            let allowed = self.last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
            if self.complete || allowed {
                self.send(out, false);
            }
            self.last_update = self.current;
        }
    }

    /// The body ended (or failed): the empty last read, unless the length was complete.
    /// Go's gzip reader instead hands its last bytes over with the end: an update if one is
    /// due, and no empty read.
    fn end(&mut self, out: &StageOut, gzip: bool) {
        if self.complete {
            return;
        }
        if !gzip {
            self.send(out, true);
        } else if self.last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            self.send(out, false);
        }
    }

    fn send(&mut self, out: &StageOut, last: bool) {
        self.last_sent = Some(Instant::now());
        out.raw(Bytes::from(
            go_json(&progress_json(self.current, self.total)) + "\r\n",
        ));
        if last {
            out.raw(Bytes::from_static(b"{}\r\n"));
        }
    }
}

/// One `Downloading` message as dockerd's JSON progress output writes it (no `id`).
fn progress_json(current: u64, total: i64) -> serde_json::Value {
    let bar = if total > 0 {
        berth_distribution::progress::progress_bar(current, total as u64)
    } else if current > 0 {
        format!("{:>8}", berth_distribution::progress::human_size(current))
    } else {
        String::new()
    };
    let mut detail = serde_json::Map::new();
    if current != 0 {
        detail.insert("current".into(), current.into());
    }
    if total != 0 {
        detail.insert("total".into(), total.into());
    }
    let mut v = serde_json::json!({ "status": "Downloading", "progressDetail": detail });
    if !bar.is_empty() {
        v["progress"] = bar.into();
    }
    v
}

/// The URL as Go's `url.Parse` takes it: the request URI (the fragment dropped) and the
/// percent-decoded path the file is named after. Errors in Go's words.
pub fn parse_url(url: &str) -> Result<(Uri, String), String> {
    let bad = |why: &str| format!("parse {url:?}: {why}");
    let no_fragment = url.split('#').next().unwrap_or(url);
    let rest = no_fragment
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or_default();
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.starts_with('[') && !authority.contains(']') {
        return Err(bad("missing ']' in host"));
    }
    if let Some((_, port)) = authority
        .rsplit_once(':')
        .filter(|_| !authority.ends_with(']'))
    {
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!("invalid port \":{port}\" after host")));
        }
        // Go parses it, then its dialer refuses it.
        if !port.is_empty() && port.parse::<u16>().is_err() {
            return Err(format!(
                "Get {no_fragment:?}: dial tcp: address {port}: invalid port"
            ));
        }
    }
    let uri: Uri = no_fragment
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    let raw_path = rest[authority.len()..]
        .split('?')
        .next()
        .unwrap_or_default();
    Ok((uri, percent_decode(raw_path)))
}

/// `%XX` decoded (an invalid escape stays as it is).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A redirect's `Location` against the URL that answered with it.
fn resolve_location(base: &Uri, loc: &str) -> Option<Uri> {
    let loc = loc.split('#').next().unwrap_or(loc);
    if is_url(loc) {
        return loc.parse().ok();
    }
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let full = if let Some(rest) = loc.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if loc.starts_with('/') {
        format!("{scheme}://{authority}{loc}")
    } else {
        let dir = base
            .path()
            .rsplit_once('/')
            .map(|(d, _)| d)
            .unwrap_or_default();
        format!("{scheme}://{authority}{dir}/{loc}")
    };
    full.parse().ok()
}

/// Docker's `getFilenameForDownload`: the URL path's last component unless the path ends in
/// `/`, else a `Content-Disposition` filename. `.` and `..` name nothing (they could not be
/// a file in the download directory).
pub fn filename_for_download(path: &str, content_disposition: Option<&str>) -> Option<String> {
    let base = |p: &str| {
        p.trim_end_matches('/')
            .rsplit('/')
            .next()
            .filter(|b| !b.is_empty() && *b != "." && *b != "..")
            .map(str::to_string)
    };
    if !path.is_empty() && !path.ends_with('/') {
        if let Some(name) = base(path) {
            return Some(name);
        }
    }
    let filename = disposition_filename(content_disposition?)?;
    if filename.is_empty() || filename.ends_with('/') {
        return None;
    }
    base(&filename)
}

/// The `filename` parameter of a `Content-Disposition` value (quoted or a token).
fn disposition_filename(value: &str) -> Option<String> {
    let mut params = value.split(';').skip(1);
    params.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("filename") {
            return None;
        }
        let v = v.trim();
        Some(
            match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                Some(q) => q.replace("\\\"", "\"").replace("\\\\", "\\"),
                None => v.to_string(),
            },
        )
    })
}

/// Go's `http.ParseTime`: RFC 1123 (`Mon, 02 Jan 2006 15:04:05 GMT`), RFC 850 and asctime,
/// as seconds since the epoch. A time before the epoch is the epoch (dockerd's `Chtimes`).
pub fn parse_http_date(s: &str) -> Option<i64> {
    const FORMATS: [&str; 3] = [
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    ];
    let t = FORMATS
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(s.trim(), f).ok())?;
    Some(t.and_utc().timestamp().max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_url_path_then_the_headers() {
        assert_eq!(
            filename_for_download("/a/b.txt", None).as_deref(),
            Some("b.txt")
        );
        assert_eq!(
            filename_for_download("/a/b.txt", Some("attachment; filename=\"x\"")).as_deref(),
            Some("b.txt")
        );
        assert_eq!(
            filename_for_download("/dir/", Some("attachment; filename=\"from header.txt\""))
                .as_deref(),
            Some("from header.txt")
        );
        assert_eq!(
            filename_for_download("", Some("attachment; filename=a/b/c.tgz")).as_deref(),
            Some("c.tgz")
        );
        assert_eq!(filename_for_download("/", None), None);
        assert_eq!(filename_for_download("", None), None);
        assert_eq!(
            filename_for_download("/x/", Some("inline; filename=\"d/\"")),
            None
        );
        assert_eq!(filename_for_download("/..", None), None);
    }

    #[test]
    fn urls_parse_as_go_reads_them() {
        let (uri, path) = parse_url("http://127.0.0.1:1/dir/a%20b?x=1#frag").unwrap();
        assert_eq!(uri.to_string(), "http://127.0.0.1:1/dir/a%20b?x=1");
        assert_eq!(path, "/dir/a b");
        assert_eq!(parse_url("http://127.0.0.1:1").unwrap().1, "");
        assert_eq!(
            parse_url("http://[::1").unwrap_err(),
            "parse \"http://[::1\": missing ']' in host"
        );
        assert_eq!(
            parse_url("http://h:x/a").unwrap_err(),
            "parse \"http://h:x/a\": invalid port \":x\" after host"
        );
    }

    #[test]
    fn redirects_resolve_against_the_answering_url() {
        let base: Uri = "http://h:1/a/b?q".parse().unwrap();
        let r = |l: &str| resolve_location(&base, l).unwrap().to_string();
        assert_eq!(r("/x"), "http://h:1/x");
        assert_eq!(r("y"), "http://h:1/a/y");
        assert_eq!(r("https://o/z#f"), "https://o/z");
        assert_eq!(r("//o2/p"), "http://o2/p");
    }

    #[test]
    fn last_modified_in_go_formats() {
        assert_eq!(
            parse_http_date("Thu, 02 Jan 2020 03:04:05 GMT"),
            Some(1577934245)
        );
        assert_eq!(
            parse_http_date("Thursday, 02-Jan-20 03:04:05 GMT"),
            Some(1577934245)
        );
        assert_eq!(
            parse_http_date("Thu Jan  2 03:04:05 2020"),
            Some(1577934245)
        );
        assert_eq!(parse_http_date("Mon, 01 Jan 1900 00:00:00 GMT"), Some(0));
        assert_eq!(parse_http_date("yesterday"), None);
    }

    #[test]
    fn progress_messages_as_dockerd_writes_them() {
        assert_eq!(
            go_json(&progress_json(12, 12)),
            r#"{"status":"Downloading","progressDetail":{"current":12,"total":12},"progress":"[==================================================\u003e]      12B/12B"}"#
        );
        assert_eq!(
            go_json(&progress_json(36659, 3000000)),
            r#"{"status":"Downloading","progressDetail":{"current":36659,"total":3000000},"progress":"[\u003e                                                  ]  36.66kB/3MB"}"#
        );
    }

    /// The messages a sequence of reads gives, `end` as the body ends (gzip or not).
    fn progress_lines(total: i64, reads: &[u64], end: Option<bool>) -> Vec<String> {
        let (out, mut rx) = StageOut::new();
        let mut p = Progress::new(total);
        for &n in reads {
            p.read(n, &out);
        }
        if let Some(gzip) = end {
            p.end(&out, gzip);
        }
        drop(out);
        let mut lines = Vec::new();
        while let Ok(b) = rx.try_recv() {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            lines.push(match v.get("progressDetail") {
                Some(d) => format!("{}/{}", d["current"], d["total"]),
                None => v.to_string(),
            });
        }
        lines
    }

    #[test]
    fn progress_updates_as_pkg_progress_sends_them() {
        // A known length: the update that completes it, no empty last read.
        assert_eq!(progress_lines(12, &[12], Some(false)), ["12/12"]);
        // The first 1% is sent; the next within 100 ms only when it completes the length.
        assert_eq!(
            progress_lines(3_000_000, &[32768, 32768, 2_934_464], Some(false)),
            ["32768/3000000", "3000000/3000000"]
        );
        // No length: nothing until the end, then the last update and `{}`.
        assert_eq!(progress_lines(-1, &[15], Some(false)), ["15/-1", "{}"]);
        // Cut short: the update of the failing read and `{}`.
        assert_eq!(
            progress_lines(100, &[3], Some(false)),
            ["3/100", "3/100", "{}"]
        );
        // A decoded gzip body ends with its data: an update only if one is due.
        assert_eq!(progress_lines(-1, &[1300], Some(true)), ["1300/-1"]);
    }
}
