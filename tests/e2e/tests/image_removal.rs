//! How images go: `rmi -f` of an image stopped containers use (Docker deletes the image, the
//! containers keep its layers until they go), an `rmi` during a `save` (the save finishes),
//! imports kept as layer indexes, and image inspect's `GraphDriver` keys. Each expectation
//! was checked against dockerd 20.10 with the same commands.

use berth_e2e::Daemon;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// A one-layer rootfs tarball with the busybox binary (to run) and `bytes` of data only this
/// image has, so its layer is its own.
fn unique_tar(d: &Daemon, name: &str, bytes: usize) -> String {
    let dir = d.root.path().join(format!("src-{name}"));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", dir.join("bin/sh")).unwrap();
    let data: Vec<u8> = (0..bytes)
        .map(|i| (i * 7 + name.len() * 13) as u8)
        .collect();
    std::fs::write(dir.join(name), data).unwrap();
    let tar = d.root.path().join(format!("{name}.tar"));
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar.display().to_string()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn hex(id: &str) -> &str {
    id.trim_start_matches("sha256:")
}

#[test]
fn import_keeps_a_layer_index_and_save_rebuilds_the_exact_tar() {
    let d = Daemon::start();
    let tar = unique_tar(&d, "imported", 300_000);
    d.ok(&["import", &tar, "imp:v1"]);
    let diff = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .RootFS.Layers 0}}",
        "imp:v1",
    ]);
    let diff_hex = hex(&diff).to_string();
    assert!(
        names_in(&d.data_root.join("layer-index")).contains(&diff_hex),
        "an index for the layer"
    );
    assert!(
        !names_in(&d.data_root.join("blobs/sha256")).contains(&diff_hex),
        "no whole tar blob"
    );
    // The layer in a save is the tar the diff ID names, rebuilt from the index.
    let out = d.berth_cmd(&["save", "imp:v1"]).output().unwrap();
    assert!(out.status.success());
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut found = false;
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == format!("blobs/sha256/{diff_hex}") {
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            assert_eq!(format!("{:x}", Sha256::digest(&bytes)), diff_hex);
            assert_eq!(
                bytes,
                std::fs::read(&tar).unwrap(),
                "the imported tar, byte for byte"
            );
            found = true;
        }
    }
    assert!(found, "the layer is in the archive");
}

#[test]
fn rmi_force_deletes_an_image_a_stopped_container_uses_and_its_layers_go_with_it() {
    let d = Daemon::start();
    let tar = unique_tar(&d, "held", 200_000);
    d.ok(&["import", "--change", "CMD [\"sh\"]", &tar, "held:v1"]);
    let id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "held:v1"]);
    let c = d.ok(&[
        "create",
        "--name",
        "holder",
        "held:v1",
        "sh",
        "-c",
        "cat /held | wc -c",
    ]);
    let snapshots_before = names_in(&d.data_root.join("snapshots"));

    // Without -f: Docker's conflict, nothing changes.
    let r = d.docker(&["rmi", &id]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains(&format!(
            "(must be forced) - image is being used by stopped container {}",
            &c[..12]
        )),
        "{}",
        r.stderr
    );
    // With -f: untagged and deleted, as Docker prints it (no layer lines: the container
    // still holds them).
    let r = d.docker(&["rmi", "-f", "held:v1"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, format!("Untagged: held:v1\nDeleted: {id}\n").as_str()),
        "{}",
        r.stderr
    );
    assert!(!d.ok(&["images", "-a", "--no-trunc", "-q"]).contains(&id));
    let r = d.docker(&["image", "inspect", &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("No such image"), "{}", r.stderr);
    // The container: its image's id in ps (the name no longer names it), in inspect.
    assert_eq!(
        d.ok(&[
            "ps",
            "-a",
            "--filter",
            "name=holder",
            "--format",
            "{{.Image}}"
        ]),
        &hex(&id)[..12]
    );
    assert_eq!(
        d.ok(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            "name=holder",
            "--format",
            "{{.Image}}"
        ]),
        id
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Image}} {{.Config.Image}}", "holder"]),
        format!("{id} held:v1")
    );
    // system df counts no image; the container is still there.
    let df = d
        .docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
        .stdout;
    assert!(df.contains("Images 1\nContainers 1\n"), "{df}");
    let df = d.ok(&["system", "df", "-v"]);
    let (images, containers) = df.split_once("Containers space usage").unwrap();
    assert!(!images.contains(&hex(&id)[..12]), "{df}");
    assert!(
        containers.contains(&hex(&id)[..12]),
        "the container's IMAGE column: {df}"
    );
    // It still starts and reads its layer, also after a daemon restart.
    assert_eq!(d.ok(&["start", "-a", "holder"]), "200000");
    assert_eq!(
        names_in(&d.data_root.join("snapshots")),
        snapshots_before,
        "the layer stays"
    );
    // Committing it fails as in Docker: the image it names is gone.
    assert_eq!(d.berth(&["commit", "holder", "child:v1"]).code, 1);
    let mut d = d;
    d.kill_daemon(libc::SIGTERM);
    d.spawn();
    assert_eq!(d.ok(&["start", "-a", "holder"]), "200000");
    assert_eq!(
        names_in(&d.data_root.join("snapshots")),
        snapshots_before,
        "kept across a restart"
    );
    // The container goes: so do the layer and the config.
    d.ok(&["rm", "holder"]);
    let busybox = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{index .RootFS.Layers 0}}",
        "busybox",
    ]);
    assert_eq!(
        names_in(&d.data_root.join("snapshots")),
        [hex(&busybox).to_string()]
    );
    assert!(!names_in(&d.data_root.join("blobs/sha256")).contains(&hex(&id).to_string()));
}

#[test]
fn rmi_during_a_save_leaves_the_save_whole_then_frees_the_layers() {
    let d = Daemon::start();
    // Two big layers: the save blocks on the first while nobody reads, and the second has
    // not been opened yet when the image is removed.
    let base = unique_tar(&d, "base", 16 << 20);
    d.ok(&["import", &base, "savebase:v1"]);
    let cid = d.ok(&["create", "savebase:v1", "sh"]);
    let top = unique_tar(&d, "top", 16 << 20);
    d.ok(&[
        "cp",
        &format!(
            "{}/.",
            Path::new(&top).parent().unwrap().join("src-top").display()
        ),
        &format!("{cid}:/"),
    ]);
    d.ok(&["commit", &cid, "saved:v1"]);
    d.ok(&["rm", &cid]);
    let layers = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{len .RootFS.Layers}}",
        "saved:v1",
    ]);
    assert_eq!(layers, "2");
    let snapshots_before = names_in(&d.data_root.join("snapshots")).len();

    // Both images: the second one's config is read after the first one's layers.
    let mut save = d
        .berth_cmd(&["save", "saved:v1", "savebase:v1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = save.stdout.take().unwrap();
    // Once bytes arrive the save has begun (and holds its layers).
    let mut head = vec![0u8; 512];
    stdout.read_exact(&mut head).unwrap();
    let r = d.berth(&["rmi", "saved:v1", "savebase:v1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(save.wait().unwrap().success(), "the save finished");
    head.extend(rest);
    // The archive is whole: it loads back, layers checked against their digests.
    let archive = d.root.path().join("saved.tar");
    std::fs::write(&archive, &head).unwrap();
    let r = d.berth(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "saved:v1",
            "sh",
            "-c",
            "cat /top /base | wc -c"
        ]),
        (32u64 << 20).to_string()
    );
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}", "savebase"]),
        "savebase"
    );
    // Removed again: nothing of them stays once no save holds them.
    d.ok(&["rmi", "saved:v1", "savebase:v1"]);
    assert_eq!(
        names_in(&d.data_root.join("snapshots")).len(),
        snapshots_before - 2
    );
}

#[test]
fn image_inspect_names_overlay2_directories_as_docker() {
    let d = Daemon::start();
    let keys = |name: &str| {
        let out = d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.GraphDriver.Name}} {{json .GraphDriver.Data}}",
            name,
        ]);
        let (driver, data) = out.split_once(' ').unwrap();
        let data: serde_json::Map<String, serde_json::Value> = serde_json::from_str(data).unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        format!("{driver} {}", keys.join(" "))
    };
    // dockerd 20.10: a one-layer image has no LowerDir.
    assert_eq!(keys("busybox"), "overlay2 MergedDir UpperDir WorkDir");
    let cid = d.ok(&["create", "busybox", "touch", "/x"]);
    d.ok(&["start", "-a", &cid]);
    d.ok(&["commit", &cid, "two:v1"]);
    assert_eq!(
        keys("two:v1"),
        "overlay2 LowerDir MergedDir UpperDir WorkDir"
    );
    d.ok(&["rm", &cid]);
}
