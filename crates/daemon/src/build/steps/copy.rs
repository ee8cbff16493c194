//! COPY and ADD (dockerd 20.10's `dispatchCopy`/`dispatchAdd`, `performCopy`): resolve the
//! sources (sources.rs), probe the cache with `#(nop) COPY <hash> in <dest> `, then write the
//! layer straight from the stored files with `Store::commit_entries` — no container.
//!
//! Where things land, as `performCopyForInfo` does it: a directory source's contents go into
//! the destination (created 0755, owned by the `--chown` identity when new); a file goes to
//! `dest/<its name>` when the destination ends in `/` or is an existing directory, else to
//! the destination itself (missing parents 0755, owned by the identity); ADD unpacks a local
//! tar (plain, gzip, bzip2 or xz) into the destination keeping the archive's owners (20.10
//! does not apply `--chown` there), but never a file it downloaded from a URL (remote.rs: 0600,
//! mtime from Last-Modified, named after the URL). Everything copied is owned by root, or by `--chown`
//! (names from the image's /etc/passwd and /etc/group; a lone user also names the group, as
//! dockerd's `parseChownFlag`); files keep their mode and mtime (whole seconds) unless
//! `--chmod`, and names of one inode within one source (a directory, an archive) stay hard
//! links of each other, as dockerd's tar copy keeps them.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_context::EntryKind;
use berth_store::{ConfigBuilder, Image, NewEntry, NewEntryKind, Store};

use super::{probe_cache, BuildCtx, StageState};
use crate::build::child_image::ChildImage;
use crate::build::compression::decompress;
use crate::build::expand::Scope;
use crate::build::output::StageOut;
use crate::build::remote::{download, is_url, Downloaded};
use crate::build::sources::{
    plan_copy_with_downloads, CopyFrom, ExpandedCopy, PlannedCopy, SourceFile, SourceItem,
};
use crate::build::BuildError;

/// Runs one COPY (`add` false) or ADD step.
pub async fn copy_step(
    ctx: &BuildCtx,
    st: &mut StageState,
    scope: &Scope,
    args: &berth_dockerfile::CopyArgs,
    add: bool,
    out: &StageOut,
) -> Result<(), BuildError> {
    let cmd = if add { "ADD" } else { "COPY" };
    let (expanded, from) = scope.copy(args)?;
    // `--from`: a finished stage, else an image (pulled when missing, as dockerd does).
    let from_image: Option<Option<Image>> = match from.as_deref() {
        None => None,
        Some(name) => match ctx.stages.get(name, st.index) {
            Ok(Some(image)) => Some(image),
            Ok(None) => Some(Some(
                super::from::resolve_or_pull(ctx, name, out)
                    .await
                    .map_err(|e| BuildError::msg(format!("invalid from flag value {name}: {e}")))?,
            )),
            Err(why) => {
                return Err(BuildError::msg(format!(
                    "invalid from flag value {name}: {why}"
                )))
            }
        },
    };
    let workdir = st.config.working_dir.clone();
    // ADD's URLs are fetched every build (their content is the cache key), in source order
    // as dockerd goes: a local source before the first URL that does not resolve fails
    // before anything is downloaded.
    let first_url = add
        .then(|| expanded.sources.iter().position(|s| is_url(s)))
        .flatten();
    if let Some(k) = first_url.filter(|&k| k > 0) {
        let head = ExpandedCopy {
            sources: expanded.sources[..k].to_vec(),
            dest: "/".into(),
            heredocs: Vec::new(),
            ..expanded.clone()
        };
        match plan(ctx, from_image.clone(), head, add, &workdir, Vec::new()).await {
            Err(e) if !e.to_string().ends_with("no source files were specified") => return Err(e),
            _ => {}
        }
    }
    let mut downloads = Vec::new();
    if first_url.is_some() {
        for src in expanded.sources.iter().filter(|s| is_url(s)) {
            let fetch = download(ctx.engine.registry.http(), &ctx.engine.store, src, out);
            let d = tokio::select! {
                d = fetch => d?,
                _ = ctx.cancel.cancelled() => return Err(BuildError::Cancelled),
            };
            downloads.push(d);
        }
    }
    let plan = plan(ctx, from_image, expanded.clone(), add, &workdir, downloads).await?;
    let probe = st.config.with_nop_comment_word(&comment(
        cmd,
        &plan,
        expanded.chown.as_deref(),
        expanded.chmod,
    ));
    if probe_cache(ctx, st, &probe, out).await? {
        return Ok(());
    }
    let parent = st.image.clone();
    let store = ctx.engine.store.clone();
    // No container ran: the image JSON has no `container` (dockerd's `exportImage`).
    let new = ChildImage::new(ctx, st, &probe, "").await?;
    let chown_spec = expanded.chown.clone();
    let image = tokio::task::spawn_blocking(move || {
        let chown = match &chown_spec {
            Some(spec) => Some(resolve_chown(&store, parent.as_ref(), spec)?),
            None => None,
        };
        let build: Box<ConfigBuilder<'static>> = Box::new(move |diff: Option<&str>| {
            serde_json::to_vec(&new.blob(diff))
                .map_err(|e| berth_store::Error::Corrupt(e.to_string()))
        });
        commit_copy(&store, parent.as_ref(), plan, chown, build)
    })
    .await??;
    let parent_id = st.image_id().map(String::from);
    if let Err(e) = ctx
        .engine
        .build_cache_put(parent_id.as_deref(), &probe.to_map(), &image.id)
        .await
    {
        tracing::warn!("recording build cache entry for {}: {e}", image.id);
    }
    st.set_image(image);
    Ok(())
}

/// Resolves the sources off the runtime (hashing reads every file).
async fn plan(
    ctx: &BuildCtx,
    from_image: Option<Option<Image>>,
    expanded: ExpandedCopy,
    add: bool,
    workdir: &str,
    downloads: Vec<Downloaded>,
) -> Result<PlannedCopy, BuildError> {
    let store = ctx.engine.store.clone();
    let context = ctx.context.clone();
    let workdir = workdir.to_string();
    tokio::task::spawn_blocking(move || {
        let from = match &from_image {
            Some(image) => CopyFrom::Image(image.as_ref()),
            None => CopyFrom::Context(&context.manifest, &*context),
        };
        plan_copy_with_downloads(&store, from, &expanded, add, &workdir, &downloads)
    })
    .await?
}

/// The history comment and cache key text: `COPY <hash> in <dest> `, with dockerd's
/// `--chown=<spec>` glued to the hash (no space) and berth's `--chmod=<octal> `.
pub fn comment(cmd: &str, plan: &PlannedCopy, chown: Option<&str>, chmod: Option<u32>) -> String {
    let chown = chown.map(|c| format!("--chown={c}")).unwrap_or_default();
    let chmod = chmod.map(|m| format!("--chmod={m:o} ")).unwrap_or_default();
    format!("{cmd} {chown}{chmod}{} in {} ", plan.hash, plan.dest)
}

/// `--chown=user[:group]` against `parent`'s /etc/passwd and /etc/group (dockerd's
/// `parseChownFlag`: numbers are taken as they are; without a group the user word names the
/// group too).
pub fn resolve_chown(
    store: &Store,
    parent: Option<&Image>,
    spec: &str,
) -> Result<(u32, u32), BuildError> {
    let fail = |e: String| {
        BuildError::msg(format!(
            "unable to convert uid/gid chown string to host mapping: {e}"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (user, group) = match parts.as_slice() {
        [u] => (*u, *u),
        [u, g] => (*u, *g),
        _ => return Err(fail(format!("invalid chown string format: {spec}"))),
    };
    let mut dirs: Vec<PathBuf> = match parent {
        Some(p) => store.layer_dirs(p)?.into_iter().map(|(_, d)| d).collect(),
        None => Vec::new(),
    };
    dirs.reverse(); // topmost first
    let lookup = |word: &str, file: &str, what: &str| -> Result<u32, String> {
        if let Ok(n) = word.parse::<u32>() {
            return Ok(n);
        }
        let text = crate::engine::user::read_etc(&dirs, file).ok_or_else(|| {
            format!(
                "can't find {what} for {} {word}: open /etc/{file}: no such file or directory",
                if what == "uid" { "user" } else { "group" }
            )
        })?;
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[0] == word)
                    .then(|| f[2].parse::<u32>().ok())
                    .flatten()
            })
            .ok_or_else(|| {
                let (kind, noun) = if what == "uid" {
                    ("user", "user")
                } else {
                    ("group", "group")
                };
                format!("can't find {what} for {kind} {word}: no such {noun}: {word}")
            })
    };
    let uid = lookup(user, "passwd", "uid").map_err(fail)?;
    let gid = lookup(group, "group", "gid").map_err(fail)?;
    Ok((uid, gid))
}

/// Writes the planned copy as one layer on `parent` (`None`: scratch) and publishes the
/// image `build_config` describes. `chown`: the owner of everything copied (root when none).
pub fn commit_copy(
    store: &Store,
    parent: Option<&Image>,
    plan: PlannedCopy,
    chown: Option<(u32, u32)>,
    build_config: Box<ConfigBuilder<'_>>,
) -> Result<Image, BuildError> {
    let fs = store.image_fs(parent)?;
    let (uid, gid) = chown.unwrap_or((0, 0));
    let now = (chrono::Utc::now().timestamp(), 0);
    let mut layer = Layer {
        fs: &fs,
        entries: Vec::new(),
        last_at: HashMap::new(),
        uid,
        gid,
        now,
        item: 0,
        inodes: Vec::new(),
    };
    // Unpacked ADD archives live here until the commit has linked their files, and
    // downloaded files in theirs.
    let mut scratch: Vec<berth_store::ScratchDir> = Vec::new();
    let downloads = plan.downloads;
    let dest_rel = plan.dest_abs.trim_start_matches('/').to_string();
    let dest_slash = plan.dest_abs.ends_with('/');
    let dest = fs.resolve(&dest_rel, true)?;
    let cmd = if plan.add { "ADD" } else { "COPY" };
    // A file source lands in the destination when it is a directory (or written as one),
    // else it is the destination.
    let target_of = |layer: &Layer, name: &str| {
        if dest_slash || layer.is_dir(&dest) {
            join(&dest, name)
        } else {
            dest.clone()
        }
    };
    for item in plan.items {
        layer.item += 1;
        match item {
            SourceItem::DirContents(contents) => {
                if !layer.is_dir(&dest) {
                    // CopyWithTar makes the path root's; the chown then takes the new destination.
                    layer.new_dirs(&dest, (0, 0), (uid, gid));
                }
                for (rel, f) in contents {
                    let path = join(&dest, &rel);
                    layer.push(&path, &f, plan.chmod);
                }
            }
            SourceItem::File { name, file } => {
                if plan.add {
                    if let Some(host) = file.host.as_deref().filter(|h| is_archive(h)) {
                        let dir = store.scratch_dir()?;
                        let unpacked = std::fs::File::open(host)
                            .map_err(|e| BuildError::msg(format!("{cmd} failed: {e}")))
                            .and_then(|f| {
                                let mut r = decompress(f)
                                    .map_err(|e| BuildError::msg(format!("{cmd} failed: {e}")))?;
                                berth_store::extract_tar(&mut r, dir.path()).map_err(|e| {
                                    BuildError::msg(format!("failed to copy files: {e}"))
                                })
                            });
                        unpacked?;
                        if !layer.is_dir(&dest) {
                            // Untar makes it root's; 20.10 applies no --chown to an archive.
                            layer.new_dirs(&dest, (0, 0), (0, 0));
                        }
                        layer.push_tree(dir.path(), &dest)?;
                        scratch.push(dir);
                        continue;
                    }
                }
                let target = target_of(&layer, &name);
                layer.parents(&target);
                layer.push(&target, &file, plan.chmod);
            }
            SourceItem::Remote { name, file } => {
                // A download is never unpacked (dockerd's `noDecompress`).
                let target = target_of(&layer, &name);
                layer.parents(&target);
                layer.push(&target, &file, plan.chmod);
            }
            SourceItem::Heredoc { name, body } => {
                let target = target_of(&layer, &name);
                layer.parents(&target);
                layer.add(NewEntry {
                    path: target,
                    kind: NewEntryKind::Bytes(body),
                    mode: plan.chmod.unwrap_or(0o644),
                    uid,
                    gid,
                    mtime: now,
                    xattrs: Vec::new(),
                });
            }
        }
    }
    layer.link_hard_links();
    // dockerd's words for a copy that could not be written.
    let image = store
        .commit_entries(parent, layer.entries, build_config, None)
        .map_err(|e| BuildError::msg(format!("failed to copy files: {e}")))?;
    drop(scratch);
    drop(downloads);
    Ok(image)
}

/// The entries being planned, and the parent's tree they go onto.
struct Layer<'a> {
    fs: &'a berth_store::ImageFs,
    entries: Vec<NewEntry>,
    /// The index of the last entry at each path: lookups stay constant-time however many
    /// files a `COPY *` plans (only [`Layer::add`] may push to `entries`).
    last_at: HashMap<String, usize>,
    uid: u32,
    gid: u32,
    now: (i64, u32),
    /// Which source item is being planned (hard links are kept within one).
    item: usize,
    /// Files with other names in their source: (entry index, item and inode).
    inodes: Vec<(usize, (usize, String))>,
}

impl Layer<'_> {
    fn add(&mut self, entry: NewEntry) {
        self.last_at.insert(entry.path.clone(), self.entries.len());
        self.entries.push(entry);
    }

    /// Whether `path` is a directory: made by an earlier entry, else in the parent.
    fn is_dir(&self, path: &str) -> bool {
        if let Some(&i) = self.last_at.get(path) {
            return self.entries[i].kind == NewEntryKind::Dir;
        }
        if path.is_empty() {
            return true;
        }
        let resolved = self
            .fs
            .resolve(path, true)
            .unwrap_or_else(|_| path.to_string());
        self.fs
            .lstat(&resolved)
            .is_some_and(|n| n.metadata.is_dir())
    }

    fn exists(&self, path: &str) -> bool {
        self.last_at.contains_key(path) || self.fs.lstat(path).is_some()
    }

    /// The missing directories of `path` (itself included), 0755, owned by `parents`, the
    /// last one by `last`.
    fn new_dirs(&mut self, path: &str, parents: (u32, u32), last: (u32, u32)) {
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        for i in 1..=comps.len() {
            let p = comps[..i].join("/");
            if self.exists(&p) {
                continue;
            }
            let (uid, gid) = if i == comps.len() { last } else { parents };
            self.add(NewEntry {
                path: p,
                kind: NewEntryKind::Dir,
                mode: 0o755,
                uid,
                gid,
                mtime: self.now,
                xattrs: Vec::new(),
            });
        }
    }

    /// The missing parent directories of a file about to be copied to `path`: the
    /// identity's (`MkdirAllAndChownNew`).
    fn parents(&mut self, path: &str) {
        if let Some((dir, _)) = path.rsplit_once('/') {
            let dir = dir.to_string();
            let owner = (self.uid, self.gid);
            self.new_dirs(&dir, owner, owner);
        }
    }

    /// Files of one source item that are one inode (hard links in the context, in the image
    /// or in an ADD archive) stay one in the layer, as dockerd's tar copy and untar keep them:
    /// the first by layer path is the file, the others link to it. Not when a later entry
    /// replaces that file (then each stays its own copy).
    fn link_hard_links(&mut self) {
        let mut groups: HashMap<&(usize, String), Vec<usize>> = HashMap::new();
        for (i, key) in &self.inodes {
            groups.entry(key).or_default().push(*i);
        }
        let mut links = Vec::new();
        for members in groups.into_values().filter(|m| m.len() > 1) {
            // The order of the layer's tar: paths as they resolve in the parent.
            let mut ordered: Vec<(String, usize)> = members
                .into_iter()
                .map(|i| {
                    let p = &self.entries[i].path;
                    (self.fs.resolve(p, false).unwrap_or_else(|_| p.clone()), i)
                })
                .collect();
            ordered.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
            let first = ordered[0].1;
            let target = self.entries[first].path.clone();
            if self.last_at[&target] > first {
                continue;
            }
            links.extend(ordered[1..].iter().map(|&(_, i)| (i, target.clone())));
        }
        for (i, target) in links {
            self.entries[i].kind = NewEntryKind::HardLink { target };
        }
    }

    fn push(&mut self, path: &str, f: &SourceFile, chmod: Option<u32>) {
        let kind = match f.kind {
            EntryKind::Dir => NewEntryKind::Dir,
            EntryKind::Symlink => NewEntryKind::Symlink {
                target: f.linkname.clone(),
            },
            EntryKind::File => match &f.host {
                Some(h) => NewEntryKind::File { source: h.clone() },
                None => NewEntryKind::Bytes(Vec::new()),
            },
        };
        let mode = match (f.kind, chmod) {
            (EntryKind::Symlink, _) => 0o777,
            (_, Some(m)) => m,
            (_, None) => f.mode,
        };
        self.add(NewEntry {
            path: path.to_string(),
            kind,
            mode,
            uid: self.uid,
            gid: self.gid,
            mtime: f.mtime,
            xattrs: f.xattrs.clone(),
        });
        if let (EntryKind::File, Some(inode)) = (f.kind, &f.inode) {
            self.inodes
                .push((self.entries.len() - 1, (self.item, inode.clone())));
        }
    }

    /// Everything under the unpacked archive `root`, as it is (owners, modes, times), into
    /// `dest`.
    fn push_tree(&mut self, root: &Path, dest: &str) -> Result<(), BuildError> {
        let mut todo = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel)) = todo.pop() {
            let mut names: Vec<_> = std::fs::read_dir(&dir)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect();
            names.sort();
            for name in names {
                let name = name.to_string_lossy().into_owned();
                let host = dir.join(&name);
                let m = std::fs::symlink_metadata(&host)?;
                let r = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let ft = m.file_type();
                let kind = if ft.is_dir() {
                    todo.push((host.clone(), r.clone()));
                    NewEntryKind::Dir
                } else if ft.is_file() {
                    NewEntryKind::File {
                        source: host.clone(),
                    }
                } else if ft.is_symlink() {
                    NewEntryKind::Symlink {
                        target: std::fs::read_link(&host)?.to_string_lossy().into_owned(),
                    }
                } else {
                    // Devices, FIFOs and whiteouts of an archive are not copied.
                    continue;
                };
                let xattrs = match crate::engine::nofollow::read_xattr(
                    &host,
                    "security.capability",
                    false,
                ) {
                    Some(v) if matches!(kind, NewEntryKind::File { .. }) => {
                        vec![("security.capability".to_string(), v)]
                    }
                    _ => Vec::new(),
                };
                if matches!(kind, NewEntryKind::File { .. }) && m.nlink() > 1 {
                    let inode = format!("{}:{}", m.dev(), m.ino());
                    self.inodes.push((self.entries.len(), (self.item, inode)));
                }
                self.add(NewEntry {
                    path: join(dest, &r),
                    kind,
                    mode: m.mode() & 0o7777,
                    uid: m.uid(),
                    gid: m.gid(),
                    mtime: (m.mtime(), m.mtime_nsec() as u32),
                    xattrs,
                });
            }
        }
        Ok(())
    }
}

fn join(dir: &str, rel: &str) -> String {
    match (dir.trim_end_matches('/'), rel.trim_start_matches('/')) {
        ("", r) => r.to_string(),
        (d, "") => d.to_string(),
        (d, r) => format!("{d}/{r}"),
    }
}

/// dockerd's `isArchivePath`: decompresses and has a first tar header.
fn is_archive(path: &Path) -> bool {
    let Ok(f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(r) = decompress(f) else { return false };
    // Capped: a first member claiming a 1 GiB long name is no archive (Go's reader agrees).
    let mut archive = tar::Archive::new(berth_store::CappedTar::new(r));
    let Ok(mut entries) = archive.entries() else {
        return false;
    };
    matches!(entries.next(), Some(Ok(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::sources::plan_copy;
    use serde_json::json;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    /// A store on a temp root holding one image: /etc/passwd, /etc/group, `bin -> usr/bin`
    /// (as Debian's) and /etc as a directory. `None` (skip) without root, except under CI.
    fn store_with_base() -> Option<(tempfile::TempDir, Store, Image)> {
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
            .prefix("berth-copy")
            .tempdir_in("/var/tmp")
            .unwrap();
        let db = std::sync::Arc::new(redb::Database::create(dir.path().join("db")).unwrap());
        let store = Store::open(&dir.path().join("root"), db).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(data.len() as u64);
            match link {
                Some(l) => b.append_link(&mut h, path, l).unwrap(),
                None => b.append_data(&mut h, path, data).unwrap(),
            }
        };
        add("etc/", tar::EntryType::Directory, b"", None);
        add(
            "etc/passwd",
            tar::EntryType::Regular,
            b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
            None,
        );
        add(
            "etc/group",
            tar::EntryType::Regular,
            b"root:x:0:\napp:x:1000:\nstaff:x:50:\n",
            None,
        );
        add("usr/bin/", tar::EntryType::Directory, b"", None);
        add("bin", tar::EntryType::Symlink, b"", Some("usr/bin"));
        let tar = b.into_inner().unwrap();
        let base = store
            .import(&mut &tar[..], berth_store::ImportOptions::default())
            .unwrap();
        Some((dir, store, base))
    }

    fn config(parent: &Image) -> Box<ConfigBuilder<'static>> {
        let mut diff_ids = parent.config.rootfs().diff_ids().clone();
        Box::new(move |diff: Option<&str>| {
            diff_ids.extend(diff.map(String::from));
            Ok(serde_json::to_vec(&json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }))
            .unwrap())
        })
    }

    /// A context file as the manifest describes it (its own mtime).
    fn file(host: &Path, mode: u32) -> SourceFile {
        let m = std::fs::metadata(host).unwrap();
        SourceFile {
            kind: EntryKind::File,
            mode,
            mtime: (m.mtime(), m.mtime_nsec() as u32),
            host: Some(host.to_path_buf()),
            linkname: String::new(),
            xattrs: Vec::new(),
            inode: None,
        }
    }

    /// A plan of `items` into `dest` (already absolute), with no hash, mode or downloads.
    fn planned(items: Vec<SourceItem>, dest: &str, add: bool) -> PlannedCopy {
        PlannedCopy {
            hash: String::new(),
            dest: dest.into(),
            dest_abs: dest.into(),
            items,
            chmod: None,
            add,
            downloads: Vec::new(),
        }
    }

    /// A source directory in the store's root (so its files can be hard-linked into a
    /// layer) holding `f` ("content"): (the directory, f).
    fn source_dir(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
        let src = dir.path().join("root/src");
        std::fs::create_dir(&src).unwrap();
        let f = src.join("f");
        std::fs::write(&f, b"content").unwrap();
        (src, f)
    }

    fn meta(p: &Path) -> (u32, u32, u32) {
        let m = std::fs::symlink_metadata(p).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    }

    #[test]
    fn copies_land_where_dockerd_puts_them() {
        let Some((dir, store, base)) = store_with_base() else {
            return;
        };
        let (src, f) = source_dir(&dir);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut tgz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        {
            let mut b = tar::Builder::new(&mut tgz);
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o640);
            h.set_uid(1234);
            h.set_size(2);
            b.append_data(&mut h, "inner/a", &b"a\n"[..]).unwrap();
            b.finish().unwrap();
        }
        let archive = src.join("x.tgz");
        std::fs::write(&archive, tgz.finish().unwrap()).unwrap();

        let run =
            |items: Vec<SourceItem>, dest: &str, add: bool, chown: Option<(u32, u32)>| -> PathBuf {
                let plan = planned(items, dest, add);
                let image = commit_copy(&store, Some(&base), plan, chown, config(&base)).unwrap();
                store.layer_dirs(&image).unwrap().last().unwrap().1.clone()
            };
        // An existing directory without a trailing slash takes the file in.
        let top = run(
            vec![SourceItem::File {
                name: "f".into(),
                file: file(&f, 0o600),
            }],
            "/etc",
            false,
            None,
        );
        assert_eq!(std::fs::read(top.join("etc/f")).unwrap(), b"content");
        assert_eq!(meta(&top.join("etc/f")), (0o600, 0, 0));
        // The file itself is the stored one (same metadata): a hard link.
        assert_eq!(
            std::fs::metadata(top.join("etc/f")).unwrap().ino(),
            std::fs::metadata(&f).unwrap().ino()
        );
        // Through the image's `bin -> usr/bin`; new parents owned by --chown.
        let top = run(
            vec![SourceItem::File {
                name: "f".into(),
                file: file(&f, 0o600),
            }],
            "/bin/new/g",
            false,
            Some((1000, 50)),
        );
        assert!(!top.join("bin").exists());
        assert_eq!(meta(&top.join("usr/bin/new")), (0o755, 1000, 50));
        assert_eq!(meta(&top.join("usr/bin/new/g")), (0o600, 1000, 50));
        // A directory's contents into a new destination: it is the chown's, its parents root's.
        let contents = vec![
            (
                "sub".to_string(),
                SourceFile {
                    kind: EntryKind::Dir,
                    mode: 0o700,
                    host: None,
                    ..file(&f, 0)
                },
            ),
            ("sub/f".to_string(), file(&f, 0o600)),
        ];
        let top = run(
            vec![SourceItem::DirContents(contents)],
            "/a/b",
            false,
            Some((1000, 1000)),
        );
        assert_eq!(meta(&top.join("a")), (0o755, 0, 0));
        assert_eq!(meta(&top.join("a/b")), (0o755, 1000, 1000));
        assert_eq!(meta(&top.join("a/b/sub")), (0o700, 1000, 1000));
        assert_eq!(meta(&top.join("a/b/sub/f")), (0o600, 1000, 1000));
        // ADD unpacks a local archive with its own owners, whatever --chown says.
        let top = run(
            vec![SourceItem::File {
                name: "x.tgz".into(),
                file: file(&archive, 0o644),
            }],
            "/x",
            true,
            Some((7, 7)),
        );
        assert_eq!(meta(&top.join("x")), (0o755, 0, 0));
        assert_eq!(meta(&top.join("x/inner/a")), (0o640, 1234, 0));
        // The archive was unpacked in a scratch directory that is gone.
        let leftovers = std::fs::read_dir(dir.path().join("root/snapshots"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .count();
        assert_eq!(leftovers, 0);
        // COPY of the same archive copies it as a file; heredocs are 0644 files.
        let top = run(
            vec![
                SourceItem::File {
                    name: "x.tgz".into(),
                    file: file(&archive, 0o644),
                },
                SourceItem::Heredoc {
                    name: "EOF".into(),
                    body: b"hi\n".to_vec(),
                },
            ],
            "/y/",
            false,
            None,
        );
        assert!(top.join("y/x.tgz").is_file());
        assert_eq!(std::fs::read(top.join("y/EOF")).unwrap(), b"hi\n");
        assert_eq!(meta(&top.join("y/EOF")), (0o644, 0, 0));
    }

    #[test]
    fn hard_links_of_one_source_stay_one_inode() {
        let Some((dir, store, base)) = store_with_base() else {
            return;
        };
        let (src, f) = source_dir(&dir);
        let g = src.join("g");
        std::fs::write(&g, b"other").unwrap();
        let linked = |host: &Path, inode: &str| SourceFile {
            inode: Some(inode.into()),
            ..file(host, 0o644)
        };
        // An archive with a file and a hard link to it, listed link-target first.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o600);
        h.set_size(2);
        b.append_data(&mut h, "z/t", &b"t\n"[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Link);
        h.set_mode(0o600);
        h.set_size(0);
        b.append_link(&mut h, "a/l", "z/t").unwrap();
        let archive = src.join("l.tar");
        std::fs::write(&archive, b.into_inner().unwrap()).unwrap();

        let items = vec![
            // "b" and "d/a" are one inode; "c" is another; the second item's "x" shares
            // the first's key but is another source: its own copy.
            SourceItem::DirContents(vec![
                ("b".into(), linked(&f, "k")),
                ("c".into(), linked(&g, "other")),
                (
                    "d".into(),
                    SourceFile {
                        kind: EntryKind::Dir,
                        mode: 0o755,
                        host: None,
                        ..file(&f, 0)
                    },
                ),
                ("d/a".into(), linked(&f, "k")),
            ]),
            SourceItem::File {
                name: "x".into(),
                file: linked(&f, "k"),
            },
            SourceItem::File {
                name: "l.tar".into(),
                file: file(&archive, 0o644),
            },
        ];
        let plan = planned(items, "/h/", true);
        let image = commit_copy(&store, Some(&base), plan, None, config(&base)).unwrap();
        let top = store.layer_dirs(&image).unwrap().last().unwrap().1.clone();
        let ino = |p: &str| std::fs::metadata(top.join(p)).unwrap().ino();
        assert_eq!(ino("h/b"), ino("h/d/a"));
        assert_ne!(ino("h/b"), ino("h/c"));
        // (h/x may share the inode too: an unchanged source file is hard-linked into the layer;
        // the tar below says what the layer holds.)
        assert_eq!(ino("h/a/l"), ino("h/z/t"));
        // In the tar: link entries naming the first path.
        let diff = image.config.rootfs().diff_ids().last().unwrap().clone();
        let mut tar = Vec::new();
        store
            .layer_tar(&diff)
            .unwrap()
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        let links: Vec<(String, String)> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.header().entry_type() == tar::EntryType::Link)
            .map(|e| {
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.link_name()
                        .unwrap()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                )
            })
            .collect();
        assert_eq!(
            links,
            [
                ("h/d/a".to_string(), "h/b".to_string()),
                ("h/z/t".to_string(), "h/a/l".to_string())
            ]
        );
    }

    #[test]
    fn chown_names_come_from_the_image() {
        let Some((_dir, store, base)) = store_with_base() else {
            return;
        };
        assert_eq!(
            resolve_chown(&store, Some(&base), "app").unwrap(),
            (1000, 1000)
        );
        assert_eq!(
            resolve_chown(&store, Some(&base), "app:staff").unwrap(),
            (1000, 50)
        );
        assert_eq!(
            resolve_chown(&store, Some(&base), "12:34").unwrap(),
            (12, 34)
        );
        // dockerd's words.
        assert_eq!(
            resolve_chown(&store, Some(&base), "ghost").unwrap_err().to_string(),
            "unable to convert uid/gid chown string to host mapping: can't find uid for user ghost: no such user: ghost"
        );
        assert_eq!(
            resolve_chown(&store, Some(&base), "1:nogroup").unwrap_err().to_string(),
            "unable to convert uid/gid chown string to host mapping: can't find gid for group nogroup: no such group: nogroup"
        );
        assert_eq!(resolve_chown(&store, None, "5").unwrap(), (5, 5));
    }

    #[test]
    fn comments_are_dockerds() {
        let plan = PlannedCopy {
            hash: "file:abc".into(),
            ..planned(Vec::new(), "/owned", false)
        };
        assert_eq!(
            comment("COPY", &plan, None, None),
            "COPY file:abc in /owned "
        );
        assert_eq!(
            comment("COPY", &plan, Some("1:2"), None),
            "COPY --chown=1:2file:abc in /owned "
        );
        assert_eq!(
            comment("ADD", &plan, None, Some(0o755)),
            "ADD --chmod=755 file:abc in /owned "
        );
    }

    #[test]
    fn from_an_image_hashes_as_dockerd() {
        let Some((_dir, store, _)) = store_with_base() else {
            return;
        };
        // busybox's /etc/passwd (scripts/mkimage.sh), hashed by dockerd 20.10 for
        // `COPY --from=busybox /etc/passwd /h/` (build-transcripts.md).
        let passwd =
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(passwd.len() as u64);
        b.append_data(&mut h, "etc/passwd", &passwd[..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "pw", "/etc/passwd").unwrap();
        let tar = b.into_inner().unwrap();
        let image = store
            .import(&mut &tar[..], berth_store::ImportOptions::default())
            .unwrap();
        let args = ExpandedCopy {
            sources: vec!["/etc/passwd".into()],
            dest: "/h/".into(),
            ..Default::default()
        };
        let plan = plan_copy(&store, CopyFrom::Image(Some(&image)), &args, false, "/").unwrap();
        assert_eq!(
            plan.hash,
            "file:d04d0c96dc8c7f12f55927f43bf0c9ff8d35ea96ffcef4fd1f30d0d8cccbe003"
        );
        // Through the image's own absolute symlink, scoped to its root.
        let args = ExpandedCopy {
            sources: vec!["pw".into()],
            ..args
        };
        let plan = plan_copy(&store, CopyFrom::Image(Some(&image)), &args, false, "/").unwrap();
        assert_eq!(
            plan.hash,
            "file:d04d0c96dc8c7f12f55927f43bf0c9ff8d35ea96ffcef4fd1f30d0d8cccbe003"
        );
        let args = ExpandedCopy {
            sources: vec!["nothere".into()],
            ..args
        };
        let err = plan_copy(&store, CopyFrom::Image(Some(&image)), &args, false, "/").unwrap_err();
        assert_eq!(
            err.to_string(),
            "COPY failed: stat nothere: file does not exist"
        );
    }
}
