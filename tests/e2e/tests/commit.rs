//! `commit`: a container's changes become an image that runs, with Docker's config, history,
//! events and errors; from berth and from the docker CLI, and into a real dockerd.

use berth_e2e::{tempdir::TempDir, Daemon, Dockerd};

fn unix_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// Actions of the events since `since` about the container or image `name`, in order.
fn events(d: &Daemon, since: &str) -> Vec<String> {
    let until = unix_now();
    let format = "{{.Type}} {{.Action}}";
    let args = [
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        "event=pause",
        "--filter",
        "event=unpause",
        "--filter",
        "event=commit",
        "--filter",
        "event=tag",
        "--format",
        format,
    ];
    d.ok(&args).lines().map(String::from).collect()
}

#[test]
fn commit_makes_an_image_of_the_changes() {
    let d = Daemon::start();
    // /op is made in one commit and replaced in the next (an opaque directory).
    d.ok(&["run", "--name", "c1", "busybox", "sh", "-c", "echo kept | tee /file; mkdir -p /op/old; touch /op/old/f; rm /bin/ls; ln /file /hard; ln -s /file /sym"]);
    let id = d.ok(&[
        "commit",
        "-a",
        "me <me@x>",
        "-m",
        "first",
        "-c",
        "ENV A=1",
        "-c",
        "CMD [\"cat\", \"/file\"]",
        "c1",
        "made:v1",
    ]);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(d.ok(&["inspect", "-f", "{{.Id}}", "made:v1"]), id);
    assert_eq!(d.ok(&["run", "--rm", "made:v1"]), "kept");
    let r = d.berth(&["run", "--rm", "made:v1", "ls", "/bin/ls"]);
    assert_ne!(
        r.code, 0,
        "a file deleted in the container is gone from the image"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "made:v1",
            "sh",
            "-c",
            "readlink /sym; stat -c %h /hard; echo $A"
        ]),
        "/file\n2\n1"
    );

    let inspect = |f: &str| d.ok(&["image", "inspect", "-f", f, "made:v1"]);
    assert_eq!(
        inspect("{{.Author}}|{{.Comment}}|{{len .RootFS.Layers}}"),
        "me <me@x>|first|2"
    );
    assert_eq!(
        inspect("{{json .Config.Cmd}}|{{json .ContainerConfig.Cmd}}"),
        format!(
            "[\"cat\",\"/file\"]|{}",
            r#"["sh","-c","echo kept | tee /file; mkdir -p /op/old; touch /op/old/f; rm /bin/ls; ln /file /hard; ln -s /file /sym"]"#
        )
    );
    let container = d.ok(&["inspect", "-f", "{{.Id}}", "c1"]);
    // The parent is the container's image, as Docker records it.
    let parent = d.ok(&["image", "inspect", "-f", "{{.Id}}", "busybox"]);
    assert_eq!(
        inspect("{{.Container}}|{{.Config.Hostname}}|{{.Parent}}"),
        format!("{container}|{}|{parent}", &container[..12])
    );
    assert!(inspect("{{json .Config.Env}}").contains("\"A=1\""));

    let history = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "made:v1",
    ]);
    let top = history.lines().next().unwrap();
    assert_eq!(top, "sh -c echo kept | tee /file; mkdir -p /op/old; touch /op/old/f; rm /bin/ls; ln /file /hard; ln -s /file /sym|first");
    assert_eq!(
        history.lines().count(),
        1 + d.ok(&["history", "-q", "busybox"]).lines().count()
    );

    // A container of the new image starts with nothing changed.
    d.ok(&["run", "--name", "c2", "made:v1", "true"]);
    assert_eq!(d.ok(&["diff", "c2"]), "");

    d.ok(&[
        "run",
        "--name",
        "c3",
        "made:v1",
        "sh",
        "-c",
        "rm -rf /op; mkdir /op; echo new > /op/new",
    ]);
    d.ok(&["commit", "c3", "made:v2"]);
    assert_eq!(
        d.ok(&["run", "--rm", "made:v2", "sh", "-c", "echo /op/*"]),
        "/op/new",
        "an opaque directory hides the old contents"
    );
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{len .RootFS.Layers}}",
            "made:v2"
        ]),
        "3"
    );

    // The committed layer is the image's own: removing the image frees it.
    let snapshots = || {
        std::fs::read_dir(d.data_root.join("snapshots"))
            .unwrap()
            .count()
    };
    let before = snapshots();
    d.ok(&["rm", "c3"]);
    d.ok(&["rmi", "made:v2"]);
    assert_eq!(snapshots(), before - 1);
    assert_eq!(d.ok(&["run", "--rm", "made:v1", "cat", "/op/old/f"]), "");
}

#[test]
fn a_container_that_changed_nothing_adds_no_layer() {
    let d = Daemon::start();
    d.ok(&["create", "--name", "never", "busybox", "true"]);
    d.ok(&["run", "--name", "ran", "busybox", "true"]);
    let layers = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RootFS.Layers}}",
        "busybox",
    ]);
    for name in ["never", "ran"] {
        let id = d.ok(&["commit", name]);
        assert_eq!(
            d.ok(&["image", "inspect", "-f", "{{json .RootFS.Layers}}", &id]),
            layers,
            "as Docker, an empty diff is only a history entry"
        );
        let top = d.ok(&["history", "--format", "{{.CreatedBy}} {{.Size}}", &id]);
        assert_eq!(top.lines().next(), Some("true 0B"));
    }
    // Untagged, as `docker commit CONTAINER` makes it.
    assert_eq!(
        d.ok(&["images", "-q", "--filter", "dangling=true"])
            .lines()
            .count(),
        2
    );
}

#[test]
fn a_running_container_is_paused_for_the_commit() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "runner",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /during; sleep 300",
    ]);
    assert!(berth_e2e::eventually(10, || d
        .berth(&["exec", "runner", "cat", "/during"])
        .stdout
        == "1\n"));

    let t0 = unix_now();
    d.ok(&["commit", "runner", "live:1"]);
    assert_eq!(
        events(&d, &t0),
        [
            "container pause",
            "image tag",
            "container commit",
            "container unpause"
        ]
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "runner"]),
        "running"
    );
    assert_eq!(d.ok(&["run", "--rm", "live:1", "cat", "/during"]), "1");

    let t1 = unix_now();
    d.ok(&["commit", "--pause=false", "runner", "live:2"]);
    assert_eq!(events(&d, &t1), ["image tag", "container commit"]);

    // A paused container stays paused.
    d.ok(&["pause", "runner"]);
    let t2 = unix_now();
    d.ok(&["commit", "runner"]);
    assert_eq!(events(&d, &t2), ["container commit"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "runner"]),
        "paused"
    );
    d.ok(&["unpause", "runner"]);

    // Volumes keep their contents out of the image; the mount point stays, as in Docker.
    d.ok(&[
        "run",
        "--name",
        "withvol",
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "echo secret > /data/f",
    ]);
    d.ok(&["commit", "withvol", "withvol"]);
    let tmp = TempDir::new();
    let archive = tmp.path().join("withvol.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), "withvol"]);
    let manifest: serde_json::Value =
        serde_json::from_str(&member(&archive, "manifest.json")).unwrap();
    let top = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let listing = sh(&format!("tar -xOf {} {top} | tar -t", archive.display()));
    assert_eq!(listing, "data/\n", "the mount point, not the volume's file");
}

fn sh(script: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn member(archive: &std::path::Path, name: &str) -> String {
    sh(&format!("tar -xOf {} {name}", archive.display()))
}

#[test]
fn the_docker_cli_commits_and_the_image_runs_in_dockerd() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "dc",
        "-l",
        "a=b",
        "busybox",
        "sh",
        "-c",
        "echo from berth > /msg",
    ]);
    let r = d.docker(&[
        "commit",
        "-c",
        "ENV GREETING=hi",
        "-c",
        "EXPOSE 8080",
        "-c",
        "CMD [\"cat\", \"/msg\"]",
        "-m",
        "via docker",
        "dc",
        "dockercommit:v1",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.trim().starts_with("sha256:"), "{}", r.stdout);
    let r = d.docker(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.ExposedPorts}} {{json .Config.Labels}} {{.Comment}}",
        "dockercommit:v1",
    ]);
    assert_eq!(
        r.stdout.trim(),
        r#"{"8080/tcp":{}} {"a":"b"} via docker"#,
        "{}",
        r.stderr
    );

    let tmp = TempDir::new();
    let archive = tmp.path().join("commit.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), "dockercommit:v1"]);
    let docker = Dockerd::start();
    let r = docker.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "Loaded image: dockercommit:v1"),
        "{}",
        r.stderr
    );
    let r = docker.docker(&["run", "--rm", "dockercommit:v1"]);
    assert_eq!(r.stdout, "from berth\n", "{}", r.stderr);
    let r = docker.docker(&[
        "run",
        "--rm",
        "dockercommit:v1",
        "sh",
        "-c",
        "echo $GREETING",
    ]);
    assert_eq!(r.stdout, "hi\n", "{}", r.stderr);
}

#[test]
fn bad_input_gets_dockers_errors_and_leaves_nothing() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "bad1",
        "busybox",
        "sh",
        "-c",
        "echo x > /x",
    ]);
    let images = d.ok(&["images", "-qa"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["commit", "nosuch"],
            "Error response from daemon: No such container: nosuch",
        ),
        (
            &["commit", "bad1", "Bad:v1"],
            "invalid reference format: repository name must be lowercase",
        ),
        (&["commit", "bad1", "bad name"], "invalid reference format"),
        (
            &["commit", "-c", "RUN ls", "bad1"],
            "Error response from daemon: run is not a valid change command",
        ),
        (
            &["commit", "--change", "FROM busybox", "bad1", "x"],
            "Error response from daemon: from is not a valid change command",
        ),
        (
            &[
                "commit",
                "bad1",
                "x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ],
            "refusing to create a tag with a digest reference",
        ),
    ];
    for (args, message) in cases {
        let r = d.berth(args);
        assert_eq!((r.code, r.stderr.trim()), (1, *message), "berth {args:?}");
    }
    // The docker CLI checks names itself; the daemon's answers it shows as Docker's.
    for (args, message) in [
        (
            &["commit", "nosuch"][..],
            "Error response from daemon: No such container: nosuch",
        ),
        (
            &["commit", "-c", "RUN ls", "bad1"][..],
            "Error response from daemon: run is not a valid change command",
        ),
    ] {
        let r = d.docker(args);
        assert_eq!((r.code, r.stderr.trim()), (1, message), "docker {args:?}");
    }
    assert_eq!(d.ok(&["images", "-qa"]), images, "no image was left behind");
    let blobs = std::fs::read_dir(d.data_root.join("blobs/sha256"))
        .unwrap()
        .count();
    let indexes = std::fs::read_dir(d.data_root.join("layer-index"))
        .unwrap()
        .count();
    assert_eq!((blobs, indexes), (1, 1), "busybox's config and layer index only");
}

/// HEALTHCHECK and ONBUILD given with `--change` land in the image config (Docker's fields
/// the OCI config lacks), and a container of the image runs the image's health check.
#[test]
fn change_healthcheck_and_onbuild_are_kept_and_used() {
    let d = Daemon::start();
    d.ok(&["run", "--name", "hcsrc", "busybox", "touch", "/ok"]);
    d.ok(&[
        "commit",
        "--change", "HEALTHCHECK --interval=200ms --retries=2 CMD test -f /ok",
        "--change", "ONBUILD RUN echo later",
        "hcsrc", "hcimg",
    ]);
    assert_eq!(
        d.ok(&["image", "inspect", "-f", "{{json .Config.Healthcheck}} {{json .Config.OnBuild}}", "hcimg"]),
        r#"{"Test":["CMD-SHELL","test -f /ok"],"Interval":200000000,"Retries":2} ["RUN echo later"]"#
    );
    d.ok(&["run", "-d", "--name", "hc", "hcimg", "sleep", "300"]);
    assert!(berth_e2e::eventually(20, || {
        d.ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"]) == "healthy"
    }));
    let r = d.berth(&["commit", "--change", "STOPSIGNAL 9", "hcsrc", "x"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("stopsignal is not a valid change command"), "{}", r.stderr);
}
