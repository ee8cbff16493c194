//! The `local` and `syslog` log drivers: local's rotation with gzip-compressed rotated files
//! read back (tail, follow) as one log; syslog's messages as dockerd formats them, to a
//! unixgram socket and a UDP socket the test binds; Docker's errors for both.

use berth_e2e::{consecutive, count_to, tempdir::TempDir, Daemon};
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// The container's log file: where the local driver writes too.
fn log_path(d: &Daemon, name: &str) -> PathBuf {
    let id = d.ok(&["inspect", "-f", "{{.Id}}", name]);
    d.data_root
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"))
}

fn numbered(log: &std::path::Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", log.display()))
}

#[test]
fn local_rotates_compresses_and_reads_back() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        &count_to(300),
    ]);
    let config: serde_json::Value =
        serde_json::from_str(&d.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "loc"]))
            .unwrap();
    assert_eq!(
        config,
        serde_json::json!({"Type": "local", "Config": {"max-file": "3", "max-size": "1k"}})
    );
    let log = log_path(&d, "loc");
    // dockerd's layout: the current file and max-file - 1 rotated ones, each gzipped.
    assert!(log.exists());
    for n in [1, 2] {
        assert!(
            numbered(&log, &format!(".{n}.gz")).exists(),
            "log.{n}.gz missing"
        );
        assert!(
            !numbered(&log, &format!(".{n}")).exists(),
            "log.{n} left uncompressed"
        );
    }
    assert!(
        !numbered(&log, ".3.gz").exists(),
        "more files than max-file"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(numbered(&log, ".1.gz")).unwrap())
        .read_to_string(&mut text)
        .expect("log.1.gz is gzip");
    assert!(text.contains("line-"), "{text}");

    // Read back across the compressed files: the last lines, in order, ending with the last.
    let all = d.ok(&["logs", "loc"]);
    let nums = consecutive(&all);
    assert_eq!(nums.last(), Some(&299));
    assert!(
        nums.len() > 13,
        "only {} lines kept: more than one file's worth expected",
        nums.len()
    );
    assert!(
        nums[0] > 0,
        "the oldest lines fall off with the oldest file"
    );
    assert_eq!(
        d.ok(&["logs", "--tail", "3", "loc"]),
        "line-297\nline-298\nline-299"
    );
    // The tail reaching into a compressed file.
    let tail_len = nums.len() - 2;
    let tail = d.ok(&["logs", "--tail", &tail_len.to_string(), "loc"]);
    assert_eq!(consecutive(&tail), nums[2..].to_vec());
    let r = d.docker(&["logs", "--tail", "2", "loc"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "line-298\nline-299\n"));
    let stamped = d.ok(&["logs", "-t", "--tail", "1", "loc"]);
    let (time, rest) = stamped.split_once(' ').unwrap();
    assert!(time.ends_with('Z') && time.contains('T'), "{stamped}");
    assert_eq!(rest, "line-299");
    // Every entry is before now and after the Unix epoch's first day.
    assert_eq!(
        d.ok(&["logs", "--since", "2100-01-01T00:00:00Z", "loc"]),
        ""
    );
    assert_eq!(
        consecutive(&d.ok(&["logs", "--until", "2100-01-01T00:00:00Z", "loc"])),
        nums
    );
}

#[test]
fn local_follow_reads_every_line_across_compressed_rotations() {
    let d = Daemon::start();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "stream",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=400",
        "busybox",
        "sh",
        "-c",
        &format!("sleep 1; {}", count_to(3000)),
    ]);
    let out = d.berth_cmd(&["logs", "-f", "stream"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nums = consecutive(&String::from_utf8_lossy(&out.stdout));
    assert_eq!((nums.first(), nums.last()), (Some(&0), Some(&2999)));
    let log = log_path(&d, "stream");
    assert!(
        numbered(&log, ".20.gz").exists(),
        "the log was rotated and compressed many times"
    );
    // After the fact, the whole log reads back from the compressed files too.
    let nums = consecutive(&d.ok(&["logs", "stream"]));
    assert_eq!((nums.first(), nums.last()), (Some(&0), Some(&2999)));
}

#[test]
fn local_is_the_daemon_default_from_daemon_json() {
    let dir = TempDir::new();
    let config = dir.path().join("daemon.json");
    std::fs::write(
        &config,
        r#"{"log-driver": "local", "log-opts": {"max-size": "1k", "max-file": "2"}}"#,
    )
    .unwrap();
    let d = Daemon::start_with(&["--config-file", config.to_str().unwrap()]);
    d.ok(&[
        "run",
        "--name",
        "dflt",
        "busybox",
        "sh",
        "-c",
        &count_to(100),
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{json .HostConfig.LogConfig.Type}}",
            "dflt"
        ]),
        "\"local\""
    );
    let log = log_path(&d, "dflt");
    assert!(numbered(&log, ".1.gz").exists());
    assert!(!numbered(&log, ".2.gz").exists());
    assert_eq!(d.ok(&["logs", "--tail", "1", "dflt"]), "line-99");
}

/// dockerd's stamp in its local time (Go's `time.Stamp`): `Jan _2 15:04:05`, 15 characters.
fn strip_stamp(msg: &str, prefix: &str) -> String {
    let rest = msg
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{msg:?} does not start with {prefix:?}"));
    let (stamp, rest) = rest.split_at(15);
    let b = stamp.as_bytes();
    assert!(
        b[3] == b' ' && b[6] == b' ' && b[9] == b':' && b[12] == b':',
        "bad stamp in {msg:?}"
    );
    rest.to_string()
}

/// `[pid]: ` with the sending process's pid, replaced by `[PID]: `.
fn strip_pid(msg: &str) -> String {
    let open = msg.find('[').expect("pid");
    let close = msg[open..].find("]: ").expect("pid end") + open;
    assert!(
        msg[open + 1..close].chars().all(|c| c.is_ascii_digit()),
        "{msg}"
    );
    format!("{}[PID]{}", &msg[..open], &msg[close + 1..])
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn syslog_to_a_unixgram_socket_in_every_format() {
    let d = Daemon::start();
    let dir = TempDir::new();
    let sock = dir.path().join("syslog.sock");
    let server = UnixDatagram::bind(&sock).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 4096];
        let n = server.recv(&mut buf).expect("a syslog message");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    let address = format!("syslog-address=unixgram://{}", sock.display());
    let host = hostname();
    for (i, format) in ["", "rfc3164", "rfc5424", "rfc5424micro"]
        .into_iter()
        .enumerate()
    {
        let name = format!("sl{i}");
        let format_opt = format!("syslog-format={format}");
        let mut args = vec![
            "run",
            "--name",
            &name,
            "--log-driver",
            "syslog",
            "--log-opt",
            &address,
        ];
        if !format.is_empty() {
            args.extend(["--log-opt", &format_opt]);
        }
        // Stdout then stderr, an empty line (dockerd sends nothing for it) and a partial line.
        args.extend([
            "busybox",
            "sh",
            "-c",
            "echo out; sleep 0.2; echo err >&2; sleep 0.2; echo; printf partial",
        ]);
        assert_eq!(d.ok(&args), "out\n\npartial", "attached stdout");
        let id = d.ok(&["inspect", "-f", "{{.Id}}", &name]);
        let tag = &id[..12];
        let got: Vec<String> = (0..3).map(|_| recv()).collect();
        for (msg, (pri, text)) in got
            .iter()
            .zip([("30", "out"), ("27", "err"), ("30", "partial")])
        {
            match format {
                "" => assert_eq!(
                    strip_pid(&strip_stamp(msg, &format!("<{pri}>"))),
                    format!(" {tag}[PID]: {text}\n")
                ),
                "rfc3164" => assert_eq!(
                    strip_pid(&strip_stamp(msg, &format!("<{pri}>"))),
                    format!(" {host} {tag}[PID]: {text}\n")
                ),
                _ => {
                    let rest = msg
                        .strip_prefix(&format!("<{pri}>1 "))
                        .unwrap_or_else(|| panic!("{msg}"));
                    let (time, rest) = rest.split_once(' ').unwrap();
                    // RFC 3339 in local time; microseconds for rfc5424micro only.
                    let frac = time
                        .split_once('.')
                        .map(|(_, f)| f.chars().take_while(char::is_ascii_digit).count());
                    assert_eq!(frac, (format == "rfc5424micro").then_some(6), "{msg}");
                    assert!(time.starts_with("20") && time.contains('T'), "{msg}");
                    let (h, rest) = rest.split_once(' ').unwrap();
                    assert_eq!(h, host);
                    let parts: Vec<&str> = rest.splitn(5, ' ').collect();
                    assert_eq!(parts[0], tag, "{msg}");
                    assert!(parts[1].parse::<u32>().is_ok(), "{msg}");
                    assert_eq!(&parts[2..], [tag, "-", &format!("{text}\n")], "{msg}");
                }
            }
        }
        // Reading it back is refused, as dockerd refuses it.
        for r in [d.berth(&["logs", &name]), d.docker(&["logs", &name])] {
            assert_eq!(r.code, 1);
            assert_eq!(
                r.stderr.trim(),
                "Error response from daemon: configured logging driver does not support reading"
            );
        }
    }
}

#[test]
fn syslog_to_udp_with_tag_and_facility() {
    let d = Daemon::start();
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let address = format!("syslog-address=udp://{}", server.local_addr().unwrap());
    d.ok(&[
        "run",
        "--name",
        "udp",
        "--log-driver",
        "syslog",
        "--log-opt",
        &address,
        "--log-opt",
        "tag={{.Name}}/{{.ImageName}}",
        "--log-opt",
        "syslog-facility=local3",
        "busybox",
        "echo",
        "via udp",
    ]);
    let mut buf = [0u8; 4096];
    let n = server.recv(&mut buf).expect("a syslog message");
    let msg = String::from_utf8(buf[..n].to_vec()).unwrap();
    // local3 (19) << 3 | info (6) = 158.
    assert_eq!(
        strip_pid(&strip_stamp(&msg, "<158>")),
        " udp/busybox[PID]: via udp\n"
    );
    let config: serde_json::Value =
        serde_json::from_str(&d.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "udp"]))
            .unwrap();
    assert_eq!(config["Type"], "syslog");
    assert_eq!(config["Config"]["syslog-facility"], "local3");
}

#[test]
fn syslog_that_stops_reading_does_not_stall_the_container() {
    let d = Daemon::start();
    let dir = TempDir::new();
    let sock = dir.path().join("deaf.sock");
    // Bound, never read: the socket's queue fills after a few hundred messages.
    let _server = UnixDatagram::bind(&sock).unwrap();
    let address = format!("syslog-address=unixgram://{}", sock.display());
    d.ok(&[
        "run",
        "-d",
        "--name",
        "deaf",
        "--log-driver",
        "syslog",
        "--log-opt",
        &address,
        "busybox",
        "sh",
        "-c",
        &format!("{}; sleep 1000", count_to(20000)),
    ]);
    // The container gets past its output; the shim still answers (exec, stop).
    assert!(
        berth_e2e::eventually(60, || d
            .berth(&["top", "deaf"])
            .stdout
            .contains("sleep 1000")),
        "the container is stuck writing its output"
    );
    assert_eq!(d.ok(&["exec", "deaf", "echo", "alive"]), "alive");
    d.ok(&["rm", "-f", "deaf"]);
}

#[test]
fn bad_options_get_dockers_errors_and_leave_nothing() {
    let d = Daemon::start();
    let cases: &[(&[&str], &str)] = &[
        (&["--log-driver", "local", "--log-opt", "bogus=1"], "unknown log opt 'bogus' for log driver local"),
        (
            &["--log-driver", "local", "--log-opt", "max-file=1"],
            "failed to initialize logging driver: compression cannot be enabled when max file count is 1",
        ),
        (
            &["--log-driver", "local", "--log-opt", "max-size=abc"],
            "failed to initialize logging driver: invalid value for max-size: abc: invalid size: 'abc'",
        ),
        (
            &["--log-driver", "local", "--log-opt", "compress=maybe"],
            "failed to initialize logging driver: error reading compress log option: strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        (&["--log-driver", "syslog", "--log-opt", "bogus=1"], "unknown log opt 'bogus' for syslog log driver"),
        (
            &["--log-driver", "syslog", "--log-opt", "syslog-address=foo"],
            "syslog-address should be in form proto://address, got foo",
        ),
        (
            &["--log-driver", "syslog", "--log-opt", "syslog-address=unixgram:///nope/x"],
            "stat /nope/x: no such file or directory",
        ),
        (
            &["--log-driver", "syslog", "--log-opt", "syslog-address=udp://127.0.0.1:9", "--log-opt", "syslog-facility=x"],
            "invalid syslog facility",
        ),
        (
            &["--log-driver", "syslog", "--log-opt", "syslog-address=udp://127.0.0.1:9", "--log-opt", "syslog-format=x"],
            "Invalid syslog format",
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
    assert_eq!(
        d.ok(&["ps", "-aq"]),
        "",
        "a refused create left a container"
    );
    // A socket nobody listens on any more fails the start, with Go's dial error.
    let dir = TempDir::new();
    let stale = dir.path().join("stale.sock");
    drop(UnixDatagram::bind(&stale).unwrap());
    let address = format!("syslog-address=unixgram://{}", stale.display());
    let r = d.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &address,
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains(&format!(
            "Error response from daemon: failed to initialize logging driver: dial unixgram {}: connect: connection refused",
            stale.display()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "", "--rm left the container");
}
