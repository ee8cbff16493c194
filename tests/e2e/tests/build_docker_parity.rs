//! `docker build` (the classic builder) on berthd against a private dockerd, both driven by the
//! real docker CLI 20.10: the same output (IDs normalised), the same history texts (COPY/ADD
//! content hashes included), the same Config, the same errors and exit codes
//! (docs/design/build-transcripts.md). Stages the target does not need are a berth-only
//! difference (build_stages.rs), so every Dockerfile here needs all its stages.

use berth_e2e::{docker_cli, tempdir::TempDir, Daemon, Dockerd, Run};
use std::path::Path;
use std::process::Command;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The two engines under comparison, each with the same busybox image (same ID).
struct Pair {
    berth: Daemon,
    docker: Dockerd,
    /// DOCKER_CONFIG for the CLI against berthd.
    _scratch: TempDir,
}

impl Pair {
    fn start() -> Pair {
        // The classic builder on both sides, whatever the environment says.
        std::env::set_var("DOCKER_BUILDKIT", "0");
        let berth = Daemon::start();
        let docker = Dockerd::start();
        let scratch = TempDir::new();
        let image = scratch.path().join("busybox.tar");
        berth.ok(&["save", "-o", image.to_str().unwrap(), "busybox"]);
        let r = docker.docker(&["load", "-i", image.to_str().unwrap()]);
        assert_eq!(r.code, 0, "load busybox into dockerd: {}", r.stderr);
        Pair {
            berth,
            docker,
            _scratch: scratch,
        }
    }

    /// The docker CLI against berthd.
    fn on_berth(&self, args: &[&str]) -> Run {
        Command::new(docker_cli())
            .args(args)
            .env("DOCKER_HOST", self.berth.host())
            .env("DOCKER_BUILDKIT", "0")
            .env(
                "DOCKER_CONFIG",
                self.berth.root.path().join("docker-config"),
            )
            .output()
            .expect("docker")
            .into()
    }

    fn on_docker(&self, args: &[&str]) -> Run {
        self.docker.docker(args)
    }

    /// Runs the same command on both; returns (berth, docker).
    fn both(&self, args: &[&str]) -> (Run, Run) {
        (self.on_berth(args), self.on_docker(args))
    }
}

/// IDs replaced (`sha256:<64 hex>` is `sha256:<id>`, a 12-hex word is `<id>`), and each RUN's
/// output reduced to its sorted characters: a container's stdout and stderr are two pipes
/// (and `sh -x` writes a trace line in pieces), so how they interleave is up to the
/// scheduler, on Docker as on berth.
fn normalize(text: &str) -> String {
    let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        let tail = &rest[i + 7..];
        out.push_str(&rest[..i + 7]);
        if tail.len() >= 64 && tail.as_bytes()[..64].iter().all(|&b| is_hex(b)) {
            out.push_str("<id>");
            rest = &tail[64..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    let words = |line: &str| -> String {
        line.split(' ')
            .map(|w| {
                if w.len() == 12 && w.bytes().all(is_hex) {
                    "<id>"
                } else {
                    w
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut lines: Vec<String> = Vec::new();
    let mut run_output: Vec<String> = Vec::new();
    let mut in_run = false;
    // The red wrapping of stderr is checked in build_errors.rs; here it would tie lines together.
    let out = out.replace("\u{1b}[91m", "").replace("\u{1b}[0m", "");
    for line in out.split('\n') {
        let line = words(line);
        let ends_run = line.starts_with("Removing intermediate container")
            || line.starts_with("Step ")
            || line.starts_with(" ---> ");
        if in_run && !ends_run {
            run_output.push(line + "\n");
            continue;
        }
        if in_run {
            lines.push(sorted_chars(&mut run_output));
        }
        in_run = line.starts_with(" ---> Running in");
        lines.push(line);
    }
    lines.push(sorted_chars(&mut run_output));
    lines.join("\n")
}

fn sorted_chars(lines: &mut Vec<String>) -> String {
    let mut chars: Vec<char> = lines
        .drain(..)
        .flat_map(|l| l.chars().collect::<Vec<_>>())
        .collect();
    chars.sort();
    format!("<run output {:?}>", chars.into_iter().collect::<String>())
}

/// Asserts both runs ended alike: exit code, stdout and stderr with IDs normalised.
fn assert_same(what: &str, berth: &Run, docker: &Run) {
    assert_eq!(
        (
            berth.code,
            normalize(&berth.stdout),
            normalize(&berth.stderr)
        ),
        (
            docker.code,
            normalize(&docker.stdout),
            normalize(&docker.stderr)
        ),
        "{what}: berth (left) and dockerd (right) differ"
    );
}

/// `history --no-trunc` texts, newest first.
fn history(run: impl Fn(&[&str]) -> Run, image: &str) -> Vec<String> {
    let r = run(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", image]);
    assert_eq!(r.code, 0, "history {image}: {}", r.stderr);
    r.stdout.lines().map(String::from).collect()
}

/// `inspect` of a field, with IDs normalised.
fn inspect(run: impl Fn(&[&str]) -> Run, image: &str, format: &str) -> String {
    let r = run(&["image", "inspect", "-f", format, image]);
    assert_eq!(r.code, 0, "inspect {image}: {}", r.stderr);
    normalize(r.stdout.trim())
}

/// The transcript's Dockerfile with every instruction kind.
fn all_kinds(dir: &Path) {
    write(
        dir,
        "Dockerfile",
        "FROM busybox\nARG V=1\nENV A=b C=\"d e\"\nLABEL maintainer=\"me\" version=$V\nWORKDIR /app\nCOPY hello.txt /app/\n\
ADD dir /app/dir\nRUN echo built > /built && cat /app/hello.txt\nRUN [\"sh\", \"-c\", \"echo exec form\"]\n\
EXPOSE 80/tcp 443\nVOLUME /data\nUSER nobody\nCMD [\"sh\"]\nENTRYPOINT [\"/bin/sh\",\"-c\"]\n\
HEALTHCHECK --interval=5s CMD true\nSTOPSIGNAL SIGTERM\nSHELL [\"/bin/sh\",\"-c\"]\nONBUILD RUN echo onbuild\n\
ONBUILD COPY f /onbuild-copied\n",
    );
    write(dir, "hello.txt", "hello\n");
    write(dir, "dir/sub/x", "x\n");
    write(dir, "dir/y", "y\n");
    write(dir, ".dockerignore", "dir/y\n");
}

#[test]
fn every_instruction_kind_builds_as_on_docker() {
    let p = Pair::start();
    let ctx = TempDir::new();
    all_kinds(ctx.path());
    let dir = ctx.path().to_str().unwrap();
    let args = [
        "build",
        "-t",
        "h6test/a:1",
        "-t",
        "h6test/a:2",
        "--build-arg",
        "V=7",
        "--label",
        "lab=1",
        dir,
    ];
    let (b, d) = p.both(&args);
    assert_eq!(d.code, 0, "dockerd: {}{}", d.stdout, d.stderr);
    assert_same("first build", &b, &d);
    assert!(
        b.stdout.contains("Successfully tagged h6test/a:2"),
        "{}",
        b.stdout
    );

    let on_berth = |a: &[&str]| p.on_berth(a);
    let on_docker = |a: &[&str]| p.on_docker(a);
    assert_eq!(
        history(on_berth, "h6test/a:1"),
        history(on_docker, "h6test/a:1"),
        "history --no-trunc"
    );
    for format in [
        "{{json .Config}}",
        "{{.Author}}",
        "{{.Os}}/{{.Architecture}}",
        "{{len .RootFS.Layers}}",
    ] {
        assert_eq!(
            inspect(on_berth, "h6test/a:1", format),
            inspect(on_docker, "h6test/a:1", format),
            "{format}"
        );
    }
    let container_config = "{{json .ContainerConfig.Cmd}} {{json .ContainerConfig.Entrypoint}} {{json .ContainerConfig.Env}}";
    assert_eq!(
        inspect(on_berth, "h6test/a:1", container_config),
        inspect(on_docker, "h6test/a:1", container_config)
    );

    // The same build again: every step from the cache, the same image.
    let before = inspect(|a: &[&str]| p.on_berth(a), "h6test/a:1", "{{.Id}}");
    let (b, d) = p.both(&args);
    assert_same("cached rebuild", &b, &d);
    assert_eq!(
        b.stdout.matches(" ---> Using cache").count(),
        19,
        "{}",
        b.stdout
    );
    assert_eq!(
        inspect(|a: &[&str]| p.on_berth(a), "h6test/a:1", "{{.Id}}"),
        before
    );
    // Build containers are gone (default --rm).
    assert_eq!(p.on_berth(&["ps", "-aq"]).stdout, "");
}

#[test]
fn created_by_texts_match_docker() {
    let p = Pair::start();
    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nMAINTAINER Jane <j@x>\nARG NODEF\nARG WITH=\"x y\"\nENV PATHX=$PATH:/x K=\"a=b\" \\\n    L=c\\ d\n\
LABEL \"com.x\"=\"v w\" other='$WITH'\nWORKDIR app\nWORKDIR sub\nCMD echo hi\nENTRYPOINT [\"a\", \"b\"]\n\
VOLUME [\"/a\", \"/b\"]\nEXPOSE 8080 22/udp 1000-1001\nUSER 1:1\nSTOPSIGNAL 9\nRUN true\n",
    );
    let dir = ctx.path().to_str().unwrap();
    let (b, d) = p.both(&["build", "-t", "h6test/texts", "--build-arg", "NODEF=z", dir]);
    assert_eq!(d.code, 0, "dockerd: {}{}", d.stdout, d.stderr);
    assert_same("build", &b, &d);
    let on_berth = |a: &[&str]| p.on_berth(a);
    let on_docker = |a: &[&str]| p.on_docker(a);
    assert_eq!(
        history(on_berth, "h6test/texts"),
        history(on_docker, "h6test/texts")
    );
    for format in ["{{json .Config}}", "{{.Author}}"] {
        assert_eq!(
            inspect(on_berth, "h6test/texts", format),
            inspect(on_docker, "h6test/texts", format),
            "{format}"
        );
    }
}

#[test]
fn onbuild_triggers_shell_healthcheck_and_chown_match_docker() {
    let p = Pair::start();
    let base = TempDir::new();
    all_kinds(base.path());
    let (b, d) = p.both(&[
        "build",
        "-q",
        "-t",
        "h6test/a:1",
        base.path().to_str().unwrap(),
    ]);
    assert_eq!((b.code, d.code), (0, 0), "base: {}{}", b.stderr, d.stderr);

    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM h6test/a:1\nUSER root\nADD x.tar /tarx/\nCOPY --chown=1:2 f /owned\nSHELL [\"/bin/sh\", \"-xc\"]\nENV P=1\n\
RUN echo $P\nHEALTHCHECK --interval=1m --timeout=3s --retries=3 CMD wget -q localhost || exit 1\n",
    );
    write(ctx.path(), "f", "owned\n");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_mtime(1_600_000_000);
    tar.append_data(&mut header, "in-tar.txt", &b"tar"[..])
        .unwrap();
    std::fs::write(ctx.path().join("x.tar"), tar.into_inner().unwrap()).unwrap();

    let dir = ctx.path().to_str().unwrap();
    let (b, d) = p.both(&["build", "-t", "h6test/child", dir]);
    assert_eq!(d.code, 0, "dockerd: {}{}", d.stdout, d.stderr);
    assert_same("child build", &b, &d);
    assert!(
        b.stdout.contains("# Executing 2 build triggers\n"),
        "{}",
        b.stdout
    );
    let on_berth = |a: &[&str]| p.on_berth(a);
    let on_docker = |a: &[&str]| p.on_docker(a);
    assert_eq!(
        history(on_berth, "h6test/child"),
        history(on_docker, "h6test/child")
    );
    assert_eq!(
        inspect(on_berth, "h6test/child", "{{json .Config}}"),
        inspect(on_docker, "h6test/child", "{{json .Config}}")
    );
    let r = p.on_berth(&[
        "run",
        "--rm",
        "--entrypoint",
        "",
        "h6test/child",
        "sh",
        "-c",
        "stat -c '%u:%g' /owned; cat /tarx/in-tar.txt /onbuild-copied",
    ]);
    assert_eq!(r.stdout, "1:2\ntarowned\n", "{}", r.stderr);
}

#[test]
fn rm_false_keeps_the_step_containers_as_docker() {
    let p = Pair::start();
    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nENV A=1\nRUN echo ran > /ran\n",
    );
    let dir = ctx.path().to_str().unwrap();
    let (b, d) = p.both(&["build", "--no-cache", "--rm=false", dir]);
    assert_eq!(d.code, 0, "dockerd: {}{}", d.stdout, d.stderr);
    assert_same("--rm=false", &b, &d);
    // Every step's container stays: ENV's never started, RUN's exited.
    let ps = [
        "ps",
        "-a",
        "--no-trunc",
        "--format",
        "{{.Command}} {{.State}}",
    ];
    let (b, d) = p.both(&ps);
    assert_eq!(b.stdout, d.stdout);
    assert_eq!(b.stdout.lines().count(), 2, "{}", b.stdout);
}

#[test]
fn multi_stage_builds_match_docker_when_every_stage_is_needed() {
    let p = Pair::start();
    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        "ARG BASE=busybox\nFROM ${BASE} AS first\nRUN echo first > /first\nFROM first AS mid\nARG BASE\n\
COPY --from=first /first /copied\nRUN echo base=$BASE\nFROM mid\nCOPY --from=0 /first /again\nRUN cat /copied /again\n",
    );
    let dir = ctx.path().to_str().unwrap();
    let (b, d) = p.both(&[
        "build",
        "-t",
        "h6test/multi",
        "--build-arg",
        "UNUSED=1",
        dir,
    ]);
    assert_eq!(d.code, 0, "dockerd: {}{}", d.stdout, d.stderr);
    assert_same("multi-stage build", &b, &d);
    assert!(
        b.stdout
            .contains("[Warning] One or more build-args [UNUSED] were not consumed\n"),
        "{}",
        b.stdout
    );
    assert_eq!(
        history(|a: &[&str]| p.on_berth(a), "h6test/multi"),
        history(|a: &[&str]| p.on_docker(a), "h6test/multi")
    );
}

#[test]
fn quiet_iidfile_and_tags_match_docker() {
    let p = Pair::start();
    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo hidden\nLABEL a=b\n",
    );
    let dir = ctx.path().to_str().unwrap();
    let berth_iid = ctx.path().join("berth.iid");
    let docker_iid = ctx.path().join("docker.iid");
    let b = p.on_berth(&[
        "build",
        "-q",
        "--iidfile",
        berth_iid.to_str().unwrap(),
        "-t",
        "q:1",
        "-t",
        "q:2",
        dir,
    ]);
    let d = p.on_docker(&[
        "build",
        "-q",
        "--iidfile",
        docker_iid.to_str().unwrap(),
        "-t",
        "q:1",
        "-t",
        "q:2",
        dir,
    ]);
    assert_same("quiet build", &b, &d);
    let iid = std::fs::read_to_string(&berth_iid)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(b.stdout.trim(), iid, "-q prints the ID the iidfile holds");
    assert_eq!(
        inspect(|a: &[&str]| p.on_berth(a), "q:2", "{{.Id}}"),
        normalize(&iid)
    );
    assert_eq!(
        p.on_berth(&["image", "inspect", "-f", "{{.Id}}", "q:1"])
            .stdout
            .trim(),
        iid
    );
    assert!(std::fs::read_to_string(&docker_iid)
        .unwrap()
        .starts_with("sha256:"));
}

/// Each failing build: same exit code and messages as dockerd, and nothing left behind.
#[test]
fn errors_match_docker() {
    let p = Pair::start();
    let cases: &[(&str, &str, &[(&str, &str)])] = &[
        ("syntax", "FROM busybox\nRUN echo ok\nENV\n", &[]),
        ("unknown", "FROM busybox\nFOO bar\n", &[]),
        ("badflag", "FROM busybox\nCOPY --foo=1 f /f\n", &[("f", "f\n")]),
        ("nofrom", "RUN echo hi\n", &[]),
        ("missing", "FROM busybox\nCOPY f /f\nCOPY nothere /x\n", &[("f", "f\n")]),
        ("outside", "FROM busybox\nCOPY ../etc/passwd /x\n", &[]),
        ("glob", "FROM busybox\nCOPY *.nomatch /x/\n", &[]),
        ("run", "FROM busybox\nCOPY f /f\nRUN echo before; echo to-stderr >&2; exit 3\nRUN echo never\n", &[("f", "f\n")]),
        ("healthcheck", "FROM busybox\nHEALTHCHECK --retries=0 CMD true\n", &[]),
        ("stopsignal", "FROM busybox\nSTOPSIGNAL NOPE\n", &[]),
        ("volume", "FROM busybox\nVOLUME [\"\"]\n", &[]),
        ("expose", "FROM busybox\nEXPOSE abc\n", &[]),
    ];
    for (name, dockerfile, files) in cases {
        let ctx = TempDir::new();
        write(ctx.path(), "Dockerfile", dockerfile);
        for (f, text) in files.iter() {
            write(ctx.path(), f, text);
        }
        let dir = ctx.path().to_str().unwrap();
        let tag = format!("h6err/{name}");
        let (b, d) = p.both(&["build", "--force-rm", "-t", &tag, dir]);
        assert_ne!(d.code, 0, "{name}: dockerd built it");
        assert_same(name, &b, &d);
        assert_eq!(
            p.on_berth(&["ps", "-aq"]).stdout,
            "",
            "{name}: containers left"
        );
        assert_ne!(
            p.on_berth(&["image", "inspect", &tag]).code,
            0,
            "{name}: tagged"
        );
    }
    // A failing RUN exits with its code.
    let ctx = TempDir::new();
    write(ctx.path(), "Dockerfile", "FROM busybox\nRUN exit 7\n");
    let (b, d) = p.both(&["build", ctx.path().to_str().unwrap()]);
    assert_eq!((b.code, d.code), (7, 7));
    assert_eq!(b.stderr, d.stderr);
    // A missing target is refused before any step.
    let (b, d) = p.both(&["build", "--target", "nope", ctx.path().to_str().unwrap()]);
    assert_same("target", &b, &d);
}
