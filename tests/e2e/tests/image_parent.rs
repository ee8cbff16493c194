//! Image parents, as Docker keeps them for committed images: `inspect .Parent`, `history`
//! ids, intermediate images in `images -a`, `rmi` conflicts and parent pruning, `image prune`.
//! The expected texts are what Docker 20.10 prints for the same steps.

use berth_e2e::Daemon;

fn image_id(d: &Daemon, name: &str) -> String {
    d.ok(&["image", "inspect", "-f", "{{.Id}}", name])
}

/// Commits a container of `from` that wrote `/file` as `tag`; returns the new image's id.
fn commit_from(d: &Daemon, from: &str, tag: &str) -> String {
    d.ok(&[
        "run",
        "--name",
        "maker",
        from,
        "sh",
        "-c",
        &format!("echo {tag} > /file"),
    ]);
    let id = d.ok(&["commit", "maker", tag]);
    d.ok(&["rm", "maker"]);
    id
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn commit_records_the_parent_and_rmi_refuses_to_orphan_children() {
    let mut d = Daemon::start();
    let base = image_id(&d, "busybox");
    let short = &base["sha256:".len().."sha256:".len() + 12];
    // Imported (like loaded and pulled) images have no parent.
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Parent}}", "busybox"]),
        ""
    );

    let child = commit_from(&d, "busybox", "child:v1");
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Parent}}", "child:v1"]),
        base
    );
    let r = d.docker(&["image", "inspect", "-f", "{{.Parent}}", "child:v1"]);
    assert_eq!(r.stdout.trim(), base, "{}", r.stderr);
    // History names each row after the image in the parent chain that made it.
    assert_eq!(
        d.ok(&["history", "-q", "--no-trunc", "child:v1"]),
        format!("{child}\n{base}")
    );
    let r = d.docker(&["history", "--format", "{{.ID}}", "child:v1"]);
    assert_eq!(r.stdout, format!("{}\n{short}\n", &child[7..19]));

    // By id, a parent can't go, forced or not, from either CLI; nothing is untagged.
    let refused = format!(
        "Error response from daemon: conflict: unable to delete {short} (cannot be forced) - image has dependent child images"
    );
    for args in [
        &["rmi", short][..],
        &["rmi", "-f", short][..],
        &["rmi", "-f", base.as_str()][..],
    ] {
        for r in [d.berth(args), d.docker(args)] {
            assert_eq!(
                (r.code, r.stdout.as_str(), r.stderr.trim()),
                (1, "", refused.as_str()),
                "{args:?}"
            );
        }
    }
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}"]),
        "child\nbusybox"
    );

    // By tag, it is only untagged: the image stays for its child.
    assert_eq!(d.ok(&["rmi", "busybox"]), "Untagged: busybox:latest");
    // An untagged parent is an intermediate image: only `-a` lists it, never as dangling,
    // and prune leaves it alone.
    assert_eq!(d.ok(&["images", "-q", "--no-trunc"]), child);
    assert_eq!(
        d.ok(&["images", "-a", "-q", "--no-trunc"]),
        format!("{child}\n{base}")
    );
    let r = d.docker(&[
        "images",
        "-a",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    assert_eq!(
        r.stdout,
        format!("child:v1 {}\n<none>:<none> {short}\n", &child[7..19])
    );
    assert_eq!(d.ok(&["images", "-a", "-q", "-f", "dangling=true"]), "");
    assert_eq!(d.ok(&["image", "prune", "-f"]), "Total reclaimed space: 0B");
    // `system df` lists images as `images` does (its layers still count in the total).
    let df = d.docker(&["system", "df", "-v", "--format", "{{range .Images}}{{.ID}} {{end}}"]);
    assert_eq!(df.stdout.trim(), child, "{}", df.stderr);
    assert_eq!(d.berth(&["rmi", short]).stderr.trim(), refused);

    // The parent is part of the record: it survives a restart.
    d.kill_daemon(libc::SIGTERM);
    d.spawn();
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{.Parent}}", "child:v1"]),
        base
    );

    // Removing the child takes its untagged parent along, each with the layers it frees.
    let out = d.ok(&["rmi", "child:v1"]);
    let out = lines(&out);
    assert_eq!(out.len(), 5, "{out:?}");
    assert_eq!(
        out[..2],
        ["Untagged: child:v1", format!("Deleted: {child}").as_str()],
        "{out:?}"
    );
    assert_eq!(out[3], format!("Deleted: {base}"), "{out:?}");
    assert!(
        out[2].starts_with("Deleted: sha256:") && out[4].starts_with("Deleted: sha256:"),
        "{out:?}"
    );
    assert_eq!(d.ok(&["images", "-a", "-q"]), "");
}

#[test]
fn no_prune_keeps_the_parent_and_prune_follows_chains() {
    let d = Daemon::start();
    let base = image_id(&d, "busybox");
    let child = commit_from(&d, "busybox", "child:v1");
    d.ok(&["rmi", "busybox"]);
    // --no-prune: the parent stays, now a plain dangling image.
    let out = d.ok(&["rmi", "--no-prune", "child:v1"]);
    assert_eq!(
        lines(&out)[..2],
        ["Untagged: child:v1", format!("Deleted: {child}").as_str()],
        "{out}"
    );
    assert!(!out.contains(&base), "{out}");
    assert_eq!(
        d.ok(&["images", "-q", "--no-trunc", "-f", "dangling=true"]),
        base
    );
    let out = d.ok(&["image", "prune", "-f"]);
    assert!(
        out.starts_with(&format!("Deleted Images:\ndeleted: {base}\n")),
        "{out}"
    );

    // A tagged parent stays while its child exists, also with -f.
    let d = Daemon::start();
    let base = image_id(&d, "busybox");
    let mid = commit_from(&d, "busybox", "mid:v1");
    let top = commit_from(&d, "mid:v1", "top:v1");
    assert_eq!(
        d.ok(&["history", "-q", "--no-trunc", "top:v1"]),
        format!("{top}\n{mid}\n{base}")
    );
    // A container of the parent holds it, but not its tags when forced.
    d.ok(&["create", "--name", "holder", "mid:v1"]);
    let r = d.berth(&["rmi", "mid:v1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("(must force) - container"),
        "{}",
        r.stderr
    );
    assert_eq!(d.ok(&["rmi", "-f", "mid:v1"]), "Untagged: mid:v1");
    d.ok(&["rm", "holder"]);
    // prune -a: the chain goes, children first, every parent with it.
    let out = d.ok(&["image", "prune", "-a", "-f"]);
    for id in [&top, &mid, &base] {
        assert!(out.contains(&format!("deleted: {id}\n")), "{out}");
    }
    assert!(
        out.contains("untagged: top:v1\n") && out.contains("untagged: busybox:latest\n"),
        "{out}"
    );
    assert_eq!(d.ok(&["images", "-a", "-q"]), "");
}
