//! Docker 20.10's classic-builder content hashes (design §3).
//!
//! The daemon runs every context tar through `pkg/tarsum` (Version1) and keeps, per file, the
//! sha256 of its selected tar header fields followed by its content. `COPY`/`ADD` then name
//! their sources `file:<tarsum>`, `dir:<sha256 of the sorted tarsums under it>` or
//! `multi:<sha256 of the source hashes>`, and those strings are part of the cache key and the
//! image history, so they must come out byte-identical.

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::manifest::{Entry, EntryKind};

/// The tar header fields tarsum Version1 hashes (mtime is not one of them).
#[derive(Debug, Clone, Copy)]
pub struct TarsumHeader<'a> {
    /// The name as in the tar: directories end in '/'.
    pub name: &'a str,
    /// Mode with the type bits (decimal in the hash: 33188 for 0o100644).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// b'0' file, b'1' hard link, b'2' symlink, b'5' directory.
    pub typeflag: u8,
    pub linkname: &'a str,
    pub xattrs: &'a [(String, Vec<u8>)],
}

/// A hasher already fed with `h`'s fields; feed the content, then finalize to hex.
pub fn header_hasher(h: &TarsumHeader) -> Sha256 {
    let mut s = Sha256::new();
    let mut field = |k: &str, v: &[u8]| {
        s.update(k.as_bytes());
        s.update(v);
    };
    field("name", h.name.as_bytes());
    field("mode", h.mode.to_string().as_bytes());
    field("uid", h.uid.to_string().as_bytes());
    field("gid", h.gid.to_string().as_bytes());
    field("size", h.size.to_string().as_bytes());
    field("typeflag", &[h.typeflag]);
    field("linkname", h.linkname.as_bytes());
    // tarsum blanks uname/gname (compatibility with Go < 1.10 archives).
    field("uname", b"");
    field("gname", b"");
    field("devmajor", b"0");
    field("devminor", b"0");
    let mut xattrs: Vec<&(String, Vec<u8>)> = h.xattrs.iter().collect();
    xattrs.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in xattrs {
        field(k, v);
    }
    s
}

/// The tar name the docker CLI gives `e` (directories end in '/').
pub fn tar_name(e: &Entry) -> String {
    match e.kind {
        EntryKind::Dir => format!("{}/", e.path),
        _ => e.path.clone(),
    }
}

/// The tar typeflag of `e`.
pub fn typeflag(e: &Entry) -> u8 {
    match e.kind {
        EntryKind::File if e.is_hard_link() => b'1',
        EntryKind::File => b'0',
        EntryKind::Dir => b'5',
        EntryKind::Symlink => b'2',
    }
}

/// Whether `e`'s tarsum covers content: a file's does; a hard link's is its header alone
/// (the tar entry has size 0), as are directories' and symlinks'.
pub fn hashes_content(e: &Entry) -> bool {
    e.kind == EntryKind::File && !e.is_hard_link()
}

/// The hasher for `e`'s header, as the docker CLI's tar entry for it reads (not meaningful
/// for an implied directory, which has no header: see `tarsum_of`).
pub fn tarsum_header(e: &Entry) -> Sha256 {
    let name = tar_name(e);
    header_hasher(&TarsumHeader {
        name: &name,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        size: if hashes_content(e) { e.size } else { 0 },
        typeflag: typeflag(e),
        linkname: &e.linkname,
        xattrs: &e.xattrs,
    })
}

/// The tarsum (hex) of `e` with the content read from `content` (read only when
/// `hashes_content`). An implied directory's is its path: Docker's tarsum has no record of
/// it and `Hash` answers with the path it was asked for.
pub fn tarsum_of(e: &Entry, content: &mut dyn Read) -> std::io::Result<String> {
    if e.implied {
        return Ok(e.path.clone());
    }
    let mut h = tarsum_header(e);
    if hashes_content(e) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = content.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// `file:<tarsum>`: the source hash of a single file.
pub fn file_hash(tarsum: &str) -> String {
    format!("file:{tarsum}")
}

/// `dir:<h>` from the tarsums of every entry under a directory, its own entry included (the
/// context root has none: `COPY . /x` hashes just the entries). Sorted here, as Docker does,
/// whatever order they come in.
pub fn dir_hash(child_tarsums: &[String]) -> String {
    let mut sorted: Vec<&str> = child_tarsums.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    format!("dir:{}", joined_sha256(&sorted))
}

/// `multi:<h>` from several source hashes (`file:…`/`dir:…`), in source order.
pub fn multi_hash(hashes: &[String]) -> String {
    let v: Vec<&str> = hashes.iter().map(String::as_str).collect();
    format!("multi:{}", joined_sha256(&v))
}

fn joined_sha256(parts: &[&str]) -> String {
    hex::encode(Sha256::digest(parts.join(",").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, mode: u32, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            size,
            mtime_ns: 0,
            uid: 0,
            gid: 0,
            linkname: String::new(),
            xattrs: vec![],
            digest: None,
            tarsum: None,
            implied: false,
        }
    }

    fn sum(e: &Entry, content: &[u8]) -> String {
        tarsum_of(e, &mut &content[..]).unwrap()
    }

    /// build-transcripts.md: `COPY hello.txt /app/` on Docker 20.10.
    #[test]
    fn file_hash_matches_docker() {
        let e = entry("hello.txt", EntryKind::File, 0o100644, 6);
        assert_eq!(
            file_hash(&sum(&e, b"hello\n")),
            "file:7d1b8e6c9123955c22ae5efea6309bc3436ed116b03932f650caae30c06ab651"
        );
    }

    /// build-transcripts.md: `ADD dir /app/dir` with dir/, dir/sub/, dir/sub/x.
    #[test]
    fn dir_hash_matches_docker() {
        let sums = vec![
            sum(&entry("dir", EntryKind::Dir, 0o040755, 0), b""),
            sum(&entry("dir/sub", EntryKind::Dir, 0o040755, 0), b""),
            sum(&entry("dir/sub/x", EntryKind::File, 0o100644, 2), b"x\n"),
        ];
        assert_eq!(
            dir_hash(&sums),
            "dir:10b3b5f07c6fbaa136de2d9b30f7e60d7283527751bc6bca3a31b791fb963497"
        );
    }

    /// Checked on dockerd 20.10: `COPY . /all/` and `COPY hello.txt dir /m/` over the
    /// transcripts' context (Dockerfile below, `.dockerignore` = "dir/y").
    #[test]
    fn context_root_and_multi_match_docker() {
        let dockerfile =
            b"FROM busybox\nCOPY hello.txt /app/\nCOPY . /all/\nCOPY hello.txt dir /m/\n";
        let f = |p: &str, c: &[u8]| sum(&entry(p, EntryKind::File, 0o100644, c.len() as u64), c);
        let d = |p: &str| sum(&entry(p, EntryKind::Dir, 0o040755, 0), b"");
        let dir = vec![d("dir"), d("dir/sub"), f("dir/sub/x", b"x\n")];
        let mut all = dir.clone();
        all.extend([
            f(".dockerignore", b"dir/y\n"),
            f("Dockerfile", dockerfile),
            f("hello.txt", b"hello\n"),
        ]);
        assert_eq!(
            dir_hash(&all),
            "dir:085e3ccccc7d17036f321fd68371609fb8708927b18dc1cd62d8e53c8d384e0a"
        );
        assert_eq!(
            multi_hash(&[file_hash(&f("hello.txt", b"hello\n")), dir_hash(&dir)]),
            "multi:aa50580119c6affac549edb6bec4bf940301daab39d39f578a0b5169f15f3b2c"
        );
    }

    #[test]
    fn mtime_is_not_hashed_but_mode_and_xattrs_are() {
        let a = entry("f", EntryKind::File, 0o100644, 1);
        let mut b = a.clone();
        b.mtime_ns = 12345;
        assert_eq!(sum(&a, b"x"), sum(&b, b"x"));
        b.mode = 0o100755;
        assert_ne!(sum(&a, b"x"), sum(&b, b"x"));
        let mut c = a.clone();
        c.xattrs = vec![("security.capability".into(), vec![1, 2])];
        assert_ne!(sum(&a, b"x"), sum(&c, b"x"));
    }

    #[test]
    fn multi_keeps_source_order() {
        let (a, b) = ("file:a".to_string(), "dir:b".to_string());
        assert_ne!(multi_hash(&[a.clone(), b.clone()]), multi_hash(&[b, a]));
        assert_eq!(
            multi_hash(&["x".into()]),
            format!("multi:{}", hex::encode(Sha256::digest(b"x")))
        );
    }

    /// Checked on dockerd 20.10 (`DOCKER_BUILDKIT=0 docker build`): context `a` = "hi\n" with
    /// `b` a hard link to it, `sub/one` = "x\n" with `sub/two` a link to it, `dir/keep/file`
    /// = "k\n" and `.dockerignore` = "dir\n!dir/keep/file\n" (so `dir` and `dir/keep` are
    /// only implied); `COPY b /b`, `COPY sub /sub`, `COPY dir /d`, `COPY dir/keep /k`,
    /// `COPY a b /m/`.
    #[test]
    fn hard_links_and_implied_dirs_match_docker() {
        let link = |p: &str, to: &str| Entry {
            linkname: to.into(),
            ..entry(p, EntryKind::File, 0o100644, 3)
        };
        let f = |p: &str, c: &[u8]| sum(&entry(p, EntryKind::File, 0o100644, c.len() as u64), c);
        let implied = |p: &str| Entry {
            implied: true,
            ..entry(p, EntryKind::Dir, 0o040755, 0)
        };
        // A hard link's tarsum is its header's: size 0, typeflag '1', the first path; its
        // content is never read.
        let b = link("b", "a");
        assert_eq!((typeflag(&b), hashes_content(&b)), (b'1', false));
        let b_sum = tarsum_of(&b, &mut std::io::repeat(b'!').take(1 << 20)).unwrap();
        assert_eq!(
            file_hash(&b_sum),
            "file:6b455142730e8027e5b8572179960b713894a79e85dd19720b5b7c51ae31d3db"
        );
        assert_eq!(
            file_hash(&f("a", b"hi\n")),
            "file:44fdb488ba091c424bb85514ad4f8505736c7296d8346737a050670e007dbccb"
        );
        assert_eq!(
            multi_hash(&[file_hash(&f("a", b"hi\n")), file_hash(&b_sum)]),
            "multi:2fd96035f3aff894747c81e984a55c7c7939eb02b523f85500cd54c0d2f96f72"
        );
        let sub = vec![
            sum(&entry("sub", EntryKind::Dir, 0o040755, 0), b""),
            f("sub/one", b"x\n"),
            sum(&link("sub/two", "sub/one"), b""),
        ];
        assert_eq!(
            dir_hash(&sub),
            "dir:b1306a1da61c4b5d0cf6aa50114ac047ef53809ad65e577cdb4803899397360b"
        );
        // Implied directories hash as their paths.
        assert_eq!(sum(&implied("dir/keep"), b""), "dir/keep");
        let keep = f("dir/keep/file", b"k\n");
        assert_eq!(
            dir_hash(&[
                sum(&implied("dir"), b""),
                sum(&implied("dir/keep"), b""),
                keep.clone()
            ]),
            "dir:09352b0cbbbe159bb355fed5aad67d8c11f619663cb2d49955145e1b75f73db4"
        );
        assert_eq!(
            dir_hash(&[sum(&implied("dir/keep"), b""), keep]),
            "dir:4a1e984be083c144c85ce8895412556277be6e6048f45c2d1860f055cb972600"
        );
    }
}
