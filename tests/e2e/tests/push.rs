//! `berth push`, `login` and `logout` against real registries: `berth registry serve` and
//! Debian's `docker-registry` (Distribution 2.8, with htpasswd basic auth), checked with the
//! real docker CLI and a private dockerd pulling and running what berth pushed, and
//! config.json compared byte for byte with what the docker CLI writes for the same login.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_e2e::registry::{
    assert_ok, berth_with_config as berth, docker_with_config as docker, free_port, Auth, Registry,
};
use berth_e2e::{tempdir::TempDir, Daemon, Dockerd, Run};

/// The registries' basic auth user.
const BASIC: Auth = Auth::Basic {
    user: "user",
    password: "pass",
};

/// `berth ARGS` with a docker config directory and more PATH, for credential helpers.
fn berth_in(d: &Daemon, config: &Path, args: &[&str], path_prefix: Option<&Path>) -> Run {
    let mut cmd = d.berth_cmd(args);
    cmd.env("DOCKER_CONFIG", config);
    if let Some(p) = path_prefix {
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                p.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    }
    cmd.output().expect("run berth").into()
}

/// `docker run --rm --network none IMAGE CMD…` on the private dockerd, asserting success;
/// trimmed stdout.
fn docker_run(dockerd: &Dockerd, config: &Path, image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none", image];
    args.extend_from_slice(cmd);
    let run = docker(dockerd, config, &args);
    assert_ok(&run, "docker run");
    run.stdout.trim().to_string()
}

#[test]
fn push_to_berth_registry_docker_pulls_it_and_layers_are_reused() {
    let d = Daemon::start();
    let reg = Registry::berth();
    let cfg = TempDir::new();
    let app = format!("{}/team/app:v1", reg.addr);
    d.ok(&["tag", "busybox", &app]);

    let first = berth(&d, cfg.path(), &["push", &app]);
    assert_ok(&first, "push");
    let lines: Vec<&str> = first.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{}/team/app]", reg.addr)
    );
    assert!(lines[1].ends_with(": Preparing"), "{}", first.stdout);
    assert!(lines[2].ends_with(": Pushed"), "{}", first.stdout);
    assert!(
        lines[3].starts_with("v1: digest: sha256:") && lines[3].contains(" size: "),
        "{}",
        first.stdout
    );
    let digest = lines[3].split_whitespace().nth(2).unwrap().to_string();

    // RepoDigests gains name@digest.
    let repo_digests = d.ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &app,
    ]);
    assert!(
        repo_digests.contains(&format!("{}/team/app@{digest}", reg.addr)),
        "{repo_digests}"
    );

    // The same push again: every layer is already there, the manifest is the same.
    let again = berth(&d, cfg.path(), &["push", &app]);
    assert_ok(&again, "second push");
    assert!(
        again.stdout.contains(": Layer already exists"),
        "{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains(&format!("v1: digest: {digest} size: ")),
        "{}",
        again.stdout
    );

    // Another repository on the same registry: the layer is mounted, not uploaded.
    let other = format!("{}/other/app:v2", reg.addr);
    d.ok(&["tag", "busybox", &other]);
    let mounted = berth(&d, cfg.path(), &["push", &other]);
    assert_ok(&mounted, "push to another repository");
    assert!(
        mounted.stdout.contains(": Mounted from team/app"),
        "{}",
        mounted.stdout
    );

    // The real docker pulls what berth pushed, and runs it.
    let dockerd = Dockerd::start();
    let dcfg = TempDir::new();
    for image in [&app, &other] {
        let pull = docker(&dockerd, dcfg.path(), &["pull", image]);
        assert_ok(&pull, "docker pull");
        assert!(
            pull.stdout.contains(&format!("Digest: {digest}")),
            "{}",
            pull.stdout
        );
    }
    assert_eq!(
        docker_run(&dockerd, dcfg.path(), &app, &["echo", "pushed by berth"]),
        "pushed by berth"
    );

    // The docker CLI pushes through berthd as well.
    let via_docker = d.docker(&["push", &app]);
    assert_ok(&via_docker, "docker push against berthd");
    assert!(
        via_docker.stdout.contains(": Layer already exists"),
        "{}",
        via_docker.stdout
    );
}

/// Files of berth's compressed-layer cache, with their modification times.
fn compressed_cache(d: &Daemon) -> Vec<(String, std::time::SystemTime)> {
    let mut v: Vec<_> = std::fs::read_dir(d.data_root.join("compressed/blobs/sha256"))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().unwrap().modified().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn big_layers_are_compressed_once_and_sent_in_chunks() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "big",
        "busybox",
        "sh",
        "-c",
        "head -c 40000000 /dev/urandom > /big && md5sum /big > /big.md5",
    ]);
    d.ok(&["commit", "big", "bigimg:v1"]);
    let first = Registry::berth();
    let second = Registry::distribution(Auth::None);
    let cfg = TempDir::new();
    let (a, b) = (
        format!("{}/big:v1", first.addr),
        format!("{}/big:v1", second.addr),
    );
    d.ok(&["tag", "bigimg:v1", &a]);
    d.ok(&["tag", "bigimg:v1", &b]);

    // First push: both layers compressed (into the cache) while they stream.
    assert_ok(&berth(&d, cfg.path(), &["push", &a]), "first push");
    let cached = compressed_cache(&d);
    assert_eq!(cached.len(), 2, "{cached:?}");
    // Second registry: the cached gzip goes as is (the big one in PATCHes), nothing recompressed.
    let again = berth(&d, cfg.path(), &["push", &b]);
    assert_ok(&again, "push to a second registry");
    assert_eq!(
        again.stdout.matches(": Pushed").count(),
        2,
        "{}",
        again.stdout
    );
    assert_eq!(compressed_cache(&d), cached);

    let dockerd = Dockerd::start();
    let dcfg = TempDir::new();
    assert_ok(&docker(&dockerd, dcfg.path(), &["pull", &b]), "docker pull");
    assert_eq!(
        docker_run(&dockerd, dcfg.path(), &b, &["md5sum", "-c", "/big.md5"]),
        "/big: OK"
    );
}

#[test]
fn push_and_login_with_distribution_and_basic_auth() {
    let d = Daemon::start();
    let reg = Registry::distribution(BASIC);
    let cfg = TempDir::new();
    let app = format!("{}/app", reg.addr);
    d.ok(&["tag", "busybox", &app]);

    // Without credentials: Docker's message after the layer is prepared.
    let denied = berth(&d, cfg.path(), &["push", &app]);
    assert_eq!(denied.code, 1, "{}{}", denied.stdout, denied.stderr);
    assert!(
        denied.stdout.starts_with("Using default tag: latest\n"),
        "{}",
        denied.stdout
    );
    assert_eq!(denied.stderr.trim(), "no basic auth credentials");

    // A wrong password: the daemon's error, nothing written.
    let bad = berth(
        &d,
        cfg.path(),
        &["login", "-u", "user", "-p", "nope", &reg.addr],
    );
    assert_eq!(bad.code, 1);
    assert!(
        bad.stderr.contains(&format!(
            "Error response from daemon: login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            reg.addr
        )),
        "{}",
        bad.stderr
    );
    assert!(!cfg.path().join("config.json").exists());

    // Login as the docker CLI does it, and the same file.
    let mut login = d.berth_cmd(&["login", "-u", "user", "--password-stdin", &reg.addr]);
    login
        .env("DOCKER_CONFIG", cfg.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"pass\n").unwrap();
    let login: Run = child.wait_with_output().unwrap().into();
    assert_ok(&login, "login");
    assert_eq!(login.stdout, "Login Succeeded\n");
    let config_file = cfg.path().join("config.json");
    assert!(
        login.stderr.contains(&format!(
            "WARNING! Your password will be stored unencrypted in {}.",
            config_file.display()
        )),
        "{}",
        login.stderr
    );

    let dockerd = Dockerd::start();
    let dcfg = TempDir::new();
    let dlogin = docker(
        &dockerd,
        dcfg.path(),
        &["login", "-u", "user", "-p", "pass", &reg.addr],
    );
    assert_ok(&dlogin, "docker login");
    let ours = std::fs::read(&config_file).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&std::fs::read(dcfg.path().join("config.json")).unwrap())
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config_file)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Logged in: the push goes through; docker pulls it with its own login and runs it.
    let pushed = berth(&d, cfg.path(), &["push", &app]);
    assert_ok(&pushed, "push after login");
    assert!(
        pushed.stdout.contains("latest: digest: sha256:"),
        "{}",
        pushed.stdout
    );
    assert_ok(
        &docker(&dockerd, dcfg.path(), &["pull", &app]),
        "docker pull",
    );
    assert_eq!(
        docker_run(
            &dockerd,
            dcfg.path(),
            &app,
            &["echo", "hello via distribution"]
        ),
        "hello via distribution"
    );

    // Logout: the same message and the same file as docker's.
    let out = berth(&d, cfg.path(), &["logout", &reg.addr]);
    assert_ok(&out, "logout");
    assert_eq!(
        out.stdout,
        format!("Removing login credentials for {}\n", reg.addr)
    );
    assert_ok(
        &docker(&dockerd, dcfg.path(), &["logout", &reg.addr]),
        "docker logout",
    );
    assert_eq!(
        std::fs::read(&config_file).unwrap(),
        std::fs::read(dcfg.path().join("config.json")).unwrap()
    );
    let denied = berth(&d, cfg.path(), &["push", &app]);
    assert_eq!(denied.stderr.trim(), "no basic auth credentials");
}

/// A credential helper as `docker-credential-<name>` programs work: one file per server.
fn write_helper(bin: &Path, store: &Path) {
    let script = format!(
        r#"#!/bin/sh
dir={store}
key() {{ printf '%s' "$1" | tr '/:' '__'; }}
case "$1" in
store) in=$(cat); server=$(printf '%s' "$in" | sed 's/.*"ServerURL":"\([^"]*\)".*/\1/'); printf '%s' "$in" > "$dir/$(key "$server")";;
get) server=$(cat); f="$dir/$(key "$server")"; if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi;;
erase) server=$(cat); f="$dir/$(key "$server")"; if [ -f "$f" ]; then rm "$f"; else echo "credentials not found in native keychain"; exit 1; fi;;
*) exit 1;;
esac
"#,
        store = store.display()
    );
    let path = bin.join("docker-credential-test");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn credential_helpers_keep_the_secrets() {
    let d = Daemon::start();
    let reg = Registry::distribution(BASIC);
    let tmp = TempDir::new();
    let (bin, secrets, cfg, dcfg, dsecrets) = (
        tmp.path().join("bin"),
        tmp.path().join("secrets"),
        tmp.path().join("cfg"),
        tmp.path().join("dcfg"),
        tmp.path().join("dsecrets"),
    );
    for dir in [&bin, &secrets, &cfg, &dcfg, &dsecrets] {
        std::fs::create_dir_all(dir).unwrap();
    }
    write_helper(&bin, &secrets);
    std::fs::write(cfg.join("config.json"), r#"{"credsStore":"test"}"#).unwrap();

    let login = berth_in(
        &d,
        &cfg,
        &["login", "-u", "user", "-p", "pass", &reg.addr],
        Some(&bin),
    );
    assert_ok(&login, "login with a helper");
    assert!(
        !login.stderr.contains("stored unencrypted"),
        "{}",
        login.stderr
    );
    let key = reg.addr.replace(':', "_");
    assert_eq!(
        std::fs::read_to_string(secrets.join(&key)).unwrap(),
        format!(
            "{{\"ServerURL\":\"{}\",\"Username\":\"user\",\"Secret\":\"pass\"}}",
            reg.addr
        )
    );

    // The docker CLI, given the same kind of helper, writes the same config.json.
    let dbin = tmp.path().join("dbin");
    std::fs::create_dir_all(&dbin).unwrap();
    write_helper(&dbin, &dsecrets);
    std::fs::write(dcfg.join("config.json"), r#"{"credsStore":"test"}"#).unwrap();
    let dockerd = Dockerd::start();
    let dlogin = Command::new(berth_e2e::docker_cli())
        .env(
            "PATH",
            format!(
                "{}:{}",
                dbin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["--config", dcfg.to_str().unwrap(), "-H"])
        .arg(dockerd_host(&dockerd))
        .args(["login", "-u", "user", "-p", "pass", &reg.addr])
        .output()
        .unwrap();
    assert!(
        dlogin.status.success(),
        "{}",
        String::from_utf8_lossy(&dlogin.stderr)
    );
    assert_eq!(
        std::fs::read(cfg.join("config.json")).unwrap(),
        std::fs::read(dcfg.join("config.json")).unwrap()
    );
    assert_eq!(
        std::fs::read(secrets.join(&key)).unwrap(),
        std::fs::read(dsecrets.join(&key)).unwrap()
    );

    // Push reads the credentials back through the helper.
    let app = format!("{}/helped:v1", reg.addr);
    d.ok(&["tag", "busybox", &app]);
    assert_ok(
        &berth_in(&d, &cfg, &["push", &app], Some(&bin)),
        "push with helper credentials",
    );

    // credHelpers names a helper per registry; logout erases there too.
    let out = berth_in(&d, &cfg, &["logout", &reg.addr], Some(&bin));
    assert_ok(&out, "logout");
    assert!(!secrets.join(&key).exists());
    let denied = berth_in(&d, &cfg, &["push", &app], Some(&bin));
    assert_eq!(denied.stderr.trim(), "no basic auth credentials");
    std::fs::write(
        cfg.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"test"}}}}"#, reg.addr),
    )
    .unwrap();
    assert_ok(
        &berth_in(
            &d,
            &cfg,
            &["login", "-u", "user", "-p", "pass", &reg.addr],
            Some(&bin),
        ),
        "login via credHelpers",
    );
    assert!(secrets.join(&key).exists());
    assert_ok(
        &berth_in(&d, &cfg, &["push", &app], Some(&bin)),
        "push via credHelpers",
    );
}

/// The private dockerd's socket, from the harness's own `docker version` call.
fn dockerd_host(dockerd: &Dockerd) -> String {
    // The harness passes -H itself; ask the daemon where it lives through `docker context`-free
    // means: `docker info` prints the root dir, whose parent holds docker.sock.
    let info = dockerd.docker(&["info", "--format", "{{.DockerRootDir}}"]);
    let root = PathBuf::from(info.stdout.trim());
    format!(
        "unix://{}",
        root.parent().unwrap().join("docker.sock").display()
    )
}

#[test]
fn bad_pushes_fail_as_docker_does() {
    let d = Daemon::start();
    let cfg = TempDir::new();
    let port = free_port();

    let missing = berth(
        &d,
        cfg.path(),
        &["push", &format!("127.0.0.1:{port}/nothing:v1")],
    );
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stdout,
        format!("The push refers to repository [127.0.0.1:{port}/nothing]\n")
    );
    assert_eq!(
        missing.stderr.trim(),
        format!("An image does not exist locally with the tag: 127.0.0.1:{port}/nothing")
    );

    // Nothing listens there.
    let down = format!("127.0.0.1:{port}/app");
    d.ok(&["tag", "busybox", &down]);
    let r = berth(&d, cfg.path(), &["push", &down]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!("Get \"http://127.0.0.1:{port}/v2/\": dial tcp 127.0.0.1:{port}: connect: connection refused")
    );

    let reg = Registry::berth();
    let app = format!("{}/app", reg.addr);
    d.ok(&["tag", "busybox", &app]);
    let r = berth(&d, cfg.path(), &["push", &format!("{app}:nope")]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim(), format!("tag does not exist: {app}:nope"));
    let r = berth(&d, cfg.path(), &["push", "-a", &format!("{app}:latest")]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (1, "tag can't be used with --all-tags/-a")
    );

    // -a pushes every tag; -q prints only the reference.
    d.ok(&["tag", "busybox", &format!("{app}:second")]);
    let all = berth(&d, cfg.path(), &["push", "-a", &app]);
    assert_ok(&all, "push -a");
    assert!(
        all.stdout.contains("latest: digest: ") && all.stdout.contains("second: digest: "),
        "{}",
        all.stdout
    );
    let quiet = berth(&d, cfg.path(), &["push", "-q", &format!("{app}:second")]);
    assert_ok(&quiet, "push -q");
    assert_eq!(quiet.stdout, format!("{app}:second\n"));
}
