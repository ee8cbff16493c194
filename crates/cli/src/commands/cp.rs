//! `berth cp`: copies files between a container and the local filesystem, with docker-cli's
//! path rules (`dir` vs `dir/.`, a trailing `/` asserting a directory, `-` for a tar stream).
//! The archive is built or unpacked here; the daemon only stats, tars and extracts.

use bytes::Bytes;
use clap::Args;
use hyper::{Method, StatusCode};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::client::{self, Client, ClientError};
use crate::commands::{CmdResult, Failure};

/// `berth cp`
#[derive(Debug, Clone, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    #[arg(value_name = "SRC")]
    pub source: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    #[arg(value_name = "DEST")]
    pub destination: String,
}

const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;

/// The daemon's `X-Docker-Container-Path-Stat`.
#[derive(Debug, Default, serde::Deserialize)]
struct PathStat {
    #[serde(default)]
    mode: u32,
    #[serde(default, rename = "linkTarget")]
    link_target: String,
}

/// docker's splitCpArg: `c:path`, unless the argument is absolute or starts with `.`.
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') => (Some(c), p),
        _ => (None, arg),
    }
}

/// Go's filepath.Clean for '/'-separated paths.
fn clean(path: &str) -> String {
    let abs = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    match (abs, out.is_empty()) {
        (true, _) => format!("/{}", out.join("/")),
        (false, true) => ".".into(),
        (false, false) => out.join("/"),
    }
}

fn specifies_current_dir(p: &str) -> bool {
    p == "." || p.ends_with("/.")
}

fn asserts_directory(p: &str) -> bool {
    p.ends_with('/') || specifies_current_dir(p)
}

/// docker's SplitPathDirEntry: (dir, base), where `x/.` has base ".".
fn split_dir_entry(p: &str) -> (String, String) {
    let mut c = clean(p);
    if specifies_current_dir(p) {
        c.push_str("/.");
    }
    match c.rfind('/') {
        Some(0) => ("/".into(), c[1..].to_string()),
        Some(i) => (c[..i].to_string(), c[i + 1..].to_string()),
        None => (".".into(), c),
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn not_found(container: &str, path: &str) -> Failure {
    Failure::new(
        1,
        format!("Error: No such container:path: {container}:{path}"),
    )
}

/// docker 20.10 reports any 404 on the archive endpoint as the container:path pair.
fn api_err(e: ClientError, container: &str, path: &str) -> Failure {
    if e.is_not_found() {
        return not_found(container, path);
    }
    Failure::from(e)
}

/// docker's ValidateOutputPath: the parent must exist, and the path be a directory or file.
fn validate_output_path(path: &str) -> Result<(), Failure> {
    let (dir, _) = split_dir_entry(&clean(path));
    if dir != "." && !Path::new(&dir).exists() {
        return Err(Failure::new(
            1,
            format!("invalid output path: directory \"{dir}\" does not exist"),
        ));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() || m.is_file() => Ok(()),
        Ok(_) => Err(Failure::new(
            1,
            format!("invalid output path: \"{path}\" must be a directory or a regular file"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::new(1, format!("stat {path}: {}", io_reason(&e)))),
    }
}

fn archive_path(container: &str, path: &str) -> String {
    format!(
        "/containers/{}/archive?path={}",
        client::enc_path(container),
        client::enc(path)
    )
}

async fn stat(client: &Client, container: &str, path: &str) -> Result<PathStat, ClientError> {
    let resp = client
        .send(
            Method::HEAD,
            &archive_path(container, path),
            client::empty(),
        )
        .await?;
    Ok(parse_stat(resp.headers()))
}

fn parse_stat(h: &hyper::HeaderMap) -> PathStat {
    h.get("X-Docker-Container-Path-Stat")
        .and_then(|v| serde_json::from_slice(&decode_base64(v.to_str().unwrap_or(""))).ok())
        .unwrap_or_default()
}

/// Rewrites the leading `old` component of every entry to `new` (docker's RebaseArchiveEntries).
fn rebase(tar_bytes: &[u8], old: &str, new: &str) -> Result<Vec<u8>, Failure> {
    let io = |e: std::io::Error| Failure::new(1, e.to_string());
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(tar_bytes);
    for e in a.entries().map_err(io)? {
        let mut e = e.map_err(io)?;
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let renamed = match name.strip_prefix(old) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{new}{rest}"),
            _ => name.clone(),
        };
        let mut h = e.header().clone();
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned());
        if h.entry_type() == tar::EntryType::Symlink || h.entry_type() == tar::EntryType::Link {
            let mut link = link.unwrap_or_default();
            if h.entry_type() == tar::EntryType::Link {
                if let Some(rest) = link
                    .strip_prefix(old)
                    .filter(|r| r.is_empty() || r.starts_with('/'))
                {
                    link = format!("{new}{rest}");
                }
            }
            out.append_link(&mut h, &renamed, link).map_err(io)?;
        } else {
            let mut data = Vec::new();
            e.read_to_end(&mut data).map_err(io)?;
            out.append_data(&mut h, &renamed, data.as_slice())
                .map_err(io)?;
        }
    }
    out.into_inner().map_err(io)
}

/// `berth cp`
pub async fn run(client: &Client, args: CpArgs) -> CmdResult {
    let (src_c, src_p) = split_arg(&args.source);
    let (dst_c, dst_p) = split_arg(&args.destination);
    match (src_c, dst_c) {
        (Some(_), Some(_)) => Err(Failure::new(
            1,
            "copying between containers is not supported",
        )),
        (None, None) => Err(Failure::new(
            1,
            "must specify at least one container source",
        )),
        (Some(c), None) => from_container(client, c, src_p, dst_p, args.follow_link).await,
        (None, Some(c)) => {
            to_container(client, c, src_p, dst_p, args.archive, args.follow_link).await
        }
    }
}

async fn from_container(
    client: &Client,
    container: &str,
    src: &str,
    dst: &str,
    follow: bool,
) -> CmdResult {
    let mut src = src.to_string();
    let mut rebase_name = None;
    if follow {
        if let Ok(st) = stat(client, container, &src).await {
            if st.mode & MODE_SYMLINK != 0 {
                let (parent, base) = split_dir_entry(&src);
                let target = if st.link_target.starts_with('/') {
                    st.link_target
                } else {
                    clean(&format!("{parent}/{}", st.link_target))
                };
                rebase_name = Some(base);
                src = target;
            }
        }
    }
    if dst != "-" {
        validate_output_path(&absolute(dst))?;
    }
    let resp = client
        .send(Method::GET, &archive_path(container, &src), client::empty())
        .await
        .map_err(|e| api_err(e, container, &src))?;
    let st = parse_stat(resp.headers());
    let mut body = resp.into_body();
    if dst == "-" {
        use std::io::Write;
        while let Some(chunk) = client::next_chunk(&mut body).await? {
            let mut out = std::io::stdout().lock();
            out.write_all(&chunk)
                .and_then(|_| out.flush())
                .map_err(|e| Failure::new(1, e.to_string()))?;
        }
        return Ok(0);
    }
    let src_is_dir = st.mode & MODE_DIR != 0;
    let (_, src_base) = split_dir_entry(&src);
    let dst_path = absolute(dst);
    let dst_path = if asserts_directory(dst)
        && !dst_path.ends_with('/')
        && !specifies_current_dir(&dst_path)
    {
        format!("{dst_path}/")
    } else {
        dst_path
    };
    // docker's CopyInfoDestinationPath, then PrepareArchiveCopy.
    let (exists, is_dir) = match std::fs::metadata(&dst_path) {
        Ok(m) => (true, m.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (parent, _) = split_dir_entry(&dst_path);
            match std::fs::metadata(&parent) {
                Ok(m) if !m.is_dir() => return Err(Failure::new(1, "not a directory")),
                Ok(_) => (false, false),
                Err(e) => return Err(Failure::new(1, format!("stat {parent}: {}", io_reason(&e)))),
            }
        }
        Err(e) => {
            return Err(Failure::new(
                1,
                format!("lstat {dst_path}: {}", io_reason(&e)),
            ))
        }
    };
    let target = if exists && is_dir {
        // -L names the top entry after the link (docker rebases before extracting).
        let rename = rebase_name.clone().map(|r| (src_base.clone(), r));
        Target::Into(PathBuf::from(clean(&dst_path)), rename)
    } else if exists && src_is_dir {
        return Err(Failure::new(1, "cannot copy directory"));
    } else if !exists && !src_is_dir && asserts_directory(&dst_path) {
        return Err(Failure::new(1, "no such directory"));
    } else {
        Target::Replace {
            dst: PathBuf::from(clean(&dst_path)),
            // `dir/.` and `/` come as their contents (the root's entries are "/", "/a", …).
            contents: (src_base == "." || src_base.is_empty()) && rebase_name.is_none(),
        }
    };
    let handle = tokio::runtime::Handle::current();
    let reader = BodyReader {
        body,
        handle,
        cur: Bytes::new(),
    };
    tokio::task::spawn_blocking(move || unpack_local(reader, target))
        .await
        .map_err(|e| Failure::new(1, e.to_string()))??;
    Ok(0)
}

/// Where a downloaded archive goes (docker's PrepareArchiveCopy, without rewriting names).
enum Target {
    /// Extract into this existing directory, renaming the top entry (old, new) for -L.
    Into(PathBuf, Option<(String, String)>),
    /// Extract beside it, then rename the archive's one top entry (or, for `dir/.`, the
    /// whole extraction) to `dst`: the same result as docker's rebasing of entry names.
    Replace { dst: PathBuf, contents: bool },
}

/// The response body as a blocking reader, for unpacking on a blocking thread.
struct BodyReader {
    body: hyper::body::Incoming,
    handle: tokio::runtime::Handle,
    cur: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.handle.block_on(client::next_chunk(&mut self.body)) {
                Ok(Some(chunk)) => self.cur = chunk,
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Unpacks with the tar crate's `unpack`, which keeps every entry (and anything reached
/// through a symlink the archive made) inside the directory: the archive comes from the
/// container and is not trusted.
fn unpack_local(mut reader: impl Read, target: Target) -> Result<(), Failure> {
    let fail = |e: std::io::Error| Failure::new(1, e.to_string());
    let unpack = |reader: &mut dyn Read, dir: &Path| -> std::io::Result<()> {
        let mut a = tar::Archive::new(reader);
        a.set_preserve_permissions(true);
        a.set_overwrite(true);
        a.unpack(dir)
    };
    match target {
        Target::Into(dir, None) => unpack(&mut reader, &dir).map_err(fail),
        // Rare enough (-L into an existing directory) to rewrite the names in memory.
        Target::Into(dir, Some((old, new))) => {
            let mut data = Vec::new();
            reader.read_to_end(&mut data).map_err(fail)?;
            let renamed = rebase(&data, &old, &new)?;
            unpack(&mut renamed.as_slice(), &dir).map_err(fail)
        }
        Target::Replace { dst, contents } => {
            let parent = dst.parent().unwrap_or(Path::new("/")).to_path_buf();
            let tmp = parent.join(format!(".berth-cp-{}", std::process::id()));
            std::fs::create_dir(&tmp).map_err(fail)?;
            let result = unpack(&mut reader, &tmp).and_then(|()| {
                let top = if contents {
                    tmp.clone()
                } else {
                    let mut entries =
                        std::fs::read_dir(&tmp)?.collect::<std::io::Result<Vec<_>>>()?;
                    match (entries.pop(), entries.is_empty()) {
                        (Some(e), true) => e.path(),
                        _ => return Err(std::io::Error::other("archive has no single top entry")),
                    }
                };
                std::fs::rename(&top, &dst)
            });
            let _ = std::fs::remove_dir_all(&tmp);
            result.map_err(fail)
        }
    }
}

/// A local path made absolute against the working directory, as docker's resolveLocalPath.
fn absolute(p: &str) -> String {
    if p.starts_with('/') {
        return p.to_string();
    }
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    format!("{cwd}/{p}")
}

fn io_reason(e: &std::io::Error) -> String {
    crate::commands::create::io_reason(e)
}

async fn to_container(
    client: &Client,
    container: &str,
    src: &str,
    dst: &str,
    archive: bool,
    follow: bool,
) -> CmdResult {
    let mut dst_path = dst.to_string();
    let mut st = stat(client, container, dst).await;
    if let Ok(s) = &st {
        if s.mode & MODE_SYMLINK != 0 {
            let (parent, _) = split_dir_entry(dst);
            dst_path = if s.link_target.starts_with('/') {
                s.link_target.clone()
            } else {
                clean(&format!("{parent}/{}", s.link_target))
            };
            st = stat(client, container, &dst_path).await;
        }
    }
    let (exists, is_dir) = match &st {
        Ok(s) => (true, s.mode & MODE_DIR != 0),
        Err(_) => (false, false),
    };
    let (put_dir, body) = if src == "-" {
        if !is_dir {
            return Err(Failure::new(
                1,
                format!("destination \"{container}:{dst}\" must be a directory"),
            ));
        }
        (
            dst_path.clone(),
            crate::commands::import::stream_body(tokio::io::stdin()),
        )
    } else {
        let abs = absolute(src);
        let (_, src_base) = split_dir_entry(&abs);
        let mut resolved = PathBuf::from(&abs);
        if follow {
            if let Ok(r) = std::fs::canonicalize(&abs) {
                resolved = r;
            }
        }
        let meta = std::fs::symlink_metadata(&resolved).map_err(|e| {
            Failure::new(
                1,
                format!("lstat {}: {}", resolved.display(), io_reason(&e)),
            )
        })?;
        // The top entry is named as docker's rebasing would leave it: the source's own name
        // (as typed, even through -L), or the destination's when it is created or replaced.
        let (dst_dir, dst_base) = split_dir_entry(&dst_path);
        let (put_dir, top) = if exists && is_dir {
            (dst_path.clone(), src_base)
        } else if exists && meta.is_dir() {
            return Err(Failure::new(1, "cannot copy directory"));
        } else if !exists && !meta.is_dir() && asserts_directory(&dst_path) {
            return Err(Failure::new(1, "no such directory"));
        } else {
            (dst_dir, dst_base)
        };
        (put_dir, tar_body(resolved, top, meta.is_dir()))
    };
    let mut q = archive_path(container, &put_dir);
    q.push_str("&noOverwriteDirNonDir=true");
    if archive {
        q.push_str("&copyUIDGID=true");
    }
    let resp = client.send_raw(Method::PUT, &q, body).await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(not_found(container, &put_dir));
    }
    client::check(resp)
        .await
        .map_err(|e| api_err(e, container, &put_dir))?;
    Ok(0)
}

/// A tar of `path` whose top entry is `top` ("." for a directory's contents), built on a
/// blocking thread while it is sent.
fn tar_body(path: PathBuf, top: String, is_dir: bool) -> client::Body {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let writer = ChunkWriter {
            tx: &mut tx,
            handle: &handle,
        };
        let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(256 * 1024, writer));
        b.follow_symlinks(false);
        let built = if is_dir {
            b.append_dir_all(&top, &path)
        } else {
            b.append_path_with_name(&path, &top)
        };
        let done = built
            .and_then(|()| b.into_inner())
            .and_then(|mut w| std::io::Write::flush(&mut w));
        if let Err(e) = done {
            // Reported by the request failing; the message says why.
            eprintln!("{e}");
            tx.abort(e);
        }
    });
    http_body_util::BodyExt::boxed(body)
}

/// Hands what the tar builder writes to the request body.
struct ChunkWriter<'a> {
    tx: &'a mut http_body_util::channel::Sender<Bytes, std::io::Error>,
    handle: &'a tokio::runtime::Handle,
}

impl std::io::Write for ChunkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.handle
            .block_on(self.tx.send_data(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the daemon closed the upload",
                )
            })?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_docker() {
        assert_eq!(split_arg("c:/x"), (Some("c"), "/x"));
        assert_eq!(split_arg("/a:b"), (None, "/a:b"));
        assert_eq!(split_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_dir_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_dir_entry("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split_dir_entry("/a"), ("/".into(), "a".into()));
        assert_eq!(decode_base64("eyJhIjoxfQ=="), b"{\"a\":1}");
    }
}
