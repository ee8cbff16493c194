//! Repositories on disk, beside the content store, as small files Distribution-style:
//! `repositories/<name>/_layers/<hex>` (empty: the blob belongs to the repository),
//! `_manifests/revisions/<hex>` (holds the manifest's media type; its bytes are a blob) and
//! `_manifests/tags/<tag>` (holds a digest). Names, tags and digests are validated by the
//! caller (`names`), so they are safe path components. Writes go to a temp file and are
//! renamed into place, so a reader never sees half a file.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::names::digest_hex;

const LAYERS: &str = "_layers";
const MANIFESTS: &str = "_manifests";
const TEMP_PREFIX: &str = ".tmp-";

/// The `repositories` directory.
#[derive(Debug)]
pub struct Repos {
    dir: PathBuf,
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn hex_of(digest: &str) -> io::Result<&str> {
    digest_hex(digest).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad digest"))
}

/// Writes `bytes` to `path` through a temp file and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("no parent"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{TEMP_PREFIX}{}", crate::names::new_upload_id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn remove_if_present(path: &Path) -> io::Result<bool> {
    Ok(not_found_is_none(std::fs::remove_file(path))?.is_some())
}

/// Entries of a directory that are not temp files; empty when it does not exist.
fn list(dir: &Path) -> io::Result<Vec<String>> {
    let Some(rd) = not_found_is_none(std::fs::read_dir(dir))? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in rd {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            out.push(name);
        }
    }
    Ok(out)
}

impl Repos {
    /// Uses (creating) `<root>/repositories`.
    pub fn open(root: &Path) -> io::Result<Repos> {
        let dir = root.join("repositories");
        std::fs::create_dir_all(&dir)?;
        Ok(Repos { dir })
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn layer_link(&self, name: &str, digest: &str) -> io::Result<PathBuf> {
        Ok(self.repo(name).join(LAYERS).join(hex_of(digest)?))
    }

    fn revision(&self, name: &str, digest: &str) -> io::Result<PathBuf> {
        Ok(self
            .repo(name)
            .join(MANIFESTS)
            .join("revisions")
            .join(hex_of(digest)?))
    }

    fn tag_file(&self, name: &str, tag: &str) -> PathBuf {
        self.repo(name).join(MANIFESTS).join("tags").join(tag)
    }

    /// True once anything was pushed to the repository.
    pub fn exists(&self, name: &str) -> bool {
        let dir = self.repo(name);
        dir.join(LAYERS).is_dir() || dir.join(MANIFESTS).is_dir()
    }

    /// Makes `digest` (already in the content store) part of repository `name`.
    pub fn link_blob(&self, name: &str, digest: &str) -> io::Result<()> {
        write_atomic(&self.layer_link(name, digest)?, b"")
    }

    /// True when `digest` was pushed to (or mounted into) repository `name`.
    pub fn has_blob(&self, name: &str, digest: &str) -> bool {
        self.layer_link(name, digest)
            .map(|p| p.is_file())
            .unwrap_or(false)
    }

    /// Removes `digest` from the repository; false when it was not there.
    pub fn unlink_blob(&self, name: &str, digest: &str) -> io::Result<bool> {
        remove_if_present(&self.layer_link(name, digest)?)
    }

    /// Records a manifest revision (its bytes are already in the content store).
    pub fn put_manifest(&self, name: &str, digest: &str, media_type: &str) -> io::Result<()> {
        write_atomic(&self.revision(name, digest)?, media_type.as_bytes())
    }

    /// Media type of a manifest revision of the repository, if it has it.
    pub fn manifest_type(&self, name: &str, digest: &str) -> io::Result<Option<String>> {
        not_found_is_none(std::fs::read_to_string(self.revision(name, digest)?))
    }

    /// Points `tag` at `digest`.
    pub fn set_tag(&self, name: &str, tag: &str, digest: &str) -> io::Result<()> {
        write_atomic(&self.tag_file(name, tag), digest.as_bytes())
    }

    /// The digest `tag` points at.
    pub fn tag(&self, name: &str, tag: &str) -> io::Result<Option<String>> {
        not_found_is_none(std::fs::read_to_string(self.tag_file(name, tag)))
    }

    /// The repository's tags, sorted; None for an unknown repository.
    pub fn tags(&self, name: &str) -> io::Result<Option<Vec<String>>> {
        if !self.exists(name) {
            return Ok(None);
        }
        let mut tags = list(&self.repo(name).join(MANIFESTS).join("tags"))?;
        tags.sort();
        Ok(Some(tags))
    }

    fn referrers_dir(&self, name: &str) -> PathBuf {
        self.repo(name).join(MANIFESTS).join("referrers")
    }

    /// Records that manifest `digest` names `subject` as its subject (OCI 1.1), with the
    /// descriptor the referrers API lists for it.
    pub fn add_referrer(
        &self,
        name: &str,
        subject: &str,
        digest: &str,
        descriptor: &serde_json::Value,
    ) -> io::Result<()> {
        let path = self
            .referrers_dir(name)
            .join(hex_of(subject)?)
            .join(hex_of(digest)?);
        write_atomic(&path, descriptor.to_string().as_bytes())
    }

    /// Descriptors of the manifests whose subject is `subject`, by digest.
    pub fn referrers(&self, name: &str, subject: &str) -> io::Result<Vec<serde_json::Value>> {
        let dir = self.referrers_dir(name).join(hex_of(subject)?);
        let mut names = list(&dir)?;
        names.sort();
        let mut out = Vec::new();
        for n in names {
            let Some(text) = not_found_is_none(std::fs::read(dir.join(&n)))? else {
                continue;
            };
            out.push(serde_json::from_slice(&text).map_err(io::Error::other)?);
        }
        Ok(out)
    }

    /// Deletes a manifest revision, every tag pointing at it and its referrer entries; false
    /// when it was not there.
    pub fn delete_manifest(&self, name: &str, digest: &str) -> io::Result<bool> {
        if !remove_if_present(&self.revision(name, digest)?)? {
            return Ok(false);
        }
        let hex = hex_of(digest)?;
        for subject in list(&self.referrers_dir(name))? {
            remove_if_present(&self.referrers_dir(name).join(subject).join(hex))?;
        }
        let tags_dir = self.repo(name).join(MANIFESTS).join("tags");
        for tag in list(&tags_dir)? {
            if self.tag(name, &tag)?.as_deref() == Some(digest) {
                remove_if_present(&tags_dir.join(&tag))?;
            }
        }
        Ok(true)
    }

    /// Every repository name, sorted.
    pub fn catalog(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        self.walk(&self.dir, "", &mut |name, _| out.push(name.to_string()))?;
        out.sort();
        Ok(out)
    }

    /// Digests of every blob and manifest some repository holds: what garbage collection keeps.
    pub fn referenced(&self) -> io::Result<HashSet<String>> {
        let mut keep = HashSet::new();
        let mut err = None;
        self.walk(&self.dir, "", &mut |_, dir| {
            for sub in [dir.join(LAYERS), dir.join(MANIFESTS).join("revisions")] {
                match list(&sub) {
                    Ok(names) => keep.extend(names.into_iter().map(|h| format!("sha256:{h}"))),
                    Err(e) => err = Some(e),
                }
            }
        })?;
        match err {
            Some(e) => Err(e),
            None => Ok(keep),
        }
    }

    /// Calls `f(name, dir)` for each repository below `dir` (whose name so far is `prefix`).
    fn walk(&self, dir: &Path, prefix: &str, f: &mut dyn FnMut(&str, &Path)) -> io::Result<()> {
        for child in list(dir)? {
            if child.starts_with('_') {
                continue;
            }
            let path = dir.join(&child);
            if !path.is_dir() {
                continue;
            }
            let name = if prefix.is_empty() {
                child
            } else {
                format!("{prefix}/{child}")
            };
            if self.exists(&name) {
                f(&name, &path);
            }
            self.walk(&path, &name, f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_tags_and_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let r = Repos::open(dir.path()).unwrap();
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        assert!(!r.exists("a"));
        assert_eq!(r.tags("a").unwrap(), None);
        r.link_blob("a/b", &d1).unwrap();
        r.put_manifest("a", &d2, "application/x").unwrap();
        r.set_tag("a", "v2", &d2).unwrap();
        r.set_tag("a", "v1", &d2).unwrap();
        assert!(r.has_blob("a/b", &d1) && !r.has_blob("a", &d1));
        assert_eq!(r.tags("a").unwrap().unwrap(), ["v1", "v2"]);
        assert_eq!(r.catalog().unwrap(), ["a", "a/b"]);
        assert_eq!(
            r.referenced().unwrap(),
            HashSet::from([d1.clone(), d2.clone()])
        );
        assert!(r.delete_manifest("a", &d2).unwrap());
        assert!(!r.delete_manifest("a", &d2).unwrap());
        assert_eq!(r.tags("a").unwrap().unwrap(), Vec::<String>::new());
        assert!(r.unlink_blob("a/b", &d1).unwrap());
        assert!(!r.has_blob("a/b", &d1));
    }
}
