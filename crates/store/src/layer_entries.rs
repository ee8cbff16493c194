//! A layer made from a list of entries instead of a tar stream: what a build's `COPY`/`ADD`
//! adds. The files usually exist already (in the build context store, or in another image's
//! snapshot), so the layer's snapshot is made directly: a regular file is **hard-linked** when
//! its source already has the entry's mode, owner, mtime and xattrs (no data written), else
//! copied with `copy_file_range` and given the entry's metadata. The layer's tar is never
//! written: its tar-split index (tarsplit.rs) is built from the headers made here, and the
//! diff ID is the sha256 of those headers and of each file's content, read once from the new
//! snapshot. Publishing is `commit`'s, so a failure leaves nothing behind.
//!
//! Paths are resolved against the parent image as Docker's classic builder resolves a
//! destination in the container's rootfs: every directory on the way follows the parent's
//! symlinks (scoped to its root), so `COPY f /bin/` lands in `/usr/bin/` when `/bin` links
//! there; a directory entry also follows a symlink at its own name. Directories on the way
//! that no entry describes are added as entries: with the parent's mode and owner when it has
//! them, else 0755 root, and the commit time as mtime (the copy just changed them; Docker's
//! layers show the same).

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{fchmod, futimens, utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, Gid, Uid};
use sha2::{Digest as _, Sha256};
use xattr::FileExt as _;

use crate::commit::{check_commit_tag, ConfigBuilder};
use crate::digest::format_digest;
use crate::error::{ctx, Error};
use crate::tarsplit::{Index, SplitLayer, Stored};
use crate::{Image, Reference, Store};

/// What one entry of a new layer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewEntryKind {
    /// A regular file with the content of this host file (hard-linked when its metadata
    /// already match the entry's, else copied).
    File {
        source: PathBuf,
    },
    /// A regular file with this content (heredoc files: small).
    Bytes(Vec<u8>),
    Dir,
    Symlink {
        target: String,
    },
    /// Another name for the regular file an earlier entry of the same commit puts at
    /// `target` (a layer path, resolved as the entry's own): a hard link in the snapshot and
    /// a link entry in the tar, with that file's metadata (this entry's are not used).
    HardLink {
        target: String,
    },
}

/// One entry of a new layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// Path in the layer: relative, `/`-separated (a leading `/`, `.` and empty parts are
    /// ignored; `..` is refused).
    pub path: String,
    pub kind: NewEntryKind,
    /// Permission bits (with set-id and sticky bits); type bits are ignored.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Store {
    /// Publishes `parent`'s layers (none for `FROM scratch`) plus one layer holding `entries`
    /// as a new image, with the config `build_config` makes, tagged `tag` if given. Later
    /// entries replace earlier ones at the same path. Same guarantees as [`Store::commit`]:
    /// nothing is visible before the one transaction, and a failure leaves nothing.
    pub fn commit_entries(
        &self,
        parent: Option<&Image>,
        entries: Vec<NewEntry>,
        build_config: Box<ConfigBuilder<'_>>,
        tag: Option<&Reference>,
    ) -> Result<Image, Error> {
        check_commit_tag(tag)?;
        let lower = match parent {
            Some(p) => {
                let mut dirs: Vec<PathBuf> =
                    self.layer_dirs(p)?.into_iter().map(|(_, d)| d).collect();
                dirs.reverse();
                Lower { dirs }
            }
            None => Lower { dirs: Vec::new() },
        };
        let now = TimeSpec::new(chrono::Utc::now().timestamp(), 0);
        let plan = plan(entries, &lower, now)?;
        let snapshot = self.snapshots.temp()?;
        let made = write_layer(&plan, snapshot.path())?;
        let pending = self.indexes.write(&made.diff_id, &made.index)?;
        let split = SplitLayer {
            diff_id: made.diff_id,
            tar_size: made.index.total,
            size: made.size,
            snapshot,
            stored: Stored::Index(made.index, pending),
        };
        self.publish_child(parent, split, build_config, tag)
    }
}

/// An image's root filesystem as its containers see it (overlayfs rules over its layers),
/// read without mounting anything: what `COPY --from` copies and what a build's destination
/// paths resolve against.
pub struct ImageFs {
    lower: Lower,
}

/// One entry of an [`ImageFs`].
#[derive(Debug)]
pub struct ImageFsNode {
    /// The file in the topmost layer that has it (read it, or hard-link it when unchanged).
    pub host_path: PathBuf,
    pub metadata: std::fs::Metadata,
}

impl Store {
    /// The root filesystem of `image` (`None`: scratch, empty).
    pub fn image_fs(&self, image: Option<&Image>) -> Result<ImageFs, Error> {
        let mut dirs: Vec<PathBuf> = match image {
            Some(i) => self.layer_dirs(i)?.into_iter().map(|(_, d)| d).collect(),
            None => Vec::new(),
        };
        dirs.reverse();
        Ok(ImageFs {
            lower: Lower { dirs },
        })
    }
}

impl ImageFs {
    /// The entry at `path` (absolute or relative to "/"; no symlink followed at its end).
    pub fn lstat(&self, path: &str) -> Option<ImageFsNode> {
        let comps = split_path(path).ok()?;
        self.lower
            .node(&comps)
            .map(|(host_path, metadata, _)| ImageFsNode {
                host_path,
                metadata,
            })
    }

    /// `path` with the image's symlinks followed, scoped to its root (as Docker's
    /// `FollowSymlinkInScope`), the last component too when `follow_last`; relative,
    /// `/`-separated ("" is the root).
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, Error> {
        let comps: Vec<String> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(String::from)
            .collect();
        Ok(self.lower.resolve(&comps, follow_last)?.join("/"))
    }

    /// The names in directory `path` (no symlink followed), sorted; empty when it is not a
    /// directory.
    pub fn read_dir(&self, path: &str) -> Vec<String> {
        let Ok(comps) = split_path(path) else {
            return Vec::new();
        };
        let Some((_, m, layers)) = self.lower.node(&comps) else {
            return Vec::new();
        };
        if !m.is_dir() {
            return Vec::new();
        }
        let rel: PathBuf = comps.iter().collect();
        let mut names = std::collections::BTreeSet::new();
        for l in layers {
            let Ok(rd) = std::fs::read_dir(l.join(&rel)) else {
                continue;
            };
            for e in rd.flatten() {
                if let Some(n) = e.file_name().to_str() {
                    names.insert(n.to_string());
                }
            }
        }
        names
            .into_iter()
            .filter(|n| {
                let mut c = comps.clone();
                c.push(n.clone());
                self.lower.node(&c).is_some()
            })
            .collect()
    }
}

/// A scratch directory on the store's filesystem, so files made there (an ADD's unpacked
/// archive) can be hard-linked into a layer. Removed on drop, and by the next
/// [`Store::open`] after a crash.
#[derive(Debug)]
pub struct ScratchDir(crate::snapshot::TempSnapshot);

impl ScratchDir {
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Store {
    /// A fresh, empty [`ScratchDir`].
    pub fn scratch_dir(&self) -> Result<ScratchDir, Error> {
        Ok(ScratchDir(self.snapshots.temp()?))
    }
}

/// An entry with its resolved place in the layer.
#[derive(Debug)]
struct Planned {
    kind: NewEntryKind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// The layer's entries by path components; the map's order (component-wise) puts every
/// directory right before what it holds, as a tar of a walked tree has it.
type Plan = BTreeMap<Vec<String>, Planned>;

fn split_path(path: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(Error::InvalidArgument(format!(
                    "layer entry path with ..: {path}"
                )))
            }
            _ if c.contains('\0') => {
                return Err(Error::InvalidArgument(format!(
                    "NUL in layer entry path {path:?}"
                )))
            }
            _ => out.push(c.to_string()),
        }
    }
    Ok(out)
}

fn plan(entries: Vec<NewEntry>, lower: &Lower, now: TimeSpec) -> Result<Plan, Error> {
    let mut plan = Plan::new();
    for e in entries {
        let comps = split_path(&e.path)?;
        if comps.is_empty() {
            // The layer's root: Docker's layers carry no entry for it.
            continue;
        }
        let comps = lower.resolve(&comps, e.kind == NewEntryKind::Dir)?;
        if comps.is_empty() {
            continue;
        }
        if e.kind != NewEntryKind::Dir {
            // A file or link replaces what an earlier entry put at (or under) that path.
            let under: Vec<Vec<String>> = plan
                .range(comps.clone()..)
                .take_while(|(k, _)| k.starts_with(&comps))
                .map(|(k, _)| k.clone())
                .collect();
            for k in under {
                plan.remove(&k);
            }
        }
        for i in 1..comps.len() {
            if let Some(p) = plan.get(&comps[..i]) {
                if p.kind != NewEntryKind::Dir {
                    return Err(Error::InvalidArgument(format!(
                        "cannot copy to {}: {} is not a directory",
                        comps.join("/"),
                        comps[..i].join("/")
                    )));
                }
            }
        }
        let kind = match e.kind {
            NewEntryKind::HardLink { target } => NewEntryKind::HardLink {
                target: lower.resolve(&split_path(&target)?, false)?.join("/"),
            },
            kind => kind,
        };
        let (secs, nanos) = e.mtime;
        plan.insert(
            comps,
            Planned {
                kind,
                mode: e.mode & 0o7777,
                uid: e.uid,
                gid: e.gid,
                mtime: TimeSpec::new(secs, i64::from(nanos.min(999_999_999))),
                // overlayfs obeys trusted.overlay.* (opaque, redirect, metacopy) in a
                // lower layer: only the store sets them, never a build's input (as unpack.rs).
                xattrs: e
                    .xattrs
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("trusted.overlay."))
                    .collect(),
            },
        );
    }
    // A hard link names a file of this layer that the tar has before it.
    for (comps, e) in &plan {
        if let NewEntryKind::HardLink { target } = &e.kind {
            let to: Vec<String> = target.split('/').map(String::from).collect();
            let is_file = matches!(
                plan.get(&to).map(|t| &t.kind),
                Some(NewEntryKind::File { .. } | NewEntryKind::Bytes(_))
            );
            if !is_file || &to >= comps {
                return Err(Error::InvalidArgument(format!(
                    "hard link {} to {target}: not an earlier file of this layer",
                    comps.join("/")
                )));
            }
        }
    }
    // The directories on the way that no entry describes.
    let missing: std::collections::BTreeSet<Vec<String>> = plan
        .keys()
        .flat_map(|k| (1..k.len()).map(move |i| k[..i].to_vec()))
        .filter(|p| !plan.contains_key(p))
        .collect();
    for p in missing {
        let (mode, uid, gid) = match lower.lookup(&p) {
            Found::Dir(m) => (m.mode() & 0o7777, m.uid(), m.gid()),
            Found::Missing => (0o755, 0, 0),
            Found::Symlink(_) | Found::Other => {
                // resolve() followed every symlink on the way, so only a file can be here.
                return Err(Error::InvalidArgument(format!(
                    "cannot create directory {}: a file is in the way",
                    p.join("/")
                )));
            }
        };
        plan.insert(
            p,
            Planned {
                kind: NewEntryKind::Dir,
                mode,
                uid,
                gid,
                mtime: now,
                xattrs: Vec::new(),
            },
        );
    }
    Ok(plan)
}

/// The parent image's layers, topmost first, looked up with overlayfs's rules (a whiteout
/// hides what is below it, an opaque directory hides the lower directories of that name).
struct Lower {
    dirs: Vec<PathBuf>,
}

enum Found {
    Missing,
    Dir(std::fs::Metadata),
    Symlink(Vec<u8>),
    Other,
}

fn is_whiteout(m: &std::fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    matches!(xattr::get(path, "trusted.overlay.opaque"), Ok(Some(v)) if v == b"y")
}

impl Lower {
    /// The visible entry at `comps` (no symlink followed): its path in the topmost layer
    /// that has it, its metadata, and (for a directory) every layer whose directory of that
    /// name is merged into it, topmost first.
    fn node(&self, comps: &[String]) -> Option<(PathBuf, std::fs::Metadata, Vec<&Path>)> {
        let mut layers: Vec<&Path> = self.dirs.iter().map(PathBuf::as_path).collect();
        let mut top: Option<(PathBuf, std::fs::Metadata)> = None;
        for i in 0..comps.len() {
            let rel: PathBuf = comps[..=i].iter().collect();
            let mut next: Vec<&Path> = Vec::new();
            top = None;
            for l in &layers {
                let path = l.join(&rel);
                let Ok(m) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                if is_whiteout(&m) {
                    break;
                }
                if !m.is_dir() {
                    if top.is_none() {
                        top = Some((path, m));
                    }
                    break;
                }
                let opaque = is_opaque(&path);
                if top.is_none() {
                    top = Some((path, m));
                }
                next.push(l);
                if opaque {
                    break;
                }
            }
            match &top {
                None => return None,
                Some((_, m)) if !m.is_dir() && i + 1 < comps.len() => return None,
                _ => {}
            }
            layers = next;
        }
        match top {
            Some((p, m)) => Some((p, m, layers)),
            // The root itself.
            None => {
                let first = self.dirs.first()?;
                let m = std::fs::symlink_metadata(first).ok()?;
                Some((first.clone(), m, layers))
            }
        }
    }

    /// What the parent image's root filesystem has at `comps` (no symlink followed).
    fn lookup(&self, comps: &[String]) -> Found {
        match self.node(comps) {
            None => Found::Missing,
            Some((_, m, _)) if m.is_dir() => Found::Dir(m),
            Some((p, m, _)) if m.file_type().is_symlink() => match std::fs::read_link(&p) {
                Ok(t) => Found::Symlink(t.as_os_str().as_bytes().to_vec()),
                Err(_) => Found::Other,
            },
            Some(_) => Found::Other,
        }
    }

    /// `comps` with the parent's symlinks on the way followed, scoped to its root (`..` and
    /// absolute targets stop at "/"); the last component too when `follow_last`.
    fn resolve(&self, comps: &[String], follow_last: bool) -> Result<Vec<String>, Error> {
        let mut todo: std::collections::VecDeque<String> = comps.iter().cloned().collect();
        let mut out: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    out.pop();
                    continue;
                }
                _ => out.push(c),
            }
            if todo.is_empty() && !follow_last {
                break;
            }
            if let Found::Symlink(target) = self.lookup(&out) {
                hops += 1;
                if hops > 40 {
                    return Err(Error::InvalidArgument(format!(
                        "too many levels of symbolic links: {}",
                        comps.join("/")
                    )));
                }
                out.pop();
                if target.first() == Some(&b'/') {
                    out.clear();
                }
                let target = String::from_utf8_lossy(&target).into_owned();
                for t in target.split('/').rev() {
                    todo.push_front(t.to_string());
                }
            }
        }
        Ok(out)
    }
}

/// A layer written into a snapshot: its tar's index, diff ID and unpacked size.
struct Made {
    index: Index,
    diff_id: String,
    size: u64,
}

/// The tar bytes other than file contents go to both the index and the hash.
struct TarOut {
    index: Index,
    hasher: Sha256,
}

impl TarOut {
    fn verbatim(&mut self, bytes: &[u8]) {
        self.index.verbatim(bytes);
        self.hasher.update(bytes);
    }
}

fn write_layer(plan: &Plan, root: &Path) -> Result<Made, Error> {
    let mut out = TarOut {
        index: Index::default(),
        hasher: Sha256::new(),
    };
    let mut size = 0u64;
    let mut buf = vec![0u8; crate::unpack::BUF_SIZE];
    let mut dirs: Vec<(PathBuf, TimeSpec)> = Vec::new();
    let mut linked = HashSet::new();
    for (comps, e) in plan {
        let rel = comps.join("/");
        let path = root.join(&rel);
        let what = || rel.clone();
        // A hard link's header has its file's metadata (one inode); plan() made sure the
        // file comes first.
        let meta = match &e.kind {
            NewEntryKind::HardLink { target } => {
                let to: Vec<String> = target.split('/').map(String::from).collect();
                match plan.get(&to) {
                    Some(t)
                        if matches!(t.kind, NewEntryKind::File { .. } | NewEntryKind::Bytes(_)) =>
                    {
                        t
                    }
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "hard link {rel} to {target}: not a file of this layer"
                        )))
                    }
                }
            }
            _ => e,
        };
        let mut header = tar::Header::new_ustar();
        header.set_mode(meta.mode);
        header.set_uid(u64::from(meta.uid));
        header.set_gid(u64::from(meta.gid));
        header.set_mtime(u64::try_from(meta.mtime.tv_sec()).unwrap_or(0));
        header.set_size(0);
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        if meta.mtime.tv_nsec() != 0 {
            // ustar keeps whole seconds; PAX keeps the rest, as the unpacker reads it.
            pax.push((
                "mtime".into(),
                format!("{}.{:09}", meta.mtime.tv_sec(), meta.mtime.tv_nsec()).into_bytes(),
            ));
        }
        let mut file_size = None;
        match &e.kind {
            NewEntryKind::Dir => {
                std::fs::create_dir(&path).map_err(|err| ctx(err, what()))?;
                let f = open_nofollow(&path, true).map_err(|err| ctx(err, what()))?;
                apply_meta(&f, e, &what())?;
                dirs.push((path.clone(), e.mtime));
                header.set_entry_type(tar::EntryType::Directory);
            }
            NewEntryKind::File { source } => {
                place_file(source, &path, e, &mut buf, &mut linked)
                    .map_err(|err| with_path(err, &rel))?;
                header.set_entry_type(tar::EntryType::Regular);
                file_size = Some(());
            }
            NewEntryKind::Bytes(data) => {
                let mut f = create_excl(&path).map_err(|err| ctx(err, what()))?;
                f.write_all(data).map_err(|err| ctx(err, what()))?;
                apply_meta(&f, e, &what())?;
                futimens(f.as_raw_fd(), &e.mtime, &e.mtime).map_err(|err| ctx(err, what()))?;
                header.set_entry_type(tar::EntryType::Regular);
                file_size = Some(());
            }
            NewEntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &path).map_err(|err| ctx(err, what()))?;
                fchownat(
                    None,
                    &path,
                    Some(Uid::from_raw(e.uid)),
                    Some(Gid::from_raw(e.gid)),
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|err| ctx(err, what()))?;
                utimensat(
                    None,
                    &path,
                    &e.mtime,
                    &e.mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|err| ctx(err, what()))?;
                header.set_entry_type(tar::EntryType::Symlink);
                size += target.len() as u64;
            }
            NewEntryKind::HardLink { target } => {
                std::fs::hard_link(root.join(target), &path).map_err(|err| ctx(err, what()))?;
                header.set_entry_type(tar::EntryType::Link);
            }
        }
        if !matches!(e.kind, NewEntryKind::Symlink { .. }) {
            for (k, v) in &meta.xattrs {
                pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
            }
        }
        // The file as it now is in the snapshot: its content goes into the hash, and the
        // index reads it from there when the tar is asked for.
        let content = match file_size {
            Some(()) => {
                let f = open_nofollow(&path, false).map_err(|err| ctx(err, what()))?;
                let m = f.metadata().map_err(|err| ctx(err, what()))?;
                if !m.is_file() {
                    return Err(Error::Corrupt(format!("layer file {rel} is not a file")));
                }
                header.set_size(m.len());
                size += m.len();
                Some((f, m.len()))
            }
            None => None,
        };
        let name = if e.kind == NewEntryKind::Dir {
            format!("{rel}/")
        } else {
            rel.clone()
        };
        let header_bytes = header_bytes(&mut header, &name, &e.kind, &pax)
            .map_err(|err| Error::InvalidArgument(format!("{rel}: {err}")))?;
        out.verbatim(&header_bytes);
        if let Some((mut f, len)) = content {
            if len > 0 {
                let shrank = "layer file shrank while being hashed";
                read_exactly(&mut f, len, &mut buf, shrank, |b| {
                    out.hasher.update(b);
                    Ok(())
                })
                .map_err(|err| ctx(err, what()))?;
                out.index.file(rel.as_bytes().to_vec(), len);
                let pad = (512 - len % 512) % 512;
                out.verbatim(&[0u8; 512][..pad as usize]);
            }
        }
    }
    // Directory times last: creating entries in a directory changes its mtime.
    for (path, t) in dirs.iter().rev() {
        utimensat(None, path, t, t, UtimensatFlags::NoFollowSymlink)
            .map_err(|err| ctx(err, path.display()))?;
    }
    out.verbatim(&[0u8; 1024]);
    Ok(Made {
        diff_id: format_digest(out.hasher.finalize().as_slice()),
        index: out.index,
        size,
    })
}

fn with_path(e: io::Error, rel: &str) -> Error {
    ctx(e, rel)
}

/// The header blocks of one entry (PAX records and GNU long names first, as needed).
fn header_bytes(
    header: &mut tar::Header,
    name: &str,
    kind: &NewEntryKind,
    pax: &[(String, Vec<u8>)],
) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    if !pax.is_empty() {
        b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    // With an empty reader the builder writes only the header blocks (no content, no padding).
    match kind {
        NewEntryKind::Symlink { target } | NewEntryKind::HardLink { target } => {
            b.append_link(header, name, target)?
        }
        _ => b.append_data(header, name, io::empty())?,
    }
    // Taken before the builder's drop appends the end-of-archive blocks (to the empty Vec).
    Ok(std::mem::take(b.get_mut()))
}

fn open_nofollow(path: &Path, dir: bool) -> io::Result<File> {
    let mut flags = libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if dir {
        flags |= libc::O_DIRECTORY;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

fn create_excl(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Owner before mode (chown clears set-id bits), then xattrs.
fn apply_meta(f: &File, e: &Planned, what: &str) -> Result<(), Error> {
    let fd = f.as_raw_fd();
    fchown(fd, Some(Uid::from_raw(e.uid)), Some(Gid::from_raw(e.gid)))
        .map_err(|err| ctx(err, what))?;
    fchmod(fd, Mode::from_bits_truncate(e.mode)).map_err(|err| ctx(err, what))?;
    for (k, v) in &e.xattrs {
        f.set_xattr(k, v)
            .map_err(|err| ctx(err, format!("{what}: setxattr {k}")))?;
    }
    Ok(())
}

/// Whether the file open at `f` already has the entry's metadata, so a hard link to it is
/// the entry.
fn same_meta(f: &File, m: &std::fs::Metadata, e: &Planned) -> bool {
    if m.mode() & 0o7777 != e.mode
        || m.uid() != e.uid
        || m.gid() != e.gid
        || m.mtime() != e.mtime.tv_sec()
        || m.mtime_nsec() != e.mtime.tv_nsec()
    {
        return false;
    }
    let mut have: Vec<(String, Vec<u8>)> = match f.list_xattr() {
        Ok(names) => names
            .filter_map(|n| {
                let v = f.get_xattr(&n).ok().flatten().unwrap_or_default();
                Some((n.to_str()?.to_string(), v))
            })
            .collect(),
        Err(_) => return false,
    };
    let mut want = e.xattrs.clone();
    have.sort();
    want.sort();
    have == want
}

/// Puts the regular file `source` at `dest` with the entry's metadata: a hard link when the
/// source has them already, else a copy. A source is linked into a layer once (`linked`
/// holds the (dev, inode)s linked so far): two names of one inode in a snapshot are a hard
/// link of the layer (the vfs driver makes them one file again), which only
/// [`NewEntryKind::HardLink`] may declare; identical context files are one stored file.
fn place_file(
    source: &Path,
    dest: &Path,
    e: &Planned,
    buf: &mut [u8],
    linked: &mut HashSet<(u64, u64)>,
) -> io::Result<()> {
    let src = open_nofollow(source, false)
        .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", source.display())))?;
    let m = src.metadata()?;
    if !m.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", source.display()),
        ));
    }
    if same_meta(&src, &m, e) && linked.insert((m.dev(), m.ino())) {
        match std::fs::hard_link(source, dest) {
            Ok(()) => {
                // The name may have been swapped since it was opened: the link must be the
                // very file checked.
                let linked = std::fs::symlink_metadata(dest)?;
                if linked.ino() == m.ino() && linked.dev() == m.dev() {
                    return Ok(());
                }
                std::fs::remove_file(dest)?;
            }
            // Another filesystem, or a link count at its limit: copy instead.
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::EXDEV) | Some(libc::EMLINK) | Some(libc::EPERM)
                ) => {}
            Err(err) => return Err(err),
        }
    }
    let dst = create_excl(dest)?;
    copy_content(&src, &dst, m.len(), buf)?;
    let what = dest.display().to_string();
    apply_meta(&dst, e, &what).map_err(io::Error::other)?;
    futimens(dst.as_raw_fd(), &e.mtime, &e.mtime)?;
    Ok(())
}

/// Copies `len` bytes: `copy_file_range` (reflinks or in-kernel copies), else read/write.
fn copy_content(src: &File, dst: &File, len: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the duration of the call; null offsets use
        // and advance the files' own positions.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                std::ptr::null_mut(),
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                want,
                0,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if done == 0
                && matches!(
                    err.raw_os_error(),
                    Some(libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                )
            {
                let shrank = "source file shrank while being copied";
                let mut dst = dst;
                return read_exactly(src, len, buf, shrank, |b| dst.write_all(b));
            }
            return Err(err);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "source file shrank while being copied",
            ));
        }
        done += n as u64;
    }
    Ok(())
}

/// Hands exactly `len` bytes of `src` (the size recorded for it) to `sink`, a buffer at a
/// time; `shrank` is the error when the file ends first.
fn read_exactly(
    mut src: impl Read,
    len: u64,
    buf: &mut [u8],
    shrank: &str,
    mut sink: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = src.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, shrank));
        }
        sink(&buf[..n])?;
        left -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{count, image_config, require_root, temp_store, TarBuf};
    use crate::{ImportOptions, SaveItem};
    use std::os::unix::fs::PermissionsExt;

    /// A config whose layers are the parent's (if any) plus `diff`.
    fn config_for(parent: Option<&Image>) -> Box<ConfigBuilder<'static>> {
        let mut diff_ids = parent
            .map(|p| p.config.rootfs().diff_ids().clone())
            .unwrap_or_default();
        Box::new(move |diff: Option<&str>| {
            diff_ids.extend(diff.map(String::from));
            let mut v = image_config("amd64", &diff_ids);
            v["created"] = "2024-01-02T03:04:05Z".into();
            v["history"] =
                serde_json::json!([{"created_by": "COPY", "empty_layer": diff.is_none()}]);
            Ok(serde_json::to_vec(&v).unwrap())
        })
    }

    /// A parent whose one layer has `bin -> usr/bin` (as Debian's), `usr/bin/` mode 0700
    /// owned by 5:6, `etc/old` and a whiteout-free tree.
    fn parent(store: &Store) -> Image {
        let mut t = TarBuf::new();
        t.raw(tar::EntryType::Directory, "usr/", None, b"", 0o755, 0)
            .raw(tar::EntryType::Directory, "usr/bin/", None, b"", 0o700, 5)
            .symlink("bin", "usr/bin")
            .symlink("abs", "/usr/../usr/bin")
            .file("etc/old", b"old");
        let tar = t.finish();
        store
            .import(&mut &tar[..], ImportOptions::default())
            .unwrap()
    }

    fn entry(path: &str, kind: NewEntryKind, mode: u32) -> NewEntry {
        NewEntry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: (1_600_000_000, 0),
            xattrs: Vec::new(),
        }
    }

    /// `image`'s top layer tar, as `save`/`push` read it.
    fn top_layer_tar(store: &Store, image: &Image) -> Vec<u8> {
        let diff = image.config.rootfs().diff_ids().last().unwrap().clone();
        let mut tar = Vec::new();
        store
            .layer_tar(&diff)
            .unwrap()
            .read_to_end(&mut tar)
            .unwrap();
        tar
    }

    /// Unpacks `image`'s top layer tar into a fresh directory.
    fn unpack_top(store: &Store, image: &Image) -> tempfile::TempDir {
        let tar = top_layer_tar(store, image);
        let out = tempfile::tempdir().unwrap();
        crate::unpack::unpack(&mut &tar[..], out.path()).unwrap();
        out
    }

    fn meta(p: &Path) -> (u32, u32, u32, i64, i64) {
        let m = std::fs::symlink_metadata(p).unwrap();
        (
            m.mode() & 0o7777,
            m.uid(),
            m.gid(),
            m.mtime(),
            m.mtime_nsec(),
        )
    }

    #[test]
    fn links_or_copies_files_and_its_tar_unpacks_to_the_entries() {
        if !require_root("links_or_copies_files_and_its_tar_unpacks_to_the_entries") {
            return;
        }
        let (dir, store) = temp_store();
        let base = parent(&store);
        // Sources on the store's filesystem, as the build context store keeps them.
        let src = dir.path().join("root/ctx");
        std::fs::create_dir(&src).unwrap();
        let same = src.join("same");
        std::fs::write(&same, b"linked content\n").unwrap();
        std::fs::set_permissions(&same, std::fs::Permissions::from_mode(0o644)).unwrap();
        let t = TimeSpec::new(1_600_000_000, 123_456_789);
        utimensat(None, &same, &t, &t, UtimensatFlags::NoFollowSymlink).unwrap();
        let other = src.join("other");
        let big: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&other, &big).unwrap();

        let mut linked = entry(
            "/app/same",
            NewEntryKind::File {
                source: same.clone(),
            },
            0o644,
        );
        linked.mtime = (1_600_000_000, 123_456_789);
        // The same source again (identical context files are one stored file).
        let twin = NewEntry {
            path: "app/twin".into(),
            ..linked.clone()
        };
        let mut copied = entry(
            "app/sub/other",
            NewEntryKind::File {
                source: other.clone(),
            },
            0o4750,
        );
        copied.uid = 1000;
        copied.gid = 1001;
        copied.xattrs = vec![("user.k".into(), b"v".to_vec())];
        let entries = vec![
            linked,
            twin,
            copied,
            entry("app/sub", NewEntryKind::Dir, 0o700),
            entry("app/heredoc", NewEntryKind::Bytes(b"hi\n".to_vec()), 0o644),
            entry("app/empty", NewEntryKind::Bytes(Vec::new()), 0o600),
            entry(
                "app/link",
                NewEntryKind::Symlink {
                    target: "same".into(),
                },
                0o777,
            ),
            // Through the parent's symlinks: lands in usr/bin, which keeps its mode/owner.
            entry(
                "bin/tool",
                NewEntryKind::Bytes(b"#!/bin/sh\n".to_vec()),
                0o755,
            ),
            entry("abs/tool2", NewEntryKind::Bytes(b"2".to_vec()), 0o755),
            // Replaced by the later entry at the same path.
            entry(
                "app/heredoc",
                NewEntryKind::Bytes(b"first\n".to_vec()),
                0o644,
            ),
            entry(
                "app/heredoc",
                NewEntryKind::Bytes(b"second\n".to_vec()),
                0o640,
            ),
        ];
        let image = store
            .commit_entries(Some(&base), entries, config_for(Some(&base)), None)
            .unwrap();
        assert_eq!(image.parent.as_deref(), Some(base.id.as_str()));
        assert_eq!(image.config.rootfs().diff_ids().len(), 2);
        let top = store.layer_dirs(&image).unwrap()[1].1.clone();

        // The file whose metadata matched is the source itself; the other is a copy.
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&top.join("app/same")), ino(&same));
        // Linked once: a second name of it would be a hard link the layer never declared.
        assert_ne!(ino(&top.join("app/twin")), ino(&same));
        assert_eq!(std::fs::read(top.join("app/twin")).unwrap(), b"linked content\n");
        assert_eq!(meta(&top.join("app/twin")), meta(&same));
        assert_ne!(ino(&top.join("app/sub/other")), ino(&other));
        assert_eq!(std::fs::read(top.join("app/sub/other")).unwrap(), big);
        assert_eq!(
            meta(&top.join("app/sub/other")),
            (0o4750, 1000, 1001, 1_600_000_000, 0)
        );
        assert_eq!(
            xattr::get(top.join("app/sub/other"), "user.k")
                .unwrap()
                .as_deref(),
            Some(&b"v"[..])
        );
        assert_eq!(std::fs::read(top.join("app/heredoc")).unwrap(), b"second\n");
        assert_eq!(
            std::fs::read(top.join("usr/bin/tool")).unwrap(),
            b"#!/bin/sh\n"
        );
        assert_eq!(std::fs::read(top.join("usr/bin/tool2")).unwrap(), b"2");
        assert!(
            !top.join("bin").exists(),
            "the parent's bin symlink must not be replaced"
        );
        assert_eq!(meta(&top.join("usr/bin")).0, 0o700);
        assert_eq!(meta(&top.join("usr/bin")).1, 5);
        // A directory nobody described: 0755 root, the commit's time.
        let (mode, uid, _, mtime, _) = meta(&top.join("app"));
        assert_eq!((mode, uid), (0o755, 0));
        assert!((mtime - chrono::Utc::now().timestamp()).abs() < 600);

        // The layer's tar (rebuilt from the index) unpacks to exactly the snapshot.
        let unpacked = unpack_top(&store, &image);
        for p in [
            "app",
            "app/same",
            "app/sub",
            "app/sub/other",
            "app/heredoc",
            "app/empty",
            "app/link",
            "usr",
            "usr/bin",
            "usr/bin/tool",
            "usr/bin/tool2",
        ] {
            assert_eq!(meta(&unpacked.path().join(p)), meta(&top.join(p)), "{p}");
            if top.join(p).is_file() {
                assert_eq!(
                    std::fs::read(unpacked.path().join(p)).unwrap(),
                    std::fs::read(top.join(p)).unwrap(),
                    "{p}"
                );
            }
        }
        assert_eq!(
            std::fs::read_link(unpacked.path().join("app/link")).unwrap(),
            Path::new("same")
        );
        assert_eq!(count(unpacked.path()), 2); // app, usr
        // Files and link targets: same, twin, other, heredoc, link, tool, tool2.
        assert_eq!(image.size, base.size + 15 + 15 + 700_000 + 7 + 4 + 10 + 1);

        // The image saves, and loads into another store under the same ID.
        let mut archive = Vec::new();
        store
            .save(
                &[SaveItem {
                    image: image.clone(),
                    tags: Vec::new(),
                }],
                &mut archive,
            )
            .unwrap();
        let (_dir2, other_store) = temp_store();
        let loaded = other_store.load_archive(&mut &archive[..]).unwrap();
        assert_eq!(loaded.len(), 1);
        let again = other_store.resolve(&image.id).unwrap();
        assert_eq!(
            again.config.rootfs().diff_ids(),
            image.config.rootfs().diff_ids()
        );
    }

    #[test]
    fn hard_links_are_one_inode_and_link_entries_in_the_tar() {
        if !require_root("hard_links_are_one_inode_and_link_entries_in_the_tar") {
            return;
        }
        let (_dir, store) = temp_store();
        let base = parent(&store);
        let file = NewEntry {
            mode: 0o640,
            uid: 7,
            mtime: (1_600_000_000, 5),
            ..entry("d/a", NewEntryKind::Bytes(b"shared\n".to_vec()), 0)
        };
        let link = |path: &str, target: &str| {
            entry(
                path,
                NewEntryKind::HardLink {
                    target: target.into(),
                },
                0o777,
            )
        };
        // Through the parent's `bin -> usr/bin` on both sides.
        let bin = entry("bin/t", NewEntryKind::Bytes(b"tool\n".to_vec()), 0o755);
        let image = store
            .commit_entries(
                Some(&base),
                // In any order: the tar's is the layer's.
                vec![
                    link("d/b", "d/a"),
                    file.clone(),
                    bin,
                    link("bin/u", "bin/t"),
                ],
                config_for(Some(&base)),
                None,
            )
            .unwrap();
        let top = store.layer_dirs(&image).unwrap().last().unwrap().1.clone();
        let (a, b) = (
            std::fs::metadata(top.join("d/a")).unwrap(),
            std::fs::metadata(top.join("d/b")).unwrap(),
        );
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
        assert_eq!(
            std::fs::metadata(top.join("usr/bin/u")).unwrap().ino(),
            std::fs::metadata(top.join("usr/bin/t")).unwrap().ino()
        );
        // The tar: the file, then a link entry with its metadata and no content.
        let tar = top_layer_tar(&store, &image);
        let mut archive = tar::Archive::new(&tar[..]);
        let links: Vec<(String, String, u32, u64, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.header().entry_type() == tar::EntryType::Link)
            .map(|e| {
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.size().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            links,
            [
                ("d/b".to_string(), "d/a".to_string(), 0o640, 7, 0),
                (
                    "usr/bin/u".to_string(),
                    "usr/bin/t".to_string(),
                    0o755,
                    0,
                    0
                )
            ]
        );
        let unpacked = unpack_top(&store, &image);
        assert_eq!(
            std::fs::metadata(unpacked.path().join("d/b"))
                .unwrap()
                .ino(),
            std::fs::metadata(unpacked.path().join("d/a"))
                .unwrap()
                .ino()
        );
        assert_eq!(
            meta(&unpacked.path().join("d/b")),
            (0o640, 7, 0, 1_600_000_000, 5)
        );

        // A link must name an earlier file of the same layer.
        for entries in [
            vec![link("d/b", "d/a")],
            vec![file.clone(), link("c", "d/a")],
            vec![entry("d/a", NewEntryKind::Dir, 0o755), link("d/b", "d/a")],
            vec![link("etc/x", "etc/old")],
        ] {
            let err = store
                .commit_entries(Some(&base), entries, config_for(Some(&base)), None)
                .unwrap_err();
            assert!(err.to_string().contains("not an earlier file"), "{err}");
        }
    }

    #[test]
    fn from_scratch_has_no_parent_and_no_lower_layers() {
        if !require_root("from_scratch_has_no_parent_and_no_lower_layers") {
            return;
        }
        let (_dir, store) = temp_store();
        let tag = Reference::parse("scratchy:1").unwrap();
        let image = store
            .commit_entries(
                None,
                vec![entry(
                    "hello",
                    NewEntryKind::Bytes(b"hello\n".to_vec()),
                    0o644,
                )],
                config_for(None),
                Some(&tag),
            )
            .unwrap();
        assert_eq!(image.parent, None);
        assert_eq!(image.repo_tags, ["scratchy:1"]);
        assert_eq!(image.config.rootfs().diff_ids().len(), 1);
        assert_eq!(image.size, 6);
        let unpacked = unpack_top(&store, &image);
        assert_eq!(
            std::fs::read(unpacked.path().join("hello")).unwrap(),
            b"hello\n"
        );

        // A metadata step on scratch: an image with no layer at all.
        let empty = vec![0u8; 1024];
        let bare = store
            .commit(None, &mut &empty[..], config_for(None), None)
            .unwrap();
        assert!(bare.config.rootfs().diff_ids().is_empty());
        assert_eq!((bare.parent, bare.size), (None, 0));
    }

    #[test]
    fn a_failure_leaves_nothing() {
        if !require_root("a_failure_leaves_nothing") {
            return;
        }
        let (dir, store) = temp_store();
        let base = parent(&store);
        let snapshots = count(&dir.path().join("root/snapshots"));
        let indexes = count(&dir.path().join("root/layer-index"));
        let blobs = count(&dir.path().join("root/blobs/sha256"));
        let cases = vec![
            vec![
                entry("a", NewEntryKind::Bytes(b"x".to_vec()), 0o644),
                entry(
                    "b",
                    NewEntryKind::File {
                        source: dir.path().join("nope"),
                    },
                    0o644,
                ),
            ],
            // A file where a directory must go.
            vec![
                entry("f", NewEntryKind::Bytes(b"x".to_vec()), 0o644),
                entry("f/g", NewEntryKind::Bytes(b"x".to_vec()), 0o644),
            ],
            vec![entry(
                "etc/old/x",
                NewEntryKind::Bytes(b"x".to_vec()),
                0o644,
            )],
            vec![entry("../x", NewEntryKind::Bytes(b"x".to_vec()), 0o644)],
        ];
        for entries in cases {
            assert!(store
                .commit_entries(Some(&base), entries, config_for(Some(&base)), None)
                .is_err());
        }
        // A config that does not name the new layer is refused after the layer was made.
        let bad: Box<ConfigBuilder<'static>> =
            Box::new(|_| Ok(serde_json::to_vec(&image_config("amd64", &[])).unwrap()));
        assert!(store
            .commit_entries(
                Some(&base),
                vec![entry("a", NewEntryKind::Bytes(b"x".to_vec()), 0o644)],
                bad,
                None
            )
            .is_err());
        assert_eq!(count(&dir.path().join("root/snapshots")), snapshots);
        assert_eq!(count(&dir.path().join("root/layer-index")), indexes);
        assert_eq!(count(&dir.path().join("root/blobs/sha256")), blobs);
        assert_eq!(store.list().unwrap().len(), 1);
    }

    #[test]
    fn a_directory_entry_follows_a_symlink_at_its_name() {
        if !require_root("a_directory_entry_follows_a_symlink_at_its_name") {
            return;
        }
        let (_dir, store) = temp_store();
        let base = parent(&store);
        let image = store
            .commit_entries(
                Some(&base),
                vec![
                    entry("bin", NewEntryKind::Dir, 0o750),
                    entry("bin/x", NewEntryKind::Bytes(b"x".to_vec()), 0o644),
                ],
                config_for(Some(&base)),
                None,
            )
            .unwrap();
        let top = store.layer_dirs(&image).unwrap()[1].1.clone();
        assert!(!top.join("bin").exists());
        assert_eq!(meta(&top.join("usr/bin")).0, 0o750);
        assert_eq!(std::fs::read(top.join("usr/bin/x")).unwrap(), b"x");
    }

    #[test]
    fn image_fs_merges_layers_as_overlayfs() {
        if !require_root("image_fs_merges_layers_as_overlayfs") {
            return;
        }
        let (_dir, store) = temp_store();
        let mut t = TarBuf::new();
        t.file("a/x", b"x")
            .file("a/y", b"y")
            .file("b/z", b"z")
            .file("c/old", b"o");
        let tar = t.finish();
        let base = store
            .import(&mut &tar[..], ImportOptions::default())
            .unwrap();
        let mut t = TarBuf::new();
        t.file("a/.wh.x", b"")
            .file(".wh.b", b"")
            .file("c/.wh..wh..opq", b"")
            .file("c/new", b"n");
        let tar = t.finish();
        let image = store
            .commit(Some(&base), &mut &tar[..], config_for(Some(&base)), None)
            .unwrap();
        let fs = store.image_fs(Some(&image)).unwrap();
        assert_eq!(fs.read_dir(""), ["a", "c"]);
        assert_eq!(fs.read_dir("/a"), ["y"]);
        assert_eq!(fs.read_dir("c"), ["new"]);
        assert!(fs.lstat("b/z").is_none());
        assert!(fs.lstat("a/x").is_none());
        let y = fs.lstat("a/y").unwrap();
        assert_eq!(std::fs::read(&y.host_path).unwrap(), b"y");
        // The base alone still has everything.
        let fs = store.image_fs(Some(&base)).unwrap();
        assert_eq!(fs.read_dir(""), ["a", "b", "c"]);
        assert!(store.image_fs(None).unwrap().read_dir("").is_empty());
    }

    #[test]
    fn overlay_xattrs_of_entries_are_dropped() {
        if !require_root("overlay_xattrs_of_entries_are_dropped") {
            return;
        }
        let (_dir, store) = temp_store();
        let base = parent(&store);
        // A build's input asking for an opaque /etc (hiding the parent's) and a metacopy.
        let mut dir = entry("etc", NewEntryKind::Dir, 0o755);
        dir.xattrs = vec![
            ("trusted.overlay.opaque".into(), b"y".to_vec()),
            ("user.k".into(), b"v".to_vec()),
        ];
        let mut file = entry("etc/new", NewEntryKind::Bytes(b"n".to_vec()), 0o644);
        file.xattrs = vec![("trusted.overlay.metacopy".into(), Vec::new())];
        let image = store
            .commit_entries(Some(&base), vec![dir, file], config_for(Some(&base)), None)
            .unwrap();
        let top = store.layer_dirs(&image).unwrap()[1].1.clone();
        for p in ["etc", "etc/new"] {
            let names: Vec<String> = xattr::list(top.join(p))
                .unwrap()
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            assert!(
                names.iter().all(|n| !n.starts_with("trusted.overlay.")),
                "{p}: {names:?}"
            );
        }
        assert_eq!(
            xattr::get(top.join("etc"), "user.k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        let tar = top_layer_tar(&store, &image);
        assert!(!tar.windows(15).any(|w| w == b"trusted.overlay"));
    }
}
