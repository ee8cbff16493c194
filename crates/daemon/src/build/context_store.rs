//! The build context store (design §4): `<data-root>/build/context/`.
//!
//! - `sha256/<hex>`: content-addressed files, hashed into `tmp/`, synced once per upload and
//!   renamed into place, never opened for writing again. Their mode, owner and mtime come from
//!   the first entry that brought them, so COPY can hard-link them when the metadata agree.
//! - `manifests/<hex>.json`: a context's entries (JSON lines, `berth_context::Manifest`);
//!   `<hex>` is the manifest ID. `manifests/<hex>.meta`: who registered it (the berth CLI's
//!   key, "" for a tar the docker CLI sent), when, and when it was last used (GC order).
//! - `tmp/`: files being written; whatever is left there after a crash is swept at open.
//!
//! The docker CLI's tar is ingested into the same store (`ingest_tar`), so both clients build
//! from a `ContextView`: a manifest with Docker's tarsums filled in plus a lease that keeps
//! its files from GC and prune while a build uses them.

mod blobs;
mod gc;
mod lease;
mod memo;
mod publish;
mod tar_ingest;
#[cfg(test)]
mod tests;
mod usage;

pub(crate) use tar_ingest::MAX_ENTRIES;
pub use usage::ContextUsage;

use crate::engine::Error;
use berth_context::{Entry, EntryKind, Manifest};
use lease::{Lease, Pins};
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Result<T> = std::result::Result<T, Error>;

/// When the store grows past this, files no kept manifest uses are dropped, then the least
/// recently used manifests (daemon.json `build-context-max-size` in the design).
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;
/// The daemon's build context store.
pub struct ContextStore {
    dir: PathBuf,
    memo: memo::TarsumMemo,
    pins: Arc<Pins>,
    max_size: AtomicU64,
    /// Entries a tar context may have (`tar_ingest::MAX_ENTRIES`; lowered by tests).
    max_entries: usize,
    /// Serialises GC and prune (each lists then deletes manifests and files).
    gc_lock: Mutex<()>,
}

/// One context a build reads: the manifest (tarsums filled in) and the files behind it.
/// While it lives, GC and prune leave its files alone.
pub struct ContextView {
    /// What COPY/ADD see.
    pub manifest: Manifest,
    /// Entries `.dockerignore` took out of a tar context that the build still reads: the
    /// Dockerfile and `.dockerignore` themselves (Docker reads them, then removes them).
    hidden: Vec<Entry>,
    blobs_dir: PathBuf,
    _lease: Lease,
}

/// `manifests/<hex>.meta`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Meta {
    /// The berth CLI's key; "" for a tar ingest.
    key: String,
    created_ns: i64,
    last_used_ns: i64,
    uses: u64,
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// The hex of "sha256:<hex>" (or of a bare hex), if it is one.
fn digest_hex(d: &str) -> Option<&str> {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    (hex.len() == 64
        && hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
    .then_some(hex)
}

fn not_complete(id: &str) -> Error {
    Error::Conflict(format!("build context {id} is not complete"))
}

impl ContextStore {
    /// Opens (creating) the store at `dir`, keeping the tarsum memo in `db` (berthd's own
    /// database, table `build_tarsums`). Temp files a crash left behind are removed.
    pub fn open_with_db(dir: &Path, db: Arc<redb::Database>) -> anyhow::Result<ContextStore> {
        for sub in ["sha256", "manifests", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        // Context files may be anyone's secrets: only root reads the store.
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        for leftover in std::fs::read_dir(dir.join("tmp"))? {
            let path = leftover?.path();
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(
                    "removing leftover build context file {}: {e}",
                    path.display()
                );
            }
        }
        Ok(ContextStore {
            dir: dir.to_path_buf(),
            memo: memo::TarsumMemo::new(db),
            pins: Arc::default(),
            max_size: AtomicU64::new(DEFAULT_MAX_SIZE),
            max_entries: tar_ingest::MAX_ENTRIES,
            gc_lock: Mutex::new(()),
        })
    }

    /// Changes the size GC keeps the store under.
    pub fn set_max_size(&self, bytes: u64) {
        self.max_size.store(bytes, Ordering::Relaxed);
    }

    fn blobs_dir(&self) -> PathBuf {
        self.dir.join("sha256")
    }

    fn blob_path(&self, hex: &str) -> PathBuf {
        self.blobs_dir().join(hex)
    }

    fn manifest_path(&self, hex: &str) -> PathBuf {
        self.dir.join("manifests").join(format!("{hex}.json"))
    }

    fn meta_path(&self, hex: &str) -> PathBuf {
        self.dir.join("manifests").join(format!("{hex}.meta"))
    }

    /// The docker CLI path: the request body (a tar, maybe gzip/bzip2/xz) into the store and a
    /// manifest. `dockerfile` is the build's `dockerfile` parameter ("" = `Dockerfile`): as
    /// Docker does, `.dockerignore` and that file are taken out of the context when
    /// `.dockerignore` matches them (the view still reads them); the CLI applied every other
    /// pattern itself, and a tar given on stdin keeps whatever it holds.
    pub fn ingest_tar_for(
        &self,
        body: &mut dyn Read,
        dockerfile: &str,
    ) -> Result<Arc<ContextView>> {
        let (manifest, lease) = tar_ingest::ingest(self, body)?;
        let id = manifest.id();
        let hex = digest_hex(&id)
            .expect("manifest IDs are sha256")
            .to_string();
        self.pins.pin(&lease, &[format!("m:{hex}")]);
        self.save_manifest(&hex, &manifest, "")?;
        self.touch(&hex, "");
        let view = self.view(manifest, lease, dockerfile)?;
        self.gc_logged();
        Ok(view)
    }

    /// The berth CLI path, step 1: records `manifest` (without tarsums) under `key` and says
    /// which file contents the store lacks (digests, in path order, each once).
    pub fn register(&self, key: &str, mut manifest: Manifest) -> Result<(String, Vec<String>)> {
        if key.is_empty() || key.len() > 128 || !key.bytes().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::InvalidParameter(format!(
                "invalid build context key {key:?}"
            )));
        }
        manifest
            .check_tree()
            .map_err(|e| Error::InvalidParameter(format!("invalid build context manifest: {e}")))?;
        for e in &mut manifest.entries {
            e.tarsum = None;
        }
        let id = manifest.id();
        let hex = digest_hex(&id)
            .expect("manifest IDs are sha256")
            .to_string();
        self.save_manifest(&hex, &manifest, key)?;
        let mut seen = HashSet::new();
        let missing = manifest
            .entries
            .iter()
            .filter_map(|e| e.digest.as_deref())
            .filter(|d| seen.insert(*d))
            .filter(|d| !self.blob_path(digest_hex(d).unwrap_or_default()).exists())
            .map(String::from)
            .collect();
        self.gc_logged();
        Ok((id, missing))
    }

    /// The berth CLI path, step 3: a view of a registered manifest whose files are all here;
    /// 409 when it is unknown or files are missing (the CLI then registers and uploads again).
    /// `dockerfile` is the build's `dockerfile` parameter: the view presents the context as
    /// `ingest_tar_for` does (`.dockerignore` and the Dockerfile hidden when it matches them).
    pub fn open_manifest(&self, id: &str, dockerfile: &str) -> Result<Arc<ContextView>> {
        let hex = digest_hex(id).ok_or_else(|| not_complete(id))?.to_string();
        // Pinned before it is read, so a GC running now cannot take the files in between.
        let lease = Lease::new(self.pins.clone());
        self.pins.pin(&lease, &[format!("m:{hex}")]);
        let mut manifest = self.load_manifest(&hex)?.ok_or_else(|| not_complete(id))?;
        let digests: Vec<String> = manifest
            .entries
            .iter()
            .filter_map(|e| e.digest.as_deref().and_then(digest_hex))
            .map(String::from)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.pins.pin(&lease, &digests);
        if digests.iter().any(|d| !self.blob_path(d).exists()) {
            return Err(not_complete(id));
        }
        self.fill_tarsums(&mut manifest)?;
        self.touch(&hex, "");
        self.view(manifest, lease, dockerfile)
    }

    /// What a build reads of `manifest` (its files held by `lease`), the context presented
    /// as Docker does for the Dockerfile `dockerfile` (see `ContextView::hide_ignored`).
    fn view(&self, manifest: Manifest, lease: Lease, dockerfile: &str) -> Result<Arc<ContextView>> {
        let mut view = ContextView {
            manifest,
            hidden: Vec::new(),
            blobs_dir: self.blobs_dir(),
            _lease: lease,
        };
        view.hide_ignored(dockerfile)?;
        Ok(Arc::new(view))
    }

    /// Docker's tarsum for every entry lacking one: directories, symlinks and hard links from
    /// their header (an implied directory: its path); files from the memo, else (first use of
    /// that content under that name and mode) by reading the stored file once.
    fn fill_tarsums(&self, manifest: &mut Manifest) -> Result<()> {
        let files: Vec<usize> = (0..manifest.entries.len())
            .filter(|&i| manifest.entries[i].tarsum.is_none())
            .collect();
        let remembered = self
            .memo
            .get_many(files.iter().map(|&i| &manifest.entries[i]))?;
        let mut learned = Vec::new();
        for (i, known) in files.into_iter().zip(remembered) {
            let e = &mut manifest.entries[i];
            let sum = match known {
                Some(sum) => sum,
                None if !berth_context::tarsum::hashes_content(e) => {
                    berth_context::tarsum::tarsum_of(e, &mut io::empty())?
                }
                None => {
                    let hex = e
                        .digest
                        .as_deref()
                        .and_then(digest_hex)
                        .unwrap_or_default()
                        .to_string();
                    let mut f = std::fs::File::open(self.blob_path(&hex))?;
                    let sum = berth_context::tarsum::tarsum_of(e, &mut f)?;
                    learned.push((memo::key(e), sum.clone()));
                    sum
                }
            };
            e.tarsum = Some(sum);
        }
        self.memo.put_many(&learned)
    }

    /// Writes `manifests/<hex>.json` (once: the name is its content's hash) and its meta.
    fn save_manifest(&self, hex: &str, manifest: &Manifest, key: &str) -> Result<()> {
        let path = self.manifest_path(hex);
        if !path.exists() {
            publish::write_durable(&self.dir.join("tmp"), &path, &manifest.to_json_lines())?;
        }
        let now = now_ns();
        let meta = match self.load_meta(hex) {
            Some(mut m) => {
                m.last_used_ns = now;
                if !key.is_empty() {
                    m.key = key.to_string();
                }
                m
            }
            None => Meta {
                key: key.to_string(),
                created_ns: now,
                last_used_ns: now,
                uses: 0,
            },
        };
        self.save_meta(hex, &meta)
    }

    fn load_manifest(&self, hex: &str) -> Result<Option<Manifest>> {
        match std::fs::read(self.manifest_path(hex)) {
            Ok(b) => Manifest::from_json_lines(&b)
                .map(Some)
                .map_err(|e| Error::Internal(format!("build context sha256:{hex}: {e}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn load_meta(&self, hex: &str) -> Option<Meta> {
        serde_json::from_slice(&std::fs::read(self.meta_path(hex)).ok()?).ok()
    }

    /// Meta files only order GC: written by rename (never torn) but not fsynced.
    fn save_meta(&self, hex: &str, meta: &Meta) -> Result<()> {
        let body = serde_json::to_vec(meta).expect("meta serializes");
        publish::write_replace(&self.dir.join("tmp"), &self.meta_path(hex), &body)?;
        Ok(())
    }

    /// Marks a manifest used now.
    fn touch(&self, hex: &str, key: &str) {
        let now = now_ns();
        let mut meta = self.load_meta(hex).unwrap_or(Meta {
            key: key.to_string(),
            created_ns: now,
            last_used_ns: now,
            uses: 0,
        });
        meta.last_used_ns = now;
        meta.uses += 1;
        if let Err(e) = self.save_meta(hex, &meta) {
            tracing::warn!("build context sha256:{hex}: {e}");
        }
    }

    /// Every stored manifest's hex with its meta (a missing or torn meta reads as old).
    fn manifests(&self) -> Result<Vec<(String, Meta)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.dir.join("manifests"))? {
            let name = entry?.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let meta = self.load_meta(hex).unwrap_or(Meta {
                key: String::new(),
                created_ns: 0,
                last_used_ns: 0,
                uses: 0,
            });
            out.push((hex.to_string(), meta));
        }
        Ok(out)
    }

    /// Every stored file: hex → size.
    fn blobs(&self) -> Result<BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(self.blobs_dir())? {
            let entry = entry?;
            let Some(hex) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if digest_hex(&hex).is_some() {
                out.insert(hex, entry.metadata()?.len());
            }
        }
        Ok(out)
    }

    /// Hexes of the files a manifest names.
    fn manifest_blobs(&self, hex: &str) -> HashSet<String> {
        match self.load_manifest(hex) {
            Ok(Some(m)) => m
                .entries
                .iter()
                .filter_map(|e| e.digest.as_deref().and_then(digest_hex))
                .map(String::from)
                .collect(),
            _ => HashSet::new(),
        }
    }

    fn remove_manifest(&self, hex: &str) -> u64 {
        let mut freed = 0;
        // The meta first: a crash in between leaves a manifest that reads as old, not a
        // meta without its manifest.
        for path in [self.meta_path(hex), self.manifest_path(hex)] {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(&path).is_ok() {
                freed += len;
            }
        }
        freed
    }

    /// Bytes the store takes: files, manifests and their metas.
    pub fn size(&self) -> u64 {
        let blobs: u64 = self.blobs().map(|b| b.values().sum()).unwrap_or(0);
        let manifests: u64 = std::fs::read_dir(self.dir.join("manifests"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        blobs + manifests
    }

    /// What `system df` lists as Build Cache.
    pub fn usage(&self) -> Result<Vec<ContextUsage>> {
        usage::usage(self)
    }
}

/// `p` as a path relative to the context root, cleaned the way a path inside a chroot
/// resolves: `.` and empty components dropped, `..` never climbing above the root, a leading
/// `/` meaning the root. "" is the root itself.
pub fn clean_rooted(p: &str) -> String {
    berth_context::path::clean(&format!("/{p}"))[1..].to_string()
}

impl ContextView {
    /// Docker's `removeDockerfile`: `.dockerignore` and the Dockerfile leave the context when
    /// `.dockerignore` matches them; the build still reads them (they move to `hidden`).
    fn hide_ignored(&mut self, dockerfile: &str) -> Result<()> {
        let text = match self.read_file(".dockerignore") {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::Internal(e.to_string())),
        };
        let ignore = berth_context::Ignore::parse(&String::from_utf8_lossy(&text))
            .map_err(Error::Internal)?;
        let name = dockerfile_name(dockerfile, |p| self.resolve(p).is_ok());
        for path in [".dockerignore".to_string(), clean_rooted(&name)] {
            if !ignore.matches(&path) {
                continue;
            }
            if let Ok(i) = self
                .manifest
                .entries
                .binary_search_by(|e| e.path.as_str().cmp(&path))
            {
                let e = self.manifest.entries.remove(i);
                self.hidden.push(e);
            }
        }
        Ok(())
    }

    /// Where the content with `digest` ("sha256:<hex>") is stored.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        // Never the digest itself: joined, "/etc/shadow" or "../x" would name a host file.
        self.blobs_dir
            .join(digest_hex(digest).unwrap_or("not-a-digest"))
    }

    /// The entry at `path`: COPY's view first, then what `.dockerignore` hid.
    fn entry(&self, path: &str) -> Option<&Entry> {
        self.manifest
            .get(path)
            .or_else(|| self.hidden.iter().find(|e| e.path == path))
    }

    /// The file at `path` inside the context, symlinks followed without leaving it (as
    /// Docker's `FollowSymlinkInScope`): the Dockerfile, `.dockerignore`.
    pub fn read_file(&self, path: &str) -> io::Result<Vec<u8>> {
        let e = self.resolve(path)?;
        match e.kind {
            EntryKind::File => {
                std::fs::read(self.blob_path(e.digest.as_deref().unwrap_or_default()))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("read {path}: is a directory"),
            )),
        }
    }

    /// The entry `path` names, symlinks followed inside the context.
    fn resolve(&self, path: &str) -> io::Result<&Entry> {
        use berth_context::path::{resolve_in_scope, ResolveError};
        let not_found = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{path}: no such file or directory"),
            )
        };
        let lookup = |p: &str| self.entry(p).map(|e| (e.kind, e.linkname.clone()));
        let at = resolve_in_scope(path, true, lookup).map_err(|e| match e {
            ResolveError::NotFound => not_found(),
            ResolveError::NotADirectory => io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{path}: not a directory"),
            ),
            ResolveError::TooManyLinks => {
                io::Error::other(format!("{path}: too many levels of symbolic links"))
            }
        })?;
        if at.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("read {path}: is a directory"),
            ));
        }
        self.entry(&at).ok_or_else(not_found)
    }

    /// The Dockerfile `name` ("" = `Dockerfile`, then `dockerfile`), as Docker reads it.
    pub fn dockerfile(&self, name: &str) -> Result<String> {
        let name = dockerfile_name(name, |p| self.resolve(p).is_ok());
        let bytes = match self.read_file(&name) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Internal(format!(
                    "Cannot locate specified Dockerfile: {name}"
                )));
            }
            Err(e) => {
                return Err(Error::Internal(format!(
                    "unexpected error reading Dockerfile: {e}"
                )))
            }
        };
        if bytes.is_empty() {
            return Err(Error::InvalidParameter(format!(
                "the Dockerfile ({name}) cannot be empty"
            )));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// The Dockerfile a build reads: `name`, `Dockerfile` when empty, and as Docker falls back
/// for the default name, `dockerfile` when there is no `Dockerfile`.
fn dockerfile_name(name: &str, exists: impl Fn(&str) -> bool) -> String {
    match name {
        "" | "Dockerfile" if !exists("Dockerfile") && exists("dockerfile") => "dockerfile".into(),
        "" => "Dockerfile".into(),
        _ => name.into(),
    }
}
