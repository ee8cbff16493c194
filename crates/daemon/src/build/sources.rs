//! COPY/ADD sources as Docker 20.10's classic builder resolves and hashes them (moby
//! `builder/dockerfile/copy.go`, `builder/remotecontext/{tarsum,lazycontext}.go`).
//!
//! A source tree is the build context (its manifest, files in the context store) or an
//! image's root filesystem (`COPY --from`), whose entries are looked up in the same manifest
//! shape as the sources need them (never the whole image for one file).
//! Paths are cleaned, a leading `/` or `./` dropped; one that climbs out of the root is
//! `forbidden path outside the build context: <path> ()`; symlinks are followed inside the
//! tree (an absolute target starts at its root). A word with `*`, `?` or `[` is a Go
//! `filepath.Match` pattern tried on every path of the tree. A directory source copies what
//! it holds, with mtimes in whole seconds as dockerd's copy has them. Each source gets Docker's cache hash: `file:<tarsum>` of the file it resolves
//! to, `dir:<sha256 of the sorted tarsums of everything under it, itself included>`, and
//! several sources `multi:<sha256 of their hashes joined with ','>` (design §3).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use berth_context::tarsum::{dir_hash, file_hash, multi_hash, tarsum_of};
use berth_context::{Entry, EntryKind, Manifest};
use berth_store::{Image, Store};
use sha2::{Digest, Sha256};

use super::remote::{is_url, Downloaded, UNNAMED};
use super::BuildError;

/// Where the files behind a context manifest are (the context store).
pub trait ContextBlobs: Sync {
    /// The file holding the content with `digest` ("sha256:<hex>").
    fn blob_path(&self, digest: &str) -> PathBuf;
}

impl ContextBlobs for super::context_store::ContextView {
    fn blob_path(&self, digest: &str) -> PathBuf {
        super::context_store::ContextView::blob_path(self, digest)
    }
}

impl<F: Fn(&str) -> PathBuf + Sync> ContextBlobs for F {
    fn blob_path(&self, digest: &str) -> PathBuf {
        self(digest)
    }
}

/// Where COPY/ADD read from.
pub enum CopyFrom<'a> {
    Context(&'a Manifest, &'a dyn ContextBlobs),
    /// `COPY --from=<stage or image>` (`None`: a stage `FROM scratch` with no step).
    Image(Option<&'a Image>),
}

/// COPY/ADD arguments after word expansion.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpandedCopy {
    pub sources: Vec<String>,
    pub dest: String,
    pub chown: Option<String>,
    /// `--chmod` (berth; 20.10 refuses it), already parsed as octal.
    pub chmod: Option<u32>,
    pub link: bool,
    /// Here-documents: (name, body after expansion). Each becomes a file named after it.
    pub heredocs: Vec<(String, Vec<u8>)>,
}

/// One thing a COPY/ADD copies, with everything its commit needs.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceItem {
    /// A file (symlinks resolved); `name` is the source's own last path component, which a
    /// directory destination gets (a symlink copies as a file named after the link).
    File { name: String, file: SourceFile },
    /// What a directory holds, relative to it, in walk order (parents first).
    DirContents(Vec<(String, SourceFile)>),
    /// A here-document file.
    Heredoc { name: String, body: Vec<u8> },
    /// A file an ADD downloaded: copied as a file, never unpacked.
    Remote { name: String, file: SourceFile },
}

/// A file, directory or symlink to recreate.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFile {
    pub kind: EntryKind,
    /// Permission bits (no type bits).
    pub mode: u32,
    pub mtime: (i64, u32),
    /// The host file with the content (files only).
    pub host: Option<PathBuf>,
    pub linkname: String,
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Files of one source with the same value are one inode (hard links): dockerd's tar
    /// copy keeps them one.
    pub inode: Option<String>,
}

/// A COPY/ADD with its sources resolved: the cache hash first (the step probes the cache
/// with it before copying anything), then the items for the commit.
#[derive(Debug, Clone)]
pub struct PlannedCopy {
    /// `file:<h>`, `dir:<h>` or `multi:<h>`.
    pub hash: String,
    /// The destination as written (after expansion): the history comment shows it so.
    pub dest: String,
    /// The destination made absolute against WORKDIR; a trailing `/` kept.
    pub dest_abs: String,
    pub items: Vec<SourceItem>,
    pub chmod: Option<u32>,
    /// ADD: a local tar source is unpacked into the destination.
    pub add: bool,
    /// The scratch directories holding downloaded files, kept until the commit.
    pub downloads: Vec<Arc<berth_store::ScratchDir>>,
}

/// Resolves `args`' sources in `from` and computes the step's hash. `workdir` is the stage's
/// WORKDIR (a relative destination is under it).
#[allow(dead_code)] // the interface without URL sources; the COPY/ADD step calls the one below
pub fn plan_copy(
    store: &Store,
    from: CopyFrom,
    args: &ExpandedCopy,
    add: bool,
    workdir: &str,
) -> Result<PlannedCopy, BuildError> {
    plan_copy_with_downloads(store, from, args, add, workdir, &[])
}

/// [`plan_copy`] for an ADD whose URL sources are already downloaded (remote.rs).
pub fn plan_copy_with_downloads(
    store: &Store,
    from: CopyFrom,
    args: &ExpandedCopy,
    add: bool,
    workdir: &str,
    downloads: &[Downloaded],
) -> Result<PlannedCopy, BuildError> {
    let tree = match from {
        CopyFrom::Context(m, blobs) => Tree::context(m, blobs),
        CopyFrom::Image(image) => Tree::image(store, image).map_err(|e| {
            BuildError::msg(format!("{} failed: {e}", if add { "ADD" } else { "COPY" }))
        })?,
    };
    plan_in(&tree, args, add, workdir, downloads)
}

fn plan_in(
    tree: &Tree,
    args: &ExpandedCopy,
    add: bool,
    workdir: &str,
    downloads: &[Downloaded],
) -> Result<PlannedCopy, BuildError> {
    let cmd = if add { "ADD" } else { "COPY" };
    let failed = |e: String| BuildError::msg(format!("{cmd} failed: {e}"));
    let mut items = Vec::new();
    let mut hashes = Vec::new();
    let mut keep = Vec::new();
    for src in &args.sources {
        if is_url(src) {
            if !add {
                return Err(failed("source can't be a URL for COPY".into()));
            }
            let d = downloads
                .iter()
                .find(|d| d.url == *src)
                .ok_or_else(|| failed(format!("{src} was not downloaded")))?;
            let (item, hash) = downloaded_source(d, &args.dest).map_err(failed)?;
            items.push(item);
            hashes.push(hash);
            keep.push(d.dir.clone());
            continue;
        }
        for (item, hash) in tree.source(src).map_err(failed)? {
            items.push(item);
            hashes.push(hash);
        }
    }
    for (name, body) in &args.heredocs {
        hashes.push(file_hash(&heredoc_tarsum(name, body)));
        items.push(SourceItem::Heredoc {
            name: name.clone(),
            body: body.clone(),
        });
    }
    if items.is_empty() {
        return Err(failed("no source files were specified".into()));
    }
    if items.len() > 1 && !args.dest.ends_with('/') {
        return Err(BuildError::msg(format!(
            "When using {cmd} with more than one source file, the destination must be a directory and end with a /"
        )));
    }
    let hash = if hashes.len() == 1 {
        hashes.remove(0)
    } else {
        multi_hash(&hashes)
    };
    Ok(PlannedCopy {
        hash,
        dest: args.dest.clone(),
        dest_abs: normalize_dest(workdir, &args.dest),
        items,
        chmod: args.chmod,
        add,
        downloads: keep,
    })
}

/// Docker's `normalizeDest`: a relative destination is under WORKDIR; a trailing `/` stays.
pub fn normalize_dest(workdir: &str, dest: &str) -> String {
    if dest.starts_with('/') {
        return dest.to_string();
    }
    let joined = berth_context::path::clean(&format!("/{workdir}/{dest}"));
    if dest.ends_with('/') && joined != "/" {
        format!("{joined}/")
    } else {
        joined
    }
}

/// A downloaded file as an ADD source: its item, and its hash as dockerd's
/// `remote.Hash(name)` gives it — the lazy source's bare tarsum of the file (no `file:`
/// prefix), named after the download (`__unnamed__` when it has no name, which a
/// destination ending in `/` cannot take).
fn downloaded_source(d: &Downloaded, dest: &str) -> Result<(SourceItem, String), String> {
    let name = match &d.name {
        Some(n) => n.clone(),
        None if dest.ends_with('/') => {
            return Err(format!("cannot determine filename for source {}", d.url))
        }
        None => UNNAMED.to_string(),
    };
    let m = std::fs::symlink_metadata(&d.path).map_err(|e| format!("{name}: {e}"))?;
    let entry = Entry {
        path: name.clone(),
        kind: EntryKind::File,
        mode: m.mode(),
        size: m.len(),
        mtime_ns: d.mtime * 1_000_000_000,
        uid: m.uid(),
        gid: m.gid(),
        linkname: String::new(),
        xattrs: Vec::new(),
        digest: None,
        tarsum: None,
        implied: false,
    };
    let mut content = std::fs::File::open(&d.path).map_err(|e| format!("{name}: {e}"))?;
    let hash = image_tarsum(&entry, &HostNames::read(), &mut content)
        .map_err(|e| format!("{name}: {e}"))?;
    let file = SourceFile {
        kind: EntryKind::File,
        mode: m.mode() & 0o7777,
        mtime: (d.mtime, 0),
        host: Some(d.path.clone()),
        linkname: String::new(),
        xattrs: Vec::new(),
        inode: None,
    };
    Ok((SourceItem::Remote { name, file }, hash))
}

/// The hash a here-document file gets (berth only: 20.10 has no heredocs): the tarsum of
/// a 0644 file of that name and content.
fn heredoc_tarsum(name: &str, body: &[u8]) -> String {
    let e = Entry {
        path: name.to_string(),
        kind: EntryKind::File,
        mode: 0o100644,
        size: body.len() as u64,
        mtime_ns: 0,
        uid: 0,
        gid: 0,
        linkname: String::new(),
        xattrs: Vec::new(),
        digest: None,
        tarsum: None,
        implied: false,
    };
    tarsum_of(&e, &mut &body[..]).unwrap_or_default()
}

/// Docker's `containsWildcards`: `*`, `?` or `[` not escaped by `\`.
pub fn contains_wildcards(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Go's `path/filepath.Match` (separator `/`): `*` any run of non-`/`, `?` one non-`/`,
/// `[...]` a class (`^` negates, `a-z` ranges, `\` escapes), `\` escapes. `Err` on a
/// malformed pattern (Go's `ErrBadPattern`).
pub fn go_match(pattern: &str, name: &str) -> Result<bool, ()> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> Result<bool, ()> {
    let (mut pi, mut ni) = (0, 0);
    // Backtracking point for the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    pi += 1;
                    star = Some((pi, ni));
                    continue;
                }
                c => {
                    if ni < n.len() {
                        let (ok, next) = match c {
                            '?' => (n[ni] != '/', pi + 1),
                            '[' => {
                                let (ok, next) = match_class(p, pi + 1, n[ni])?;
                                (ok && n[ni] != '/', next)
                            }
                            '\\' => {
                                let e = *p.get(pi + 1).ok_or(())?;
                                (n[ni] == e, pi + 2)
                            }
                            c => (n[ni] == c, pi + 1),
                        };
                        if ok {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    }
                }
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        // Mismatch: let the last `*` take one more character (never a `/`).
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => {
                // Go still reports a malformed rest of the pattern.
                check_pattern(&p[pi.min(p.len())..])?;
                return Ok(false);
            }
        }
    }
}

/// A class starting after `[` at `i`: whether `c` is in it, and the index after `]`.
fn match_class(p: &[char], mut i: usize, c: char) -> Result<(bool, usize), ()> {
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i).ok_or(())?;
        if ch == ']' && !first {
            return Ok((matched != negated, i + 1));
        }
        first = false;
        let (lo, next) = class_char(p, i)?;
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            let (h, next) = class_char(p, i + 1)?;
            hi = h;
            i = next;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

fn class_char(p: &[char], i: usize) -> Result<(char, usize), ()> {
    match *p.get(i).ok_or(())? {
        '\\' => Ok((*p.get(i + 1).ok_or(())?, i + 2)),
        '-' | ']' if i > 0 && p[i - 1] != '[' && p[i - 1] != '^' => Err(()),
        c => Ok((c, i + 1)),
    }
}

/// Go's `filepath.Match` validates the part of the pattern it did not reach.
fn check_pattern(p: &[char]) -> Result<(), ()> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                p.get(i + 1).ok_or(())?;
                i += 2;
            }
            '[' => {
                let (_, next) = match_class(p, i + 1, '\0')?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// A source tree: its entries by path, and where each file's content is.
struct Tree<'a> {
    files: Files<'a>,
    /// Docker words a missing context file differently from a missing image file.
    is_context: bool,
    /// The host's user and group names by id (read once, for image files' tarsums).
    host_names: std::cell::OnceCell<HostNames>,
}

enum Files<'a> {
    /// The build context: its manifest, the files in the context store.
    Context(&'a Manifest, &'a dyn ContextBlobs),
    /// An image's root filesystem, looked up path by path as the sources need it: a COPY
    /// of one file out of a big image reads a handful of entries, not the whole tree.
    Image(ImageFiles),
}

/// An entry of an image, the file in its topmost layer, and its inode when it has other
/// names (`dev:ino`).
struct ImageFile {
    entry: Entry,
    host: PathBuf,
    inode: Option<String>,
}

struct ImageFiles {
    fs: berth_store::ImageFs,
    /// What each path looked up so far is (`None`: nothing a COPY takes — missing, under a
    /// non-directory, or a device node, FIFO or socket), and the file in its topmost layer.
    seen: RefCell<HashMap<String, Option<ImageFile>>>,
}

impl ImageFiles {
    /// The entry at `path` (relative, clean, no symlink followed), in the manifest's shape.
    fn get(&self, path: &str) -> Option<Entry> {
        if path.is_empty() {
            return None;
        }
        if let Some(known) = self.seen.borrow().get(path) {
            return known.as_ref().map(|f| f.entry.clone());
        }
        // Only under a directory seen as one: a path is never looked up through a symlink.
        let parent_is_dir = match path.rsplit_once('/') {
            Some((parent, _)) => self.get(parent).is_some_and(|p| p.kind == EntryKind::Dir),
            None => true,
        };
        let found = if parent_is_dir {
            self.fs.lstat(path).and_then(|node| image_entry(path, node))
        } else {
            None
        };
        let entry = found.as_ref().map(|f| f.entry.clone());
        self.seen.borrow_mut().insert(path.to_string(), found);
        entry
    }

    /// The names in directory `dir` ("" the root) that are entries.
    fn children(&self, dir: &str) -> Vec<Entry> {
        self.fs
            .read_dir(dir)
            .into_iter()
            .filter_map(|name| self.get(&join_rel(dir, &name)))
            .collect()
    }

    /// Everything under `dir` ("" the root), parents before what they hold.
    fn descendants(&self, dir: &str) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_string()];
        while let Some(d) = todo.pop() {
            for e in self.children(&d) {
                if e.kind == EntryKind::Dir {
                    todo.push(e.path.clone());
                }
                out.push(e);
            }
        }
        out
    }

    /// The paths `pattern` matches. The pattern is matched a component at a time, reading
    /// only the directories its leading components match (Go's `*`, `?` and classes never
    /// match a `/`, so a match has as many components as the pattern); one whose class or
    /// escape could stand for a `/` is matched against the whole tree.
    fn glob(&self, pattern: &str) -> Vec<String> {
        let Some(comps) = pattern_components(pattern) else {
            return self
                .descendants("")
                .into_iter()
                .map(|e| e.path)
                .filter(|p| go_match(pattern, p).unwrap_or(false))
                .collect();
        };
        let mut level = vec![String::new()];
        for (i, comp) in comps.iter().enumerate() {
            let last = i + 1 == comps.len();
            let mut next = Vec::new();
            for dir in &level {
                for name in self.fs.read_dir(dir) {
                    if !go_match(comp, &name).unwrap_or(false) {
                        continue;
                    }
                    let path = join_rel(dir, &name);
                    match self.get(&path) {
                        Some(e) if last || e.kind == EntryKind::Dir => next.push(path),
                        _ => {}
                    }
                }
            }
            level = next;
        }
        // The whole pattern decides, as Docker's walk matches it.
        level.retain(|p| go_match(pattern, p).unwrap_or(false));
        level
    }

    fn host_path(&self, path: &str) -> Option<PathBuf> {
        self.seen
            .borrow()
            .get(path)
            .and_then(|f| f.as_ref().map(|f| f.host.clone()))
    }

    fn inode(&self, path: &str) -> Option<String> {
        self.seen
            .borrow()
            .get(path)
            .and_then(|f| f.as_ref().and_then(|f| f.inode.clone()))
    }
}

/// `pattern` split at its `/`s, unless a class or an escape in it could match a `/` itself.
fn pattern_components(pattern: &str) -> Option<Vec<&str>> {
    let b = pattern.as_bytes();
    let mut in_class = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if b.get(i + 1) == Some(&b'/') {
                    return None;
                }
                i += 1;
            }
            b'[' => in_class = true,
            b']' => in_class = false,
            b'/' if in_class => return None,
            _ => {}
        }
        i += 1;
    }
    Some(pattern.split('/').collect())
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// An image's file, directory or symlink as a manifest entry (device nodes, FIFOs and
/// sockets are `None`: a COPY never takes them), with the file in its topmost layer.
fn image_entry(path: &str, node: berth_store::ImageFsNode) -> Option<ImageFile> {
    let m = &node.metadata;
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Dir
    } else if ft.is_file() {
        EntryKind::File
    } else if ft.is_symlink() {
        EntryKind::Symlink
    } else {
        return None;
    };
    let linkname = if kind == EntryKind::Symlink {
        std::fs::read_link(&node.host_path)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let xattrs = match (
        kind,
        crate::engine::nofollow::read_xattr(&node.host_path, "security.capability", false),
    ) {
        (EntryKind::File, Some(v)) => vec![("security.capability".to_string(), v)],
        _ => Vec::new(),
    };
    let entry = Entry {
        path: path.to_string(),
        kind,
        mode: m.mode(),
        size: if kind == EntryKind::File { m.len() } else { 0 },
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        uid: m.uid(),
        gid: m.gid(),
        linkname,
        xattrs,
        digest: None,
        tarsum: None,
        implied: false,
    };
    let inode =
        (kind == EntryKind::File && m.nlink() > 1).then(|| format!("{}:{}", m.dev(), m.ino()));
    Some(ImageFile {
        entry,
        host: node.host_path,
        inode,
    })
}

/// Why a path does not resolve.
enum Miss {
    Forbidden,
    NotFound,
}

impl<'a> Tree<'a> {
    fn context(m: &'a Manifest, blobs: &'a dyn ContextBlobs) -> Tree<'a> {
        Tree {
            files: Files::Context(m, blobs),
            is_context: true,
            host_names: Default::default(),
        }
    }

    /// An image's root filesystem (`None`: scratch, empty).
    fn image(store: &Store, image: Option<&Image>) -> Result<Tree<'static>, berth_store::Error> {
        Ok(Tree {
            files: Files::Image(ImageFiles {
                fs: store.image_fs(image)?,
                seen: Default::default(),
            }),
            is_context: false,
            host_names: Default::default(),
        })
    }

    /// The entry at `path` (relative, clean; no symlink followed).
    fn get(&self, path: &str) -> Option<Cow<'a, Entry>> {
        match &self.files {
            Files::Context(m, _) => m.get(path).map(Cow::Borrowed),
            Files::Image(img) => img.get(path).map(Cow::Owned),
        }
    }

    /// Everything under the directory `dir` ("" the root).
    fn descendants(&self, dir: &str) -> Vec<Cow<'a, Entry>> {
        match &self.files {
            Files::Context(m, _) => m.descendants(dir).map(Cow::Borrowed).collect(),
            Files::Image(img) => img.descendants(dir).into_iter().map(Cow::Owned).collect(),
        }
    }

    /// The paths the wildcard `pattern` matches.
    fn glob(&self, pattern: &str) -> Vec<String> {
        match &self.files {
            Files::Context(m, _) => m
                .entries
                .iter()
                .filter(|e| go_match(pattern, &e.path).unwrap_or(false))
                .map(|e| e.path.clone())
                .collect(),
            Files::Image(img) => img.glob(pattern),
        }
    }

    fn host_path(&self, e: &Entry) -> Option<PathBuf> {
        match &self.files {
            Files::Context(_, b) => e.digest.as_deref().map(|d| b.blob_path(d)),
            Files::Image(img) => img.host_path(&e.path),
        }
    }

    /// `path` (relative, cleaned or not) with the tree's symlinks followed inside it, the
    /// last one too when `follow_last`.
    fn resolve(
        &self,
        path: &str,
        follow_last: bool,
    ) -> Result<(String, Option<Cow<'a, Entry>>), Miss> {
        // Lexically, as Docker joins the path to the root first: climbing out is forbidden.
        let mut depth: i64 = 0;
        for c in path.split('/') {
            match c {
                "" | "." => {}
                ".." => depth -= 1,
                _ => depth += 1,
            }
            if depth < 0 {
                return Err(Miss::Forbidden);
            }
        }
        // A miss, a non-directory on the way and a symlink loop all read as "not found".
        let joined = berth_context::path::resolve_in_scope(path, follow_last, |p| {
            self.get(p).map(|e| (e.kind, e.linkname.clone()))
        })
        .map_err(|_| Miss::NotFound)?;
        if joined.is_empty() {
            // The root itself: a directory with no entry.
            return Ok((joined, None));
        }
        match self.get(&joined) {
            Some(e) => Ok((joined, Some(e))),
            None => Err(Miss::NotFound),
        }
    }

    /// The tarsum of `e` as Docker keys it: the context's from its tar headers; an image
    /// file's from its metadata (lazycontext.go: real owner, and user/group names looked up
    /// on the host as Go's `tar.FileInfoHeader` does).
    fn tarsum(&self, e: &Entry) -> Result<String, String> {
        if let Some(t) = &e.tarsum {
            return Ok(t.clone());
        }
        let mut content: Box<dyn Read> = match (e.kind, self.host_path(e)) {
            (EntryKind::File, Some(p)) if e.size > 0 => {
                Box::new(std::fs::File::open(&p).map_err(|err| format!("{}: {err}", e.path))?)
            }
            _ => Box::new(std::io::empty()),
        };
        if self.is_context {
            return tarsum_of(e, &mut content).map_err(|err| format!("{}: {err}", e.path));
        }
        let names = self.host_names.get_or_init(HostNames::read);
        image_tarsum(e, names, &mut content).map_err(|err| format!("{}: {err}", e.path))
    }

    /// Docker's `Hash(path)`: the tarsum of what `path` resolves to; a path that resolves
    /// to nothing hashes as itself (tarsum.go's "backwards compat").
    fn hash_path(&self, path: &str) -> Result<String, String> {
        match self.resolve(path, true) {
            Ok((_, Some(e))) => self.tarsum(&e),
            _ => Ok(path.to_string()),
        }
    }

    /// The items and hashes one source word gives.
    fn source(&self, orig: &str) -> Result<Vec<(SourceItem, String)>, String> {
        let mut path = orig.strip_prefix('/').unwrap_or(orig);
        path = path.strip_prefix("./").unwrap_or(path);
        if contains_wildcards(path) {
            let mut matches = self.glob(path);
            // filepath.Walk's order: component by component.
            matches.sort_by(|a, b| a.split('/').cmp(b.split('/')));
            let mut out = Vec::new();
            for m in matches {
                out.push(self.one(&m)?);
            }
            return Ok(out);
        }
        Ok(vec![self.one(path)?])
    }

    /// Docker's `calcCopyInfo` for a path without wildcards.
    fn one(&self, path: &str) -> Result<(SourceItem, String), String> {
        let (resolved, e) = match self.resolve(path, true) {
            // The root: a directory with no entry of its own.
            Ok((_, None)) => return self.dir(""),
            Ok((resolved, Some(e))) => (resolved, e),
            Err(Miss::Forbidden) => {
                return Err(format!(
                    "forbidden path outside the build context: {path} ()"
                ))
            }
            Err(Miss::NotFound) => {
                let stat = format!("stat {path}: file does not exist");
                return Err(if self.is_context {
                    format!("file not found in build context or excluded by .dockerignore: {stat}")
                } else {
                    stat
                });
            }
        };
        if e.kind == EntryKind::Dir {
            return self.dir(&resolved);
        }
        let name = path
            .rsplit('/')
            .find(|c| !c.is_empty() && *c != ".")
            .unwrap_or(path)
            .to_string();
        let hash = file_hash(&self.tarsum(&e)?);
        Ok((
            SourceItem::File {
                name,
                file: self.source_file(&e),
            },
            hash,
        ))
    }

    /// A directory source: what it holds, and `dir:` of the tarsums of it and all it holds.
    fn dir(&self, resolved: &str) -> Result<(SourceItem, String), String> {
        let mut tarsums = Vec::new();
        if let Some(e) = self.get(resolved) {
            tarsums.push(self.tarsum(&e)?);
        }
        let mut contents: Vec<(Cow<Entry>, String)> = Vec::new();
        for e in self.descendants(resolved) {
            // Each entry hashes as what it resolves to (a symlink inside: its target).
            tarsums.push(self.hash_path(&e.path)?);
            let rel = if resolved.is_empty() {
                e.path.clone()
            } else {
                e.path[resolved.len() + 1..].to_string()
            };
            contents.push((e, rel));
        }
        contents.sort_by(|a, b| a.1.split('/').cmp(b.1.split('/')));
        let items = contents
            .into_iter()
            .map(|(e, rel)| (rel, self.source_file(&e)))
            .collect();
        Ok((SourceItem::DirContents(items), dir_hash(&tarsums)))
    }

    fn source_file(&self, e: &Entry) -> SourceFile {
        SourceFile {
            kind: e.kind,
            mode: e.mode & 0o7777,
            // Whole seconds: dockerd copies through a tar whose headers it truncates
            // (`CopyWithTar`, `CopyFileWithTar`), and the docker CLI's context tar has them so;
            // a berth CLI context's nanoseconds would otherwise reach the layer.
            mtime: (e.mtime_ns.div_euclid(1_000_000_000), 0),
            host: if e.kind == EntryKind::File {
                self.host_path(e)
            } else {
                None
            },
            linkname: e.linkname.clone(),
            xattrs: e.xattrs.clone(),
            inode: match (&self.files, e.kind) {
                (_, kind) if kind != EntryKind::File => None,
                // The manifest names a hard link's first path.
                (Files::Context(..), _) if e.is_hard_link() => Some(e.linkname.clone()),
                (Files::Context(..), _) => Some(e.path.clone()),
                (Files::Image(img), _) => img.inode(&e.path),
            },
        }
    }
}

/// lazycontext.go's hash of an image file: tarsum's header fields with the user and group
/// names Go's `tar.FileInfoHeader` looks up on the daemon's host, then the content.
fn image_tarsum(e: &Entry, names: &HostNames, content: &mut dyn Read) -> std::io::Result<String> {
    let name = berth_context::tarsum::tar_name(e);
    let mut s = Sha256::new();
    let mut field = |k: &str, v: &[u8]| {
        s.update(k.as_bytes());
        s.update(v);
    };
    field("name", name.as_bytes());
    field("mode", e.mode.to_string().as_bytes());
    field("uid", e.uid.to_string().as_bytes());
    field("gid", e.gid.to_string().as_bytes());
    field(
        "size",
        if e.kind == EntryKind::File { e.size } else { 0 }
            .to_string()
            .as_bytes(),
    );
    field("typeflag", &[berth_context::tarsum::typeflag(e)]);
    field("linkname", e.linkname.as_bytes());
    field(
        "uname",
        names.users.get(&e.uid).map_or(&b""[..], |n| n.as_bytes()),
    );
    field(
        "gname",
        names.groups.get(&e.gid).map_or(&b""[..], |n| n.as_bytes()),
    );
    field("devmajor", b"0");
    field("devminor", b"0");
    let mut xattrs = e.xattrs.clone();
    xattrs.sort();
    for (k, v) in &xattrs {
        field(k, v);
    }
    if e.kind == EntryKind::File {
        std::io::copy(content, &mut HashWriter(&mut s))?;
    }
    Ok(hex::encode(s.finalize()))
}

struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The daemon host's user and group names by id, as Go's `os/user` finds them in
/// /etc/passwd and /etc/group (the first line with an id wins).
#[derive(Default)]
struct HostNames {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl HostNames {
    fn read() -> HostNames {
        let parse = |file: &str| {
            let mut names = HashMap::new();
            for l in std::fs::read_to_string(file).unwrap_or_default().lines() {
                let f: Vec<&str> = l.split(':').collect();
                if let Some(id) = f.get(2).and_then(|i| i.parse::<u32>().ok()) {
                    names.entry(id).or_insert_with(|| f[0].to_string());
                }
            }
            names
        };
        HostNames {
            users: parse("/etc/passwd"),
            groups: parse("/etc/group"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A context as the docker CLI sends it (uid/gid 0), files' content in `dir`.
    struct Ctx {
        dir: tempfile::TempDir,
        manifest: Manifest,
    }

    impl Ctx {
        fn new() -> Ctx {
            Ctx {
                dir: tempfile::tempdir().unwrap(),
                manifest: Manifest::default(),
            }
        }

        fn add(
            &mut self,
            path: &str,
            kind: EntryKind,
            mode: u32,
            content: &[u8],
            link: &str,
        ) -> &mut Ctx {
            let digest = (kind == EntryKind::File).then(|| {
                let d = format!("sha256:{}", hex::encode(Sha256::digest(content)));
                std::fs::write(self.dir.path().join(&d[7..]), content).unwrap();
                d
            });
            let mut entries = std::mem::take(&mut self.manifest.entries);
            entries.push(Entry {
                path: path.into(),
                kind,
                mode,
                size: if kind == EntryKind::File {
                    content.len() as u64
                } else {
                    0
                },
                mtime_ns: 1_600_000_000_123_456_789,
                uid: 0,
                gid: 0,
                linkname: link.into(),
                xattrs: Vec::new(),
                digest,
                tarsum: None,
                implied: false,
            });
            self.manifest = Manifest::new(entries);
            self
        }

        fn file(&mut self, path: &str, mode: u32, content: &[u8]) -> &mut Ctx {
            self.add(path, EntryKind::File, 0o100000 | mode, content, "")
        }

        fn dir(&mut self, path: &str, mode: u32) -> &mut Ctx {
            self.add(path, EntryKind::Dir, 0o040000 | mode, b"", "")
        }

        fn link(&mut self, path: &str, target: &str) -> &mut Ctx {
            self.add(path, EntryKind::Symlink, 0o120777, b"", target)
        }

        fn plan(&self, sources: &[&str], dest: &str) -> Result<PlannedCopy, String> {
            let root = self.dir.path().to_path_buf();
            let blobs = move |d: &str| root.join(d.trim_start_matches("sha256:"));
            let tree = Tree::context(&self.manifest, &blobs);
            let args = ExpandedCopy {
                sources: sources.iter().map(|s| s.to_string()).collect(),
                dest: dest.into(),
                ..Default::default()
            };
            plan_in(&tree, &args, false, "/w", &[]).map_err(|e| e.to_string())
        }
    }

    /// The two contexts of build-transcripts.md's "COPY sources" section, built on dockerd.
    fn c1() -> Ctx {
        let mut c = Ctx::new();
        c.file("hello.txt", 0o644, b"hello\n")
            .dir("dir", 0o700)
            .dir("dir/sub", 0o750)
            .file("dir/sub/x", 0o644, b"x\n")
            .file("Dockerfile", 0o644, b"FROM busybox\n");
        c
    }

    fn c2() -> Ctx {
        let mut c = Ctx::new();
        c.file("hello.txt", 0o644, b"hello\n")
            .link("link", "hello.txt")
            .dir("d", 0o755)
            .file("d/f", 0o644, b"in\n")
            .link("dlink", "d");
        c
    }

    #[test]
    fn hashes_are_dockerds() {
        let c = c1();
        // Recorded from dockerd 20.10 (build-transcripts.md).
        assert_eq!(
            c.plan(&["hello.txt"], "/new/deep/").unwrap().hash,
            "file:7d1b8e6c9123955c22ae5efea6309bc3436ed116b03932f650caae30c06ab651"
        );
        assert_eq!(
            c.plan(&["dir"], "/app/dir").unwrap().hash,
            "dir:c9e871ad88b6e53423392746eb564affc07382f044e81c314d88cf735fa24373"
        );
        assert_eq!(
            c.plan(&["dir/sub/x", "hello.txt"], "/multi/").unwrap().hash,
            "multi:ffb0681cadef1c0dad34d340cc2cb9a8840df1cfbd489a25fbfe15dee001895c"
        );
        let c = c2();
        // A symlink hashes as the file it leads to; a path through a linked dir as its target.
        assert_eq!(
            c.plan(&["link"], "/a/").unwrap().hash,
            "file:7d1b8e6c9123955c22ae5efea6309bc3436ed116b03932f650caae30c06ab651"
        );
        assert_eq!(
            c.plan(&["dlink"], "/c/").unwrap().hash,
            "dir:03e19c3d062b53da85877c495f197165e99d88364e9cd6c40267458337d26ed6"
        );
        assert_eq!(
            c.plan(&["d"], "/c2/").unwrap().hash,
            c.plan(&["dlink"], "/c/").unwrap().hash
        );
        assert_eq!(
            c.plan(&["hello.txt", "d"], "/e/").unwrap().hash,
            "multi:cf209dedbb153a294a6259981fec4750c5f8ffb687291e6a7e46c70ceca6a920"
        );
        assert_eq!(
            c.plan(&["*.txt"], "/g/").unwrap().hash,
            "file:7d1b8e6c9123955c22ae5efea6309bc3436ed116b03932f650caae30c06ab651"
        );
    }

    #[test]
    fn sources_resolve_as_dockerd() {
        let c = c2();
        // A symlink copies as a file named after the link; a dir copies its contents.
        let p = c.plan(&["/./link"], "x").unwrap();
        assert_eq!(p.dest_abs, "/w/x");
        let SourceItem::File { name, file } = &p.items[0] else {
            panic!("{:?}", p.items)
        };
        assert_eq!(name, "link");
        assert_eq!(file.mode, 0o644);
        assert_eq!(file.mtime, (1_600_000_000, 0));
        assert_eq!(
            std::fs::read(file.host.as_ref().unwrap()).unwrap(),
            b"hello\n"
        );
        let p = c.plan(&["dlink"], "/c/").unwrap();
        let SourceItem::DirContents(items) = &p.items[0] else {
            panic!()
        };
        assert_eq!(
            items.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(),
            ["f"]
        );
        // Errors, worded as dockerd's (the step adds nothing: these are the whole messages).
        assert_eq!(
            c.plan(&["nothere"], "/x").unwrap_err(),
            "COPY failed: file not found in build context or excluded by .dockerignore: stat nothere: file does not exist"
        );
        assert_eq!(
            c.plan(&["../etc/passwd"], "/x").unwrap_err(),
            "COPY failed: forbidden path outside the build context: ../etc/passwd ()"
        );
        assert_eq!(
            c.plan(&["d/../../x"], "/x").unwrap_err(),
            "COPY failed: forbidden path outside the build context: d/../../x ()"
        );
        assert_eq!(
            c.plan(&["*.nomatch"], "/x/").unwrap_err(),
            "COPY failed: no source files were specified"
        );
        // `..` inside the tree is fine; a file used as a directory is not there.
        assert!(c.plan(&["d/../hello.txt"], "/x").is_ok());
        assert!(c.plan(&["hello.txt/x"], "/x").is_err());
        // `d/..` is the root too.
        let p = c.plan(&["d/.."], "/all/").unwrap();
        assert_eq!(p.hash, c.plan(&["."], "/all/").unwrap().hash);
        // The whole context: its entries, the root itself not hashed.
        let p = c.plan(&["."], "/all/").unwrap();
        let SourceItem::DirContents(items) = &p.items[0] else {
            panic!()
        };
        let rels: Vec<&str> = items.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(rels, ["d", "d/f", "dlink", "hello.txt", "link"]);
    }

    #[test]
    fn a_context_hard_link_is_its_first_paths_inode() {
        let mut c = Ctx::new();
        c.dir("d", 0o755)
            .file("d/a", 0o644, b"x")
            .add("d/b", EntryKind::File, 0o100644, b"x", "d/a")
            .file("d/c", 0o644, b"x");
        let p = c.plan(&["d"], "/x/").unwrap();
        let SourceItem::DirContents(items) = &p.items[0] else {
            panic!()
        };
        let inodes: Vec<(&str, Option<&str>)> = items
            .iter()
            .map(|(r, f)| (r.as_str(), f.inode.as_deref()))
            .collect();
        assert_eq!(
            inodes,
            [("a", Some("d/a")), ("b", Some("d/a")), ("c", Some("d/c"))]
        );
    }

    #[test]
    fn wildcards_match_as_go_filepath_match() {
        let mut c = Ctx::new();
        c.file("a.txt", 0o644, b"1")
            .dir("a", 0o755)
            .file("a/b.txt", 0o644, b"2")
            .file("b.txt", 0o644, b"3");
        // Walk order (component-wise): a, a.txt — not byte order.
        let p = c.plan(&["a*"], "/x/").unwrap();
        assert_eq!(p.items.len(), 2);
        assert!(matches!(p.items[0], SourceItem::DirContents(_)));
        assert!(c.plan(&["*/b.txt"], "/x/").is_ok());
        let cases: &[(&str, &str, Result<bool, ()>)] = &[
            ("*", "abc", Ok(true)),
            ("*", "a/b", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a?c", "abc", Ok(true)),
            ("a?c", "a/c", Ok(false)),
            ("[a-c]x", "bx", Ok(true)),
            ("[^a-c]x", "bx", Ok(false)),
            ("[^a-c]x", "dx", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("[", "a", Err(())),
            ("a[", "a", Err(())),
            ("[x-]", "x", Err(())),
            ("*x", "xxx", Ok(true)),
        ];
        for (p, n, want) in cases {
            assert_eq!(go_match(p, n), *want, "{p} {n}");
        }
        assert!(contains_wildcards("a*"));
        assert!(!contains_wildcards("a\\*"));
    }

    #[test]
    fn destinations_are_under_workdir() {
        assert_eq!(normalize_dest("/w", "x"), "/w/x");
        assert_eq!(normalize_dest("/w", "x/"), "/w/x/");
        assert_eq!(normalize_dest("/w", "."), "/w");
        assert_eq!(normalize_dest("", "./"), "/");
        assert_eq!(normalize_dest("/w", "/abs"), "/abs");
        assert_eq!(normalize_dest("w", "../y/"), "/y/");
    }

    #[test]
    fn several_sources_need_a_directory_destination() {
        let c = c1();
        let root = c.dir.path().to_path_buf();
        let blobs = move |d: &str| root.join(d.trim_start_matches("sha256:"));
        let args = ExpandedCopy {
            sources: vec!["hello.txt".into()],
            dest: "/x".into(),
            heredocs: vec![("EOF".into(), b"hi\n".to_vec())],
            ..Default::default()
        };
        // Heredocs count as sources.
        let tree = Tree::context(&c.manifest, &blobs);
        let err = plan_in(&tree, &args, false, "/", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "When using COPY with more than one source file, the destination must be a directory and end with a /"
        );
        let args = ExpandedCopy {
            dest: "/x/".into(),
            ..args
        };
        let p = plan_in(&tree, &args, false, "/", &[]).unwrap();
        assert!(p.hash.starts_with("multi:"));
        assert!(matches!(&p.items[1], SourceItem::Heredoc { name, .. } if name == "EOF"));
    }

    /// A store on a temp root holding an image with a few directories worth not reading.
    /// `None` (skip) without root, except under CI.
    fn image_store() -> Option<(tempfile::TempDir, Store, Image)> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "needs root under CI"
            );
            eprintln!("skipping: needs root");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-sources")
            .tempdir_in("/var/tmp")
            .unwrap();
        let db = std::sync::Arc::new(redb::Database::create(dir.path().join("db")).unwrap());
        let store = Store::open(&dir.path().join("root"), db).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_ustar();
            h.set_mode(if path.ends_with('/') { 0o755 } else { 0o644 });
            h.set_mtime(1_600_000_000);
            h.set_size(data.len() as u64);
            match link {
                Some(l) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    b.append_link(&mut h, path, l).unwrap()
                }
                None => {
                    if path.ends_with('/') {
                        h.set_entry_type(tar::EntryType::Directory);
                    }
                    b.append_data(&mut h, path, data).unwrap()
                }
            }
        };
        add("etc/", b"", None);
        add("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", None);
        add("etc/group", b"root:x:0:\n", None);
        add("usr/", b"", None);
        add("usr/bin/", b"", None);
        add("usr/bin/a", b"a\n", None);
        add("usr/bin/b.sh", b"b\n", None);
        add("usr/lib/", b"", None);
        add("usr/lib/a", b"lib\n", None);
        add("bin", b"", Some("usr/bin"));
        add("pw", b"", Some("/etc/../etc/passwd"));
        add("loop", b"", Some("loop"));
        add("big/", b"", None);
        for i in 0..20 {
            add(&format!("big/d{i}/"), b"", None);
            add(&format!("big/d{i}/f"), format!("{i}\n").as_bytes(), None);
            add(&format!("big/d{i}/up"), b"", Some("../../etc"));
        }
        // A hard link: one inode with two names.
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Link);
        h.set_mode(0o644);
        h.set_size(0);
        b.append_link(&mut h, "usr/lib/hard", "usr/bin/a").unwrap();
        let tar = b.into_inner().unwrap();
        let image = store
            .import(&mut &tar[..], berth_store::ImportOptions::default())
            .unwrap();
        Some((dir, store, image))
    }

    fn image_plan(tree: &Tree, source: &str, dest: &str) -> Result<PlannedCopy, String> {
        let args = ExpandedCopy {
            sources: vec![source.into()],
            dest: dest.into(),
            ..Default::default()
        };
        plan_in(tree, &args, false, "/", &[]).map_err(|e| e.to_string())
    }

    fn seen(tree: &Tree) -> Vec<String> {
        let Files::Image(img) = &tree.files else {
            panic!("not an image tree")
        };
        let mut v: Vec<String> = img.seen.borrow().keys().cloned().collect();
        v.sort();
        v
    }

    #[test]
    fn an_image_is_read_only_where_the_sources_lead() {
        let Some((_dir, store, image)) = image_store() else {
            return;
        };
        // One file: its path and nothing else.
        let tree = Tree::image(&store, Some(&image)).unwrap();
        image_plan(&tree, "/etc/passwd", "/x").unwrap();
        assert_eq!(seen(&tree), ["etc", "etc/passwd"]);
        // Through a symlink: the link, then where it leads.
        let tree = Tree::image(&store, Some(&image)).unwrap();
        image_plan(&tree, "bin/a", "/x").unwrap();
        assert_eq!(seen(&tree), ["bin", "usr", "usr/bin", "usr/bin/a"]);
        // A glob reads only the directories its leading components match.
        let tree = Tree::image(&store, Some(&image)).unwrap();
        let p = image_plan(&tree, "usr/*/a", "/x/").unwrap();
        assert_eq!(p.items.len(), 2);
        assert!(
            seen(&tree).iter().all(|p| p.starts_with("usr")),
            "{:?}",
            seen(&tree)
        );
        // A class that could match a '/' makes it walk everything, to the same result.
        let tree = Tree::image(&store, Some(&image)).unwrap();
        let q = image_plan(&tree, "usr[/]*/a", "/x/").unwrap_err();
        assert_eq!(q, "COPY failed: no source files were specified");
        assert!(seen(&tree).iter().any(|p| p.starts_with("big/")));
        // Misses are still dockerd's.
        let tree = Tree::image(&store, Some(&image)).unwrap();
        assert_eq!(
            image_plan(&tree, "big/nothere", "/x").unwrap_err(),
            "COPY failed: stat big/nothere: file does not exist"
        );
        assert_eq!(seen(&tree), ["big", "big/nothere"]);
        assert!(image_plan(&tree, "loop", "/x").is_err());
        assert!(image_plan(&tree, "etc/passwd/x", "/x").is_err());
    }

    fn without_inodes(items: Vec<SourceItem>) -> Vec<SourceItem> {
        let strip = |f: SourceFile| SourceFile { inode: None, ..f };
        items
            .into_iter()
            .map(|i| match i {
                SourceItem::File { name, file } => SourceItem::File {
                    name,
                    file: strip(file),
                },
                SourceItem::DirContents(c) => {
                    SourceItem::DirContents(c.into_iter().map(|(r, f)| (r, strip(f))).collect())
                }
                other => other,
            })
            .collect()
    }

    #[test]
    fn image_lookups_hash_as_a_walk_of_the_whole_image() {
        let Some((_dir, store, image)) = image_store() else {
            return;
        };
        // The whole image walked into a manifest (what COPY --from used to build first),
        // its files' content where the lookups found them.
        let walked = Tree::image(&store, Some(&image)).unwrap();
        let Files::Image(img) = &walked.files else {
            panic!()
        };
        let entries = img
            .descendants("")
            .into_iter()
            .map(|mut e| {
                e.digest = img
                    .host_path(&e.path)
                    .filter(|_| e.kind == EntryKind::File)
                    .map(|h| h.to_string_lossy().into_owned());
                e
            })
            .collect();
        let manifest = Manifest::new(entries);
        let blobs = |d: &str| PathBuf::from(d);
        let whole = Tree {
            files: Files::Context(&manifest, &blobs),
            is_context: false,
            host_names: Default::default(),
        };
        for source in [
            ".",
            "/",
            "etc",
            "bin",
            "bin/",
            "pw",
            "big",
            "big/d1*",
            "*/d1?/f",
            "usr/*/a",
            "[bepu]*",
            "b[a-i]*",
            "usr/bin/../../etc/group",
            "big/d3/up/passwd",
        ] {
            let lazy = Tree::image(&store, Some(&image)).unwrap();
            let (a, b) = (
                image_plan(&lazy, source, "/d/").unwrap(),
                image_plan(&whole, source, "/d/").unwrap(),
            );
            assert_eq!(a.hash, b.hash, "{source}");
            // (The walked tree stands in as a context: its inodes are named differently.)
            assert_eq!(without_inodes(a.items), without_inodes(b.items), "{source}");
        }
        // Hard links are told apart by inode, not by name.
        let lazy = Tree::image(&store, Some(&image)).unwrap();
        let p = image_plan(&lazy, "usr", "/d/").unwrap();
        let SourceItem::DirContents(items) = &p.items[0] else {
            panic!()
        };
        let inode = |rel: &str| {
            items
                .iter()
                .find(|(r, _)| r == rel)
                .unwrap()
                .1
                .inode
                .clone()
        };
        assert!(inode("bin/a").is_some());
        assert_eq!(inode("bin/a"), inode("lib/hard"));
        assert_eq!(inode("bin/b.sh"), None);
        // The tarsum of an image file is lazycontext.go's, whichever way it was found.
        let lazy = Tree::image(&store, Some(&image)).unwrap();
        assert_eq!(
            image_plan(&lazy, "usr/bin/a", "/d").unwrap().hash,
            image_plan(&whole, "usr/bin/a", "/d").unwrap().hash
        );
    }
}
