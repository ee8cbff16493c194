//! The manifest of a build context: every entry with its metadata and content digest, in path
//! order. The berth CLI sends it (as JSON lines) instead of a tar; the daemon keeps it beside
//! the content-addressed files and fills in the tarsums (design §4).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What an entry is. A hard link is a file whose `linkname` names the first path of its
/// inode; other kinds (sockets, devices) are never part of a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One file, directory or symlink of a context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative, '/'-separated, no leading "./" or "/", directories without a trailing '/'.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Mode with the type bits, e.g. 0o100644.
    pub mode: u32,
    /// Content size of files; 0 for directories and symlinks.
    pub size: u64,
    #[serde(rename = "mtime")]
    pub mtime_ns: i64,
    #[serde(default)]
    pub uid: u32,
    #[serde(default)]
    pub gid: u32,
    /// A symlink's target; for a file, the path of the file it is a hard link to (the first
    /// path of that inode in walk order, as the docker CLI's tar names it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub linkname: String,
    /// Only `security.capability`, as the docker CLI sends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// "sha256:<hex>" of the content (files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Docker's per-file tarsum (hex, see `tarsum`), filled in by the daemon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tarsum: Option<String>,
    /// A directory the docker CLI's tar leaves out but implies (an excluded directory that
    /// a `!` exception re-includes something inside): Docker's untar creates it and hashes
    /// it as its path, having no tar header for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implied: bool,
}

impl Entry {
    /// A directory a context's tar implies without an entry of its own (see `implied`), as
    /// Docker's untar creates it: 0755, root's.
    pub fn implied_dir(path: String, mtime_ns: i64) -> Entry {
        Entry {
            path,
            kind: EntryKind::Dir,
            mode: 0o040755,
            size: 0,
            mtime_ns,
            uid: 0,
            gid: 0,
            linkname: String::new(),
            xattrs: Vec::new(),
            digest: None,
            tarsum: None,
            implied: true,
        }
    }

    /// A hard link to another file of the context (its content is that file's).
    pub fn is_hard_link(&self) -> bool {
        self.kind == EntryKind::File && !self.linkname.is_empty()
    }
}

/// Every entry of a context, sorted by path (byte order), paths unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// A manifest of `entries` in any order (sorted here).
    pub fn new(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest { entries }
    }

    /// "sha256:<hex>" of the canonical JSON lines without tarsums: the same context described
    /// by the CLI or derived from a tar by the daemon gets the same ID.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        for e in &self.entries {
            let mut e = e.clone();
            e.tarsum = None;
            h.update(serde_json::to_vec(&e).expect("entry serializes"));
            h.update(b"\n");
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    /// The entry at `path` (already cleaned, relative).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The entries strictly under directory `dir` ("" = the whole context), in path order.
    pub fn descendants<'a>(&'a self, dir: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        // Paths sharing the prefix "dir/" are contiguous in byte order: find the first.
        let start = self
            .entries
            .partition_point(|e| e.path.as_str() < prefix.as_str());
        self.entries[start..]
            .iter()
            .take_while(move |e| e.path.starts_with(&prefix))
    }

    /// One JSON object per line, in path order.
    pub fn to_json_lines(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            serde_json::to_writer(&mut out, e).expect("entry serializes");
            out.push(b'\n');
        }
        out
    }

    /// Parses and checks what `to_json_lines` wrote. Paths must be clean, relative and in
    /// strictly increasing order: the daemon trusts them when it lays files out.
    pub fn from_json_lines(b: &[u8]) -> Result<Manifest, String> {
        let mut entries: Vec<Entry> = Vec::new();
        for (n, line) in b.split(|c| *c == b'\n').enumerate() {
            if line.iter().all(|c| c.is_ascii_whitespace()) {
                continue;
            }
            let e: Entry = serde_json::from_slice(line)
                .map_err(|err| format!("manifest line {}: {err}", n + 1))?;
            check_entry(&e).map_err(|err| format!("manifest line {}: {err}", n + 1))?;
            if let Some(prev) = entries.last() {
                if prev.path >= e.path {
                    return Err(format!(
                        "manifest line {}: {:?} is not after {:?}",
                        n + 1,
                        e.path,
                        prev.path
                    ));
                }
            }
            entries.push(e);
        }
        Ok(Manifest { entries })
    }

    /// Checks what the daemon relies on when it lays a context out: every entry well formed
    /// (as `from_json_lines` checks), paths in strictly increasing order, every parent a
    /// directory of the manifest, every hard link naming a file of it that is no link itself.
    pub fn check_tree(&self) -> Result<(), String> {
        let mut prev: Option<&str> = None;
        for e in &self.entries {
            check_entry(e)?;
            if prev.is_some_and(|p| p >= e.path.as_str()) {
                return Err(format!("{:?} is out of order", e.path));
            }
            prev = Some(&e.path);
            if let Some((parent, _)) = e.path.rsplit_once('/') {
                if !self.get(parent).is_some_and(|p| p.kind == EntryKind::Dir) {
                    return Err(format!(
                        "{:?}: parent {parent:?} is not a directory in the manifest",
                        e.path
                    ));
                }
            }
            if e.is_hard_link()
                && !self
                    .get(&e.linkname)
                    .is_some_and(|t| t.kind == EntryKind::File && !t.is_hard_link())
            {
                return Err(format!(
                    "{:?}: hard link target {:?} is not a file in the manifest",
                    e.path, e.linkname
                ));
            }
        }
        Ok(())
    }
}

/// Whether `path` is relative and clean: no empty, "." or ".." components.
pub fn is_clean_relative(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

fn check_entry(e: &Entry) -> Result<(), String> {
    if !is_clean_relative(&e.path) {
        return Err(format!("bad path {:?}", e.path));
    }
    let type_bits = e.mode & 0o170000;
    let (want, what) = match e.kind {
        EntryKind::File => (0o100000, "file"),
        EntryKind::Dir => (0o040000, "dir"),
        EntryKind::Symlink => (0o120000, "symlink"),
    };
    if type_bits != want {
        return Err(format!("{}: mode {:o} is not a {what}", e.path, e.mode));
    }
    if e.implied && e.kind != EntryKind::Dir {
        return Err(format!("{}: only a directory can be implied", e.path));
    }
    match e.kind {
        EntryKind::File if !e.linkname.is_empty() && !is_clean_relative(&e.linkname) => {
            Err(format!("{}: bad hard link target {:?}", e.path, e.linkname))
        }
        EntryKind::File => match &e.digest {
            Some(d) if is_sha256_digest(d) => Ok(()),
            _ => Err(format!("{}: a file needs a sha256 digest", e.path)),
        },
        EntryKind::Dir if !e.linkname.is_empty() => {
            Err(format!("{}: a directory has no link target", e.path))
        }
        EntryKind::Symlink if e.linkname.is_empty() => {
            Err(format!("{}: a symlink needs a target", e.path))
        }
        _ if e.size != 0 => Err(format!("{}: only files have a size", e.path)),
        _ => Ok(()),
    }
}

/// "sha256:" + 64 lower-case hex digits.
pub fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, digest: char) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o100644,
            size: 3,
            mtime_ns: 1_700_000_000_123_456_789,
            uid: 0,
            gid: 0,
            linkname: String::new(),
            xattrs: vec![],
            digest: Some(format!("sha256:{}", digest.to_string().repeat(64))),
            tarsum: None,
            implied: false,
        }
    }

    fn dir(path: &str) -> Entry {
        Entry {
            kind: EntryKind::Dir,
            mode: 0o040755,
            size: 0,
            digest: None,
            ..file(path, '0')
        }
    }

    #[test]
    fn json_lines_round_trip_and_id_ignores_tarsums() {
        let m = Manifest::new(vec![file("a/b", 'b'), dir("a"), file("a.txt", 'a')]);
        assert_eq!(
            m.entries
                .iter()
                .map(|e| e.path.as_str())
                .collect::<Vec<_>>(),
            ["a", "a.txt", "a/b"]
        );
        let back = Manifest::from_json_lines(&m.to_json_lines()).unwrap();
        assert_eq!(back, m);
        let mut with_sums = m.clone();
        with_sums.entries[1].tarsum = Some("ab".repeat(32));
        assert_eq!(with_sums.id(), m.id());
        let mut other = m.clone();
        other.entries[1].mode = 0o100755;
        assert_ne!(other.id(), m.id());
        assert!(m.id().starts_with("sha256:") && m.id().len() == 71);
    }

    #[test]
    fn lookups() {
        let m = Manifest::new(vec![
            file("a/b", 'b'),
            dir("a"),
            file("a.txt", 'a'),
            dir("a/c"),
        ]);
        assert_eq!(m.get("a.txt").unwrap().kind, EntryKind::File);
        assert!(m.get("a/x").is_none());
        let under: Vec<_> = m.descendants("a").map(|e| e.path.as_str()).collect();
        assert_eq!(under, ["a/b", "a/c"]);
        assert_eq!(m.descendants("").count(), 4);
    }

    #[test]
    fn rejects_unsafe_or_unsorted_manifests() {
        let line = |e: &Entry| {
            let mut v = serde_json::to_vec(e).unwrap();
            v.push(b'\n');
            v
        };
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", ""] {
            let err = Manifest::from_json_lines(&line(&file(bad, 'a'))).unwrap_err();
            assert!(err.contains("bad path"), "{bad}: {err}");
        }
        let mut two = line(&file("b", 'a'));
        two.extend(line(&file("a", 'a')));
        assert!(Manifest::from_json_lines(&two)
            .unwrap_err()
            .contains("not after"));
        let mut nodigest = file("a", 'a');
        nodigest.digest = None;
        assert!(Manifest::from_json_lines(&line(&nodigest)).is_err());
        let mut wrongtype = file("a", 'a');
        wrongtype.mode = 0o040755;
        assert!(Manifest::from_json_lines(&line(&wrongtype)).is_err());
    }

    #[test]
    fn check_tree_wants_parents_and_link_targets_in_the_manifest() {
        let ok = Manifest::new(vec![dir("d"), file("d/f", 'a')]);
        assert_eq!(ok.check_tree(), Ok(()));
        let orphan = Manifest::new(vec![file("d/f", 'a')]);
        assert!(orphan.check_tree().unwrap_err().contains("parent \"d\""));
        let under_file = Manifest::new(vec![file("d", 'a'), file("d/f", 'a')]);
        assert!(under_file.check_tree().is_err());
        let escaping = Manifest {
            entries: vec![file("../f", 'a')],
        };
        assert!(escaping.check_tree().unwrap_err().contains("bad path"));
        let unsorted = Manifest {
            entries: vec![file("b", 'a'), file("a", 'a')],
        };
        assert!(unsorted.check_tree().unwrap_err().contains("out of order"));
        let link = |name: &str, to: &str| Entry {
            linkname: to.into(),
            ..file(name, 'a')
        };
        for bad in [
            Manifest::new(vec![link("l", "nowhere")]),
            Manifest::new(vec![dir("d"), link("l", "d")]),
            Manifest::new(vec![link("a", "c"), link("c", "a")]),
        ] {
            let err = bad.check_tree().unwrap_err();
            assert!(err.contains("is not a file in the manifest"), "{err}");
        }
    }

    #[test]
    fn hard_links_and_implied_dirs_round_trip_and_are_checked() {
        let line = |e: &Entry| {
            let mut v = serde_json::to_vec(e).unwrap();
            v.push(b'\n');
            v
        };
        let link = Entry {
            linkname: "a".into(),
            ..file("b", 'a')
        };
        let implied = Entry {
            implied: true,
            ..dir("d")
        };
        assert!(link.is_hard_link() && !file("a", 'a').is_hard_link());
        let m = Manifest::new(vec![file("a", 'a'), link.clone(), implied.clone()]);
        let text = String::from_utf8(m.to_json_lines()).unwrap();
        // Only where set: a plain entry's JSON (and so the manifest ID) is as before.
        assert_eq!(text.matches("\"implied\":true").count(), 1);
        assert!(!text.contains("\"implied\":false"));
        assert_eq!(Manifest::from_json_lines(text.as_bytes()).unwrap(), m);
        for (bad, why) in [
            (
                Entry {
                    linkname: "../a".into(),
                    ..file("b", 'a')
                },
                "bad hard link target",
            ),
            (
                Entry {
                    implied: true,
                    ..file("b", 'a')
                },
                "only a directory",
            ),
            (
                Entry {
                    linkname: "x".into(),
                    ..dir("d")
                },
                "no link target",
            ),
        ] {
            let err = Manifest::from_json_lines(&line(&bad)).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
