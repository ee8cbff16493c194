//! Listing, inspecting, history and pruning of images, with the berth and docker CLIs.

use berth_e2e::Daemon;
use std::path::Path;
use std::process::Command;

/// A one-layer rootfs tarball holding `name` with `bytes` of content, distinct per `name`.
fn make_tar(d: &Daemon, name: &str, bytes: usize) -> String {
    let dir = d.root.path().join(format!("src-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let content: Vec<u8> = (0..bytes).map(|i| (i * 31 + name.len()) as u8).collect();
    std::fs::write(dir.join(name), content).unwrap();
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

/// Unix seconds now.
fn chrono_free_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Bytes of every file under `dir`.
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        if m.is_dir() {
            total += disk_usage(&e.path());
        } else {
            total += m.len();
        }
    }
    total
}

#[test]
fn history_and_inspect_show_dockers_fields() {
    let d = Daemon::start();
    let id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    let short = &id["sha256:".len().."sha256:".len() + 12];

    let table = d.ok(&["history", "busybox"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("IMAGE          CREATED"), "{table}");
    assert!(
        lines[0].contains("   CREATED BY   SIZE      COMMENT"),
        "{table}"
    );
    assert!(lines[1].starts_with(&format!("{short}   ")), "{table}");
    assert!(
        lines[1].ends_with("busybox from Debian busybox-static"),
        "{table}"
    );
    assert_eq!(
        d.ok(&["image", "history", "-q", "--no-trunc", "busybox"]),
        id
    );
    let raw = d.ok(&[
        "history",
        "-H=false",
        "--format",
        "{{.Size}}|{{.CreatedBy}}|{{.Comment}}",
        "busybox",
    ]);
    let size = d.ok(&["image", "inspect", "-f", "{{.Size}}", "busybox"]);
    assert_eq!(raw, format!("{size}||busybox from Debian busybox-static"));
    let docker = d.docker(&["history", "--format", "{{.ID}} {{.Comment}}", "busybox"]);
    assert_eq!(docker.code, 0, "{}", docker.stderr);
    assert_eq!(
        docker.stdout.trim(),
        format!("{short} busybox from Debian busybox-static")
    );
    let missing = d.berth(&["history", "nosuch"]);
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr.trim(),
        "Error response from daemon: No such image: nosuch:latest"
    );

    // Inspect: the fields Docker fills for an imported image, with its empty values.
    let tpl = "{{.Parent}}|{{.Container}}|{{.Comment}}|{{.Config.Cmd}}|{{.Config.Env}}|{{.Config.OnBuild}}|\
               {{.ContainerConfig.Hostname}}|{{.ContainerConfig.Cmd}}|{{.Architecture}}|{{.Os}}|\
               {{.RootFS.Type}}|{{len .RootFS.Layers}}|{{.GraphDriver.Name}}|{{eq .Size .VirtualSize}}|{{.RepoTags}}";
    let want = "||busybox from Debian busybox-static|[sh]|[PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]|[]||[]|amd64|linux|layers|1|overlay2|true|[busybox:latest]";
    let docker = d.docker(&["image", "inspect", "-f", tpl, "busybox"]);
    assert_eq!(docker.stdout.trim(), want, "{}", docker.stderr);
    // berth's templates run on the JSON, where Docker's typed nil slices are nulls.
    assert_eq!(
        d.ok(&["image", "inspect", "-f", tpl, "busybox"]),
        want.replace("[]", "<nil>")
    );
    assert_eq!(d.ok(&["inspect", "-f", "{{.Id}}", "busybox"]), id);
    let json = d.ok(&["image", "inspect", "busybox"]);
    for key in [
        "\"ContainerConfig\": {",
        "\"DockerVersion\": \"\"",
        "\"Author\": \"\"",
        "\"Metadata\": {",
    ] {
        assert!(json.contains(key), "{key} missing in {json}");
    }
}

#[test]
fn list_filters_and_formats() {
    let d = Daemon::start();
    let tar_a = make_tar(&d, "a", 1000);
    let tar_b = make_tar(&d, "b", 2000);
    let a = d.ok(&["import", "-c", "LABEL team=x", &tar_a, "alpha:v1"]);
    d.ok(&["tag", "alpha:v1", "localhost:5000/alpha:v2"]);
    let b = d.ok(&["image", "import", &tar_b]);
    let short = |id: &str| id["sha256:".len().."sha256:".len() + 12].to_string();

    let quiet = d.ok(&["images", "-q"]);
    let ids: Vec<&str> = quiet.lines().collect();
    assert_eq!(ids.len(), 4, "{quiet}");
    assert_eq!(d.ok(&["images", "-q", "-f", "dangling=true"]), short(&b));
    assert_eq!(
        d.ok(&["image", "ls", "--no-trunc", "-q", "-f", "dangling=true"]),
        b
    );
    let table = d.ok(&["images", "-f", "dangling=true"]);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("<none>       <none>    {}   ", short(&b))),
        "{table}"
    );
    assert_eq!(
        d.ok(&[
            "images",
            "-f",
            "label=team=x",
            "--format",
            "{{.Repository}}:{{.Tag}}"
        ]),
        "alpha:v1\nlocalhost:5000/alpha:v2"
    );
    assert_eq!(
        d.ok(&[
            "images",
            "-f",
            "reference=alpha",
            "--format",
            "{{.Repository}}:{{.Tag}}"
        ]),
        "alpha:v1"
    );
    assert_eq!(
        d.ok(&["images", "--format", "{{.Tag}}", "localhost:5000/*"]),
        "v2"
    );
    assert_eq!(d.ok(&["images", "-f", "since=alpha:v1", "-q"]), short(&b));
    let before = d.ok(&[
        "images",
        "-f",
        "before=alpha:v1",
        "--format",
        "{{.Repository}}",
    ]);
    assert_eq!(before, "busybox");
    let digests = d.ok(&["images", "--digests", "alpha"]);
    assert!(
        digests.starts_with("REPOSITORY   TAG       DIGEST    IMAGE ID       CREATED"),
        "{digests}"
    );
    assert!(
        digests.contains(&format!(
            "alpha        v1        <none>    {}   ",
            short(&a)
        )),
        "{digests}"
    );
    let table = d.ok(&["images", "--format", "table {{.ID}}\t{{.Size}}", "alpha"]);
    assert_eq!(table, format!("IMAGE ID       SIZE\n{}   1kB", short(&a)));

    // The docker CLI reads the same list.
    let docker = d.docker(&[
        "images",
        "--format",
        "{{.Repository}} {{.Tag}} {{.VirtualSize}}",
        "-f",
        "dangling=true",
    ]);
    assert_eq!(
        docker.stdout.trim(),
        "<none> <none> 2kB",
        "{}",
        docker.stderr
    );

    // Forcing off the last tag of an image a stopped container uses deletes it, as dockerd
    // 20.10 does (the container keeps its layers and shows the image's id).
    d.ok(&["create", "--name", "alpha-user", "alpha:v1", "true"]);
    d.ok(&["rmi", "alpha:v1"]);
    assert_eq!(
        d.ok(&["image", "rm", "-f", "localhost:5000/alpha:v2"]),
        format!("Untagged: localhost:5000/alpha:v2\nDeleted: {a}")
    );
    assert_eq!(d.ok(&["images", "-q", "-f", "dangling=true"]), short(&b));
    assert_eq!(
        d.ok(&["ps", "-a", "-f", "name=alpha-user", "--format", "{{.Image}}"]),
        short(&a)
    );

    // Bad filters: Docker's messages and exit codes.
    let r = d.berth(&["images", "-f", "foo=bar"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error response from daemon: Invalid filter 'foo'")
    );
    let r = d.berth(&["images", "-f", "dangling=maybe"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: Invalid filter 'dangling=[maybe]'"
        )
    );
    let r = d.docker(&["images", "-f", "before=nosuch"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: No such image: nosuch:latest"
        )
    );
}

#[test]
fn prune_removes_unused_images_and_frees_disk() {
    let d = Daemon::start();
    let big = make_tar(&d, "big", 3_000_000);
    let used = make_tar(&d, "used", 1000);
    let big_id = d.ok(&["import", &big, "big:1"]);
    d.ok(&["import", &used, "used:1"]);
    d.ok(&["create", "--name", "holder", "used:1", "true"]);

    // Nothing dangling yet: nothing goes, and the answer says so.
    assert_eq!(d.ok(&["image", "prune", "-f"]), "Total reclaimed space: 0B");
    // Declining the prompt removes nothing (docker 20.10 still prints the total).
    let r = d.berth(&["image", "prune", "-a"]);
    assert_eq!(r.code, 0);
    assert_eq!(r.stdout, "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue? [y/N] Total reclaimed space: 0B\n");
    assert!(d.ok(&["images", "-q", "big"]).len() == 12);

    let before = disk_usage(&d.data_root);
    let r = d.berth(&["image", "prune", "-a", "-f", "--filter", "label=nosuch"]);
    assert_eq!(r.stdout, "Total reclaimed space: 0B\n");
    // A cutoff in the future: every unused image was created before it.
    let until = format!("until={}", chrono_free_now() + 3600);
    let out = d.ok(&["image", "prune", "-a", "-f", "--filter", &until]);
    // busybox too: nothing uses it. used:1 stays, its container holds it.
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(out.contains("untagged: big:1\n"), "{out}");
    assert!(out.contains(&format!("deleted: {big_id}\n")), "{out}");
    assert!(out.contains("untagged: busybox:latest\n"), "{out}");
    assert!(
        out.contains("\n\nTotal reclaimed space: ") && !out.ends_with(" 0B"),
        "{out}"
    );
    assert!(!out.contains("used:1"), "{out}");
    assert_eq!(d.ok(&["images", "--format", "{{.Repository}}"]), "used");
    let after = disk_usage(&d.data_root);
    // The layer's snapshot (its tar is kept as a small index over it).
    assert!(
        before - after >= 3_000_000,
        "snapshots and indexes freed: {before} -> {after}"
    );

    let r = d.docker(&["image", "prune", "-f", "--filter", "until=xyz"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "Error response from daemon: failed to parse value as time or duration: \"xyz\""
        )
    );
    let r = d.berth(&["image", "prune", "-f", "--filter", "foo=bar"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "Error response from daemon: Invalid filter 'foo'")
    );
    d.ok(&["rm", "holder"]);
    let out = d.docker(&["image", "prune", "-a", "-f"]);
    assert!(out.stdout.contains("untagged: used:1\n"), "{}", out.stdout);
    assert_eq!(d.ok(&["images", "-q"]), "");
}

#[test]
fn missing_and_malformed_names_get_dockers_errors() {
    let d = Daemon::start();
    for docker in [false, true] {
        let cli = |args: &[&str]| if docker { d.docker(args) } else { d.berth(args) };
        let err = |args: &[&str]| {
            let r = cli(args);
            (r.code, r.stderr.trim().to_string())
        };
        // rmi: the client names a missing image; with -f it is reported, not failed on.
        let missing = "Error: No such image: nosuch\nError: No such image: nosuch:v2";
        assert_eq!(err(&["rmi", "nosuch", "nosuch:v2"]), (1, missing.into()));
        assert_eq!(err(&["rmi", "-f", "nosuch", "nosuch:v2"]), (0, missing.into()));
        // The daemon names a missing reference with its default tag, an id as given.
        assert_eq!(
            err(&["history", "nosuch"]),
            (1, "Error response from daemon: No such image: nosuch:latest".into())
        );
        assert_eq!(
            err(&["tag", "sha256:abc123", "x"]),
            (1, "Error response from daemon: No such image: sha256:abc123".into())
        );
        // A name that is no reference is refused as such (400), not reported missing.
        assert_eq!(
            err(&["rmi", "bad@@name"]),
            (1, "Error response from daemon: invalid reference format".into())
        );
        assert_eq!(
            err(&["rmi", "UPPER"]),
            (
                1,
                "Error response from daemon: invalid reference format: repository name must be lowercase"
                    .into()
            )
        );
        assert_eq!(
            err(&["image", "inspect", "nosuch"]),
            (1, "Error: No such image: nosuch".into())
        );
        assert_eq!(
            err(&["inspect", "--type", "container", "nosuch"]),
            (1, "Error: No such container: nosuch".into())
        );
    }
    // Nothing was removed on the way.
    assert_eq!(d.ok(&["images", "--format", "{{.Repository}}"]), "busybox");
}
