//! `save`: the archive holds the store's blobs unchanged (so IDs survive), Docker's
//! manifest.json and repositories, and an OCI layout; the docker CLI gets the same bytes.

use berth_e2e::{tempdir::TempDir, Daemon};
use std::process::Command;

fn sha256_of_member(archive: &std::path::Path, member: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("tar -xOf '{}' '{member}' | sha256sum", archive.display()))
        .output()
        .unwrap();
    format!("sha256:{}", String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or(""))
}

fn member(archive: &std::path::Path, name: &str) -> String {
    let out = Command::new("tar").arg("-xOf").arg(archive).arg(name).output().unwrap();
    assert!(out.status.success(), "{name} missing from the archive");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn save_writes_dockers_format_with_unchanged_blobs() {
    let d = Daemon::start();
    let tmp = TempDir::new();
    d.ok(&["tag", "busybox", "saved:v1"]);
    let archive = tmp.path().join("saved.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), "saved:v1"]);

    let id = d.ok(&["inspect", "-f", "{{.Id}}", "saved:v1"]);
    let manifest: serde_json::Value = serde_json::from_str(&member(&archive, "manifest.json")).unwrap();
    let entry = &manifest[0];
    assert_eq!(entry["RepoTags"], serde_json::json!(["saved:v1"]));
    let config = entry["Config"].as_str().unwrap();
    assert_eq!(sha256_of_member(&archive, config), id, "the config is the image ID's blob");
    let diff_ids = d.ok(&["inspect", "-f", "{{json .RootFS.Layers}}", "saved:v1"]);
    let layer = entry["Layers"][0].as_str().unwrap();
    assert!(diff_ids.contains(&sha256_of_member(&archive, layer)), "{diff_ids}");

    let repositories: serde_json::Value = serde_json::from_str(&member(&archive, "repositories")).unwrap();
    assert!(repositories["saved"]["v1"].is_string(), "{repositories}");
    let index: serde_json::Value = serde_json::from_str(&member(&archive, "index.json")).unwrap();
    assert_eq!(index["manifests"][0]["annotations"]["io.containerd.image.name"], "docker.io/library/saved:v1");
    assert_eq!(member(&archive, "oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#);

    // The docker CLI through berthd gets the very same archive.
    let via_docker = tmp.path().join("via-docker.tar");
    let r = d.docker(&["save", "-o", via_docker.to_str().unwrap(), "saved:v1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read(&archive).unwrap(), std::fs::read(&via_docker).unwrap());

    let r = d.berth(&["save", "-o", tmp.path().join("none.tar").to_str().unwrap(), "nosuch"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("No such image: nosuch"), "{}", r.stderr);
    assert!(!tmp.path().join("none.tar").exists(), "no archive for a failed save");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2, "no temp file left behind");
}

/// Interoperability with a real Docker Engine: an image saved by berth loads into Docker and
/// runs, one saved by Docker loads into berth and runs, and IDs stay the same both ways.
#[test]
fn images_move_between_berth_and_docker() {
    let d = Daemon::start();
    let docker = berth_e2e::Dockerd::start();
    let tmp = TempDir::new();

    let from_berth = tmp.path().join("from-berth.tar");
    d.ok(&["tag", "busybox", "berthmade:v1"]);
    d.ok(&["save", "-o", from_berth.to_str().unwrap(), "berthmade:v1"]);
    let r = docker.docker(&["load", "-i", from_berth.to_str().unwrap()]);
    assert_eq!((r.code, r.stdout.trim()), (0, "Loaded image: berthmade:v1"), "{}", r.stderr);
    let r = docker.docker(&["run", "--rm", "berthmade:v1", "echo", "berth image in docker"]);
    assert_eq!(r.stdout, "berth image in docker\n", "{}", r.stderr);
    assert_eq!(docker.docker(&["inspect", "-f", "{{.Id}}", "berthmade:v1"]).stdout.trim(), d.ok(&["inspect", "-f", "{{.Id}}", "busybox"]));

    // An image made by Docker (its own import, so its own ID), saved by Docker.
    let rootfs = tmp.path().join("rootfs.tar");
    let r = Command::new("tar").arg("-cf").arg(&rootfs).args(["-C", "/", "bin/busybox"]).output().unwrap();
    assert!(r.status.success());
    let r = docker.docker(&["import", "--change", "CMD [\"/bin/busybox\", \"echo\", \"docker image in berth\"]", rootfs.to_str().unwrap(), "dockermade:v2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let from_docker = tmp.path().join("from-docker.tar");
    let r = docker.docker(&["save", "-o", from_docker.to_str().unwrap(), "dockermade:v2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.ok(&["load", "-i", from_docker.to_str().unwrap()]), "Loaded image: dockermade:v2");
    assert_eq!(d.ok(&["run", "--rm", "dockermade:v2"]), "docker image in berth");
    assert_eq!(d.ok(&["inspect", "-f", "{{.Id}}", "dockermade:v2"]), docker.docker(&["inspect", "-f", "{{.Id}}", "dockermade:v2"]).stdout.trim());
}

/// A bad archive is refused and leaves the store as it was.
#[test]
fn load_refuses_bad_archives_and_leaves_nothing() {
    let d = Daemon::start();
    let tmp = TempDir::new();
    let good = tmp.path().join("good.tar");
    d.ok(&["save", "-o", good.to_str().unwrap(), "busybox"]);
    d.ok(&["rmi", "busybox"]);
    let blobs = d.data_root.join("blobs/sha256");
    let count = || std::fs::read_dir(&blobs).unwrap().count();
    let before = count();

    // Truncated.
    let bytes = std::fs::read(&good).unwrap();
    let truncated = tmp.path().join("truncated.tar");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    // A layer whose content does not match the diff ID its config names.
    let unpacked = tmp.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    assert!(Command::new("tar").arg("-xf").arg(&good).arg("-C").arg(&unpacked).status().unwrap().success());
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let layer = unpacked.join(manifest[0]["Layers"][0].as_str().unwrap());
    let mut tampered = std::fs::read(&layer).unwrap();
    tampered.extend_from_slice(&[0u8; 1024]);
    std::fs::write(&layer, tampered).unwrap();
    let mismatch = tmp.path().join("mismatch.tar");
    assert!(Command::new("tar").arg("-cf").arg(&mismatch).arg("-C").arg(&unpacked).arg(".").status().unwrap().success());
    // A manifest that points out of the archive.
    std::fs::write(unpacked.join("manifest.json"), r#"[{"Config":"../../../etc/passwd","RepoTags":["evil:1"],"Layers":[]}]"#).unwrap();
    let escape = tmp.path().join("escape.tar");
    assert!(Command::new("tar").arg("-cf").arg(&escape).arg("-C").arg(&unpacked).arg(".").status().unwrap().success());

    for (archive, message) in [(&truncated, ""), (&mismatch, "does not match its diff ID"), (&escape, "unsafe path in manifest")] {
        let r = d.berth(&["load", "-i", archive.to_str().unwrap()]);
        assert_eq!(r.code, 1, "{}", archive.display());
        assert!(r.stderr.contains(message), "{}: {}", archive.display(), r.stderr);
        assert_eq!(d.ok(&["images", "-q"]), "", "no image from {}", archive.display());
        assert_eq!(count(), before, "no blob left by {}", archive.display());
    }
    // The good archive still loads, with its ID.
    assert_eq!(d.ok(&["load", "-i", good.to_str().unwrap()]), "Loaded image: busybox:latest");
    assert_eq!(d.ok(&["run", "--rm", "busybox", "echo", "back"]), "back");
}
