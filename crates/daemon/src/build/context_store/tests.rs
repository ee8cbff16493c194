use super::*;
use std::io::Write;

impl ContextStore {
    /// A store with its own tarsum memo database.
    fn open(dir: &Path) -> anyhow::Result<ContextStore> {
        std::fs::create_dir_all(dir)?;
        let db = Arc::new(redb::Database::create(dir.join("tarsums.redb"))?);
        Self::open_with_db(dir, db)
    }

    fn ingest_tar(&self, body: &mut dyn Read) -> Result<Arc<ContextView>> {
        self.ingest_tar_for(body, "")
    }

    fn prune(&self) -> Result<u64> {
        self.prune_with(None, 0)
    }
}

fn store() -> (tempfile::TempDir, ContextStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = ContextStore::open(&dir.path().join("context")).unwrap();
    (dir, s)
}

/// A tar built entry by entry, with the docker CLI's header conventions by default.
struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> TarBuilder {
        TarBuilder(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    /// Appends with the name written raw (no cleaning by the tar crate).
    fn raw(mut self, name: &str, mut h: tar::Header, data: &[u8]) -> Self {
        let bytes = name.as_bytes();
        if bytes.len() < 100 {
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            self.0.append(&h, data).unwrap();
        } else {
            self.0.append_data(&mut h, name, data).unwrap();
        }
        self
    }

    fn file(self, name: &str, data: &[u8]) -> Self {
        let h = Self::header(tar::EntryType::Regular, 0o100644, data.len() as u64);
        self.raw(name, h, data)
    }

    fn dir(self, name: &str) -> Self {
        let h = Self::header(tar::EntryType::Directory, 0o040755, 0);
        self.raw(name, h, b"")
    }

    fn link(self, kind: tar::EntryType, name: &str, target: &str) -> Self {
        let mut h = Self::header(
            kind,
            if kind == tar::EntryType::Symlink {
                0o120777
            } else {
                0o100644
            },
            0,
        );
        h.set_link_name(target).unwrap();
        self.raw(name, h, b"")
    }

    fn special(self, kind: tar::EntryType, name: &str) -> Self {
        let h = Self::header(kind, 0o644, 0);
        self.raw(name, h, b"")
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn paths(m: &Manifest) -> Vec<&str> {
    m.entries.iter().map(|e| e.path.as_str()).collect()
}

/// Every path under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

use sha2::{Digest, Sha256};

#[test]
fn ingests_a_docker_cli_tar_with_tarsums_and_metadata() {
    let (_d, s) = store();
    let tar = TarBuilder::new()
        .file("Dockerfile", b"FROM busybox\n")
        .dir("dir/")
        .dir("dir/sub/")
        .file("dir/sub/x", b"x\n")
        .file("hello.txt", b"hello\n")
        .link(tar::EntryType::Symlink, "ln", "hello.txt")
        .finish();
    let view = s.ingest_tar(&mut &tar[..]).unwrap();
    assert_eq!(
        paths(&view.manifest),
        [
            "Dockerfile",
            "dir",
            "dir/sub",
            "dir/sub/x",
            "hello.txt",
            "ln"
        ]
    );
    // The hashes Docker 20.10 gave these (build-transcripts.md).
    let hello = view.manifest.get("hello.txt").unwrap();
    assert_eq!(
        hello.tarsum.as_deref(),
        Some("7d1b8e6c9123955c22ae5efea6309bc3436ed116b03932f650caae30c06ab651")
    );
    let under: Vec<String> = ["dir", "dir/sub", "dir/sub/x"]
        .iter()
        .map(|p| view.manifest.get(p).unwrap().tarsum.clone().unwrap())
        .collect();
    assert_eq!(
        berth_context::tarsum::dir_hash(&under),
        "dir:10b3b5f07c6fbaa136de2d9b30f7e60d7283527751bc6bca3a31b791fb963497"
    );
    assert_eq!(
        hello.digest.as_deref(),
        Some(format!("sha256:{}", sha(b"hello\n")).as_str())
    );
    assert_eq!(hello.mode, 0o100644);
    assert_eq!(hello.mtime_ns, 1_700_000_000_000_000_000);
    let ln = view.manifest.get("ln").unwrap();
    assert_eq!(
        (ln.kind, ln.linkname.as_str(), ln.mode),
        (EntryKind::Symlink, "hello.txt", 0o120777)
    );
    // Blobs carry the entry's metadata (COPY hard-links them when it matches).
    let blob = view.blob_path(hello.digest.as_deref().unwrap());
    assert_eq!(std::fs::read(&blob).unwrap(), b"hello\n");
    let meta = std::fs::metadata(&blob).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.mode(), meta.mtime(), meta.uid()),
        (0o100644, 1_700_000_000, 0)
    );
    assert_eq!(view.read_file("ln").unwrap(), b"hello\n");
    assert_eq!(view.dockerfile("").unwrap(), "FROM busybox\n");
    // Nothing left in tmp/; the manifest is stored under its ID.
    assert!(tree(&s.dir.join("tmp")).is_empty());
    // (No `.dockerignore`: the view shows the whole manifest, tarsums and all.)
    let stored = s
        .load_manifest(digest_hex(&view.manifest.id()).unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored, view.manifest);
}

#[test]
fn big_files_get_their_tarsum_from_the_memo_or_a_read_back() {
    let (_d, s) = store();
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
    let tar = TarBuilder::new().file("big", &big).finish();
    let first = s.ingest_tar(&mut &tar[..]).unwrap();
    let e = first.manifest.get("big").unwrap();
    let want = berth_context::tarsum::tarsum_of(e, &mut &big[..]).unwrap();
    assert_eq!(e.tarsum.as_deref(), Some(want.as_str()));
    // Again: the memo answers (same header fields, same digest).
    let again = s.ingest_tar(&mut &tar[..]).unwrap();
    assert_eq!(
        again.manifest.get("big").unwrap().tarsum.as_deref(),
        Some(want.as_str())
    );
    // A different mode: another tarsum, computed by reading the file back.
    let mut h = TarBuilder::header(tar::EntryType::Regular, 0o100755, big.len() as u64);
    h.set_path("big").unwrap();
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &big[..]).unwrap();
    let exec = s.ingest_tar(&mut &b.into_inner().unwrap()[..]).unwrap();
    let e = exec.manifest.get("big").unwrap();
    assert_ne!(e.tarsum.as_deref(), Some(want.as_str()));
    assert_eq!(
        e.tarsum,
        Some(berth_context::tarsum::tarsum_of(e, &mut &big[..]).unwrap())
    );
}

#[test]
fn sniffs_gzip_bzip2_and_xz() {
    let tar = TarBuilder::new()
        .file("Dockerfile", b"FROM scratch\n")
        .file("a", b"aaa")
        .finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&tar).unwrap();
    let mut xz =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
    xz.write_all(&tar).unwrap();
    let plain_id = {
        let (_d, s) = store();
        s.ingest_tar(&mut &tar[..]).unwrap().manifest.id()
    };
    for body in [
        gz.finish().unwrap(),
        bz.finish().unwrap(),
        xz.finish().unwrap(),
    ] {
        let (_d, s) = store();
        let view = s.ingest_tar(&mut &body[..]).unwrap();
        assert_eq!(view.manifest.id(), plain_id);
        assert_eq!(view.read_file("a").unwrap(), b"aaa");
    }
}

#[test]
fn hostile_names_stay_inside_the_context_as_dockers_chroot_untar_does() {
    let (d, s) = store();
    let tar = TarBuilder::new()
        .file("a/../../evil", b"1")
        .file("/abs/file", b"2")
        .file("./dot/x", b"3")
        .file("../../../../../../tmp/escape", b"4")
        .link(tar::EntryType::Symlink, "out", "../../../../etc/passwd")
        .finish();
    let view = s.ingest_tar(&mut &tar[..]).unwrap();
    assert_eq!(
        paths(&view.manifest),
        [
            "abs",
            "abs/file",
            "dot",
            "dot/x",
            "evil",
            "out",
            "tmp",
            "tmp/escape"
        ]
    );
    // Implied parents are directories Docker would create (0755), hashed as their path.
    let abs = view.manifest.get("abs").unwrap();
    assert_eq!(
        (abs.kind, abs.mode, abs.tarsum.as_deref()),
        (EntryKind::Dir, 0o040755, Some("abs"))
    );
    // Only the store's own directories exist: nothing was written by name.
    let mut files = tree(d.path());
    files.retain(|p| !p.starts_with("context/sha256/") && !p.starts_with("context/manifests/"));
    assert_eq!(
        files,
        [
            "context",
            "context/manifests",
            "context/sha256",
            "context/tarsums.redb",
            "context/tmp"
        ]
    );
    // The outward symlink is metadata; reading through it stays inside (and finds nothing).
    assert_eq!(
        view.read_file("out").unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

#[test]
fn devices_and_fifos_are_dropped_hard_links_share_content() {
    let (_d, s) = store();
    let tar = TarBuilder::new()
        .file("f", b"hello")
        .link(tar::EntryType::Link, "hl", "f")
        .special(tar::EntryType::Char, "null")
        .special(tar::EntryType::Block, "sda")
        .special(tar::EntryType::Fifo, "fifo")
        .finish();
    let view = s.ingest_tar(&mut &tar[..]).unwrap();
    assert_eq!(paths(&view.manifest), ["f", "hl"]);
    let (f, hl) = (
        view.manifest.get("f").unwrap(),
        view.manifest.get("hl").unwrap(),
    );
    assert_eq!(
        (hl.kind, hl.size, &hl.digest, hl.linkname.as_str()),
        (EntryKind::File, 5, &f.digest, "f")
    );
    // tarsum is over the hard link's own header, as Docker's.
    assert_ne!(hl.tarsum, f.tarsum);
    assert_eq!(view.read_file("hl").unwrap(), b"hello");
}

#[test]
fn broken_tars_fail_as_docker_and_leave_no_temp_files() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            TarBuilder::new()
                .link(tar::EntryType::Link, "hl", "../../etc/passwd")
                .finish(),
            "Error processing tar file(exit status 1): link /etc/passwd /hl: no such file or directory",
        ),
        (
            TarBuilder::new().file("a", b"x").file("a/b", b"y").finish(),
            "Error processing tar file(exit status 1): open /a/b: not a directory",
        ),
        (
            TarBuilder::new()
                .link(tar::EntryType::Symlink, "l", "/etc")
                .file("l/passwd", b"pwned")
                .finish(),
            "Error processing tar file(exit status 1): open /l/passwd: parent /l is a symbolic link",
        ),
    ];
    for (tar, want) in cases {
        let (_d, s) = store();
        let err = s.ingest_tar(&mut &tar[..]).err().expect(want);
        assert!(matches!(&err, Error::Internal(m) if m == want), "{err:?}");
        assert!(tree(&s.dir.join("tmp")).is_empty());
        assert!(tree(&s.dir.join("manifests")).is_empty());
    }
    // A tar cut short inside a file's content.
    let (_d, s) = store();
    let mut tar = TarBuilder::new().file("big", &[7u8; 10_000]).finish();
    tar.truncate(3000);
    let err = s.ingest_tar(&mut &tar[..]).err().unwrap();
    assert!(
        matches!(&err, Error::Internal(m) if m == "unexpected EOF"),
        "{err:?}"
    );
    assert!(tree(&s.dir.join("tmp")).is_empty());
    assert!(
        s.pins.counts.lock().unwrap().is_empty(),
        "a failed ingest keeps no lease"
    );
    // Not a tar at all, as Go's reader words it.
    let junk: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let err = s.ingest_tar(&mut &junk[..]).err().unwrap();
    assert!(
        matches!(&err, Error::Internal(m) if m == "archive/tar: invalid tar header"),
        "{err:?}"
    );
    let err = s.ingest_tar(&mut &junk[..100]).err().unwrap();
    assert!(
        matches!(&err, Error::Internal(m) if m == "unexpected EOF"),
        "{err:?}"
    );
    // An empty body is an empty context, as Docker takes it.
    let view = s.ingest_tar(&mut &b""[..]).unwrap();
    assert!(view.manifest.entries.is_empty());
    assert!(
        matches!(view.dockerfile(""), Err(Error::Internal(m)) if m == "Cannot locate specified Dockerfile: Dockerfile")
    );
}

#[test]
fn too_many_entries_are_refused() {
    let (_d, mut s) = store();
    s.max_entries = 100;
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..=100 {
        let mut h = TarBuilder::header(tar::EntryType::Directory, 0o040755, 0);
        h.set_path(format!("d{i}")).unwrap();
        h.set_cksum();
        b.append(&h, &b""[..]).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let err = s.ingest_tar(&mut &tar[..]).err().unwrap();
    assert!(matches!(err, Error::InvalidParameter(m) if m.contains("more than")));
}

#[test]
fn later_entries_replace_earlier_ones() {
    let (_d, s) = store();
    let tar = TarBuilder::new()
        .file("a", b"one")
        .file("a", b"two2")
        .dir("d/")
        .file("d/x", b"x")
        .file("d", b"now a file")
        .finish();
    let view = s.ingest_tar(&mut &tar[..]).unwrap();
    assert_eq!(paths(&view.manifest), ["a", "d"]);
    assert_eq!(view.read_file("a").unwrap(), b"two2");
    assert_eq!(view.read_file("d").unwrap(), b"now a file");
}

#[test]
fn dockerignore_takes_out_itself_and_the_dockerfile_only() {
    let (_d, s) = store();
    let tar = TarBuilder::new()
        .file(".dockerignore", b"secret\nDockerfile\n.dockerignore\n")
        .file("Dockerfile", b"FROM busybox\nCOPY secret /s\n")
        .file("secret", b"sec")
        .finish();
    let view = s.ingest_tar(&mut &tar[..]).unwrap();
    // A tar on stdin is not filtered by the CLI, and Docker keeps `secret` (checked on 20.10).
    assert_eq!(paths(&view.manifest), ["secret"]);
    assert_eq!(
        view.dockerfile("Dockerfile").unwrap(),
        "FROM busybox\nCOPY secret /s\n"
    );
    assert!(view.read_file(".dockerignore").is_ok());

    // A Dockerfile under another name: only that name leaves.
    let tar = TarBuilder::new()
        .file(".dockerignore", b"*.df\n")
        .file("build.df", b"FROM scratch\n")
        .file("other.df", b"x")
        .finish();
    let view = s.ingest_tar_for(&mut &tar[..], "build.df").unwrap();
    assert_eq!(paths(&view.manifest), [".dockerignore", "other.df"]);
    assert_eq!(view.dockerfile("build.df").unwrap(), "FROM scratch\n");
}

#[test]
fn dockerfile_lookup_follows_docker() {
    let (_d, s) = store();
    let tar = TarBuilder::new()
        .file("dockerfile", b"FROM a\n")
        .file("empty", b"")
        .dir("sub/")
        .file("sub/real", b"FROM b\n")
        .link(tar::EntryType::Symlink, "sub/df", "../sub/./real")
        .link(tar::EntryType::Symlink, "loop", "loop")
        .finish();
    let view = s.ingest_tar(&mut &tar[..]).unwrap();
    assert_eq!(view.dockerfile("").unwrap(), "FROM a\n");
    assert_eq!(view.dockerfile("Dockerfile").unwrap(), "FROM a\n");
    assert_eq!(view.dockerfile("sub/df").unwrap(), "FROM b\n");
    assert!(
        matches!(view.dockerfile("empty"), Err(Error::InvalidParameter(m)) if m == "the Dockerfile (empty) cannot be empty")
    );
    assert!(
        matches!(view.dockerfile("nope"), Err(Error::Internal(m)) if m == "Cannot locate specified Dockerfile: nope")
    );
    assert!(view.dockerfile("loop").is_err());
    assert_eq!(
        view.read_file("sub").unwrap_err().kind(),
        io::ErrorKind::IsADirectory
    );
}

/// A manifest as the berth CLI makes it.
fn entry(path: &str, content: Option<&[u8]>) -> Entry {
    Entry {
        path: path.into(),
        kind: if content.is_some() {
            EntryKind::File
        } else {
            EntryKind::Dir
        },
        mode: if content.is_some() {
            0o100644
        } else {
            0o040755
        },
        size: content.map_or(0, |c| c.len() as u64),
        mtime_ns: 1_600_000_000_000_000_000,
        uid: 0,
        gid: 0,
        linkname: String::new(),
        xattrs: Vec::new(),
        digest: content.map(|c| format!("sha256:{}", sha(c))),
        tarsum: None,
        implied: false,
    }
}

fn blobs_tar(contents: &[&[u8]]) -> Vec<u8> {
    let mut b = TarBuilder::new();
    for c in contents {
        b = b.file(&sha(c), c);
    }
    b.finish()
}

#[test]
fn register_upload_open() {
    let (_d, s) = store();
    let m = Manifest::new(vec![
        entry("Dockerfile", Some(b"FROM x\n")),
        entry("d", None),
        entry("d/a", Some(b"A")),
        entry("d/b", Some(b"A")),
    ]);
    let (id, missing) = s.register("k1", m.clone()).unwrap();
    assert_eq!(id, m.id());
    // Each missing content once, in path order.
    assert_eq!(
        missing,
        [
            format!("sha256:{}", sha(b"FROM x\n")),
            format!("sha256:{}", sha(b"A"))
        ]
    );
    assert!(
        matches!(s.open_manifest(&id, ""), Err(Error::Conflict(m)) if m == format!("build context {id} is not complete"))
    );
    assert!(matches!(
        s.open_manifest("sha256:unknown", ""),
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        s.open_manifest(&format!("sha256:{}", "0".repeat(64)), ""),
        Err(Error::Conflict(_))
    ));

    s.ingest_blobs(&id, &mut &blobs_tar(&[b"FROM x\n", b"A"])[..])
        .unwrap();
    let view = s.open_manifest(&id, "").unwrap();
    assert_eq!(view.dockerfile("").unwrap(), "FROM x\n");
    // The tarsums equal those a docker CLI tar of the same files gets.
    let tar = TarBuilder::new()
        .file("Dockerfile", b"FROM x\n")
        .dir("d/")
        .file("d/a", b"A")
        .file("d/b", b"A")
        .finish();
    let from_tar = s.ingest_tar(&mut &tar[..]).unwrap();
    for e in &view.manifest.entries {
        assert_eq!(
            e.tarsum,
            from_tar.manifest.get(&e.path).unwrap().tarsum,
            "{}",
            e.path
        );
    }
    // The blob got the metadata of the first entry using it.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(view.blob_path(&format!("sha256:{}", sha(b"A")))).unwrap();
    assert_eq!(meta.mtime(), 1_600_000_000);

    // Registering again: nothing missing.
    let (_, missing) = s.register("k1", m).unwrap();
    assert!(missing.is_empty());
}

#[test]
fn a_rebuild_reads_no_content_the_memo_has_the_tarsums() {
    let (_d, s) = store();
    let m = Manifest::new(vec![entry("f", Some(b"content"))]);
    let (id, _) = s.register("k", m.clone()).unwrap();
    s.ingest_blobs(&id, &mut &blobs_tar(&[b"content"])[..])
        .unwrap();
    let want = s.open_manifest(&id, "").unwrap().manifest.entries[0]
        .tarsum
        .clone();
    // Make the file unreadable in a way only a content read would notice: replace it with
    // garbage of the same name. The memo answers without reading it.
    let blob = s.blob_path(&sha(b"content"));
    std::fs::remove_file(&blob).unwrap();
    std::fs::write(&blob, b"garbage").unwrap();
    let mut touched = m.clone();
    touched.entries[0].mtime_ns += 5; // a touch: new manifest, same tarsum key
    let (id2, missing) = s.register("k", touched).unwrap();
    assert!(missing.is_empty() && id2 != id);
    assert_eq!(
        s.open_manifest(&id2, "").unwrap().manifest.entries[0].tarsum,
        want
    );
}

#[test]
fn blobs_mismatch_is_400_and_the_file_is_discarded() {
    let (_d, s) = store();
    let m = Manifest::new(vec![entry("f", Some(b"good"))]);
    let (id, _) = s.register("k", m).unwrap();
    // Right name and size, wrong content.
    let tar = TarBuilder::new().file(&sha(b"good"), b"evil").finish();
    let err = s.ingest_blobs(&id, &mut &tar[..]).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter(m) if m.contains("does not match its content")),
        "{err:?}"
    );
    assert!(!s.blob_path(&sha(b"good")).exists());
    assert!(tree(&s.dir.join("tmp")).is_empty());
    // Wrong size, a name the manifest does not have, a non-file entry, an unknown manifest.
    let tar = TarBuilder::new().file(&sha(b"good"), b"good!").finish();
    assert!(
        matches!(s.ingest_blobs(&id, &mut &tar[..]), Err(Error::InvalidParameter(m)) if m.contains("bytes"))
    );
    let tar = TarBuilder::new().file(&sha(b"other"), b"other").finish();
    assert!(
        matches!(s.ingest_blobs(&id, &mut &tar[..]), Err(Error::InvalidParameter(m)) if m.contains("is not a file of"))
    );
    let tar = TarBuilder::new()
        .link(tar::EntryType::Symlink, &sha(b"good"), "/etc/passwd")
        .finish();
    assert!(matches!(
        s.ingest_blobs(&id, &mut &tar[..]),
        Err(Error::InvalidParameter(_))
    ));
    let other = format!("sha256:{}", "1".repeat(64));
    assert!(matches!(
        s.ingest_blobs(&other, &mut &blobs_tar(&[b"good"])[..]),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(s.open_manifest(&id, ""), Err(Error::Conflict(_))));
    s.ingest_blobs(&id, &mut &blobs_tar(&[b"good"])[..])
        .unwrap();
    assert!(s.open_manifest(&id, "").is_ok());
}

#[test]
fn register_refuses_bad_keys_and_manifests() {
    let (_d, s) = store();
    let ok = Manifest::new(vec![entry("f", Some(b"x"))]);
    for key in ["", "../x", "a b"] {
        assert!(
            matches!(s.register(key, ok.clone()), Err(Error::InvalidParameter(_))),
            "{key:?}"
        );
    }
    let orphan = Manifest::new(vec![entry("d/f", Some(b"x"))]);
    assert!(
        matches!(s.register("k", orphan), Err(Error::InvalidParameter(m)) if m.contains("parent"))
    );
    let under_file = Manifest::new(vec![entry("d", Some(b"x")), entry("d/f", Some(b"x"))]);
    assert!(matches!(
        s.register("k", under_file),
        Err(Error::InvalidParameter(_))
    ));
    let escaping = Manifest {
        entries: vec![entry("../f", Some(b"x"))],
    };
    assert!(matches!(
        s.register("k", escaping),
        Err(Error::InvalidParameter(_))
    ));
    assert!(tree(&s.dir.join("manifests")).is_empty());
}

/// Registers a one-file manifest under `key` with its content uploaded.
fn synced(s: &ContextStore, key: &str, content: &[u8]) -> String {
    let (id, _) = s
        .register(key, Manifest::new(vec![entry("f", Some(content))]))
        .unwrap();
    s.ingest_blobs(&id, &mut &blobs_tar(&[content])[..])
        .unwrap();
    id
}

/// Makes a manifest look last used at `ns`.
fn age(s: &ContextStore, id: &str, ns: i64) {
    let hex = digest_hex(id).unwrap();
    let mut meta = s.load_meta(hex).unwrap();
    meta.last_used_ns = ns;
    s.save_meta(hex, &meta).unwrap();
}

#[test]
fn gc_keeps_newest_per_key_and_leased_files() {
    let (_d, s) = store();
    let v1 = synced(&s, "k", b"v1");
    let held = s.open_manifest(&v1, "").unwrap();
    let v2 = synced(&s, "k", b"v2");
    let v3 = synced(&s, "k", b"v3");
    let other = synced(&s, "j", b"other");
    s.gc().unwrap();
    // v1 is the oldest of three for "k" but a build holds it.
    for id in [&v1, &v2, &v3, &other] {
        assert!(
            s.load_manifest(digest_hex(id).unwrap()).unwrap().is_some(),
            "{id}"
        );
    }
    drop(held);
    s.gc().unwrap();
    assert!(s.load_manifest(digest_hex(&v1).unwrap()).unwrap().is_none());
    // Its file stays while the store is under its size limit (a later build may want it)...
    assert!(s.blob_path(&sha(b"v1")).exists());
    // ...and goes when the store is over it, before any kept manifest's files.
    s.set_max_size(1);
    let pinned = s.open_manifest(&v3, "").unwrap();
    s.gc().unwrap();
    assert!(!s.blob_path(&sha(b"v1")).exists());
    // Contexts used in the last minutes stay whatever the size (a build may be between its
    // upload and its start)...
    for id in [&v2, &v3, &other] {
        assert!(
            s.load_manifest(digest_hex(id).unwrap()).unwrap().is_some(),
            "{id}"
        );
    }
    // ...then least recently used manifests go, never the one in use.
    age(&s, &v2, 1);
    age(&s, &other, 2);
    age(&s, &v3, 0);
    s.gc().unwrap();
    assert!(s.load_manifest(digest_hex(&v2).unwrap()).unwrap().is_none());
    assert!(s
        .load_manifest(digest_hex(&other).unwrap())
        .unwrap()
        .is_none());
    assert!(s.blob_path(&sha(b"v3")).exists());
    assert!(s.open_manifest(&v3, "").is_ok());
    drop(pinned);
    // Tar ingests keep the newest three.
    s.set_max_size(DEFAULT_MAX_SIZE);
    let ids: Vec<String> = (0..4)
        .map(|i| {
            s.ingest_tar(
                &mut &TarBuilder::new()
                    .file("f", format!("{i}").as_bytes())
                    .finish()[..],
            )
            .unwrap()
            .manifest
            .id()
        })
        .collect();
    assert!(s
        .load_manifest(digest_hex(&ids[0]).unwrap())
        .unwrap()
        .is_none());
    assert!(ids[1..]
        .iter()
        .all(|id| s.load_manifest(digest_hex(id).unwrap()).unwrap().is_some()));
}

#[test]
fn prune_empties_the_store_but_what_a_build_holds_and_reports_bytes() {
    let (_d, s) = store();
    synced(&s, "k", &[1u8; 1000]);
    let held = s
        .ingest_tar(&mut &TarBuilder::new().file("Dockerfile", b"FROM x\n").finish()[..])
        .unwrap();
    let before = s.size();
    let usage = s.usage().unwrap();
    assert_eq!(
        usage.iter().map(|u| u.size).sum::<u64>(),
        before,
        "records add up to the store"
    );
    assert_eq!(usage.iter().filter(|u| u.in_use).count(), 1);
    let freed = s.prune().unwrap();
    assert_eq!(freed, before - s.size());
    assert!(freed >= 1000);
    assert_eq!(held.dockerfile("").unwrap(), "FROM x\n");
    drop(held);
    let rest = s.size();
    assert_eq!(s.prune().unwrap(), rest);
    assert_eq!(s.size(), 0);
    assert!(s.usage().unwrap().is_empty());
    assert_eq!(s.prune().unwrap(), 0);
}

#[test]
fn prune_until_keeps_recently_used_contexts() {
    let (_d, s) = store();
    let old = synced(&s, "a", b"old");
    s.open_manifest(&old, "").unwrap();
    let cutoff = now_ns();
    let recent = synced(&s, "b", b"recent");
    s.open_manifest(&recent, "").unwrap();
    assert!(s.prune_with(Some(cutoff), 0).unwrap() > 0);
    assert!(matches!(s.open_manifest(&old, ""), Err(Error::Conflict(_))));
    assert!(s.open_manifest(&recent, "").is_ok());
}

#[test]
fn open_sweeps_temp_files_a_crash_left() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("context");
    drop(ContextStore::open(&root).unwrap());
    std::fs::write(root.join("tmp/123-0-deadbeef"), b"half a file").unwrap();
    let s = ContextStore::open(&root).unwrap();
    assert!(tree(&s.dir.join("tmp")).is_empty());
}

/// The docker CLI's tar of the context behind the Docker 20.10 reference hashes in
/// berth_context::tarsum's tests: `a` with `b` a hard link to it, `sub/one` with `sub/two`
/// one, and `dir/keep/file` whose parents `.dockerignore` excluded (so not in the tar).
fn links_and_implied_tar() -> Vec<u8> {
    TarBuilder::new()
        .file(".dockerignore", b"dir\n!dir/keep/file\n")
        .file("Dockerfile", b"FROM busybox\n")
        .file("a", b"hi\n")
        .link(tar::EntryType::Link, "b", "a")
        .file("dir/keep/file", b"k\n")
        .dir("sub/")
        .file("sub/one", b"x\n")
        .link(tar::EntryType::Link, "sub/two", "sub/one")
        .finish()
}

/// The same context as the berth CLI's manifest describes it.
fn links_and_implied_manifest() -> Manifest {
    let link = |p: &str, to: &str, c: &[u8]| Entry {
        linkname: to.into(),
        ..entry(p, Some(c))
    };
    let implied = |p: &str| Entry {
        implied: true,
        ..entry(p, None)
    };
    Manifest::new(vec![
        entry(".dockerignore", Some(b"dir\n!dir/keep/file\n")),
        entry("Dockerfile", Some(b"FROM busybox\n")),
        entry("a", Some(b"hi\n")),
        link("b", "a", b"hi\n"),
        implied("dir"),
        implied("dir/keep"),
        entry("dir/keep/file", Some(b"k\n")),
        entry("sub", None),
        entry("sub/one", Some(b"x\n")),
        link("sub/two", "sub/one", b"x\n"),
    ])
}

#[test]
fn hard_links_and_implied_dirs_hash_alike_on_both_paths_and_as_docker() {
    let (_d, s) = store();
    let from_tar = s.ingest_tar(&mut &links_and_implied_tar()[..]).unwrap();
    let m = links_and_implied_manifest();
    let (id, missing) = s.register("k", m.clone()).unwrap();
    // The link's content is its target's: nothing more to send.
    assert!(missing.is_empty(), "{missing:?}");
    let fast = s.open_manifest(&id, "").unwrap();
    assert_eq!(paths(&fast.manifest), paths(&from_tar.manifest));
    for e in &fast.manifest.entries {
        let t = from_tar.manifest.get(&e.path).unwrap();
        assert_eq!(e.tarsum, t.tarsum, "{}", e.path);
        assert_eq!(
            (e.linkname.as_str(), e.implied, &e.digest),
            (t.linkname.as_str(), t.implied, &t.digest),
            "{}",
            e.path
        );
    }
    // Docker 20.10's hashes for `COPY b`, `COPY sub`, `COPY dir` over this context.
    let sum = |p: &str| fast.manifest.get(p).unwrap().tarsum.clone().unwrap();
    assert_eq!(
        berth_context::tarsum::file_hash(&sum("b")),
        "file:6b455142730e8027e5b8572179960b713894a79e85dd19720b5b7c51ae31d3db"
    );
    assert_eq!(
        berth_context::tarsum::dir_hash(&[sum("sub"), sum("sub/one"), sum("sub/two")]),
        "dir:b1306a1da61c4b5d0cf6aa50114ac047ef53809ad65e577cdb4803899397360b"
    );
    assert_eq!(
        berth_context::tarsum::dir_hash(&[sum("dir"), sum("dir/keep"), sum("dir/keep/file")]),
        "dir:09352b0cbbbe159bb355fed5aad67d8c11f619663cb2d49955145e1b75f73db4"
    );
    // COPY reads a hard link's content from its blob.
    assert_eq!(fast.read_file("b").unwrap(), b"hi\n");
    assert_eq!(
        std::fs::read(
            fast.blob_path(
                fast.manifest
                    .get("sub/two")
                    .unwrap()
                    .digest
                    .as_deref()
                    .unwrap()
            )
        )
        .unwrap(),
        b"x\n"
    );
}

#[test]
fn uploaded_links_get_header_tarsums_and_targets_must_be_files() {
    let (_d, s) = store();
    // The link comes first in path order: the upload must not feed it the content.
    let m = Manifest::new(vec![
        Entry {
            linkname: "b".into(),
            ..entry("a", Some(b"same"))
        },
        entry("b", Some(b"same")),
    ]);
    let (id, missing) = s.register("k", m.clone()).unwrap();
    assert_eq!(missing.len(), 1);
    s.ingest_blobs(&id, &mut &blobs_tar(&[b"same"])[..])
        .unwrap();
    let view = s.open_manifest(&id, "").unwrap();
    let a = view.manifest.get("a").unwrap();
    assert_eq!(
        a.tarsum,
        Some(berth_context::tarsum::tarsum_of(a, &mut io::empty()).unwrap())
    );
    let b = view.manifest.get("b").unwrap();
    assert_eq!(
        b.tarsum,
        Some(berth_context::tarsum::tarsum_of(b, &mut &b"same"[..]).unwrap())
    );
    for bad in [
        vec![Entry {
            linkname: "nope".into(),
            ..entry("a", Some(b"x"))
        }],
        vec![
            entry("d", None),
            Entry {
                linkname: "d".into(),
                ..entry("l", Some(b"x"))
            },
        ],
        vec![
            Entry {
                linkname: "c".into(),
                ..entry("a", Some(b"x"))
            },
            Entry {
                linkname: "a".into(),
                ..entry("c", Some(b"x"))
            },
        ],
    ] {
        let err = s.register("k", Manifest::new(bad)).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidParameter(m) if m.contains("is not a file in the manifest")),
            "{err}"
        );
    }
}

#[test]
fn both_paths_hide_what_dockerignore_says_of_itself_and_the_dockerfile() {
    let (_d, s) = store();
    let ignore: &[u8] = b"*.df\n.dockerignore\n";
    let tar = TarBuilder::new()
        .file(".dockerignore", ignore)
        .file("build.df", b"FROM scratch\n")
        .file("other.df", b"x")
        .file("keep", b"k")
        .finish();
    let from_tar = s.ingest_tar_for(&mut &tar[..], "build.df").unwrap();
    let m = Manifest::new(vec![
        entry(".dockerignore", Some(ignore)),
        entry("build.df", Some(b"FROM scratch\n")),
        entry("other.df", Some(b"x")),
        entry("keep", Some(b"k")),
    ]);
    let (id, _) = s.register("k", m).unwrap();
    s.ingest_blobs(
        &id,
        &mut &blobs_tar(&[ignore, b"FROM scratch\n", b"x", b"k"])[..],
    )
    .unwrap();
    let fast = s.open_manifest(&id, "build.df").unwrap();
    // The CLI already left out what else matched (other.df here was sent only to check
    // that the daemon takes out nothing but those two).
    assert_eq!(paths(&fast.manifest), ["keep", "other.df"]);
    assert_eq!(paths(&fast.manifest), paths(&from_tar.manifest));
    assert_eq!(fast.dockerfile("build.df").unwrap(), "FROM scratch\n");
    assert_eq!(fast.read_file(".dockerignore").unwrap(), ignore);
    // Another Dockerfile name: build.df stays in the context.
    let other = s.open_manifest(&id, "").unwrap();
    assert_eq!(paths(&other.manifest), ["build.df", "keep", "other.df"]);
}

#[test]
fn a_blob_path_is_always_inside_the_store() {
    let (_dir, s) = store();
    let tar = TarBuilder::new().file("f", b"x").finish();
    let view = s.ingest_tar(&mut &tar[..]).unwrap();
    let blobs = s.blobs_dir();
    let bad = [
        "/etc/shadow",
        "sha256:/etc/shadow",
        "../../etc/shadow",
        "sha256:../x",
        "",
    ];
    for bad in bad {
        let p = view.blob_path(bad);
        assert!(
            p.starts_with(&blobs) && p.parent() == Some(&blobs),
            "{bad}: {p:?}"
        );
        assert!(!p.exists(), "{bad}");
    }
}
