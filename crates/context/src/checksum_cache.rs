//! The berth CLI's memory of file digests between builds (design §4): path → (dev, ino, size,
//! mtime, ctime, mode, digest). A remembered digest is reused only when every stat field still
//! matches and the file's mtime is older than the cache's last write (git's "racy clean" rule:
//! a file changed within the same clock tick as the previous hash is hashed again).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::manifest::{Entry, EntryKind};

/// The stat fields a cached digest depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub mode: u32,
}

impl FileStat {
    pub fn of(md: &fs::Metadata) -> FileStat {
        FileStat {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
            mode: md.mode(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Line {
    path: String,
    #[serde(flatten)]
    stat: FileStat,
    digest: String,
}

/// One context's cache file.
#[derive(Debug)]
pub struct ChecksumCache {
    file: PathBuf,
    /// mtime of the cache file when loaded (ns); entries not older than it are "racy".
    written_ns: i64,
    old: HashMap<String, (FileStat, String)>,
    new: Mutex<HashMap<String, (FileStat, String)>>,
}

/// `$XDG_CACHE_HOME/berth/context` (else `~/.cache/berth/context`).
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("berth").join("context")
}

/// The context key: sha256(machine-id ‖ absolute context dir ‖ Dockerfile path), hex.
pub fn context_key(context_dir: &Path, dockerfile: &str) -> String {
    let machine = fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let mut h = Sha256::new();
    h.update(machine.trim().as_bytes());
    h.update([0]);
    h.update(context_dir.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(dockerfile.as_bytes());
    hex::encode(h.finalize())
}

impl ChecksumCache {
    /// Loads the cache file `file`; a missing or unreadable one is an empty cache.
    pub fn load(file: &Path) -> ChecksumCache {
        let mut cache = ChecksumCache {
            file: file.to_path_buf(),
            written_ns: 0,
            old: HashMap::new(),
            new: Mutex::new(HashMap::new()),
        };
        let (Ok(md), Ok(text)) = (fs::metadata(file), fs::read(file)) else {
            return cache;
        };
        cache.written_ns = md.mtime() * 1_000_000_000 + md.mtime_nsec();
        for line in text.split(|c| *c == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Line>(line) {
                Ok(l) => {
                    cache.old.insert(l.path, (l.stat, l.digest));
                }
                // A damaged file is dropped as a whole: it is only a cache.
                Err(_) => {
                    cache.old.clear();
                    break;
                }
            }
        }
        cache
    }

    /// The remembered digest of `path` if `stat` still matches and is not racy.
    pub fn lookup(&self, path: &str, stat: &FileStat) -> Option<String> {
        let (old, digest) = self.old.get(path)?;
        (old == stat && stat.mtime_ns < self.written_ns).then(|| digest.clone())
    }

    /// Records `digest` for `path` (kept for the next build).
    pub fn insert(&self, path: &str, stat: FileStat, digest: String) {
        self.new
            .lock()
            .expect("cache lock")
            .insert(path.to_string(), (stat, digest));
    }

    /// Writes the entries recorded in this run (temp file + rename).
    pub fn save(&self) -> io::Result<()> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut out = Vec::new();
        let new = self.new.lock().expect("cache lock");
        let mut paths: Vec<&String> = new.keys().collect();
        paths.sort();
        for p in paths {
            let (stat, digest) = &new[p];
            let line = Line {
                path: p.clone(),
                stat: *stat,
                digest: digest.clone(),
            };
            serde_json::to_writer(&mut out, &line).map_err(io::Error::other)?;
            out.push(b'\n');
        }
        let tmp = self
            .file
            .with_extension(format!("tmp{}", std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&out)?;
        drop(f);
        fs::rename(&tmp, &self.file)
    }
}

/// "sha256:<hex>" of a file's content.
pub fn digest_file(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Fills the digest of every file entry, from `cache` when it is still valid, else by hashing
/// on `threads` threads (recording the result in `cache`). Returns how many files were hashed.
pub fn fill_digests(
    entries: &mut [(Entry, PathBuf)],
    cache: &ChecksumCache,
    threads: usize,
) -> io::Result<usize> {
    let mut todo: Vec<usize> = Vec::new();
    for (i, (e, host)) in entries.iter_mut().enumerate() {
        if e.kind != EntryKind::File {
            continue;
        }
        let stat = FileStat::of(&fs::symlink_metadata(&*host)?);
        match cache.lookup(&e.path, &stat) {
            Some(d) => {
                cache.insert(&e.path, stat, d.clone());
                e.digest = Some(d);
            }
            None => todo.push(i),
        }
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, io::Result<String>)>> = Mutex::new(Vec::new());
    let shared: &[(Entry, PathBuf)] = entries;
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(todo.len().max(1)) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = todo.get(k) else { break };
                let (e, host) = &shared[i];
                // Stat before reading: a change during the read shows up as a new mtime.
                let res = fs::symlink_metadata(host).and_then(|md| {
                    let d = digest_file(host)?;
                    if md.len() != e.size {
                        return Err(io::Error::other(format!(
                            "{} changed while the context was read",
                            e.path
                        )));
                    }
                    cache.insert(&e.path, FileStat::of(&md), d.clone());
                    Ok(d)
                });
                results.lock().expect("results lock").push((i, res));
            });
        }
    });
    let hashed = todo.len();
    for (i, res) in results.into_inner().expect("results lock") {
        entries[i].0.digest = Some(res?);
    }
    Ok(hashed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{walk, Ignore};

    fn set_mtime(path: &Path, secs: i64) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        let t = libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: 0,
        };
        let times = [t, t];
        // SAFETY: valid C string and two timespecs.
        assert_eq!(
            unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) },
            0
        );
    }

    #[test]
    fn reuses_digests_only_for_unchanged_old_files() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        fs::create_dir(&ctx).unwrap();
        fs::write(ctx.join("a"), "aaa").unwrap();
        fs::write(ctx.join("b"), "bbb").unwrap();
        set_mtime(&ctx.join("a"), 1_000_000);
        set_mtime(&ctx.join("b"), 1_000_000);
        let file = t.path().join("cache");

        let mut entries = walk(&ctx, &Ignore::default()).unwrap();
        let cache = ChecksumCache::load(&file);
        assert_eq!(fill_digests(&mut entries, &cache, 2).unwrap(), 2);
        cache.save().unwrap();
        assert_eq!(
            entries[0].0.digest.as_deref(),
            Some("sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0")
        );

        // Unchanged: nothing hashed, same digests.
        let mut again = walk(&ctx, &Ignore::default()).unwrap();
        let cache = ChecksumCache::load(&file);
        assert_eq!(fill_digests(&mut again, &cache, 2).unwrap(), 0);
        assert_eq!(again[0].0.digest, entries[0].0.digest);
        cache.save().unwrap();

        // Same size and mtime but new content: ctime/ino change catches it.
        fs::write(ctx.join("b"), "BBB").unwrap();
        set_mtime(&ctx.join("b"), 1_000_000);
        let mut third = walk(&ctx, &Ignore::default()).unwrap();
        let cache = ChecksumCache::load(&file);
        assert_eq!(fill_digests(&mut third, &cache, 2).unwrap(), 1);
        assert_ne!(third[1].0.digest, entries[1].0.digest);
    }

    #[test]
    fn racy_entries_are_rehashed() {
        let t = tempfile::tempdir().unwrap();
        let ctx = t.path().join("ctx");
        fs::create_dir(&ctx).unwrap();
        fs::write(ctx.join("a"), "aaa").unwrap();
        let file = t.path().join("cache");
        let mut entries = walk(&ctx, &Ignore::default()).unwrap();
        let cache = ChecksumCache::load(&file);
        fill_digests(&mut entries, &cache, 1).unwrap();
        cache.save().unwrap();
        // The file's mtime is not older than the cache write: it must be hashed again.
        set_mtime(&ctx.join("a"), i64::from(i32::MAX));
        let mut again = walk(&ctx, &Ignore::default()).unwrap();
        let cache = ChecksumCache::load(&file);
        assert_eq!(fill_digests(&mut again, &cache, 1).unwrap(), 1);
    }
}
