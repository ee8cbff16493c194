//! Helpers for tests: a store on a throwaway root, hand-built tar entries (including hostile
//! ones tar::Builder refuses to write), image configs, and the root check that fails under CI
//! instead of skipping.

use std::path::Path;
use std::sync::Arc;

use tar::{EntryType, Header};

use crate::Store;

/// A store on a fresh root, and the directory holding it (removed when dropped).
pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(redb::Database::create(dir.path().join("meta.redb")).unwrap());
    let store = Store::open(&dir.path().join("root"), db).unwrap();
    (dir, store)
}

/// How many entries `dir` holds.
pub(crate) fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// The smallest image config the store accepts: a linux `arch` image whose layers have
/// `diff_ids`. Tests add the fields they need.
pub(crate) fn image_config(arch: &str, diff_ids: &[String]) -> serde_json::Value {
    serde_json::json!({
        "architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
}

/// True when running as root. Under CI=true a missing privilege is a failure, never a skip.
pub(crate) fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs root and CI=true: refusing to skip");
    }
    eprintln!("skipping {test}: needs root");
    false
}

/// A tar being built entry by entry with raw, unvalidated names.
pub(crate) struct TarBuf {
    b: tar::Builder<Vec<u8>>,
}

impl TarBuf {
    pub(crate) fn new() -> Self {
        TarBuf {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub(crate) fn raw(
        &mut self,
        kind: EntryType,
        path: &str,
        link: Option<&str>,
        data: &[u8],
        mode: u32,
        uid: u64,
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(l) = link {
            let ln = &mut h.as_old_mut().linkname;
            ln.fill(0);
            ln[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub(crate) fn dir(&mut self, path: &str) -> &mut Self {
        self.raw(EntryType::Directory, path, None, b"", 0o755, 0)
    }

    pub(crate) fn file(&mut self, path: &str, data: &[u8]) -> &mut Self {
        self.raw(EntryType::Regular, path, None, data, 0o644, 0)
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Symlink, path, Some(target), b"", 0o777, 0)
    }

    pub(crate) fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Link, path, Some(target), b"", 0o644, 0)
    }

    /// A PAX extended header applying to the next entry.
    pub(crate) fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            // "<len> <key>=<value>\n" where len counts itself.
            let body = k.len() + v.len() + 3;
            let mut len = body + 1;
            while len != body + len.to_string().len() {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.raw(EntryType::XHeader, "PaxHeader", None, &data, 0o644, 0)
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}
