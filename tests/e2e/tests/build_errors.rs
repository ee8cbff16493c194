//! Failing builds on berthd, driven by the docker CLI: Docker 20.10's messages and exit codes
//! (docs/design/build-transcripts.md), the output up to the failing step, and nothing left
//! behind: no build container, no tag. A client that goes away cancels the build.

use berth_e2e::{docker_cli, eventually, tempdir::TempDir, Daemon, Run};
use std::path::Path;
use std::process::{Command, Stdio};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn docker(d: &Daemon) -> Command {
    let mut cmd = Command::new(docker_cli());
    cmd.env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
        .stdin(Stdio::null());
    cmd
}

/// `docker build -t <tag> <dir with Dockerfile and files>`.
fn build(d: &Daemon, dockerfile: &str, files: &[(&str, &str)], extra: &[&str]) -> Run {
    let ctx = TempDir::new();
    write(ctx.path(), "Dockerfile", dockerfile);
    for (name, text) in files {
        write(ctx.path(), name, text);
    }
    let out = docker(d)
        .arg("build")
        .args(["-t", "h6err:x"])
        .args(extra)
        .arg(ctx.path())
        .output()
        .expect("docker build");
    out.into()
}

fn assert_nothing_left(d: &Daemon, what: &str) {
    assert_eq!(d.ok(&["ps", "-aq"]), "", "{what}: build containers left");
    assert_ne!(
        d.berth(&["image", "inspect", "h6err:x"]).code,
        0,
        "{what}: the tag was applied"
    );
}

#[test]
fn parse_errors_are_refused_before_any_step() {
    let d = Daemon::start();
    let cases = [
        (
            "FROM busybox\nRUN echo ok\nENV\n",
            "dockerfile parse error line 3: ENV requires at least one argument",
        ),
        (
            "FROM busybox\nFOO bar\n",
            "dockerfile parse error line 2: unknown instruction: FOO",
        ),
        (
            "FROM busybox\nCOPY --foo=1 f /f\n",
            "dockerfile parse error line 2: Unknown flag: foo",
        ),
        ("RUN echo hi\n", "no build stage in current context"),
        (
            "FROM busybox\nHEALTHCHECK --interval=0s CMD true\n",
            "dockerfile parse error line 2: Interval \"interval\" cannot be less than 1ms",
        ),
    ];
    for (dockerfile, message) in cases {
        let r = build(&d, dockerfile, &[], &[]);
        assert_eq!(r.code, 1, "{dockerfile}: {}{}", r.stdout, r.stderr);
        assert_eq!(
            r.stderr,
            format!("Error response from daemon: {message}\n"),
            "{dockerfile}"
        );
        assert!(!r.stdout.contains("Step "), "{dockerfile}: {}", r.stdout);
        assert_nothing_left(&d, dockerfile);
    }
    let r = build(&d, "FROM busybox AS a\n", &[], &["--target", "b"]);
    assert_eq!(
        r.stderr,
        "Error response from daemon: failed to reach build target b in Dockerfile\n"
    );
    assert_eq!(r.code, 1);
}

#[test]
fn bad_parameters_are_refused() {
    let d = Daemon::start();
    let r = build(
        &d,
        "FROM busybox\n",
        &[],
        &["--security-opt", "seccomp=unconfined"],
    );
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "Error response from daemon: The daemon on this platform does not support setting security options on build\n")
    );
    let r = build(&d, "FROM busybox\n", &[], &["--isolation", "hyperv"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "Error response from daemon: Unsupported isolation: \"hyperv\"\n"
        )
    );
    // The CLI refuses --squash itself: the daemon says it is not experimental.
    let r = build(&d, "FROM busybox\n", &[], &["--squash"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (1, "\"--squash\" is only supported on a Docker daemon with experimental features enabled\n")
    );
    assert_nothing_left(&d, "bad parameters");
}

#[test]
fn copy_errors_end_the_stream_after_the_steps_before() {
    let d = Daemon::start();
    let cases: [(&str, &str); 3] = [
        ("FROM busybox\nCOPY f /f\nCOPY nothere /x\n", "COPY failed: file not found in build context or excluded by .dockerignore: stat nothere: file does not exist"),
        ("FROM busybox\nCOPY ../etc/passwd /x\n", "COPY failed: forbidden path outside the build context: ../etc/passwd ()"),
        ("FROM busybox\nCOPY *.nomatch /x/\n", "COPY failed: no source files were specified"),
    ];
    for (dockerfile, message) in cases {
        let r = build(&d, dockerfile, &[("f", "f\n")], &[]);
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (1, format!("{message}\n").as_str()),
            "{dockerfile}: {}",
            r.stdout
        );
        let last_step = dockerfile.lines().last().unwrap();
        assert!(
            r.stdout.ends_with(&format!(" : {last_step}\n")),
            "{dockerfile}: {}",
            r.stdout
        );
        assert_nothing_left(&d, dockerfile);
    }
}

#[test]
fn a_failing_run_exits_with_its_code_and_keeps_the_steps_before() {
    let d = Daemon::start();
    let dockerfile =
        "FROM busybox\nCOPY f /f\nRUN echo before; echo to-stderr >&2; exit 3\nRUN echo never\n";
    let r = build(&d, dockerfile, &[("f", "f\n")], &[]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr, "The command '/bin/sh -c echo before; echo to-stderr >&2; exit 3' returned a non-zero code: 3\n");
    assert!(
        r.stdout.contains("Step 3/4 : RUN echo before"),
        "{}",
        r.stdout
    );
    // stdout and stderr are two pipes: their lines may come in either order.
    assert!(r.stdout.contains("before\n"), "{:?}", r.stdout);
    assert!(
        r.stdout.contains("\u{1b}[91mto-stderr\n\u{1b}[0m"),
        "{:?}",
        r.stdout
    );
    assert!(!r.stdout.contains("never"), "{}", r.stdout);
    assert_nothing_left(&d, "failing RUN");
    // The COPY before it was committed: a fixed Dockerfile reuses it.
    let r = build(
        &d,
        "FROM busybox\nCOPY f /f\nRUN true\n",
        &[("f", "f\n")],
        &[],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("Step 2/3 : COPY f /f\n ---> Using cache\n"),
        "{}",
        r.stdout
    );
    d.ok(&["rmi", "h6err:x"]);

    // --force-rm prints the removal, as Docker does.
    let r = build(&d, "FROM busybox\nRUN exit 5\n", &[], &["--force-rm"]);
    assert_eq!(r.code, 5);
    assert!(
        r.stdout.contains("Removing intermediate container "),
        "{}",
        r.stdout
    );
    assert_nothing_left(&d, "--force-rm");
}

#[test]
fn a_bad_onbuild_trigger_fails_the_child_without_a_line_number() {
    let d = Daemon::start();
    // dockerd 20.10 takes the trigger as it is and checks its flags and arguments when a
    // child runs it; the error then names no line (the trigger is parsed on its own).
    for (trigger, error) in [
        ("COPY --bogus=1 a b", "Unknown flag: bogus\n"),
        ("ENV", "ENV requires at least one argument\n"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument\n"),
    ] {
        let r = build(&d, &format!("FROM busybox\nONBUILD {trigger}\n"), &[], &[]);
        assert_eq!(r.code, 0, "{trigger}: {}{}", r.stdout, r.stderr);
        let base = "h6err:x";
        let ctx = TempDir::new();
        write(
            ctx.path(),
            "Dockerfile",
            &format!("FROM {base}\nRUN true\n"),
        );
        let r: Run = docker(&d)
            .args(["build", "-t", "h6err:child"])
            .arg(ctx.path())
            .output()
            .unwrap()
            .into();
        assert_eq!(
            (r.code, r.stderr.as_str()),
            (1, error),
            "{trigger}: {}",
            r.stdout
        );
        assert!(
            r.stdout
                .ends_with("Step 1/2 : FROM h6err:x\n# Executing 1 build trigger\n"),
            "{trigger}: {}",
            r.stdout
        );
        assert_eq!(d.ok(&["ps", "-aq"]), "");
        assert_ne!(d.berth(&["image", "inspect", "h6err:child"]).code, 0);
    }
}

#[test]
fn a_missing_base_image_fails_the_from_step() {
    let d = Daemon::start();
    let r = build(
        &d,
        "FROM 127.0.0.1:9/nothere/image:v1\nRUN true\n",
        &[],
        &[],
    );
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .starts_with("Sending build context to Docker daemon"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("Step 1/2 : FROM 127.0.0.1:9/nothere/image:v1\n"),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.is_empty());
    assert_nothing_left(&d, "missing base");
    let r = build(&d, "ARG EMPTY\nFROM ${EMPTY}\n", &[], &[]);
    assert_eq!(
        r.stderr, "base name (${EMPTY}) should not be blank\n",
        "{}",
        r.stdout
    );
}

#[test]
fn a_client_that_goes_away_cancels_the_build() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo started; sleep 300\n",
    );
    let mut child = docker(&d)
        .arg("build")
        .arg(ctx.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker build");
    // The RUN's container is running once it printed.
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let started = eventually(60, || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        match stdout.read(&mut buf) {
            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return true,
        }
        String::from_utf8_lossy(&seen).contains("started\n")
    });
    assert!(started, "{}", String::from_utf8_lossy(&seen));
    assert_ne!(d.ok(&["ps", "-q"]), "", "the RUN container runs");
    child.kill().unwrap();
    let _ = child.wait();
    drop(stdout);
    assert!(
        eventually(30, || d.ok(&["ps", "-aq"]).is_empty()),
        "the build container was not removed: {}",
        d.ok(&["ps", "-a"])
    );
}
