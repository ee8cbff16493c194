//! Log drivers and options: json-file rotation (max-size, max-file), the none driver,
//! `logs --details` with labels/env/tag attrs, daemon.json defaults, and Docker's errors.

use berth_e2e::{bin_dir, consecutive, count_to, eventually, tempdir::TempDir, Daemon};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The container's log files (`log`, `log.1`, ...) that exist, with their sizes.
fn log_files(d: &Daemon, name: &str) -> Vec<(PathBuf, u64)> {
    let log = d.ok(&["inspect", "-f", "{{.LogPath}}", name]);
    (0..300)
        .map(|n| {
            if n == 0 {
                PathBuf::from(&log)
            } else {
                PathBuf::from(format!("{log}.{n}"))
            }
        })
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.len())))
        .collect()
}

/// The container's `HostConfig.LogConfig`, parsed (key order is not part of it).
fn log_config(d: &Daemon, name: &str) -> serde_json::Value {
    json(&d.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", name]))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn rotation_honours_max_size_and_max_file() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "chatty",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        &count_to(400),
    ]);
    let files = log_files(&d, "chatty");
    assert_eq!(files.len(), 3, "max-file=3 keeps three files: {files:?}");
    for (path, size) in &files {
        // max-size takes Docker's decimal units: 2k is 2000 bytes.
        assert!(
            *size > 0 && *size <= 2000,
            "{} has {size} bytes",
            path.display()
        );
    }
    let all = d.ok(&["logs", "chatty"]);
    let nums = consecutive(&all);
    assert_eq!(nums.last(), Some(&399), "the tail survives rotation");
    assert!(
        nums.len() > 30 && nums[0] > 0,
        "older lines rotated away: {} lines kept",
        nums.len()
    );
    assert_eq!(
        d.ok(&["logs", "--tail", "3", "chatty"]),
        "line-397\nline-398\nline-399"
    );
    // The docker CLI reads the same.
    let r = d.docker(&["logs", "--tail", "2", "chatty"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "line-398\nline-399\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        log_config(&d, "chatty"),
        json(r#"{"Type":"json-file","Config":{"max-file":"3","max-size":"2k"}}"#)
    );
}

#[test]
fn max_file_one_truncates_in_place() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "one",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=1",
        "busybox",
        "sh",
        "-c",
        &count_to(200),
    ]);
    let files = log_files(&d, "one");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].1 <= 1000);
    assert_eq!(consecutive(&d.ok(&["logs", "one"])).last(), Some(&199));
}

#[test]
fn follow_streams_across_rotations_in_order() {
    let d = Daemon::start();
    // Enough files that nothing is rotated away, so every line must arrive, in order.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "stream",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=200",
        "busybox",
        "sh",
        "-c",
        &format!("sleep 1; {}", count_to(2000)),
    ]);
    let out = d.berth_cmd(&["logs", "-f", "stream"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nums = consecutive(&String::from_utf8_lossy(&out.stdout));
    assert_eq!((nums.first(), nums.last()), (Some(&0), Some(&1999)));
    assert!(
        log_files(&d, "stream").len() > 20,
        "the log was rotated many times"
    );
}

#[test]
fn none_driver_keeps_nothing_but_attach_works() {
    let d = Daemon::start();
    // Attached output does not go through the log.
    assert_eq!(
        d.ok(&[
            "run",
            "--name",
            "quiet",
            "--log-driver",
            "none",
            "busybox",
            "echo",
            "attached"
        ]),
        "attached"
    );
    let r = d.berth(&["logs", "quiet"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: configured logging driver does not support reading"
    );
    let r = d.docker(&["logs", "quiet"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "Error response from daemon: configured logging driver does not support reading"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.LogConfig}} {{json .LogPath}}",
            "quiet"
        ]),
        r#"{"Type":"none","Config":{}} """#
    );
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "quiet"]);
    let dir = d.data_root.join("containers").join(&id);
    assert!(dir.exists());
    assert!(
        !dir.join(format!("{id}-json.log")).exists(),
        "the none driver wrote a log"
    );
    // docker's CLI refuses options for it before asking the daemon.
    for (r, who) in [
        (
            d.berth(&[
                "run",
                "--log-driver",
                "none",
                "--log-opt",
                "max-size=1k",
                "busybox",
                "true",
            ]),
            "berth",
        ),
        (
            d.docker(&[
                "run",
                "--log-driver",
                "none",
                "--log-opt",
                "max-size=1k",
                "busybox",
                "true",
            ]),
            "docker",
        ),
    ] {
        assert_eq!(r.code, 125, "{who}: {}", r.stderr);
        assert_eq!(
            r.stderr.trim(),
            format!("{who}: invalid logging opts for driver none.\nSee '{who} run --help'.")
        );
    }
}

#[test]
fn details_show_attrs_from_labels_env_and_tag() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "detailed",
        "-l",
        "com.a=x",
        "-l",
        "b=y z",
        "-e",
        "FOO=bar",
        "-e",
        "Q=a&b",
        "--log-opt",
        "labels=com.a,b,nope",
        "--log-opt",
        "env=FOO,Q",
        "--log-opt",
        "tag={{.Name}}/{{.ImageName}}",
        "busybox",
        "echo",
        "hi",
    ]);
    let want = "FOO=bar,Q=a%26b,b=y+z,com.a=x,tag=detailed%2Fbusybox hi";
    assert_eq!(d.ok(&["logs", "--details", "detailed"]), want);
    assert_eq!(d.ok(&["logs", "detailed"]), "hi");
    let r = d.docker(&["logs", "--details", "detailed"]);
    assert_eq!((r.code, r.stdout.trim_end()), (0, want), "{}", r.stderr);
    // Timestamps come first, as dockerd orders them.
    let stamped = d.ok(&["logs", "-t", "--details", "detailed"]);
    let (time, rest) = stamped.split_once(' ').unwrap();
    assert!(time.ends_with('Z') && time.len() == 30, "{stamped}");
    assert_eq!(rest, want);
    // The attrs are in the json-file entries too.
    let log =
        std::fs::read_to_string(d.ok(&["inspect", "-f", "{{.LogPath}}", "detailed"])).unwrap();
    assert!(
        log.starts_with(r#"{"log":"hi\n","stream":"stdout","attrs":{"FOO":"bar","Q":"a&b","b":"y z","com.a":"x","tag":"detailed/busybox"},"time":""#),
        "{log}"
    );
    // Without attrs, --details still adds dockerd's separating space.
    d.ok(&["run", "--name", "plain", "busybox", "echo", "hi"]);
    let out = d
        .berth_cmd(&["logs", "--details", "plain"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b" hi\n");
}

#[test]
fn bad_log_options_get_dockers_errors_and_leave_nothing() {
    let d = Daemon::start();
    let cases: &[(&[&str], &str)] = &[
        (&["--log-driver", "foo"], "error looking up logging plugin foo: plugin \"foo\" not found"),
        (&["--log-opt", "max-size=10m", "--log-opt", "bogus=1"], "unknown log opt 'bogus' for json-file log driver"),
        (&["--log-opt", "mode=fast"], "logger: logging mode not supported: fast"),
        (&["--log-opt", "max-buffer-size=4m"], "logger: max-buffer-size option is only supported with 'mode=non-blocking'"),
        (&["--log-opt", "max-size=abc"], "failed to initialize logging driver: invalid size: 'abc'"),
        (&["--log-opt", "max-size=0"], "failed to initialize logging driver: max-size must be a positive number"),
        (&["--log-opt", "max-file=0"], "failed to initialize logging driver: max-file cannot be less than 1"),
        (&["--log-opt", "max-file=x"], "failed to initialize logging driver: strconv.Atoi: parsing \"x\": invalid syntax"),
        (
            &["--log-opt", "compress=true"],
            "failed to initialize logging driver: compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        (
            &["--log-opt", "tag={{.Nope}}"],
            "failed to initialize logging driver: template: log-tag:1:2: executing \"log-tag\" at <.Nope>: can't evaluate field Nope in type *logger.Info",
        ),
        // What berth cannot honour is refused, not ignored.
        (&["--log-driver", "journald"], "berth does not support the journald logging driver yet"),
        (
            &["--log-opt", "compress=true", "--log-opt", "max-size=1m", "--log-opt", "max-file=2"],
            "failed to initialize logging driver: berth does not support --log-opt compress=true yet",
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let r = d.berth(&args);
        assert_eq!(
            (r.code, r.stderr.trim()),
            (1, format!("Error response from daemon: {message}").as_str()),
            "{flags:?}"
        );
    }
    let r = d.docker(&["run", "--log-driver", "foo", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("error looking up logging plugin foo"),
        "{}",
        r.stderr
    );
    assert_eq!(
        d.ok(&["ps", "-aq"]),
        "",
        "a refused create left a container"
    );
}

#[test]
fn logs_outlive_the_container_and_the_daemon() {
    let mut d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "gone",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=4",
        "busybox",
        "sh",
        "-c",
        &count_to(60),
    ]);
    let before = d.ok(&["logs", "gone"]);
    assert_eq!(consecutive(&before).last(), Some(&59));
    d.kill_daemon(libc::SIGTERM);
    d.spawn();
    assert_eq!(d.ok(&["logs", "gone"]), before);
    // A container running across the restart keeps logging to the same log.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "alive",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 2; echo two; sleep 300",
    ]);
    assert!(eventually(10, || d.ok(&["logs", "alive"]) == "one"));
    d.kill_daemon(libc::SIGKILL);
    d.spawn();
    assert!(
        eventually(10, || d.ok(&["logs", "alive"]) == "one\ntwo"),
        "{}",
        d.ok(&["logs", "alive"])
    );
}

#[test]
fn daemon_json_sets_the_default_log_config() {
    let dir = TempDir::new();
    let config = dir.path().join("daemon.json");
    std::fs::write(&config, r#"{"log-driver": "json-file", "log-opts": {"max-size": "1k", "max-file": "2", "labels": "app"}}"#)
        .unwrap();
    let d = Daemon::start_with(&["--config-file", config.to_str().unwrap()]);
    d.ok(&[
        "run",
        "--name",
        "dflt",
        "-l",
        "app=web",
        "busybox",
        "sh",
        "-c",
        &count_to(100),
    ]);
    assert_eq!(
        log_config(&d, "dflt"),
        json(r#"{"Type":"json-file","Config":{"labels":"app","max-file":"2","max-size":"1k"}}"#)
    );
    assert_eq!(log_files(&d, "dflt").len(), 2);
    assert!(d
        .ok(&["logs", "--details", "--tail", "1", "dflt"])
        .starts_with("app=web line-99"));
    // A container's own options override the daemon's key by key.
    d.ok(&[
        "create",
        "--name",
        "own",
        "--log-opt",
        "max-size=5k",
        "busybox",
        "true",
    ]);
    assert_eq!(
        log_config(&d, "own"),
        json(r#"{"Type":"json-file","Config":{"labels":"app","max-file":"2","max-size":"5k"}}"#)
    );
    // Another driver takes none of the daemon's options.
    d.ok(&[
        "create",
        "--name",
        "nolog",
        "--log-driver",
        "none",
        "busybox",
        "true",
    ]);
    assert_eq!(
        log_config(&d, "nolog"),
        json(r#"{"Type":"none","Config":{}}"#)
    );
}

/// Runs berthd with `args` on a private socket and data root; it must fail at start-up.
/// Returns its stderr.
fn berthd_refuses(dir: &Path, args: &[&str]) -> String {
    let mut child = Command::new(bin_dir().join("berthd"))
        .args(["-H", &format!("unix://{}", dir.join("s.sock").display())])
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("run"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "0")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("berthd started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_daemon_config_stops_the_start() {
    berth_e2e::require_root();
    let dir = TempDir::new();
    let file = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let missing = dir.path().join("missing.json").display().to_string();
    let unknown = file("unknown.json", r#"{"log-driverz": "json-file"}"#);
    let invalid = file("invalid.json", r#"{"log-driver": "json-file","#);
    let both = file(
        "both.json",
        r#"{"log-driver": "json-file", "log-opts": {"max-size": "1k"}}"#,
    );
    let bad_opt = file("badopt.json", r#"{"log-opts": {"bogus": "1"}}"#);
    let cases = [
        (
            vec!["--config-file", &missing],
            format!("unable to configure the berth daemon with file {missing}: open {missing}: no such file or directory"),
        ),
        (vec!["--config-file", &unknown], "the following directives don't match any configuration option: log-driverz".into()),
        (vec!["--config-file", &invalid], format!("unable to configure the berth daemon with file {invalid}: ")),
        (
            vec!["--config-file", &both, "--log-driver", "none", "--log-opt", "max-file=3"],
            "the following directives are specified both as a flag and in the configuration file: \
             log-driver: (from flag: none, from file: json-file), log-opts: (from flag: map[max-file:3], from file: map[max-size:1k])"
                .into(),
        ),
        (vec!["--config-file", &bad_opt], "failed to set log opts: unknown log opt 'bogus' for json-file log driver".into()),
        (vec!["--log-driver", "foo"], "failed to set log opts: error looking up logging plugin foo: plugin \"foo\" not found".into()),
    ];
    for (args, message) in cases {
        let stderr = berthd_refuses(dir.path(), &args);
        assert!(stderr.contains(&message), "{args:?}: {stderr}");
    }
    assert!(
        !dir.path().join("s.sock").exists(),
        "a refused daemon listened"
    );
}
