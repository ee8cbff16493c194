//! Image formats on `load`: OCI image layouts without Docker's `manifest.json` (as Docker 25+,
//! skopeo and buildah write them; the Docker 20.10 here cannot, so the test writes its own),
//! gzip and zstd layers, indexes with several platforms, and Docker's error when none fits.
//! Also: `system df` against what `du` finds on disk, and what a kill -9 mid-load leaves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_e2e::{repo_root, Daemon};
use serde_json::{json, Value};

/// Runs `cmd` with `input` on stdin; returns stdout, asserting success.
fn pipe(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd:?} failed");
    out.stdout
}

fn sha256(data: &[u8]) -> String {
    let out = pipe(&mut Command::new("sha256sum"), data);
    format!("sha256:{}", String::from_utf8_lossy(&out[..64]))
}

fn zstd(data: &[u8]) -> Vec<u8> {
    pipe(Command::new("zstd").args(["-q", "-c"]), data)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    pipe(Command::new("gzip").args(["-n", "-c"]), data)
}

/// GOARCH of this machine, as image configs spell it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no test platform for {other}"),
    }
}

fn foreign_arch() -> &'static str {
    if host_arch() == "s390x" {
        "ppc64le"
    } else {
        "s390x"
    }
}

/// An OCI image layout directory, written blob by blob, then tarred.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: PathBuf) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout { dir }
    }

    fn blob(&self, media_type: &str, data: &[u8]) -> Value {
        let digest = sha256(data);
        std::fs::write(self.dir.join("blobs/sha256").join(&digest[7..]), data).unwrap();
        json!({"mediaType": media_type, "digest": digest, "size": data.len()})
    }

    fn json_blob(&self, media_type: &str, v: &Value) -> Value {
        self.blob(media_type, &serde_json::to_vec(v).unwrap())
    }

    /// An image manifest for `arch`; `layers` are (media type, stored bytes, uncompressed tar).
    /// Returns the manifest's descriptor and the image ID (the config's digest).
    fn image(&self, arch: &str, layers: &[(&str, Vec<u8>, Vec<u8>)]) -> (Value, String) {
        let diff_ids: Vec<String> = layers.iter().map(|(_, _, tar)| sha256(tar)).collect();
        let config = self.json_blob(
            "application/vnd.oci.image.config.v1+json",
            &json!({
                "architecture": arch, "os": "linux",
                "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }),
        );
        let layer_descs: Vec<Value> = layers
            .iter()
            .map(|(mt, bytes, _)| self.blob(mt, bytes))
            .collect();
        let manifest = self.json_blob(
            "application/vnd.oci.image.manifest.v1+json",
            &json!({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config, "layers": layer_descs,
            }),
        );
        let id = config["digest"].as_str().unwrap().to_string();
        (manifest, id)
    }

    fn index(&self, entries: Vec<Value>) -> Value {
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries})
    }

    /// Writes `index.json` with `entries` and tars the layout to `out`.
    fn archive(&self, entries: Vec<Value>, out: &Path) {
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&self.index(entries)).unwrap(),
        )
        .unwrap();
        let st = Command::new("tar")
            .arg("-C")
            .arg(&self.dir)
            .arg("-cf")
            .arg(out)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
    }
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

/// The test image's root filesystem (busybox) as a tar.
fn busybox_rootfs() -> Vec<u8> {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/mkimage.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A layer adding /etc/motd and whiting out /etc/group. Its headers leave uid and gid empty,
/// as some tools do; Docker's Go unpacker reads that as 0, and so must berth.
fn top_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("etc/motd", &b"from a zstd layer\n"[..]),
        ("etc/.wh.group", &b""[..]),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn image_count(d: &Daemon) -> usize {
    d.ok(&["images", "-aq"]).lines().count()
}

fn store_entries(d: &Daemon) -> Vec<String> {
    let mut names: Vec<String> = ["blobs/sha256", "snapshots"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(d.data_root.join(dir)).unwrap())
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn oci_layouts_load_with_zstd_layers_and_the_hosts_platform() {
    let d = Daemon::start();
    let work = d.root.path().join("oci");
    let rootfs = busybox_rootfs();
    let top = top_layer();
    let layers = [
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            gzip(&rootfs),
            rootfs.clone(),
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            zstd(&top),
            top.clone(),
        ),
    ];
    let before = store_entries(&d);

    // A nested index: the top entry is an index naming the image, holding a manifest list
    // whose other platform's layer is not in the archive (it must never be read).
    let l = Layout::new(work.join("multi"));
    let (ours, id) = l.image(host_arch(), &layers);
    let (theirs, _) = l.image(
        foreign_arch(),
        &[(
            "application/vnd.oci.image.layer.v1.tar",
            vec![],
            b"absent".to_vec(),
        )],
    );
    std::fs::remove_file(l.dir.join("blobs/sha256").join(&sha256(b"")[7..])).unwrap();
    let inner = l.json_blob(
        "application/vnd.oci.image.index.v1+json",
        &l.index(vec![
            with(
                theirs,
                "platform",
                json!({"os": "linux", "architecture": foreign_arch()}),
            ),
            with(
                ours.clone(),
                "platform",
                json!({"os": "linux", "architecture": host_arch()}),
            ),
        ]),
    );
    let archive = work.join("multi.tar");
    l.archive(
        vec![with(inner, "annotations", json!({"io.containerd.image.name": "docker.io/library/ocimulti:1", "org.opencontainers.image.ref.name": "1"}))],
        &archive,
    );
    let r = d.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "Loaded image: ocimulti:1"),
        "{}",
        r.stderr
    );
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Id}}", "ocimulti:1"]),
        id
    );
    // Both layers apply: the zstd one adds a file and hides one of the gzip one's.
    assert_eq!(
        d.ok(&["run", "--rm", "ocimulti:1", "cat", "/etc/motd"]),
        "from a zstd layer"
    );
    let r = d.berth(&["run", "--rm", "ocimulti:1", "ls", "/etc/group"]);
    assert_ne!(r.code, 0, "the whiteout hides /etc/group: {}", r.stdout);

    // The same manifest, unnamed, through berth and gzip'd as a whole: untagged.
    let l2 = Layout::new(work.join("bare"));
    let (bare, bare_id) = l2.image(host_arch(), &layers);
    assert_eq!(bare_id, id);
    let archive = work.join("bare.tar.gz");
    let plain = work.join("bare.tar");
    l2.archive(
        vec![with(
            bare,
            "annotations",
            json!({"org.opencontainers.image.ref.name": "latest"}),
        )],
        &plain,
    );
    std::fs::write(&archive, gzip(&std::fs::read(&plain).unwrap())).unwrap();
    assert_eq!(
        d.ok(&["load", "-i", archive.to_str().unwrap()]),
        format!("Loaded image ID: {id}")
    );

    // An index with nothing for this host: Docker's (containerd's) error, nothing stored.
    let l3 = Layout::new(work.join("foreign"));
    let (arm, _) = l3.image(foreign_arch(), &layers);
    let list = l3.json_blob(
        "application/vnd.oci.image.index.v1+json",
        &l3.index(vec![with(
            arm,
            "platform",
            json!({"os": "linux", "architecture": foreign_arch()}),
        )]),
    );
    let digest = list["digest"].as_str().unwrap().to_string();
    let archive = work.join("foreign.tar");
    l3.archive(
        vec![with(
            list,
            "annotations",
            json!({"io.containerd.image.name": "docker.io/library/nothere:1"}),
        )],
        &archive,
    );
    let images = image_count(&d);
    let r = d.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "Error response from daemon: no match for platform in manifest {digest}: not found"
        )
    );
    let r = d.berth(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no match for platform in manifest"),
        "{}",
        r.stderr
    );
    assert_eq!(image_count(&d), images);

    // A zstd blob that is not what its descriptor says: refused, nothing kept.
    let l4 = Layout::new(work.join("tampered"));
    let (m, _) = l4.image(
        host_arch(),
        &[(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            zstd(&top),
            top.clone(),
        )],
    );
    let mut other = top.clone();
    other[512] ^= 1; // the first byte of motd's content: still a valid tar, another digest
    std::fs::write(
        l4.dir.join("blobs/sha256").join(&sha256(&zstd(&top))[7..]),
        zstd(&other),
    )
    .unwrap();
    let archive = work.join("tampered.tar");
    l4.archive(
        vec![with(
            m,
            "annotations",
            json!({"io.containerd.image.name": "docker.io/library/tampered:1"}),
        )],
        &archive,
    );
    let r = d.berth(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("does not match its descriptor"),
        "{}",
        r.stderr
    );
    assert!(d.berth(&["image", "inspect", "tampered:1"]).code != 0);

    // `import` takes a zstd tarball too (Docker's DetectCompression knows its magic number).
    let zimp = work.join("rootfs.tar.zst");
    std::fs::write(&zimp, zstd(&rootfs)).unwrap();
    d.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        zimp.to_str().unwrap(),
        "zimported:1",
    ]);
    assert_eq!(
        d.ok(&["run", "--rm", "zimported:1", "/bin/echo", "ok"]),
        "ok"
    );
    d.ok(&["rmi", "zimported:1"]);

    // Removing the image frees its blobs and snapshots: the store is as before the loads.
    d.ok(&["rmi", "ocimulti:1"]);
    assert_eq!(store_entries(&d), before);
}

/// `du -sb` of `paths` less the directories themselves: `system df` counts what files take
/// (Docker's `directory.Size`: apparent sizes, hard links once), not the directory entries.
fn du_files(paths: &[PathBuf]) -> u64 {
    let out = Command::new("du").arg("-sbc").args(paths).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let total: u64 = text
        .lines()
        .last()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = Command::new("find")
        .args(paths)
        .args(["-type", "d", "-printf", "%s\n"])
        .output()
        .unwrap();
    let dirs: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse::<u64>().unwrap())
        .sum();
    total - dirs
}

#[test]
fn system_df_accounts_for_every_byte_of_images_containers_and_volumes() {
    let d = Daemon::start();
    // Two images sharing their base layer (the OCI one is busybox's layer plus one), a
    // stopped container with a writable layer, a volume.
    let rootfs = busybox_rootfs();
    let top = top_layer();
    let l = Layout::new(d.root.path().join("oci"));
    let (m, _) = l.image(
        host_arch(),
        &[
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                gzip(&rootfs),
                rootfs.clone(),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                zstd(&top),
                top.clone(),
            ),
        ],
    );
    let archive = d.root.path().join("two.tar");
    l.archive(
        vec![with(
            m,
            "annotations",
            json!({"io.containerd.image.name": "docker.io/library/second:1"}),
        )],
        &archive,
    );
    d.ok(&["load", "-i", archive.to_str().unwrap()]);
    d.ok(&[
        "run", "--name", "writer", "-v", "dfvol:/data", "busybox", "sh", "-c",
        "head -c 1234567 /dev/zero > /big; ln /big /big2; ln -s /big /link; rm /etc/group; head -c 54321 /dev/zero > /data/f",
    ]);
    let out = Command::new("curl")
        .args(["-sf", "--unix-socket"])
        .arg(&d.socket)
        .arg("http://berth/v1.41/system/df")
        .output()
        .unwrap();
    assert!(out.status.success());
    let df: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sum = |key: &str, field: &str| -> u64 {
        df[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.pointer(field).and_then(Value::as_u64).unwrap_or(0))
            .sum()
    };
    let reported = df["LayersSize"].as_u64().unwrap()
        + sum("Containers", "/SizeRw")
        + sum("Volumes", "/UsageData/Size");

    let root = &d.data_root;
    let mut paths = vec![root.join("blobs/sha256"), root.join("layer-index"), root.join("snapshots")];
    for entry in std::fs::read_dir(root.join("containers-rootfs")).unwrap() {
        paths.push(entry.unwrap().path().join("upper"));
    }
    let mountpoint = d
        .docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", "dfvol"])
        .stdout
        .trim()
        .to_string();
    paths.push(PathBuf::from(mountpoint));
    // Exact: blobs, layer indexes and snapshots are all the images hold, `upper` all a container writes, and
    // no file is hard-linked across them. What else is under the data root is not usage
    // `docker system df` reports: the metadata database, container configs and logs.
    assert_eq!(reported, du_files(&paths), "df: {df}");
    // The container's writable layer: 1234567 bytes (linked twice, counted once), the
    // symlink's 4, an empty whiteout for /etc/group, and at most the empty mount points
    // the runtime makes.
    let rw = sum("Containers", "/SizeRw");
    assert!((1_234_571..1_234_571 + 4096).contains(&rw), "{rw}");
    // The shared base layer (its snapshot and its tar's index) is counted once in the
    // total, and as shared in both images.
    let images = df["Images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{df}");
    let shared: Vec<u64> = images
        .iter()
        .map(|i| i["SharedSize"].as_u64().unwrap())
        .collect();
    let base = sha256(&rootfs)[7..].to_string();
    let base_files = [root.join("snapshots").join(&base), root.join("layer-index").join(&base)];
    assert_eq!(shared[0], du_files(&base_files), "{df}");
    assert_eq!(shared[0], shared[1], "{df}");
    let sizes: u64 = images.iter().map(|i| i["Size"].as_u64().unwrap()).sum();
    assert_eq!(
        sizes - shared[0],
        df["LayersSize"].as_u64().unwrap(),
        "{df}"
    );
}

/// A berthd killed in the middle of a load leaves only what the next start removes: no temp
/// files or directories, no blob or snapshot that no image uses.
#[test]
fn a_load_killed_midway_leaves_nothing_after_restart() {
    let mut d = Daemon::start();
    let work = d.root.path().join("oci");
    // Big enough that the kill lands mid-load most of the time; the assertions hold wherever
    // it lands.
    let mut big = tar::Builder::new(Vec::new());
    for i in 0..40 {
        let data: Vec<u8> = (0..1_000_000u32)
            .map(|x| (x.wrapping_mul(2654435761).wrapping_add(i) >> 13) as u8)
            .collect();
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        big.append_data(&mut h, format!("data/{i}"), data.as_slice())
            .unwrap();
    }
    let big = big.into_inner().unwrap();
    let l = Layout::new(work.join("big"));
    let (m, _) = l.image(
        host_arch(),
        &[(
            "application/vnd.oci.image.layer.v1.tar+zstd",
            zstd(&big),
            big.clone(),
        )],
    );
    let archive = work.join("big.tar");
    l.archive(
        vec![with(
            m,
            "annotations",
            json!({"io.containerd.image.name": "docker.io/library/big:1"}),
        )],
        &archive,
    );
    let before = store_entries(&d);

    let mut load = d
        .berth_cmd(&["load", "-i", archive.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the daemon has started writing (its extraction directory exists), then kill it.
    let _ = berth_e2e::eventually(30, || {
        std::fs::read_dir(d.data_root.join("snapshots"))
            .unwrap()
            .any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            || d.berth(&["image", "inspect", "big:1"]).code == 0
    });
    d.kill_daemon(libc::SIGKILL);
    let _ = load.wait();
    d.spawn();

    let after = store_entries(&d);
    assert!(after.iter().all(|p| !p.contains("/.tmp-")), "{after:?}");
    let finished = d.berth(&["image", "inspect", "big:1"]).code == 0;
    eprintln!(
        "the kill landed {}",
        if finished {
            "after the load"
        } else {
            "during the load"
        }
    );
    if finished {
        // The load finished before the kill: the image is whole, and removing it frees all.
        assert_eq!(
            after.len(),
            before.len() + 3,
            "config, layer tar, snapshot: {after:?}"
        );
        d.ok(&["rmi", "big:1"]);
        assert_eq!(store_entries(&d), before);
    } else {
        assert_eq!(after, before, "an interrupted load leaves nothing");
    }
}
