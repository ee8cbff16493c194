//! `docker commit`: a container's writable layer becomes a new image on top of its image.
//!
//! As Docker 20.10 does it: the new image's config is the container's config (or the one the
//! request sends) with the `--change` instructions applied and the container's config merged
//! in where it says nothing; `container_config` keeps the container's own config, and the
//! history gains one entry whose `created_by` is the container's command. The layer holds
//! exactly what `diff` reports (the same walk of the overlay upper directory, or of the vfs
//! tree): added and changed entries as they are, deletions as `.wh.<name>`, opaque
//! directories with a `.wh..wh..opq` marker. A container that changed nothing adds no
//! layer, only a history entry marked `empty_layer`. A running container is paused for the
//! commit (`pause`, default true) and unpaused after it, whatever happened.

use super::chunks::ChunkWriter;
use super::diff::{layer_changes, tree_changes};
use super::{blocking, changes, Container, Engine, Error, Result};
use crate::state::Status;
use berth_api::models::{ChangeType, FilesystemChange};
use berth_store::{Image, Reference, RootfsTree};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// `POST /commit`'s parameters.
#[derive(Debug, Default)]
pub struct CommitRequest {
    pub container: String,
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: String,
    pub author: String,
    pub pause: bool,
    pub changes: Vec<String>,
    /// The request body: a container config that replaces the container's as the base.
    pub config: Option<Map<String, Value>>,
}

impl Engine {
    /// Makes an image of the container; returns its ID.
    pub async fn commit_image(&self, req: CommitRequest) -> Result<String> {
        let c = self.container(&req.container)?;
        let rec = c.snapshot();
        match rec.state.status {
            Status::Dead => {
                return Err(Error::Conflict(format!(
                    "You cannot commit container {} which is Dead",
                    rec.id
                )))
            }
            Status::Removing => {
                return Err(Error::Conflict(format!(
                    "You cannot commit container {} which is being removed",
                    rec.id
                )))
            }
            _ => {}
        }
        // Docker tags after making the image and leaves it behind on a bad name; we check
        // the name first, so bad input leaves nothing.
        let tag = reference(req.repo.as_deref(), req.tag.as_deref())?;
        let mut container_config = to_map(&rec.config)?;
        // Docker's container config holds the hostname the container got (by default its
        // short ID), and so does the image it commits.
        let hostname = crate::spec::hostname(&rec.id, &rec.config);
        container_config.insert("Hostname".into(), Value::String(hostname));
        let container_config = docker_run_config(container_config);
        let config = run_config(req.config.clone(), &container_config, &req.changes)?;

        let pause = req.pause && rec.state.status == Status::Running && !rec.state.paused;
        if pause {
            // As Docker: a failed pause does not stop the commit.
            if let Err(e) = self.pause(&rec.id).await {
                tracing::warn!("commit: pausing {}: {e}", rec.id);
            }
        }
        let created_by = container_config
            .get("Cmd")
            .and_then(Value::as_array)
            .map(|cmd| {
                let words: Vec<&str> = cmd.iter().filter_map(Value::as_str).collect();
                words.join(" ")
            })
            .unwrap_or_default();
        let spec = CommitSpec {
            parent: Some(rec.image_id.clone()),
            config,
            container_config,
            created_by,
            author: req.author.clone(),
            comment: req.comment.clone(),
            tag: tag.clone(),
            walk: true,
        };
        let made = self.commit_layer(&c, spec).await;
        if let Ok(image) = &made {
            // Docker's order: the tag, the commit, then the unpause.
            let tag_name = tag.as_ref().map(|t| t.familiar()).unwrap_or_default();
            if tag.is_some() {
                self.image_event(&image.id, &tag_name, "tag");
            }
            let attributes = [
                ("comment", req.comment.clone()),
                ("imageID", image.id.clone()),
                ("imageRef", tag_name),
            ];
            self.container_event(&c.snapshot(), "commit", &attributes);
        }
        if pause {
            if let Err(e) = self.unpause(&rec.id).await {
                tracing::warn!("commit: unpausing {}: {e}", rec.id);
            }
        }
        made.map(|image| image.id)
    }

    /// Writes the layer and publishes the image, holding the container's lifecycle lock so
    /// it is neither removed nor restarted (which would reset its layer) meanwhile. `docker
    /// commit` and the builder's steps both come through here.
    pub(super) async fn commit_layer(&self, c: &Arc<Container>, spec: CommitSpec) -> Result<Image> {
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        if rec.state.status == Status::Removing {
            return Err(Error::Conflict(format!(
                "You cannot commit container {} which is being removed",
                rec.id
            )));
        }
        let store = self.store.clone();
        blocking(move || {
            let CommitSpec {
                parent,
                config,
                container_config,
                created_by,
                author,
                comment,
                tag,
                walk,
            } = spec;
            let parent = parent.map(|id| store.resolve(&id)).transpose()?;
            let parent_blob: Value = match &parent {
                Some(p) => serde_json::from_slice(&store.config_blob(p)?)
                    .map_err(|e| Error::Internal(format!("image config of {}: {e}", p.id)))?,
                // FROM scratch: no layers, no history; the platform is the host's.
                None => json!({}),
            };
            let new = NewImage {
                parent: parent_blob,
                config: Value::Object(config),
                container: rec.id.clone(),
                container_config: Value::Object(container_config),
                author,
                comment,
                created_by,
                created: super::now_rfc3339(),
            };
            let build = Box::new(move |diff: Option<&str>| {
                serde_json::to_vec(&new.blob(diff))
                    .map_err(|e| berth_store::Error::Corrupt(e.to_string()))
            });
            if !walk {
                // Nothing ran in the container: its layer is the empty tar, no walk needed.
                let mut empty: &[u8] = &[0u8; 1024];
                return store
                    .commit(parent.as_ref(), &mut empty, build, tag.as_ref())
                    .map_err(Error::from);
            }
            // The layer is the container's changes over the image it was made from.
            let base = store.container_image(&rec.image_id)?;
            let (root, changes, deletions) = match store.rootfs_tree(&rec.id, &base)? {
                RootfsTree::Changes { upper, lowers } => {
                    let changes = layer_changes(&upper, &lowers)?;
                    (upper, changes, Deletions::Overlay)
                }
                RootfsTree::Full { root, lowers } => {
                    let changes = tree_changes(&root, &lowers)?;
                    (root, changes, Deletions::Listed)
                }
            };
            std::thread::scope(|s| {
                let (tx, rx) = sync_channel(4);
                let (root, changes) = (&root, &changes);
                let producer = s.spawn(move || {
                    let mut out = ChunkWriter::new(tx, CHUNK);
                    match write_layer(root, changes, deletions, &mut out) {
                        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                            out.fail(io::Error::new(e.kind(), format!("commit: {e}")));
                        }
                        _ => {}
                    }
                });
                let made = {
                    let mut reader = ChunkReader {
                        rx,
                        chunk: Vec::new(),
                        pos: 0,
                    };
                    store.commit(parent.as_ref(), &mut reader, build, tag.as_ref())
                };
                let _ = producer.join();
                made.map_err(Error::from)
            })
        })
        .await
    }
}

/// What a commit writes besides the layer.
pub(super) struct CommitSpec {
    /// The new image's parent (an image ID or name); `None` for a build step on `scratch`.
    pub parent: Option<String>,
    pub config: Map<String, Value>,
    pub container_config: Map<String, Value>,
    /// The history entry's `created_by`.
    pub created_by: String,
    pub author: String,
    pub comment: String,
    pub tag: Option<Reference>,
    /// Whether to walk the container's files for the layer; `false` for a container that
    /// never ran (a build's metadata steps), whose layer is the empty one.
    pub walk: bool,
}

/// The `repo`/`tag` parameters as one reference; `None` when no repo is given.
fn reference(repo: Option<&str>, tag: Option<&str>) -> Result<Option<Reference>> {
    let Some(repo) = repo.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let mut r = Reference::parse(repo)?;
    if let Some(tag) = tag.filter(|t| !t.is_empty()) {
        if !valid_tag(tag) {
            return Err(Error::InvalidParameter("invalid tag format".into()));
        }
        r = Reference::parse(&format!("{}:{tag}", r.name()))?;
    }
    if r.digest().is_some() {
        return Err(Error::InvalidParameter(
            "refusing to create a tag with a digest reference".into(),
        ));
    }
    Ok(Some(r))
}

/// Docker's tag grammar: `[\w][\w.-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes[1..]
            .iter()
            .all(|&b| word(b) || b == b'.' || b == b'-')
}

fn to_map(config: &impl serde::Serialize) -> Result<Map<String, Value>> {
    match serde_json::to_value(config) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Ok(Map::new()),
        Err(e) => Err(Error::Internal(format!("container config: {e}"))),
    }
}

/// Docker's `container.Config` always carries these (nulls, empty strings and falses
/// included); the config blobs it writes show them.
fn docker_run_config(mut m: Map<String, Value>) -> Map<String, Value> {
    let defaults = [
        ("Hostname", json!("")),
        ("Domainname", json!("")),
        ("User", json!("")),
        ("AttachStdin", json!(false)),
        ("AttachStdout", json!(false)),
        ("AttachStderr", json!(false)),
        ("Tty", json!(false)),
        ("OpenStdin", json!(false)),
        ("StdinOnce", json!(false)),
        ("Env", Value::Null),
        ("Cmd", Value::Null),
        ("Image", json!("")),
        ("Volumes", Value::Null),
        ("WorkingDir", json!("")),
        ("Entrypoint", Value::Null),
        ("OnBuild", Value::Null),
        ("Labels", Value::Null),
    ];
    for (k, v) in defaults {
        m.entry(k).or_insert(v);
    }
    m
}

/// The new image's config: `base` (the request's, else the container's), the changes
/// applied, then the container's config filling what it leaves out (moby's `merge`).
fn run_config(
    base: Option<Map<String, Value>>,
    container: &Map<String, Value>,
    change_lines: &[String],
) -> Result<Map<String, Value>> {
    let mut config = match base {
        Some(mut m) => {
            // The body may be a whole create request; only its config part counts.
            m.remove("HostConfig");
            m.remove("NetworkingConfig");
            m
        }
        None => container.clone(),
    };
    let mut cmd_set = false;
    for line in change_lines.iter().flat_map(|c| c.lines()) {
        let instruction = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        changes::apply(&[line.to_string()], &mut config).map_err(Error::InvalidParameter)?;
        match instruction.as_str() {
            "CMD" => cmd_set = true,
            // As in a Dockerfile, ENTRYPOINT drops the inherited command unless one was set.
            "ENTRYPOINT" if !cmd_set => {
                config.insert("Cmd".into(), Value::Null);
            }
            _ => {}
        }
    }
    merge(&mut config, container);
    Ok(docker_run_config(config))
}

fn is_empty(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Bool(b)) => !b,
    }
}

/// moby's `merge(userConf, imageConf)`: fills what `user` leaves empty from `image`.
fn merge(user: &mut Map<String, Value>, image: &Map<String, Value>) {
    let take = |user: &mut Map<String, Value>, key: &str| {
        if is_empty(user.get(key)) {
            if let Some(v) = image.get(key) {
                user.insert(key.into(), v.clone());
            }
        }
    };
    take(user, "User");
    for key in ["ExposedPorts", "Volumes"] {
        if is_empty(user.get(key)) {
            take(user, key);
        } else if let (Some(Value::Object(theirs)), Some(Value::Object(ours))) =
            (image.get(key), user.get_mut(key))
        {
            for (k, v) in theirs {
                // Ports only add; Docker's volume loop overwrites, to the same `{}`.
                ours.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if is_empty(user.get("Env")) {
        take(user, "Env");
    } else if let (Some(Value::Array(theirs)), Some(Value::Array(ours))) =
        (image.get("Env"), user.get_mut("Env"))
    {
        let key = |e: &Value| {
            e.as_str()
                .and_then(|s| s.split('=').next())
                .map(String::from)
        };
        for e in theirs {
            if !ours.iter().any(|o| key(o) == key(e)) {
                ours.push(e.clone());
            }
        }
    }
    let labels = user.entry("Labels").or_insert_with(|| json!({}));
    if labels.is_null() {
        *labels = json!({});
    }
    if let (Some(Value::Object(theirs)), Value::Object(ours)) = (image.get("Labels"), labels) {
        for (k, v) in theirs {
            ours.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if is_empty(user.get("Entrypoint")) {
        if is_empty(user.get("Cmd")) {
            for key in ["Cmd", "ArgsEscaped"] {
                match image.get(key) {
                    Some(v) => user.insert(key.into(), v.clone()),
                    None => user.remove(key),
                };
            }
        }
        if user.get("Entrypoint").is_none_or(Value::is_null) {
            take(user, "Entrypoint");
        }
    }
    if let Some(Value::Object(theirs)) = image.get("Healthcheck") {
        match user.get_mut("Healthcheck") {
            Some(Value::Object(ours)) => {
                for (k, v) in theirs {
                    if is_empty(ours.get(k)) {
                        ours.insert(k.clone(), v.clone());
                    }
                }
            }
            _ => {
                user.insert("Healthcheck".into(), Value::Object(theirs.clone()));
            }
        }
    }
    take(user, "WorkingDir");
    take(user, "StopSignal");
}

/// What the new image's config blob is made of, besides the layer. `docker commit` and
/// the builder's own steps (build/child_image.rs) both write their image JSON with it.
pub(crate) struct NewImage {
    /// The parent's config blob (`{}` for scratch).
    pub parent: Value,
    pub config: Value,
    /// The container the image was made from (`container` in the JSON; omitted when empty,
    /// as a build step that ran no container has none).
    pub container: String,
    pub container_config: Value,
    pub author: String,
    pub comment: String,
    pub created_by: String,
    pub created: String,
}

impl NewImage {
    /// Docker's image JSON (moby's `image.NewChildImage`): the parent's platform, layers and
    /// history, plus this commit. Keys come out sorted, as Docker sorts the top level.
    pub fn blob(&self, diff_id: Option<&str>) -> Value {
        let parent = |k: &str| self.parent.get(k).cloned();
        let mut history = match parent("history") {
            Some(Value::Array(h)) => h,
            _ => Vec::new(),
        };
        let mut entry = Map::new();
        entry.insert("created".into(), json!(self.created));
        if !self.author.is_empty() {
            entry.insert("author".into(), json!(self.author));
        }
        if !self.created_by.is_empty() {
            entry.insert("created_by".into(), json!(self.created_by));
        }
        if !self.comment.is_empty() {
            entry.insert("comment".into(), json!(self.comment));
        }
        if diff_id.is_none() {
            entry.insert("empty_layer".into(), json!(true));
        }
        history.push(Value::Object(entry));
        let mut diff_ids = parent("rootfs")
            .and_then(|r| r.get("diff_ids").cloned())
            .and_then(|d| d.as_array().cloned())
            .unwrap_or_default();
        diff_ids.extend(diff_id.map(|d| json!(d)));

        let mut blob = Map::new();
        for key in ["architecture", "variant", "os", "os.version", "os.features"] {
            if let Some(v) = parent(key).filter(|v| !v.is_null()) {
                blob.insert(key.into(), v);
            }
        }
        blob.entry("architecture")
            .or_insert_with(|| json!(host_arch()));
        blob.entry("os").or_insert_with(|| json!("linux"));
        if !self.author.is_empty() {
            blob.insert("author".into(), json!(self.author));
        }
        blob.insert("config".into(), self.config.clone());
        if !self.container.is_empty() {
            blob.insert("container".into(), json!(self.container));
        }
        blob.insert("container_config".into(), self.container_config.clone());
        blob.insert("created".into(), json!(self.created));
        blob.insert(
            "docker_version".into(),
            json!(berth_api::version::ENGINE_VERSION),
        );
        blob.insert("history".into(), Value::Array(history));
        blob.insert(
            "rootfs".into(),
            json!({"type": "layers", "diff_ids": diff_ids}),
        );
        Value::Object(blob)
    }
}

/// GOARCH name of the host, for a parent config that names none.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// How much tar we gather before handing it to the store.
const CHUNK: usize = 256 * 1024;

/// The store's side: a producer's error comes out of `read`, so a half-written layer can
/// never pass for a whole one.
struct ChunkReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// How the tree a layer is written from shows what the container deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletions {
    /// An overlay upper directory: whiteouts are 0/0 character devices, and a directory made
    /// again over an image directory is opaque (`trusted.overlay.opaque=y`).
    Overlay,
    /// A whole tree (vfs): a deleted path is simply absent; the change list says what went.
    Listed,
}

/// Writes the changes `diff` found in `root` as a layer tar, in the same order (parents
/// before their contents, names sorted), as Docker's overlay2 driver writes a layer:
/// deletions become `.wh.<name>` files, an opaque directory is followed by a `.wh..wh..opq`
/// file, hard links within the layer are link entries, sockets are left out. In an overlay
/// upper, deletions with no whiteout of their own (the contents of an opaque directory, or
/// of a directory a file replaced) need no entry: the marker or the file says it.
pub fn write_layer(
    root: &Path,
    changes: &[FilesystemChange],
    deletions: Deletions,
    out: impl Write,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for change in changes {
        let rel = Path::new(change.path.trim_start_matches('/'));
        let path = root.join(rel);
        if change.kind == ChangeType::_2 {
            let marker = match deletions {
                Deletions::Overlay => match std::fs::symlink_metadata(&path) {
                    Ok(m) if is_whiteout(&m) => Some(Marker::of(&m, 0o600)),
                    _ => None,
                },
                Deletions::Listed => Some(Marker::now()),
            };
            if let Some(marker) = marker {
                let mut name = whiteout_name(rel.parent(), b".wh.");
                name.push(rel.file_name().unwrap_or_default());
                marker.append(&mut tar, &name)?;
            }
            continue;
        }
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Removed since the walk (an unpaused container): nothing to keep.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        append_entry(&mut tar, &path, rel, &meta, &mut links)?;
        if deletions == Deletions::Overlay && meta.is_dir() && is_opaque(&path) {
            let name = whiteout_name(Some(rel), b".wh..wh..opq");
            Marker::of(&meta, meta.mode() & 0o777).append(&mut tar, &name)?;
        }
    }
    tar.into_inner()?.flush()
}

/// `dir/<prefix>` as a path (a whiteout's base name is appended by the caller).
fn whiteout_name(dir: Option<&Path>, prefix: &[u8]) -> std::ffi::OsString {
    let mut name = std::ffi::OsString::new();
    if let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        name.push(d.as_os_str());
        name.push("/");
    }
    name.push(std::ffi::OsStr::from_bytes(prefix));
    name
}

/// An empty regular file that tells the unpacker to hide something.
struct Marker {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
}

impl Marker {
    /// With the owner and time of what it stands for, as Docker's overlay2 writes them.
    fn of(meta: &std::fs::Metadata, mode: u32) -> Marker {
        Marker {
            mode,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime().max(0) as u64,
        }
    }

    /// For a deletion nothing on disk stands for: root's, made now, as Docker's naive diff.
    fn now() -> Marker {
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Marker {
            mode: 0o600,
            uid: 0,
            gid: 0,
            mtime,
        }
    }

    fn append<W: Write>(
        &self,
        tar: &mut tar::Builder<W>,
        name: &std::ffi::OsStr,
    ) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(self.mode);
        header.set_uid(self.uid.into());
        header.set_gid(self.gid.into());
        header.set_mtime(self.mtime);
        header.set_size(0);
        tar.append_data(&mut header, name, io::empty())
    }
}

/// Appends one entry of the tree; one that vanished meanwhile is left out.
fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &Path,
    rel: &Path,
    meta: &std::fs::Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let kind = meta.file_type();
    if kind.is_socket() {
        return Ok(());
    }
    let xattrs = match list_xattrs(path) {
        Err(e) if gone(&e) => return Ok(()),
        other => other?,
    };
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header.set_size(0);
    let first_name = if !kind.is_dir() && meta.nlink() > 1 {
        links.get(&(meta.dev(), meta.ino())).cloned()
    } else {
        None
    };
    // Everything that can fail on a vanished entry happens before anything is written.
    let file = if kind.is_file() && first_name.is_none() {
        match std::fs::File::open(path) {
            Err(e) if gone(&e) => return Ok(()),
            other => Some(other?),
        }
    } else {
        None
    };
    let link_target = if kind.is_symlink() {
        match std::fs::read_link(path) {
            Err(e) if gone(&e) => return Ok(()),
            other => Some(other?),
        }
    } else {
        None
    };
    if !xattrs.is_empty() {
        let records: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        tar.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))?;
    }
    if let Some(first) = first_name {
        header.set_entry_type(tar::EntryType::Link);
        return tar.append_link(&mut header, rel, first);
    }
    if !kind.is_dir() && meta.nlink() > 1 {
        links.insert((meta.dev(), meta.ino()), rel.to_path_buf());
    }
    if kind.is_dir() {
        let mut name = rel.as_os_str().to_owned();
        name.push("/");
        tar.append_data(&mut header, name, io::empty())
    } else if let Some(target) = link_target {
        tar.append_link(&mut header, rel, target)
    } else if let Some(file) = file {
        header.set_size(meta.len());
        // A file that changes size while we read it (an unpaused container) must still fill
        // exactly the size the header announced.
        let mut data = file.take(meta.len()).chain(io::repeat(0)).take(meta.len());
        tar.append_data(&mut header, rel, &mut data)
    } else {
        // Devices and fifos: the header says it all.
        tar.append_data(&mut header, rel, io::empty())
    }
}

/// An overlay whiteout: a character device with device number 0/0.
fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    list_xattrs_raw(dir)
        .ok()
        .and_then(|all| all.into_iter().find(|(k, _)| k == "trusted.overlay.opaque"))
        .is_some_and(|(_, v)| v == b"y")
}

/// The entry's extended attributes that belong in a layer: all but overlayfs's own
/// (`trusted.overlay.*` steer the mount and are made again by the unpacker).
fn list_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut all = list_xattrs_raw(path)?;
    all.retain(|(k, _)| !k.starts_with("trusted.overlay."));
    Ok(all)
}

/// Every extended attribute of `path` itself (a symlink's own, not its target's).
fn list_xattrs_raw(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: cpath is NUL-terminated; a null buffer with size 0 asks only for the size.
    let size = unsafe { libc::llistxattr(cpath.as_ptr(), std::ptr::null_mut(), 0) };
    if size < 0 {
        let e = io::Error::last_os_error();
        // Filesystems without xattrs have none to keep.
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(Vec::new()),
            _ => Err(e),
        };
    }
    let mut names = vec![0u8; size as usize];
    if size > 0 {
        // SAFETY: names is writable for names.len() bytes, the size we pass.
        let n = unsafe { libc::llistxattr(cpath.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        names.truncate(n as usize);
    }
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        // SAFETY: as above, a size query.
        let len =
            unsafe { libc::lgetxattr(cpath.as_ptr(), cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            continue; // removed meanwhile
        }
        let mut value = vec![0u8; len as usize];
        // SAFETY: value is writable for value.len() bytes, the size we pass.
        let n = unsafe {
            libc::lgetxattr(
                cpath.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if n < 0 {
            continue;
        }
        value.truncate(n as usize);
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn root_or_skip(test: &str) -> bool {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{test} needs root under CI"
        );
        eprintln!("skipping {test}: needs root");
        false
    }

    fn set_xattr(path: &Path, name: &str, value: &[u8]) {
        let p = CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        // SAFETY: NUL-terminated strings and a value buffer of the length passed.
        let r = unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(r, 0, "setxattr {name}: {}", io::Error::last_os_error());
    }

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
    }

    fn change(path: &str, kind: ChangeType) -> FilesystemChange {
        FilesystemChange {
            path: path.into(),
            kind,
        }
    }

    /// (name, type, mode, size, xattr names) of each entry.
    fn entries(data: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, Vec<String>)> {
        let mut archive = tar::Archive::new(data);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let xattrs = e
                    .pax_extensions()
                    .unwrap()
                    .map(|exts| {
                        exts.map(|x| x.unwrap().key().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap() & 0o7777,
                    h.size().unwrap(),
                    xattrs,
                )
            })
            .collect()
    }

    #[test]
    fn overlay_whiteouts_and_opaque_dirs_become_oci_markers() {
        if !root_or_skip("overlay_whiteouts_and_opaque_dirs_become_oci_markers") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        whiteout(&upper.join("etc/passwd"));
        std::fs::create_dir(upper.join("opq")).unwrap();
        set_xattr(&upper.join("opq"), "trusted.overlay.opaque", b"y");
        std::fs::write(upper.join("opq/new"), "n").unwrap();
        std::fs::write(upper.join("f"), "hello").unwrap();
        set_xattr(&upper.join("f"), "user.note", b"kept");
        set_xattr(&upper.join("f"), "trusted.overlay.origin", b"dropped");
        std::fs::hard_link(upper.join("f"), upper.join("g")).unwrap();
        std::os::unix::fs::symlink("/f", upper.join("s")).unwrap();
        let changes = [
            change("/etc", ChangeType::_0),
            change("/etc/passwd", ChangeType::_2),
            change("/f", ChangeType::_1),
            change("/g", ChangeType::_1),
            change("/opq", ChangeType::_0),
            change("/opq/new", ChangeType::_1),
            // Hidden by the opaque directory: no whiteout of its own in the upper.
            change("/opq/old", ChangeType::_2),
            change("/s", ChangeType::_1),
        ];
        let mut out = Vec::new();
        write_layer(upper, &changes, Deletions::Overlay, &mut out).unwrap();
        let got = entries(&out);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/.wh.passwd",
                "f",
                "g",
                "opq/",
                "opq/.wh..wh..opq",
                "opq/new",
                "s"
            ]
        );
        let by_name = |n: &str| got.iter().find(|e| e.0 == n).unwrap().clone();
        let wh = by_name("etc/.wh.passwd");
        assert_eq!((wh.1, wh.2, wh.3), (tar::EntryType::Regular, 0o600, 0));
        let opq = by_name("opq/.wh..wh..opq");
        assert_eq!((opq.1, opq.3), (tar::EntryType::Regular, 0));
        let f = by_name("f");
        assert_eq!(f.3, 5);
        assert_eq!(
            f.4,
            ["SCHILY.xattr.user.note"],
            "overlay's own xattrs stay out"
        );
        assert_eq!(by_name("g").1, tar::EntryType::Link);
        assert_eq!(by_name("s").1, tar::EntryType::Symlink);
        assert!(
            by_name("opq/").4.is_empty(),
            "the opaque xattr becomes the marker, not a record"
        );
    }

    #[test]
    fn a_whole_tree_gets_a_whiteout_for_each_listed_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/new"), "n").unwrap();
        let changes = [
            change("/bin", ChangeType::_0),
            change("/bin/gone", ChangeType::_2),
            change("/bin/new", ChangeType::_1),
            change("/olddir", ChangeType::_2),
        ];
        let mut out = Vec::new();
        write_layer(root, &changes, Deletions::Listed, &mut out).unwrap();
        let names: Vec<String> = entries(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["bin/", "bin/.wh.gone", "bin/new", ".wh.olddir"]);
    }

    #[test]
    fn no_changes_make_the_empty_tar() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        write_layer(dir.path(), &[], Deletions::Overlay, &mut out).unwrap();
        assert_eq!(
            out,
            vec![0u8; 1024],
            "the store recognises an empty layer by this digest"
        );
    }

    #[test]
    fn a_producer_error_reaches_the_reader() {
        let (tx, rx) = sync_channel(2);
        let mut w = ChunkWriter::new(tx, CHUNK);
        w.write_all(b"abc").unwrap();
        w.flush().unwrap();
        w.fail(io::Error::other("walk failed"));
        let mut r = ChunkReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        };
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        assert_eq!(r.read(&mut buf).unwrap_err().to_string(), "walk failed");
    }

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn changes_apply_over_the_container_config_and_merge_back() {
        let container = docker_run_config(map(json!({
            "Hostname": "abc", "Env": ["FOO=1"], "Cmd": ["sleep", "9"],
            "Labels": {"a": "b"}, "ExposedPorts": {"53/udp": {}}, "Image": "busybox",
        })));
        let lines = [
            "ENV BAR=2".to_string(),
            "LABEL c=d".into(),
            "EXPOSE 80".into(),
        ];
        let c = run_config(None, &container, &lines).unwrap();
        assert_eq!(c["Env"], json!(["FOO=1", "BAR=2"]));
        assert_eq!(c["Labels"], json!({"a": "b", "c": "d"}));
        assert_eq!(c["ExposedPorts"], json!({"53/udp": {}, "80/tcp": {}}));
        assert_eq!(c["Cmd"], json!(["sleep", "9"]));
        assert_eq!(c["Hostname"], "abc");
        // ENTRYPOINT drops the inherited command, unless a CMD came first.
        let c = run_config(None, &container, &[r#"ENTRYPOINT ["e"]"#.into()]).unwrap();
        assert_eq!(
            (c["Entrypoint"].clone(), c["Cmd"].clone()),
            (json!(["e"]), Value::Null)
        );
        let both = ["CMD [\"c\"]".to_string(), r#"ENTRYPOINT ["e"]"#.into()];
        assert_eq!(
            run_config(None, &container, &both).unwrap()["Cmd"],
            json!(["c"])
        );
        // A request body replaces the base; the container fills only what it leaves out.
        let body = map(json!({"Cmd": ["x"], "Env": ["A=1"], "HostConfig": {}}));
        let c = run_config(Some(body), &container, &[]).unwrap();
        assert_eq!(c["Cmd"], json!(["x"]));
        assert_eq!(c["Env"], json!(["A=1", "FOO=1"]));
        assert_eq!(c["Hostname"], "");
        assert!(c.get("HostConfig").is_none());
        assert_eq!(
            run_config(None, &container, &["RUN ls".into()])
                .unwrap_err()
                .to_string(),
            "run is not a valid change command"
        );
    }

    #[test]
    fn the_blob_adds_a_history_entry_and_the_layer() {
        let new = NewImage {
            parent: json!({"architecture": "arm64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]},
                "history": [{"created": "t0", "comment": "Imported from -"}]}),
            config: json!({"Cmd": ["sh"]}),
            container: "cid".into(),
            container_config: json!({"Cmd": ["sh"]}),
            author: "me".into(),
            comment: String::new(),
            created_by: "sh -c true".into(),
            created: "t1".into(),
        };
        let b = new.blob(Some("sha256:b"));
        assert_eq!(b["architecture"], "arm64");
        assert_eq!(b["rootfs"]["diff_ids"], json!(["sha256:a", "sha256:b"]));
        assert_eq!(
            b["history"][1],
            json!({"created": "t1", "author": "me", "created_by": "sh -c true"})
        );
        assert_eq!(
            (b["author"].clone(), b["container"].clone()),
            (json!("me"), json!("cid"))
        );
        let empty = new.blob(None);
        assert_eq!(empty["rootfs"]["diff_ids"], json!(["sha256:a"]));
        assert_eq!(empty["history"][1]["empty_layer"], json!(true));
    }

    #[test]
    fn tags_follow_dockers_rules() {
        assert!(reference(None, None).unwrap().is_none());
        assert_eq!(
            reference(Some("x"), Some("v1"))
                .unwrap()
                .unwrap()
                .familiar(),
            "x:v1"
        );
        assert_eq!(
            reference(Some("x"), Some("")).unwrap().unwrap().familiar(),
            "x:latest"
        );
        assert_eq!(
            reference(Some("x"), Some("-bad")).unwrap_err().to_string(),
            "invalid tag format"
        );
        assert!(reference(Some("Bad"), None)
            .unwrap_err()
            .to_string()
            .contains("must be lowercase"));
    }
}
