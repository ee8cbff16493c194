//! The build cache: each step is reused exactly when Docker's classic builder would reuse it
//! (same parent, same instruction, same build args in scope, same copied content and
//! metadata), from the berth CLI and from the docker CLI.

use berth_e2e::{tempdir::TempDir, Daemon, Run};
use std::path::Path;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `berth build ARGS… DIR`, asserting success.
fn build(d: &Daemon, dir: &Path, args: &[&str]) -> Run {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push(dir.to_str().unwrap());
    let r = d.berth(&all);
    assert_eq!(
        r.code,
        0,
        "build {args:?}: {}{}\n{}",
        r.stdout,
        r.stderr,
        d.log()
    );
    r
}

/// For each `Step N/M` of a build's output, whether it printed ` ---> Using cache`.
fn cached_steps(out: &str) -> Vec<(String, bool)> {
    let mut steps: Vec<(String, bool)> = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Step ") {
            let text = rest.split_once(" : ").map(|(_, t)| t).unwrap_or(rest);
            steps.push((text.to_string(), false));
        } else if line == " ---> Using cache" {
            steps.last_mut().expect("Using cache before a step").1 = true;
        }
    }
    steps
}

fn image_id(d: &Daemon, name: &str) -> String {
    d.ok(&["image", "inspect", "-f", "{{.Id}}", name])
}

/// Asserts which steps (by text) came from the cache; FROM never prints `Using cache`.
fn assert_cached(out: &str, expected: &[(&str, bool)]) {
    let got = cached_steps(out);
    let got: Vec<(&str, bool)> = got.iter().map(|(t, c)| (t.as_str(), *c)).collect();
    assert_eq!(got, expected, "{out}");
}

const DOCKERFILE: &str =
    "FROM busybox\nENV A=1\nCOPY f /f\nRUN cat /f > /copy\nCOPY g /g\nCMD [\"cat\", \"/copy\"]\n";

#[test]
fn an_unchanged_rebuild_reuses_every_step_and_the_image() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(ctx.path(), "Dockerfile", DOCKERFILE);
    write(ctx.path(), "f", "one\n");
    write(ctx.path(), "g", "gee\n");
    let first = build(&d, ctx.path(), &["-t", "cached:1"]);
    assert_cached(
        &first.stdout,
        &[
            ("FROM busybox", false),
            ("ENV A=1", false),
            ("COPY f /f", false),
            ("RUN cat /f > /copy", false),
            ("COPY g /g", false),
            ("CMD [\"cat\", \"/copy\"]", false),
        ],
    );
    let id = image_id(&d, "cached:1");
    assert_eq!(d.ok(&["run", "--rm", "cached:1"]), "one");

    for client in ["berth", "docker"] {
        let again = match client {
            "berth" => build(&d, ctx.path(), &["-t", "cached:1"]),
            _ => {
                let r = d.docker(&["build", "-t", "cached:1", ctx.path().to_str().unwrap()]);
                assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
                r
            }
        };
        assert_cached(
            &again.stdout,
            &[
                ("FROM busybox", false),
                ("ENV A=1", true),
                ("COPY f /f", true),
                ("RUN cat /f > /copy", true),
                ("COPY g /g", true),
                ("CMD [\"cat\", \"/copy\"]", true),
            ],
        );
        let short = &id["sha256:".len()..][..12];
        assert!(
            again
                .stdout
                .contains(&format!("Successfully built {short}")),
            "{client}: {}",
            again.stdout
        );
        assert_eq!(image_id(&d, "cached:1"), id, "{client}");
    }
    // No intermediate container is left behind.
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn changed_content_reruns_from_its_copy_but_mtime_alone_does_not() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(ctx.path(), "Dockerfile", DOCKERFILE);
    write(ctx.path(), "f", "one\n");
    write(ctx.path(), "g", "gee\n");
    build(&d, ctx.path(), &["-t", "edits"]);

    // Only the mtime changes: the content hash has no mtime in it.
    let f = ctx.path().join("f");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let touched = build(&d, ctx.path(), &["-t", "edits"]);
    assert!(
        cached_steps(&touched.stdout)
            .iter()
            .skip(1)
            .all(|(_, c)| *c),
        "{}",
        touched.stdout
    );

    // New content: that COPY and every later step rerun; the earlier ones stay cached.
    write(ctx.path(), "f", "two\n");
    let edited = build(&d, ctx.path(), &["-t", "edits"]);
    assert_cached(
        &edited.stdout,
        &[
            ("FROM busybox", false),
            ("ENV A=1", true),
            ("COPY f /f", false),
            ("RUN cat /f > /copy", false),
            ("COPY g /g", false),
            ("CMD [\"cat\", \"/copy\"]", false),
        ],
    );
    assert_eq!(d.ok(&["run", "--rm", "edits"]), "two");

    // A mode change is a change (the mode is in the hash).
    let mut perms = std::fs::metadata(ctx.path().join("g"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(ctx.path().join("g"), perms).unwrap();
    let chmodded = build(&d, ctx.path(), &["-t", "edits"]);
    let steps = cached_steps(&chmodded.stdout);
    assert_eq!(
        steps[3],
        ("RUN cat /f > /copy".to_string(), true),
        "{}",
        chmodded.stdout
    );
    assert_eq!(
        steps[4],
        ("COPY g /g".to_string(), false),
        "{}",
        chmodded.stdout
    );
}

#[test]
fn a_build_arg_misses_the_cache_from_its_first_use() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nARG V\nRUN echo start\nRUN echo \"v=$V\" > /v\nCMD [\"cat\", \"/v\"]\n",
    );
    build(&d, ctx.path(), &["--build-arg", "V=1", "-t", "args"]);
    assert_eq!(d.ok(&["run", "--rm", "args"]), "v=1");
    let again = build(&d, ctx.path(), &["--build-arg", "V=1", "-t", "args"]);
    assert!(
        cached_steps(&again.stdout).iter().skip(1).all(|(_, c)| *c),
        "{}",
        again.stdout
    );
    // The ARG step's key has no value in it; every RUN after it carries `|1 V=2`.
    let changed = build(&d, ctx.path(), &["--build-arg", "V=2", "-t", "args"]);
    assert_cached(
        &changed.stdout,
        &[
            ("FROM busybox", false),
            ("ARG V", true),
            ("RUN echo start", false),
            ("RUN echo \"v=$V\" > /v", false),
            ("CMD [\"cat\", \"/v\"]", false),
        ],
    );
    assert_eq!(d.ok(&["run", "--rm", "args"]), "v=2");
    let history = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "args",
    ]);
    assert!(
        history.contains("|1 V=2 /bin/sh -c echo \"v=$V\" > /v"),
        "{history}"
    );
    // The value is not kept in the image's environment.
    assert!(!d
        .ok(&["image", "inspect", "-f", "{{.Config.Env}}", "args"])
        .contains("V=2"));
}

#[test]
fn no_cache_rebuilds_and_a_failed_build_keeps_the_steps_before_it() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(ctx.path(), "f", "x\n");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nCOPY f /f\nRUN echo one > /one\nRUN exit 7\n",
    );
    let r = d.berth(&["build", "-t", "failing", ctx.path().to_str().unwrap()]);
    assert_eq!(r.code, 7, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("The command '/bin/sh -c exit 7' returned a non-zero code: 7"),
        "{}",
        r.stderr
    );
    assert_eq!(d.berth(&["image", "inspect", "failing"]).code, 1);
    assert_eq!(
        d.ok(&["ps", "-aq"]),
        "",
        "the failed step's container is removed"
    );

    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nCOPY f /f\nRUN echo one > /one\nRUN echo fixed\n",
    );
    let fixed = build(&d, ctx.path(), &["-t", "fixed"]);
    assert_cached(
        &fixed.stdout,
        &[
            ("FROM busybox", false),
            ("COPY f /f", true),
            ("RUN echo one > /one", true),
            ("RUN echo fixed", false),
        ],
    );
    let id = image_id(&d, "fixed");
    let fresh = build(&d, ctx.path(), &["--no-cache", "-t", "fixed"]);
    assert!(!fresh.stdout.contains("Using cache"), "{}", fresh.stdout);
    assert_ne!(image_id(&d, "fixed"), id);
}

#[test]
fn cache_from_reuses_the_layers_of_a_loaded_image() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(ctx.path(), "f", "from cache\n");
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nENV B=2\nCOPY f /f\nRUN cp /f /g\n",
    );
    build(&d, ctx.path(), &["-t", "origin"]);
    let scratch = TempDir::new();
    let saved = scratch.path().join("saved.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "origin"]);
    // Removing the image takes its parents, the local cache; `load` brings back the image alone.
    d.ok(&["rmi", "origin"]);
    d.ok(&["load", "-i", saved.to_str().unwrap()]);
    std::fs::remove_file(&saved).unwrap();

    let plain = build(&d, ctx.path(), &["-t", "without"]);
    assert!(!plain.stdout.contains("Using cache"), "{}", plain.stdout);
    d.ok(&["rmi", "without"]);
    let from = build(&d, ctx.path(), &["--cache-from", "origin", "-t", "with"]);
    assert_cached(
        &from.stdout,
        &[
            ("FROM busybox", false),
            ("ENV B=2", true),
            ("COPY f /f", true),
            ("RUN cp /f /g", true),
        ],
    );
    assert_eq!(image_id(&d, "with"), image_id(&d, "origin"));
    assert_eq!(d.ok(&["run", "--rm", "with", "cat", "/g"]), "from cache");
}
