//! berth's fast context upload (design §4): instead of a tar of everything, send the context's
//! manifest (`POST /build/context`), then only the file contents the daemon lacks
//! (`PUT /build/context/<id>/blobs`); the build then names the manifest (`context=`).
//! Digests come from a per-context checksum cache, so an unchanged rebuild reads no file.
//! A daemon without these routes (dockerd, an older berthd) answers 404: the caller then
//! sends the classic tar.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use berth_context::checksum_cache::{self, ChecksumCache};
use berth_context::{Entry, EntryKind, Manifest};
use hyper::{Method, StatusCode};
use serde::Deserialize;

use crate::client::{self, Client, ClientError};
use crate::commands::build::{send_produced, BuildOutput};
use crate::commands::build_context::{DirContext, VirtualFile};
use crate::commands::Failure;

/// How the sync ended.
pub enum SyncOutcome {
    /// The daemon holds the whole context as manifest `id`; `context` is kept for a retry.
    Synced { id: String, context: DirContext },
    /// The daemon has no context store: send the tar instead.
    Unsupported(DirContext),
}

#[derive(Deserialize)]
struct Registered {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Missing", default)]
    missing: Option<Vec<String>>,
}

/// Files written for the context's virtual entries, removed when dropped.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// The manifest of `ctx` with digests, each entry's host file, and the checksum cache to save.
struct Prepared {
    manifest: Manifest,
    hosts: BTreeMap<String, PathBuf>,
    cache: ChecksumCache,
    key: String,
    _scratch: Scratch,
}

/// Writes `x` into `dir` and returns its entry (uid 0, mode 0600 as docker's own files).
fn virtual_entry(dir: &Path, x: &VirtualFile) -> io::Result<(Entry, PathBuf)> {
    let host = dir.join(x.name.replace('/', "_"));
    fs::write(&host, &x.data)?;
    let md = fs::symlink_metadata(&host)?;
    let mut e = berth_context::walk::entry_for(&x.name, &host, &md)?;
    e.mode = 0o100000 | (x.mode & 0o7777);
    e.uid = x.uid;
    Ok((e, host))
}

fn prepare(ctx: &DirContext) -> io::Result<Prepared> {
    let mut entries: Vec<(Entry, PathBuf)> = Vec::with_capacity(ctx.entries.len() + 2);
    let mut scratch = Scratch(None);
    let needs_scratch = ctx.replace.is_some() || !ctx.append.is_empty();
    if needs_scratch {
        let dir = std::env::temp_dir().join(format!(
            "berth-build-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        fs::create_dir_all(&dir)?;
        scratch.0 = Some(dir);
    }
    let dir = scratch.0.clone().unwrap_or_default();
    for (e, host) in &ctx.entries {
        match ctx.replace.as_ref().filter(|r| r.name == e.path) {
            Some(r) => {
                let (mut v, h) = virtual_entry(&dir, r)?;
                v.mode = e.mode;
                entries.push((v, h));
            }
            None => entries.push((e.clone(), host.clone())),
        }
    }
    for x in &ctx.append {
        entries.push(virtual_entry(&dir, x)?);
    }
    let key = checksum_cache::context_key(&ctx.root, &ctx.dockerfile);
    let cache = ChecksumCache::load(&checksum_cache::default_dir().join(&key));
    checksum_cache::fill_digests(&mut entries, &cache, 2)?;
    let hosts = entries
        .iter()
        .filter(|(e, _)| e.kind == EntryKind::File)
        .map(|(e, h)| (e.path.clone(), h.clone()))
        .collect();
    let manifest = Manifest::new(with_implied_parents(
        entries.into_iter().map(|(e, _)| e).collect(),
    ));
    Ok(Prepared {
        manifest,
        hosts,
        cache,
        key,
        _scratch: scratch,
    })
}

/// Adds the directories the docker CLI's tar leaves out but implies (an excluded directory
/// entered for a `!` exception inside it), as Docker's untar creates them: 0755, root.
fn with_implied_parents(mut entries: Vec<Entry>) -> Vec<Entry> {
    let present: HashSet<String> = entries.iter().map(|e| e.path.clone()).collect();
    let mut implied: BTreeSet<String> = BTreeSet::new();
    for e in &entries {
        let mut p = e.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if !present.contains(parent) {
                implied.insert(parent.to_string());
            }
            p = parent;
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    // Docker hashes a directory its tar lacks as its path: the daemon must know.
    entries.extend(implied.into_iter().map(|p| Entry::implied_dir(p, now)));
    entries
}

/// Syncs `ctx` to the daemon; prints docker's `Sending build context …` line with the bytes
/// of file content actually uploaded.
pub async fn sync(
    client: &Client,
    ctx: DirContext,
    out: &mut BuildOutput,
) -> Result<SyncOutcome, Failure> {
    let (ctx, prepared) = tokio::task::spawn_blocking(move || {
        let p = prepare(&ctx);
        (ctx, p)
    })
    .await
    .map_err(|e| Failure::new(1, e.to_string()))?;
    let p = prepared.map_err(|e| Failure::new(1, format!("error checking context: '{e}'.")))?;

    let path = format!("/build/context{}", client::query(&[("key", p.key.clone())]));
    let body = client::full(p.manifest.to_json_lines());
    let reg: Registered = match client.send(Method::POST, &path, body).await {
        Ok(resp) => {
            let data = client::collect(resp.into_body()).await?;
            serde_json::from_slice(&data).map_err(|e| Failure::new(1, e.to_string()))?
        }
        Err(ClientError::Api { status, .. }) if status == StatusCode::NOT_FOUND => {
            return Ok(SyncOutcome::Unsupported(ctx));
        }
        Err(e) => return Err(e.into()),
    };
    let missing = reg.missing.unwrap_or_default();
    let sent = if missing.is_empty() {
        0
    } else {
        upload(client, &reg.id, &p, &missing).await?
    };
    out.sent(sent);
    // Only a context the daemon accepted confirms the digests worth remembering.
    let _ = p.cache.save();
    Ok(SyncOutcome::Synced {
        id: reg.id,
        context: ctx,
    })
}

/// `PUT /build/context/<id>/blobs`: a tar of the missing contents, each named by its hex
/// digest. Returns the content bytes sent.
async fn upload(
    client: &Client,
    id: &str,
    p: &Prepared,
    missing: &[String],
) -> Result<u64, Failure> {
    let wanted: HashSet<&str> = missing.iter().map(String::as_str).collect();
    let mut files: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut taken: HashSet<&str> = HashSet::new();
    for e in &p.manifest.entries {
        let Some(d) = e.digest.as_deref() else {
            continue;
        };
        if wanted.contains(d) && taken.insert(d) {
            let hex = d.trim_start_matches("sha256:").to_string();
            files.push((hex, p.hosts[&e.path].clone(), e.size));
        }
    }
    let total: u64 = files.iter().map(|f| f.2).sum();
    let path = format!("/build/context/{}/blobs", client::enc_path(id));
    let headers = [("Content-Type", "application/x-tar".to_string())];
    let (resp, _, err) = send_produced(
        false,
        move |w| write_blobs(w, &files),
        |body| client.send_with_headers(Method::PUT, &path, body, &headers),
    )
    .await;
    match (resp, err) {
        (Err(e), _) => Err(e.into()),
        (Ok(_), Some(e)) => Err(Failure::new(1, format!("error checking context: '{e}'."))),
        (Ok(r), None) => {
            let _ = client::collect(r.into_body()).await;
            Ok(total)
        }
    }
}

/// The blobs tar. A file whose size changed since it was hashed fails the upload (the daemon
/// would reject its content anyway).
fn write_blobs(w: impl Write, files: &[(String, PathBuf, u64)]) -> io::Result<()> {
    let mut b = tar::Builder::new(w);
    for (hex, host, size) in files {
        let f = fs::File::open(host)?;
        if f.metadata()?.len() != *size {
            return Err(io::Error::other(format!(
                "{} changed while it was sent",
                host.display()
            )));
        }
        let mut h = tar::Header::new_ustar();
        h.set_path(hex)?;
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(*size);
        h.set_cksum();
        b.append(&h, f.take(*size))?;
    }
    let mut w = b.into_inner()?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_includes_virtual_files_and_digests() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join(".dockerignore"), "x\n").unwrap();
        fs::write(t.path().join("a"), "aaa").unwrap();
        std::env::set_var("XDG_CACHE_HOME", t.path().join("cache"));
        let entries = berth_context::walk(t.path(), &berth_context::Ignore::default()).unwrap();
        let ctx = DirContext {
            root: t.path().to_path_buf(),
            dockerfile: ".dockerfile.0123".into(),
            entries,
            replace: Some(VirtualFile {
                name: ".dockerignore".into(),
                data: b"x\n\n.dockerfile.0123\n".to_vec(),
                mode: 0o600,
                uid: 0,
            }),
            append: vec![VirtualFile {
                name: ".dockerfile.0123".into(),
                data: b"FROM scratch\n".to_vec(),
                mode: 0o600,
                uid: 0,
            }],
        };
        let p = prepare(&ctx).unwrap();
        let paths: Vec<_> = p.manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, [".dockerfile.0123", ".dockerignore", "a"]);
        let df = p.manifest.get(".dockerfile.0123").unwrap();
        assert_eq!((df.mode, df.size), (0o100600, 13));
        let ig = p.manifest.get(".dockerignore").unwrap();
        assert_eq!((ig.mode & 0o170000, ig.size), (0o100000, 20));
        assert!(p.manifest.entries.iter().all(|e| e.digest.is_some()));
        // The manifest is what the daemon accepts.
        assert_eq!(
            Manifest::from_json_lines(&p.manifest.to_json_lines()).unwrap(),
            p.manifest
        );
        let parents = with_implied_parents(vec![Entry {
            path: "x/y/z".into(),
            ..df.clone()
        }]);
        let paths: Vec<_> = parents
            .iter()
            .map(|e| (e.path.as_str(), e.mode, e.implied))
            .collect();
        assert_eq!(
            paths,
            [
                ("x/y/z", 0o100600, false),
                ("x", 0o040755, true),
                ("x/y", 0o040755, true)
            ]
        );
        let dir = p._scratch.0.clone().unwrap();
        drop(p);
        assert!(!dir.exists());
    }

    #[test]
    fn manifest_carries_hard_links_and_implied_dirs() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::env::set_var("XDG_CACHE_HOME", r.join("cache"));
        let ctx_dir = r.join("ctx");
        fs::create_dir_all(ctx_dir.join("dir/keep")).unwrap();
        fs::write(ctx_dir.join("a"), "hi\n").unwrap();
        fs::hard_link(ctx_dir.join("a"), ctx_dir.join("b")).unwrap();
        fs::write(ctx_dir.join("dir/keep/file"), "k\n").unwrap();
        let ignore = berth_context::Ignore::parse("dir\n!dir/keep/file\n").unwrap();
        let ctx = DirContext {
            root: ctx_dir.clone(),
            dockerfile: "Dockerfile".into(),
            entries: berth_context::walk(&ctx_dir, &ignore).unwrap(),
            replace: None,
            append: vec![],
        };
        let p = prepare(&ctx).unwrap();
        let got: Vec<_> = p
            .manifest
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.linkname.as_str(), e.implied))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "", false),
                ("b", "a", false),
                ("dir", "", true),
                ("dir/keep", "", true),
                ("dir/keep/file", "", false)
            ]
        );
        // The link's content is the file's: the same digest, uploaded once.
        let (a, b) = (p.manifest.get("a").unwrap(), p.manifest.get("b").unwrap());
        assert_eq!((&b.digest, b.size), (&a.digest, 3));
        assert_eq!(
            Manifest::from_json_lines(&p.manifest.to_json_lines()).unwrap(),
            p.manifest
        );
    }
}
