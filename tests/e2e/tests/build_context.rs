//! The build context: .dockerignore as Docker applies it (checked against a private dockerd),
//! symlinks, a Dockerfile outside the context, a context on stdin, and the berth CLI's fast
//! context that sends only what the daemon does not have.

use berth_e2e::{tempdir::TempDir, Daemon, Dockerd, Run};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn ok(r: Run, what: &str) -> Run {
    assert_eq!(r.code, 0, "{what}: {}{}", r.stdout, r.stderr);
    r
}

/// A context exercising .dockerignore: exceptions, `**`, directory rules, a comment, and
/// patterns that match the Dockerfile and .dockerignore themselves.
fn ignore_context(dir: &Path) {
    for name in [
        "a.txt",
        "b.log",
        "keep.log",
        "dir/x",
        "dir/keep.log",
        "dir/sub/y",
        "deep/x/y.log",
        "deep/x/z",
        "deep/q/y.log",
        "cache/big",
        "cache/keep/me",
        "#notacomment",
    ] {
        write(dir, name, name);
    }
    write(
        dir,
        ".dockerignore",
        "# a comment\n*.log\n!keep.log\n**/y.log\n!deep/q/y.log\ndir/sub\ncache\n!cache/keep\n  #notacomment\nDockerfile\n.dockerignore\n",
    );
    write(
        dir,
        "Dockerfile",
        "FROM busybox\nCOPY . /ctx\nCMD [\"sh\", \"-c\", \"cd /ctx && find . | sort\"]\n",
    );
}

#[test]
fn dockerignore_selects_the_same_files_as_docker() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    ignore_context(ctx.path());
    let path = ctx.path().to_str().unwrap();

    let docker = Dockerd::start();
    let scratch = TempDir::new();
    let image = scratch.path().join("busybox.tar");
    d.ok(&["save", "-o", image.to_str().unwrap(), "busybox"]);
    ok(
        docker.docker(&["load", "-i", image.to_str().unwrap()]),
        "load busybox into dockerd",
    );
    std::fs::remove_file(&image).unwrap();
    ok(
        docker.docker(&["build", "-t", "ign", path]),
        "dockerd build",
    );
    let expected = ok(docker.docker(&["run", "--rm", "ign"]), "dockerd run").stdout;
    assert!(
        expected.contains("./keep.log") && !expected.contains("./b.log"),
        "{expected}"
    );

    ok(d.berth(&["build", "-t", "ign", path]), "berth build");
    assert_eq!(d.ok(&["run", "--rm", "ign"]), expected.trim(), "berth CLI");
    ok(
        d.docker(&["build", "-t", "ign2", path]),
        "docker CLI build on berthd",
    );
    assert_eq!(
        d.ok(&["run", "--rm", "ign2"]),
        expected.trim(),
        "docker CLI"
    );
}

#[test]
fn symlinks_a_dockerfile_elsewhere_and_a_context_on_stdin() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(ctx.path(), "real/file", "through the link\n");
    std::os::unix::fs::symlink("real/file", ctx.path().join("link")).unwrap();
    std::os::unix::fs::symlink("real", ctx.path().join("dirlink")).unwrap();
    let other = TempDir::new();
    write(
        other.path(),
        "Build.file",
        "FROM busybox\nCOPY link /copied\nCOPY dirlink/file /viadir\nCOPY dirlink /kept-link\n",
    );
    let file = other.path().join("Build.file");
    ok(
        d.berth(&[
            "build",
            "-f",
            file.to_str().unwrap(),
            "-t",
            "links",
            ctx.path().to_str().unwrap(),
        ]),
        "berth build -f outside",
    );
    // A symlink source is followed inside the context; the copy is the file's content.
    assert_eq!(
        d.ok(&["run", "--rm", "links", "cat", "/copied", "/viadir"]),
        "through the link\nthrough the link"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "links", "cat", "/kept-link/file"]),
        "through the link"
    );

    // `-`: the context is a tar on stdin, its Dockerfile inside.
    write(
        other.path(),
        "stdin/Dockerfile",
        "FROM busybox\nCOPY Dockerfile /df\n",
    );
    let tar = std::process::Command::new("tar")
        .args([
            "-C",
            other.path().join("stdin").to_str().unwrap(),
            "-c",
            "Dockerfile",
        ])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let mut child = d
        .berth_cmd(&["build", "-t", "fromstdin", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    let r: Run = child.wait_with_output().unwrap().into();
    ok(r, "berth build -");
    assert_eq!(
        d.ok(&["run", "--rm", "fromstdin", "cat", "/df"]),
        "FROM busybox\nCOPY Dockerfile /df"
    );
}

/// The byte count in `Sending build context to Docker daemon  N`.
fn sent(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Sending build context to Docker daemon"))
        .unwrap_or_else(|| panic!("no Sending line in {out}"))
        .trim()
        .to_string()
}

#[test]
fn the_berth_cli_sends_only_what_the_daemon_lacks() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(ctx.path(), "Dockerfile", "FROM busybox\nCOPY . /ctx\n");
    write(ctx.path(), "big", &"x".repeat(300_000));
    write(ctx.path(), "small", "12345");
    let path = ctx.path().to_str().unwrap();
    let first = ok(d.berth(&["build", "-t", "fast", path]), "first");
    assert!(sent(&first.stdout).ends_with("kB"), "{}", first.stdout);

    let again = ok(d.berth(&["build", "-t", "fast", path]), "rebuild");
    assert_eq!(sent(&again.stdout), "0B", "{}", again.stdout);

    write(ctx.path(), "small", "123456");
    let edited = ok(d.berth(&["build", "-t", "fast", path]), "one file edited");
    assert_eq!(sent(&edited.stdout), "6B", "{}", edited.stdout);
    assert_eq!(
        d.ok(&["run", "--rm", "fast", "cat", "/ctx/small"]),
        "123456"
    );

    // The daemon's store emptied between builds (prune): the CLI's cache says the daemon
    // has the files, the daemon says it does not, and the build still works.
    let r = d.docker(&["builder", "prune", "-f"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let after_prune = ok(d.berth(&["build", "-t", "fast", path]), "after prune");
    assert!(
        sent(&after_prune.stdout).ends_with("kB"),
        "{}",
        after_prune.stdout
    );
    assert_eq!(
        d.ok(&["run", "--rm", "fast", "cat", "/ctx/small"]),
        "123456"
    );
}

/// A run's output with the CLI's name taken out, to compare berth's with docker's.
fn neutral(r: &Run) -> (i32, String, String) {
    let clean = |s: &str| s.replace("docker", "CLI").replace("berth", "CLI");
    (r.code, clean(&r.stdout), clean(&r.stderr))
}

#[test]
fn builder_prune_and_the_build_aliases_answer_as_the_docker_cli() {
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(ctx.path(), "Dockerfile", "FROM busybox\nCOPY big /big\n");
    write(ctx.path(), "big", &"x".repeat(300_000));
    let path = ctx.path().to_str().unwrap();
    let id = ok(
        d.berth(&["image", "build", "-q", "-t", "alias", path]),
        "image build",
    )
    .stdout;
    assert!(id.starts_with("sha256:"), "{id}");
    let again = ok(d.berth(&["builder", "build", "-q", path]), "builder build").stdout;
    assert_eq!(again, id, "the second build comes from the cache");

    // Declined (stdin is empty): nothing is removed, docker 20.10 still prints the total.
    let declined = d.berth(&["builder", "prune"]);
    assert_eq!(
        neutral(&declined),
        neutral(&d.docker(&["builder", "prune"]))
    );
    assert_eq!(
        declined.stdout,
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] Total reclaimed space: 0B\n"
    );
    // The context store holds the 300 kB file until a prune takes it.
    let pruned = ok(d.berth(&["builder", "prune", "-a", "-f"]), "prune");
    let total = pruned.stdout.trim().strip_prefix("Total reclaimed space: ");
    assert!(
        total.is_some_and(|t| t.ends_with("kB") && t != "0B"),
        "{}",
        pruned.stdout
    );
    let empty = ok(d.docker(&["builder", "prune", "-a", "-f"]), "docker prune");
    assert_eq!(empty.stdout, "Total reclaimed space: 0B\n");
    assert_eq!(
        d.ok(&["run", "--rm", "alias", "wc", "-c", "/big"]),
        "300000 /big"
    );

    for args in [
        &["builder", "prune", "--filter", "x"][..],
        &["builder", "prune", "--keep-storage", "1q"],
        &["builder", "prune", "extra"],
        &["builder", "prune", "-f", "--filter", "foo=bar"],
        &["builder", "prune", "-f", "--filter", "until=soon"],
        &["builder", "build"],
        &["image", "build", "--memory", "x", "."],
        &["builder", "build", "/nonexistent"],
    ] {
        assert_eq!(
            neutral(&d.berth(args)),
            neutral(&d.docker(args)),
            "{args:?}"
        );
    }
}
