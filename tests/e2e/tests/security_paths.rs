//! A running container swapping its own directories and files for symlinks to the host while
//! the daemon reads or writes its filesystem (`export`, `cp` both ways, `diff`) must never get
//! a host file into an archive, a host name into a listing, or an upload onto the host: the
//! daemon walks by descriptors and resolves paths inside the container, as Docker's chroot'd
//! archiver does. The test records that it saw both sides of the swap, so it cannot pass
//! without exercising the race.

use berth_e2e::{tempdir::TempDir, Daemon};
use std::io::Read;
use std::process::Stdio;

/// The name and content of the host file the container points its symlinks at.
const MARKER: &str = "host-only-marker";
const SECRET: &str = "host-secret-4b1d9e";

/// The swap loop: `/w/d` (a directory holding `own`) and `/w/f` (a file) are replaced by
/// symlinks to the host directory `host` and its marker, and put back, forever.
fn swapper(host: &str) -> String {
    format!(
        "mkdir -p /w/d && echo inside > /w/d/own && echo file > /w/f && cd /w && \
         while :; do mv d d.x; ln -s {host} d; mv f f.x; ln -s {host}/{MARKER} f; \
         rm d f; mv d.x d; mv f.x f; done"
    )
}

/// The entries of a tar: (path, whether it is a symlink).
fn entries(data: &[u8]) -> Vec<(String, bool)> {
    let mut archive = tar::Archive::new(data);
    archive
        .entries()
        .expect("a tar")
        .map(|e| {
            let e = e.expect("a tar entry");
            let link = e.header().entry_type() == tar::EntryType::Symlink;
            (e.path().unwrap().to_string_lossy().into_owned(), link)
        })
        .collect()
}

/// Fails when `data` (a tar from the daemon) holds the host's marker or its content.
fn assert_no_host_file(what: &str, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    assert!(
        !text.contains(SECRET),
        "{what}: the host file's content is in the archive"
    );
    for (path, _) in entries(data) {
        assert!(
            !path.ends_with(MARKER),
            "{what}: the host file {path} is in the archive"
        );
    }
}

/// The kinds `w/d` had in an archive (under `prefix`): (seen as a directory, as a symlink).
fn kinds_of_d(data: &[u8], name: &str) -> (bool, bool) {
    let es = entries(data);
    let dir = es
        .iter()
        .any(|(p, l)| !l && p.trim_end_matches('/') == name);
    let link = es.iter().any(|(p, l)| *l && p == name);
    (dir, link)
}

fn output(d: &Daemon, args: &[&str]) -> (i32, Vec<u8>, String) {
    let mut child = d
        .berth_cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code().unwrap_or(-1), out, err)
}

#[test]
fn a_container_swapping_in_symlinks_to_the_host_reaches_nothing_of_it() {
    let d = Daemon::start();
    let host = TempDir::new();
    std::fs::write(host.path().join(MARKER), SECRET).unwrap();
    let host_path = host.path().to_str().unwrap().to_string();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "swap",
        "busybox",
        "sh",
        "-c",
        &swapper(&host_path),
    ]);

    // Many rounds (the window between looking at a name and opening it is short), and at
    // least until export has shown /w/d both as a directory and as a symlink (bounded, so a
    // swap loop that never ran fails the test instead of passing it). An entry caught
    // mid-swap, gone from its directory, is left out as Docker's walk does: no error.
    let (mut saw_dir, mut saw_link) = (false, false);
    let mut rounds = 0;
    while !(saw_dir && saw_link) || rounds < 150 {
        rounds += 1;
        assert!(
            rounds <= 450,
            "export never caught /w/d as both a directory and a symlink"
        );
        let (code, tar, err) = output(&d, &["export", "swap"]);
        assert_eq!(code, 0, "export failed: {err}\n{}", d.log());
        assert_no_host_file("export", &tar);
        let (dir, link) = kinds_of_d(&tar, "w/d");
        saw_dir |= dir;
        saw_link |= link;
    }

    // cp out of the swapping directory, of its parent, and following links (-L resolves
    // inside the container, where the host path does not exist). A name caught mid-swap, or
    // a link's target, may be missing: Docker's answer then is "No such container:path".
    let (mut copied, mut saw_link) = (0, false);
    for round in 0..300 {
        for args in [
            &["cp", "swap:/w", "-"][..],
            &["cp", "swap:/w/d", "-"],
            &["cp", "-L", "swap:/w/d", "-"],
            &["cp", "-L", "swap:/w/f", "-"],
        ] {
            let (code, tar, err) = output(&d, args);
            if code != 0 {
                assert!(err.contains("No such container:path"), "{args:?}: {err}");
                continue;
            }
            copied += 1;
            assert_no_host_file(&format!("{args:?}"), &tar);
            saw_link |= kinds_of_d(&tar, "w/d").1 || kinds_of_d(&tar, "d").1;
        }
        if round >= 20 && saw_link {
            break;
        }
    }
    assert!(
        copied > 0 && saw_link,
        "cp never caught /w/d as a symlink ({copied} copies)"
    );

    // cp into the swapping directory: what lands must stay in the container.
    let upload = TempDir::new();
    std::fs::write(upload.path().join("uploaded"), "up").unwrap();
    let src = upload.path().join("uploaded");
    for _ in 0..40 {
        let r = d.berth(&["cp", src.to_str().unwrap(), "swap:/w/d/"]);
        if r.code != 0 {
            // Docker's CLI: the destination missing mid-swap, or a link to nowhere in it.
            assert!(
                [
                    "no such directory",
                    "No such container:path",
                    "not a directory"
                ]
                .iter()
                .any(|m| r.stderr.contains(m)),
                "cp into /w/d: {}",
                r.stderr
            );
        }
    }
    let on_host: Vec<String> = std::fs::read_dir(host.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(on_host, [MARKER], "an upload reached the host directory");

    // diff walks the writable layer: the host directory's names must never be listed.
    for _ in 0..40 {
        let r = d.berth(&["diff", "swap"]);
        assert_eq!(r.code, 0, "diff failed: {}\n{}", r.stderr, d.log());
        assert!(
            !r.stdout.contains(MARKER),
            "diff listed a host file:\n{}",
            r.stdout
        );
    }
    d.ok(&["rm", "-f", "swap"]);
}
