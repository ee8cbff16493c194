//! The context walk of the docker CLI (`archive.TarWithOptions` over the context directory):
//! lexical order, parents before children, symlinks not followed, `.dockerignore` applied,
//! an excluded directory still entered (but not listed) when an exception could match inside.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::dockerignore::Ignore;
use crate::manifest::{Entry, EntryKind};

/// The entries of the context at `root` in the order the docker CLI puts them in its tar, each
/// with its host path. `digest` is left `None`; uid/gid are 0 as the CLI sends them.
/// Sockets, FIFOs and devices are left out.
/// A file with more than one link is a hard link (`linkname` = the first path of its inode
/// that the walk took), as the docker CLI's tar sends it.
pub fn walk(root: &Path, ignore: &Ignore) -> io::Result<Vec<(Entry, PathBuf)>> {
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    walk_dir(root, "", ignore, &mut seen, &mut out)?;
    Ok(out)
}

/// (device, inode) → the first path taken of a file with several links.
type SeenFiles = HashMap<(u64, u64), String>;

fn walk_dir(
    dir: &Path,
    rel: &str,
    ignore: &Ignore,
    seen: &mut SeenFiles,
    out: &mut Vec<(Entry, PathBuf)>,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|d| d.map(|d| d.file_name()))
        .collect::<io::Result<_>>()?;
    // filepath.Walk sorts names by their bytes.
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let Some(name_str) = name.to_str() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("file name is not UTF-8: {}", dir.join(&name).display()),
            ));
        };
        let rel_path = if rel.is_empty() {
            name_str.to_string()
        } else {
            format!("{rel}/{name_str}")
        };
        let host = dir.join(&name);
        let md = fs::symlink_metadata(&host)?;
        let excluded = ignore.matches(&rel_path);
        if md.is_dir() {
            if excluded {
                if ignore.could_match_inside(&rel_path) {
                    walk_dir(&host, &rel_path, ignore, seen, out)?;
                }
                continue;
            }
            out.push((entry_for(&rel_path, &host, &md)?, host.clone()));
            walk_dir(&host, &rel_path, ignore, seen, out)?;
        } else if !excluded && (md.is_file() || md.file_type().is_symlink()) {
            let mut e = entry_for(&rel_path, &host, &md)?;
            // docker's archive `SeenFiles`: only files it sends count, so the first path
            // of an inode is the first one not excluded.
            if md.is_file() && md.nlink() > 1 {
                match seen.get(&(md.dev(), md.ino())) {
                    Some(first) => e.linkname = first.clone(),
                    None => {
                        seen.insert((md.dev(), md.ino()), rel_path.clone());
                    }
                }
            }
            out.push((e, host));
        }
    }
    Ok(())
}

/// The manifest entry for one host file (no digest; a file is never a hard link here: that
/// takes the walk's memory of earlier paths).
pub fn entry_for(rel_path: &str, host: &Path, md: &fs::Metadata) -> io::Result<Entry> {
    let ft = md.file_type();
    let (kind, size, linkname) = if ft.is_symlink() {
        let target = fs::read_link(host)?;
        let target = target.to_str().map(str::to_string).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("symlink target is not UTF-8: {}", host.display()),
            )
        })?;
        (EntryKind::Symlink, 0, target)
    } else if ft.is_dir() {
        (EntryKind::Dir, 0, String::new())
    } else {
        (EntryKind::File, md.len(), String::new())
    };
    Ok(Entry {
        path: rel_path.to_string(),
        kind,
        mode: md.mode(),
        size,
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        uid: 0,
        gid: 0,
        linkname,
        xattrs: security_capability(host)?,
        digest: None,
        tarsum: None,
        implied: false,
    })
}

/// The `security.capability` xattr, the only one the docker CLI puts in its tar.
fn security_capability(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    const NAME: &str = "security.capability";
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let c_name = CString::new(NAME).expect("no NUL");
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and buf is valid for buf.len() bytes.
    let n = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(vec![]),
            _ => Err(err),
        };
    }
    buf.truncate(n as usize);
    Ok(vec![(NAME.to_string(), buf)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn paths(root: &Path, ignore: &str) -> Vec<String> {
        walk(root, &Ignore::parse(ignore).unwrap())
            .unwrap()
            .into_iter()
            .map(|(e, _)| e.path)
            .collect()
    }

    #[test]
    fn walks_in_docker_order_with_ignore_rules() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["a", "a/b", "dir/keep", "dir/drop", "z"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        for f in [
            "a.txt",
            "a/b/c",
            "dir/keep/file",
            "dir/keep/other",
            "dir/drop/x",
            "z/y.log",
        ] {
            fs::write(r.join(f), f).unwrap();
        }
        symlink("a.txt", r.join("link")).unwrap();
        assert_eq!(
            paths(r, ""),
            [
                "a",
                "a/b",
                "a/b/c",
                "a.txt",
                "dir",
                "dir/drop",
                "dir/drop/x",
                "dir/keep",
                "dir/keep/file",
                "dir/keep/other",
                "link",
                "z",
                "z/y.log"
            ]
        );
        assert_eq!(
            paths(r, "dir\n!dir/keep/file\n**/*.log\na/b\n"),
            ["a", "a.txt", "dir/keep/file", "link", "z"]
        );
    }

    #[test]
    fn entries_carry_metadata() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, "hello\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o750)).unwrap();
        symlink("f", t.path().join("l")).unwrap();
        let got = walk(t.path(), &Ignore::default()).unwrap();
        let (file, host) = &got[0];
        assert_eq!(
            (file.kind, file.mode, file.size),
            (EntryKind::File, 0o100750, 6)
        );
        assert_eq!(host, &f);
        assert_eq!((file.uid, file.gid), (0, 0));
        let link = &got[1].0;
        assert_eq!(
            (link.kind, link.mode & 0o170000, link.linkname.as_str()),
            (EntryKind::Symlink, 0o120000, "f")
        );
    }

    #[test]
    fn hard_links_name_the_first_path_taken() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        fs::create_dir(r.join("d")).unwrap();
        fs::write(r.join("b"), "x").unwrap();
        fs::hard_link(r.join("b"), r.join("a")).unwrap();
        fs::hard_link(r.join("b"), r.join("d/c")).unwrap();
        fs::write(r.join("skip"), "y").unwrap();
        fs::hard_link(r.join("skip"), r.join("z")).unwrap();
        fs::write(r.join("single"), "s").unwrap();
        let got = walk(r, &Ignore::parse("skip\n").unwrap()).unwrap();
        let links: Vec<(&str, &str, bool)> = got
            .iter()
            .map(|(e, _)| (e.path.as_str(), e.linkname.as_str(), e.is_hard_link()))
            .collect();
        // Walk order: a (first), b, d, d/c; `skip` is excluded, so `z` is the first of its
        // inode the tar sends: a plain file.
        assert_eq!(
            links,
            [
                ("a", "", false),
                ("b", "a", true),
                ("d", "", false),
                ("d/c", "a", true),
                ("single", "", false),
                ("z", "", false)
            ]
        );
        let b = &got[1].0;
        assert_eq!((b.kind, b.size), (EntryKind::File, 1));
    }
}
