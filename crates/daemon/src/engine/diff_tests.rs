//! The change walker against a real overlay mount: the kernel makes the whiteouts, opaque
//! directories and copy-ups, and we check what `docker diff` would say about them.

use super::layer_changes;
use berth_api::models::ChangeType;
use std::fs;
use std::path::{Path, PathBuf};

/// Root can mount overlays; elsewhere the test cannot run, which CI must not hide.
fn can_mount() -> bool {
    let root = nix::unistd::Uid::effective().is_root();
    if !root && std::env::var("CI").as_deref() == Ok("true") {
        panic!("this test needs root to mount an overlay");
    }
    root
}

struct Overlay {
    _dir: tempfile::TempDir,
    lower: PathBuf,
    upper: PathBuf,
    merged: PathBuf,
}

impl Overlay {
    /// An image layer with a few files, the container's empty upper, mounted at `merged`.
    fn new() -> Overlay {
        let dir = tempfile::tempdir().unwrap();
        let [lower, upper, work, merged] =
            ["lower", "upper", "work", "merged"].map(|d| dir.path().join(d));
        for d in [&lower, &upper, &work, &merged] {
            fs::create_dir(d).unwrap();
        }
        for d in ["bin", "etc", "var/lib/x", "keep"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        for f in [
            "bin/ls",
            "bin/sh",
            "etc/passwd",
            "var/lib/x/a",
            "var/lib/x/b",
            "keep/f",
        ] {
            fs::write(lower.join(f), f).unwrap();
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        nix::mount::mount(
            Some("overlay"),
            &merged,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(opts.as_str()),
        )
        .unwrap();
        Overlay {
            _dir: dir,
            lower,
            upper,
            merged,
        }
    }

    fn at(&self, p: &str) -> PathBuf {
        self.merged.join(p)
    }

    fn changes(&self) -> Vec<String> {
        let kind = |k: ChangeType| match k {
            ChangeType::_0 => "C",
            ChangeType::_1 => "A",
            ChangeType::_2 => "D",
        };
        layer_changes(&self.upper, &[self.lower.clone()])
            .unwrap()
            .into_iter()
            .map(|c| format!("{} {}", kind(c.kind), c.path))
            .collect()
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn an_untouched_container_has_no_changes() {
    if !can_mount() {
        return;
    }
    let o = Overlay::new();
    let _ = fs::read(o.at("etc/passwd")).unwrap();
    assert_eq!(o.changes(), Vec::<String>::new());
}

#[test]
fn a_missing_upper_has_no_changes() {
    assert!(layer_changes(Path::new("/nonexistent/upper"), &[])
        .unwrap()
        .is_empty());
}

#[test]
fn adds_deletes_and_modifications_come_with_their_parent_directories() {
    if !can_mount() {
        return;
    }
    let o = Overlay::new();
    fs::write(o.at("newfile"), "").unwrap();
    fs::remove_file(o.at("bin/ls")).unwrap();
    fs::create_dir_all(o.at("tmp/a/b")).unwrap();
    fs::write(o.at("tmp/a/b/c"), "c").unwrap();
    std::io::Write::write_all(
        &mut fs::OpenOptions::new()
            .append(true)
            .open(o.at("etc/passwd"))
            .unwrap(),
        b"x",
    )
    .unwrap();
    fs::write(o.at("var/lib/x/a"), "changed").unwrap();
    assert_eq!(
        o.changes(),
        [
            "C /bin",
            "D /bin/ls",
            "C /etc",
            "C /etc/passwd",
            "A /newfile",
            "A /tmp",
            "A /tmp/a",
            "A /tmp/a/b",
            "A /tmp/a/b/c",
            "C /var",
            "C /var/lib",
            "C /var/lib/x",
            "C /var/lib/x/a",
        ]
    );
}

#[test]
fn a_removed_directory_is_one_deletion_and_a_recreated_one_is_opaque() {
    if !can_mount() {
        return;
    }
    let o = Overlay::new();
    fs::remove_dir_all(o.at("keep")).unwrap();
    fs::remove_dir_all(o.at("var/lib/x")).unwrap();
    fs::create_dir(o.at("var/lib/x")).unwrap();
    fs::write(o.at("var/lib/x/b"), "new b").unwrap();
    assert_eq!(
        o.changes(),
        [
            "D /keep",
            "C /var",
            "C /var/lib",
            "C /var/lib/x",
            "C /var/lib/x/b",
            "D /var/lib/x/a"
        ]
    );
}

#[test]
fn runtime_mount_points_are_not_changes() {
    if !can_mount() {
        return;
    }
    let o = Overlay::new();
    for d in ["proc", "sys", "dev/pts"] {
        fs::create_dir_all(o.at(d)).unwrap();
    }
    for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        fs::write(o.at(f), "").unwrap();
    }
    assert_eq!(o.changes(), Vec::<String>::new());
    fs::create_dir(o.at("data")).unwrap();
    assert_eq!(o.changes(), ["A /data"]);
}

/// An image whose `a` is a symlink to a host directory must not get that directory looked
/// at: the image's entries are resolved without following symlinks.
#[test]
fn an_image_symlink_to_the_host_is_not_followed() {
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir(outside.path().join("x")).unwrap();
    fs::write(outside.path().join("x/host-name"), "").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
    fs::create_dir(&lower).unwrap();
    std::os::unix::fs::symlink(outside.path(), lower.join("a")).unwrap();
    // The container replaced the link with a directory holding a file `x`.
    fs::create_dir_all(upper.join("a")).unwrap();
    fs::write(upper.join("a/x"), "").unwrap();
    let got: Vec<String> = layer_changes(&upper, &[lower])
        .unwrap()
        .into_iter()
        .map(|c| c.path)
        .collect();
    assert_eq!(got, ["/a", "/a/x"]);
}
