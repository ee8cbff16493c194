//! Store-level tests on a real filesystem and a real redb database.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::digest::{hex_part, sha256_of};
use crate::testutil::{require_root, TarBuf};
use crate::{Error, ImportOptions, Reference, Store};

struct Env {
    dir: tempfile::TempDir,
    store: Store,
}

fn db(dir: &Path) -> Arc<redb::Database> {
    Arc::new(redb::Database::create(dir.join("meta.redb")).unwrap())
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root"), db(dir.path())).unwrap();
    Env { dir, store }
}

fn layer(marker: &str) -> Vec<u8> {
    let mut t = TarBuf::new();
    t.dir("./")
        .dir("etc/")
        .file("etc/hostname", marker.as_bytes())
        .file("bin/sh", b"#!/bin/true\n");
    t.finish()
}

fn opts(tag: Option<&str>) -> ImportOptions {
    let config = oci_spec::image::ConfigBuilder::default()
        .cmd(vec!["/bin/sh".to_string()])
        .env(vec!["A=1".to_string()])
        .build()
        .unwrap();
    ImportOptions {
        config,
        docker_fields: Default::default(),
        message: None,
        tag: tag.map(|t| Reference::parse(t).unwrap()),
    }
}

fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

impl Env {
    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
    fn blob(&self, digest: &str) -> std::path::PathBuf {
        self.root()
            .join("blobs/sha256")
            .join(hex_part(digest).unwrap())
    }
    /// A layer's index (imports, loads, pulls and commits keep one instead of its tar).
    fn index(&self, diff_id: &str) -> std::path::PathBuf {
        self.root()
            .join("layer-index")
            .join(hex_part(diff_id).unwrap())
    }
    fn snap(&self, chain: &str) -> std::path::PathBuf {
        self.root().join("snapshots").join(hex_part(chain).unwrap())
    }
}

#[test]
fn import_writes_record_config_blob_and_snapshot() {
    if !require_root("import_writes_record_config_blob_and_snapshot") {
        return;
    }
    let e = env();
    let tar = layer("one");
    let img = e
        .store
        .import(&mut tar.as_slice(), opts(Some("busybox")))
        .unwrap();

    assert!(hex_part(&img.id).is_some());
    let config_bytes = std::fs::read(e.blob(&img.id)).unwrap();
    assert_eq!(
        sha256_of(&config_bytes),
        img.id,
        "id is the digest of the stored config"
    );
    let json: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
    assert_eq!(json["architecture"], "amd64");
    assert_eq!(json["os"], "linux");
    assert_eq!(json["config"]["Cmd"][0], "/bin/sh");
    assert_eq!(json["config"]["Env"][0], "A=1");
    assert_eq!(json["rootfs"]["type"], "layers");
    let diff_id = sha256_of(&tar);
    assert_eq!(json["rootfs"]["diff_ids"][0], diff_id.as_str());
    assert_eq!(json["history"][0]["comment"], "Imported from -");
    assert_eq!(json["history"][0]["created_by"], "");
    assert!(json["created"].as_str().unwrap().ends_with('Z'));

    assert_eq!(img.repo_tags, vec!["busybox:latest".to_string()]);
    assert!(img.repo_digests.is_empty());
    assert_eq!(img.size, 3 + 12);
    assert!((img.created - chrono::Utc::now().timestamp()).abs() < 60);
    assert!(!e.blob(&diff_id).exists(), "no whole tar: an index");
    assert!(e.index(&diff_id).exists());
    let mut back = Vec::new();
    e.store
        .layer_tar(&diff_id)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, tar, "the index gives back the uncompressed tar");
    assert_eq!(
        std::fs::read(e.snap(&diff_id).join("etc/hostname")).unwrap(),
        b"one"
    );
    // Nothing temporary left behind.
    for d in ["blobs/sha256", "snapshots"] {
        for f in std::fs::read_dir(e.root().join(d)).unwrap() {
            assert!(!f
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".tmp-"));
        }
    }
    // The message option lands in history.
    let mut o = opts(None);
    o.message = Some("from test".into());
    let img2 = e.store.import(&mut tar.as_slice(), o).unwrap();
    assert_eq!(
        img2.config.history().as_ref().unwrap()[0]
            .comment()
            .as_deref(),
        Some("from test")
    );
    assert!(img2.repo_tags.is_empty());
}

#[test]
fn import_keeps_docker_only_config_fields() {
    if !require_root("import_keeps_docker_only_config_fields") {
        return;
    }
    let e = env();
    let mut o = opts(None);
    o.docker_fields.insert("Healthcheck".into(), serde_json::json!({"Test": ["NONE"]}));
    let img = e.store.import(&mut layer("hc").as_slice(), o).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(e.blob(&img.id)).unwrap()).unwrap();
    assert_eq!(json["config"]["Healthcheck"]["Test"][0], "NONE");
    assert_eq!(json["config"]["Cmd"][0], "/bin/sh", "the OCI fields stay");
    assert_eq!(img.docker_config.unwrap()["Healthcheck"]["Test"][0], "NONE");
}

#[test]
fn gzip_and_plain_share_one_layer() {
    if !require_root("gzip_and_plain_share_one_layer") {
        return;
    }
    let e = env();
    let tar = layer("gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let a = e.store.import(&mut tar.as_slice(), opts(None)).unwrap();
    let b = e.store.import(&mut gz.as_slice(), opts(None)).unwrap();
    assert_eq!(a.config.rootfs().diff_ids(), b.config.rootfs().diff_ids());
    assert_eq!(count(&e.root().join("snapshots")), 1);
    // 2 configs, and 1 layer index.
    assert_eq!(count(&e.root().join("blobs/sha256")), 2);
    assert_eq!(count(&e.root().join("layer-index")), 1);
}

#[test]
fn bad_input_is_rejected_and_leaves_nothing() {
    let e = env();
    let mut empty: &[u8] = b"";
    assert!(matches!(
        e.store.import(&mut empty, opts(None)),
        Err(Error::InvalidArchive(_))
    ));
    let junk = vec![b'x'; 2000];
    assert!(matches!(
        e.store.import(&mut junk.as_slice(), opts(None)),
        Err(Error::InvalidArchive(_))
    ));
    let mut digest_tag = opts(None);
    digest_tag.tag = Some(Reference::parse(&format!("x@{}", sha256_of(b""))).unwrap());
    let tar = layer("t");
    assert!(matches!(
        e.store.import(&mut tar.as_slice(), digest_tag),
        Err(Error::InvalidReference(_))
    ));
    assert_eq!(count(&e.root().join("snapshots")), 0);
    assert_eq!(count(&e.root().join("blobs/sha256")), 0);
    assert_eq!(count(&e.root().join("layer-index")), 0);
    assert!(e.store.list().unwrap().is_empty());
}

#[test]
fn resolve_by_id_prefix_and_every_reference_form() {
    if !require_root("resolve_by_id_prefix_and_every_reference_form") {
        return;
    }
    let e = env();
    let a = e
        .store
        .import(&mut layer("a").as_slice(), opts(Some("busybox")))
        .unwrap();
    let b = e
        .store
        .import(&mut layer("b").as_slice(), opts(Some("myreg:5000/x/y:v1")))
        .unwrap();
    let hex = hex_part(&a.id).unwrap();
    for name in [
        a.id.clone(),
        hex.to_string(),
        hex[..12].to_string(),
        format!("sha256:{}", &hex[..12]),
        "busybox".into(),
        "busybox:latest".into(),
        "library/busybox".into(),
        "docker.io/library/busybox:latest".into(),
    ] {
        assert_eq!(e.store.resolve(&name).unwrap().id, a.id, "{name}");
    }
    assert_eq!(e.store.resolve("myreg:5000/x/y:v1").unwrap().id, b.id);
    assert_eq!(b.repo_tags, vec!["myreg:5000/x/y:v1".to_string()]);
    // The shortest unique prefix works, down to one character.
    let hb = hex_part(&b.id).unwrap();
    let n = (1..=64).find(|&n| hex[..n] != hb[..n]).unwrap();
    assert_eq!(e.store.resolve(&hex[..n]).unwrap().id, a.id);
    assert_eq!(
        e.store.resolve(&format!("sha256:{}", &hb[..n])).unwrap().id,
        b.id
    );
    if n > 1 {
        // A prefix both share names neither.
        assert!(matches!(
            e.store.resolve(&hex[..n - 1]),
            Err(Error::ImageNotFound(_))
        ));
    }
    match e.store.resolve("nope:1") {
        Err(err @ Error::ImageNotFound(_)) => assert_eq!(err.to_string(), "No such image: nope:1"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        e.store.resolve("Bad Name"),
        Err(Error::ImageNotFound(_))
    ));
    let ids: Vec<_> = e.store.list().unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a.id) && ids.contains(&b.id));
}

#[test]
fn tag_untag_delete_free_only_unused_content() {
    if !require_root("tag_untag_delete_free_only_unused_content") {
        return;
    }
    let e = env();
    let shared = layer("shared");
    let diff = sha256_of(&shared);
    let a = e
        .store
        .import(&mut shared.as_slice(), opts(Some("a")))
        .unwrap();
    let b = e
        .store
        .import(&mut shared.as_slice(), opts(Some("b")))
        .unwrap();
    let own = layer("own");
    let c = e.store.import(&mut own.as_slice(), opts(None)).unwrap();

    // tag moves a reference; untag returns what it pointed at.
    let r = Reference::parse("a").unwrap();
    e.store.tag(&b.id, &r).unwrap();
    assert_eq!(e.store.resolve("a").unwrap().id, b.id);
    assert!(e.store.resolve(&a.id).unwrap().repo_tags.is_empty());
    let extra = Reference::parse("localhost:5000/extra:1").unwrap();
    e.store
        .tag(&hex_part(&c.id).unwrap()[..10], &extra)
        .unwrap();
    assert_eq!(
        e.store.resolve(&c.id).unwrap().repo_tags,
        vec!["localhost:5000/extra:1".to_string()]
    );
    let un = e.store.untag(&extra).unwrap();
    assert_eq!(un.id, c.id);
    assert!(un.repo_tags.is_empty());
    assert!(matches!(
        e.store.untag(&extra),
        Err(Error::ImageNotFound(_))
    ));
    assert!(matches!(
        e.store.tag("sha256:ffff", &extra),
        Err(Error::ImageNotFound(_))
    ));

    // Deleting a keeps the shared layer for b.
    e.store.delete(&a.id).unwrap();
    assert!(!e.blob(&a.id).exists());
    assert!(e.index(&diff).exists());
    assert!(e.snap(&diff).is_dir());
    assert!(matches!(
        e.store.resolve(&a.id),
        Err(Error::ImageNotFound(_))
    ));
    // Deleting b (tags a and b) frees the layer and the tags.
    e.store.delete(&hex_part(&b.id).unwrap()[..12]).unwrap();
    assert!(!e.index(&diff).exists());
    assert!(!e.snap(&diff).exists());
    // With the tag ("a" alone could match another image's ID prefix by chance).
    assert!(matches!(e.store.resolve("a:latest"), Err(Error::ImageNotFound(_))));
    assert!(matches!(e.store.resolve("b:latest"), Err(Error::ImageNotFound(_))));
    assert!(matches!(
        e.store.delete(&b.id),
        Err(Error::ImageNotFound(_))
    ));
    // c is untouched.
    assert!(e.snap(&sha256_of(&own)).is_dir());
    e.store.delete(&c.id).unwrap();
    assert_eq!(count(&e.root().join("snapshots")), 0);
    assert_eq!(count(&e.root().join("blobs/sha256")), 0);
    assert_eq!(count(&e.root().join("layer-index")), 0);
}

#[test]
fn open_removes_leftovers_of_a_crash_and_keeps_the_rest() {
    if !require_root("open_removes_leftovers_of_a_crash_and_keeps_the_rest") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let database = db(dir.path());
    let img = {
        let store = Store::open(&root, database.clone()).unwrap();
        store
            .import(&mut layer("keep").as_slice(), opts(Some("keep")))
            .unwrap()
    };
    // What a crash mid-import or mid-delete leaves: temp files, published but unrecorded content.
    let blobs = root.join("blobs/sha256");
    let snaps = root.join("snapshots");
    std::fs::write(blobs.join(".tmp-blob-1"), b"partial").unwrap();
    std::fs::write(
        blobs.join(hex_part(&sha256_of(b"orphan")).unwrap()),
        b"orphan",
    )
    .unwrap();
    std::fs::create_dir_all(snaps.join(".tmp-snap-1/etc")).unwrap();
    std::fs::create_dir_all(snaps.join(hex_part(&sha256_of(b"orphan")).unwrap())).unwrap();

    let store = Store::open(&root, database).unwrap();
    assert_eq!(count(&blobs), 1, "the config remains");
    assert_eq!(count(&root.join("layer-index")), 1, "and the layer's index");
    assert_eq!(count(&snaps), 1);
    let again = store.resolve("keep").unwrap();
    assert_eq!(again.id, img.id);
    assert_eq!(again.repo_tags, vec!["keep:latest".to_string()]);
}

#[test]
fn concurrent_imports_of_one_layer_agree() {
    if !require_root("concurrent_imports_of_one_layer_agree") {
        return;
    }
    let e = env();
    let store = Arc::new(e.store);
    let tar = Arc::new(layer("race"));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (s, t) = (store.clone(), tar.clone());
            std::thread::spawn(move || {
                s.import(&mut t.as_slice(), opts(Some(&format!("r{i}"))))
                    .map(|img| img.id)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    assert_eq!(count(&e.dir.path().join("root/snapshots")), 1);
    assert_eq!(store.list().unwrap().len(), 4);
}

#[test]
fn prepare_rootfs_gives_a_working_overlay() {
    if !require_root("prepare_rootfs_gives_a_working_overlay") {
        return;
    }
    use nix::mount::{mount, umount, MsFlags};
    let e = env();
    let img = e
        .store
        .import(&mut layer("rootfs").as_slice(), opts(Some("busybox")))
        .unwrap();
    assert!(matches!(
        e.store.prepare_rootfs("../x", &img),
        Err(Error::InvalidArgument(_))
    ));
    let mounts = e.store.prepare_rootfs("c1", &img).unwrap();
    assert_eq!(mounts.len(), 1);
    let m = &mounts[0];
    assert_eq!(m.kind, "overlay");
    let target = e.store.rootfs_dir("c1").unwrap().join("merged");
    let data = m.options.join(",");
    mount(
        Some(m.source.as_str()),
        &target,
        Some(m.kind.as_str()),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .unwrap();
    let read = std::fs::read(target.join("etc/hostname"));
    let wrote = std::fs::write(target.join("etc/new"), b"w");
    umount(&target).unwrap();
    assert_eq!(read.unwrap(), b"rootfs");
    wrote.unwrap();
    let upper = e.store.rootfs_dir("c1").unwrap().join("upper");
    assert_eq!(
        std::fs::read(upper.join("etc/new")).unwrap(),
        b"w",
        "writes land in upper"
    );
    assert!(
        !e.snap(&sha256_of(&layer("rootfs")))
            .join("etc/new")
            .exists(),
        "layer untouched"
    );
    e.store.remove_rootfs("c1").unwrap();
    assert!(!e.store.rootfs_dir("c1").unwrap().exists());
    e.store.remove_rootfs("c1").unwrap();
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
    check::<crate::Image>();
}
