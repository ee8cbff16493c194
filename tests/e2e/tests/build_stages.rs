//! Multi-stage builds (design §5): only the stages the target needs are built, independent
//! stages run at the same time, and the output still reads in file order.

use berth_e2e::{docker_cli, tempdir::TempDir, Daemon, Run};
use std::path::Path;
use std::process::{Command, Stdio};

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `docker build ARGS <context with this Dockerfile>` against berthd.
fn build(d: &Daemon, dockerfile: &str, args: &[&str]) -> Run {
    let ctx = TempDir::new();
    write(ctx.path(), "Dockerfile", dockerfile);
    Command::new(docker_cli())
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
        .stdin(Stdio::null())
        .arg("build")
        .args(args)
        .arg(ctx.path())
        .output()
        .expect("docker build")
        .into()
}

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    r
}

/// The `Step N/M : text` lines of an output.
fn steps(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("Step ")).collect()
}

const MULTI: &str = "ARG BASE=busybox\nFROM ${BASE} AS first\nRUN echo first > /first\nFROM busybox AS skipped\nRUN echo skipped; exit 1\n\
FROM first AS mid\nARG BASE\nCOPY --from=first /first /copied\nRUN echo base=$BASE\nFROM mid\nRUN echo final\n";

#[test]
fn target_builds_only_the_stages_it_needs() {
    let d = Daemon::start();
    let r = ok(build(
        &d,
        MULTI,
        &["--target", "mid", "--build-arg", "UNUSED=1", "-t", "h6/mid"],
    ));
    // The failing stage was not needed, so it never ran; steps are numbered over what runs.
    assert_eq!(
        steps(&r.stdout),
        [
            "Step 1/7 : ARG BASE=busybox",
            "Step 2/7 : FROM ${BASE} AS first",
            "Step 3/7 : RUN echo first > /first",
            "Step 4/7 : FROM first AS mid",
            "Step 5/7 : ARG BASE",
            "Step 6/7 : COPY --from=first /first /copied",
            "Step 7/7 : RUN echo base=$BASE",
        ]
    );
    assert!(!r.stdout.contains("skipped"), "{}", r.stdout);
    assert!(r.stdout.contains("\nbase=busybox\n"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("[Warning] One or more build-args [UNUSED] were not consumed\n"),
        "{}",
        r.stdout
    );
    assert_eq!(d.ok(&["run", "--rm", "h6/mid", "cat", "/copied"]), "first");

    // Without --target the last stage is the target; the first stages come from the cache
    // and `FROM mid` starts from mid's image.
    let r = ok(build(&d, MULTI, &["-t", "h6/final"]));
    let s = steps(&r.stdout);
    assert_eq!(s.len(), 9, "{}", r.stdout);
    assert_eq!(s[7], "Step 8/9 : FROM mid");
    assert_eq!(
        r.stdout.matches(" ---> Using cache").count(),
        4,
        "{}",
        r.stdout
    );
    let mid_id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "h6/mid"]);
    assert!(
        r.stdout
            .contains(&format!("Step 8/9 : FROM mid\n ---> {}\n", &mid_id[7..19])),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\nfinal\n"), "{}", r.stdout);
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let d = Daemon::start();
    // Stage a listens and stage b sends: `hi` only arrives when both RUNs are running at
    // once. Built one after the other, a gives up (timeout) before b starts.
    let dockerfile = "FROM busybox AS a\nRUN timeout 120 nc -l -p 47391 > /got; echo listener done\n\
FROM busybox AS b\nRUN for i in $(seq 1 1200); do echo hi | nc 127.0.0.1 47391 && break; sleep 0.1; done; echo sent > /sent\n\
FROM busybox\nCOPY --from=a /got /got\nCOPY --from=b /sent /sent\nRUN cat /got /sent\n";
    let r = ok(build(
        &d,
        dockerfile,
        &["--network", "host", "-t", "h6/conc"],
    ));
    assert_eq!(
        d.ok(&["run", "--rm", "h6/conc", "cat", "/got"]),
        "hi",
        "{}",
        r.stdout
    );
    // The transcript is still in file order: stage a's lines, then b's, then the last stage.
    let s = steps(&r.stdout);
    assert_eq!(s[0], "Step 1/8 : FROM busybox AS a");
    assert_eq!(s[2], "Step 3/8 : FROM busybox AS b");
    let a_done = r.stdout.find("listener done").unwrap();
    let b_step = r.stdout.find("Step 3/8").unwrap();
    assert!(a_done < b_step, "{}", r.stdout);
}

#[test]
fn a_failing_stage_cancels_the_others() {
    let d = Daemon::start();
    let dockerfile =
        "FROM busybox AS slow\nRUN sleep 300\nFROM busybox AS bad\nRUN exit 4\nFROM busybox\n\
COPY --from=slow /etc/hostname /a\nCOPY --from=bad /etc/hostname /b\n";
    let r = build(&d, dockerfile, &[]);
    assert_eq!(r.code, 4, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stderr,
        "The command '/bin/sh -c exit 4' returned a non-zero code: 4\n"
    );
    assert!(
        berth_e2e::eventually(30, || d.ok(&["ps", "-aq"]).is_empty()),
        "containers left: {}",
        d.ok(&["ps", "-a"])
    );
}

/// The docker CLI with `DOCKER_CONFIG` = `config` against berthd.
fn docker_with(d: &Daemon, config: &Path, args: &[&str]) -> Run {
    Command::new(docker_cli())
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", config)
        .stdin(Stdio::null())
        .args(args)
        .output()
        .expect("docker")
        .into()
}

#[test]
fn a_base_image_that_is_not_here_is_pulled_with_the_clients_credentials() {
    use berth_e2e::registry::{Auth, Registry};
    let reg = Registry::distribution(Auth::Basic {
        user: "alice",
        password: "s3cret",
    });
    let d = Daemon::start();
    let tmp = TempDir::new();
    // The CLI sends every credential of its config file in X-Registry-Config.
    let config = tmp.path().join("docker-config");
    std::fs::create_dir_all(&config).unwrap();
    let auth = {
        let out = Command::new("base64")
            .arg("-w0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        out.stdin
            .as_ref()
            .unwrap()
            .write_all(b"alice:s3cret")
            .unwrap();
        String::from_utf8(out.wait_with_output().unwrap().stdout).unwrap()
    };
    let json = serde_json::json!({"auths": {reg.addr.clone(): {"auth": auth}}});
    std::fs::write(config.join("config.json"), json.to_string()).unwrap();
    let image = format!("{}/team/base:v1", reg.addr);
    ok(docker_with(&d, &config, &["tag", "busybox", &image]));
    ok(docker_with(&d, &config, &["push", &image]));
    ok(docker_with(&d, &config, &["rmi", &image]));

    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {image}\nRUN echo pulled-base\n"),
    );
    let dir = ctx.path().to_str().unwrap();
    // Without credentials the registry refuses: the FROM step fails.
    let empty = tmp.path().join("empty-config");
    std::fs::create_dir_all(&empty).unwrap();
    let r = docker_with(&d, &empty, &["build", dir]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("Step 1/2 : FROM {image}\n")),
        "{}",
        r.stdout
    );
    assert!(!r.stderr.is_empty());
    assert_ne!(
        docker_with(&d, &empty, &["image", "inspect", &image]).code,
        0
    );

    // With them the base is pulled, its progress in the build's output.
    let r = ok(docker_with(&d, &config, &["build", "-t", "h6/pulled", dir]));
    assert!(
        r.stdout
            .contains(&format!("Status: Downloaded newer image for {image}\n")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("\npulled-base\n"), "{}", r.stdout);
    // --pull pulls again even though it is here now.
    let r = ok(docker_with(
        &d,
        &config,
        &["build", "--pull", "-t", "h6/pulled", dir],
    ));
    assert!(
        r.stdout
            .contains(&format!("Status: Image is up to date for {image}\n")),
        "{}",
        r.stdout
    );
}

/// The layer snapshots and config blobs in berthd's data root.
fn stored(d: &Daemon) -> std::collections::BTreeSet<String> {
    ["snapshots", "blobs/sha256"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(d.data_root.join(dir)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn an_image_removed_during_the_build_stays_readable_until_it_ends() {
    let d = Daemon::start();
    // A base of its own (one tag, no child), so `rmi -f` deletes it outright.
    let before = stored(&d);
    ok(build(
        &d,
        "FROM busybox\nRUN echo base > /base\n",
        &["-t", "h6/base"],
    ));
    let base_id = d.ok(&["image", "inspect", "-f", "{{.Id}}", "h6/base"]);
    let base_files: Vec<String> = stored(&d).difference(&before).cloned().collect();
    assert!(
        base_files.contains(&base_id["sha256:".len()..].to_string()),
        "{base_files:?}"
    );
    assert!(
        base_files.len() >= 2,
        "its layer and config: {base_files:?}"
    );

    // Stage src is done (its image is the base) while the next stage's RUN waits for /go:
    // the base is removed in between, then the RUN goes on and the COPY reads the base.
    let dockerfile = "FROM h6/base AS src\nFROM busybox\n\
RUN until [ -e /go ]; do sleep 0.1; done; rm /go\nCOPY --from=src /base /base\nRUN cat /base\n";
    let builder = {
        let ctx = TempDir::new();
        write(ctx.path(), "Dockerfile", dockerfile);
        let child = Command::new(docker_cli())
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .args(["build", "--no-cache", "-t", "h6/leased"])
            .arg(ctx.path())
            .spawn()
            .expect("docker build");
        (ctx, child)
    };
    let mut waiting = String::new();
    assert!(
        berth_e2e::eventually(60, || {
            waiting = d.ok(&["ps", "-q"]);
            !waiting.is_empty()
        }),
        "the RUN did not start"
    );
    let r = d.berth(&["rmi", "-f", "h6/base"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("Deleted: {base_id}")),
        "{}",
        r.stdout
    );
    assert_ne!(d.berth(&["image", "inspect", &base_id]).code, 0);
    let during = stored(&d);
    assert!(
        base_files.iter().all(|f| during.contains(f)),
        "the build still holds the base's files"
    );
    d.ok(&["exec", &waiting, "touch", "/go"]);
    let (_ctx, child) = builder;
    let r: Run = child.wait_with_output().unwrap().into();
    let r = ok(r);
    assert!(r.stdout.contains("\nbase\n"), "{}", r.stdout);
    assert_eq!(d.ok(&["run", "--rm", "h6/leased", "cat", "/base"]), "base");
    // The build is over: what the rmi removed is freed, as it would have been at once.
    let after = stored(&d);
    let left: Vec<&String> = base_files.iter().filter(|f| after.contains(*f)).collect();
    assert!(left.is_empty(), "not freed: {left:?}");
}
