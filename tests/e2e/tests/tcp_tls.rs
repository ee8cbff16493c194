//! berthd on TCP with TLS, as dockerd 20.10 serves it: the docker CLI and berth with client
//! certificates run, attach (`run -i`), exec and read logs over it; clients without a
//! certificate, or with one from another CA, are refused and the daemon keeps serving; the
//! UNIX socket keeps working beside it. Certificates are made per test with `openssl`; only
//! loopback is used.

use berth_e2e::{docker_cli, tempdir::TempDir, Daemon, Run};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A throwaway PKI: a CA with a server certificate for 127.0.0.1 and a client certificate,
/// and a second CA with its own client certificate.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        let pki = Pki {
            dir: TempDir::new(),
        };
        pki.ca("ca");
        pki.ca("other-ca");
        pki.leaf(
            "ca",
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        pki.leaf("ca", "client", "extendedKeyUsage=clientAuth\n");
        pki.leaf("other-ca", "intruder", "extendedKeyUsage=clientAuth\n");
        // DOCKER_CERT_PATH's layout, for the environment variables' test.
        let certs = pki.path("certs");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(pki.path("ca.pem"), certs.join("ca.pem")).unwrap();
        std::fs::copy(pki.path("client.pem"), certs.join("cert.pem")).unwrap();
        std::fs::copy(pki.path("client-key.pem"), certs.join("key.pem")).unwrap();
        std::fs::create_dir_all(pki.path("empty")).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl (scripts/deps.sh --test)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ca(&self, name: &str) {
        let (key, cert) = (format!("{name}-key.pem"), format!("{name}.pem"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ]);
    }

    fn leaf(&self, ca: &str, name: &str, ext: &str) {
        let ext_file = format!("{name}.ext");
        std::fs::write(self.path(&ext_file), ext).unwrap();
        let (key, csr, cert) = (
            format!("{name}-key.pem"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext_file,
        ]);
    }
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon on its UNIX socket and on `tcp://127.0.0.1:PORT` with `--tlsverify`.
fn tls_daemon(pki: &Pki) -> (Daemon, String) {
    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    let mut args = vec!["-H".to_string(), tcp.clone()];
    args.extend(tls_verify_flags(pki, "server"));
    let d = Daemon::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    (d, tcp)
}

/// The docker CLI against `host`, with `args` (TLS flags first) and optional stdin.
fn docker(pki: &Pki, host: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(docker_cli());
    cmd.arg("-H")
        .arg(host)
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env("DOCKER_CERT_PATH", pki.path("empty"))
        .env("DOCKER_CONFIG", pki.path("docker-config"));
    run(cmd, stdin)
}

/// berth against `host`, as [`docker`].
fn berth(pki: &Pki, host: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(berth_e2e::bin_dir().join("berth"));
    cmd.arg("-H")
        .arg(host)
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("BERTH_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env("DOCKER_CERT_PATH", pki.path("empty"));
    run(cmd, stdin)
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Run {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).unwrap();
        // Dropping the pipe is the EOF that ends the container's stdin.
    }
    child.wait_with_output().expect("client output").into()
}

/// `--tlsverify` with the test CA and `who`'s certificate and key (`server` or `client`).
fn tls_verify_flags(pki: &Pki, who: &str) -> Vec<String> {
    [
        "--tlsverify".to_string(),
        "--tlscacert".to_string(),
        pki.p("ca.pem"),
        "--tlscert".to_string(),
        pki.p(&format!("{who}.pem")),
        "--tlskey".to_string(),
        pki.p(&format!("{who}-key.pem")),
    ]
    .into()
}

fn ok(r: Run, what: &str, d: &Daemon) -> String {
    assert_eq!(
        r.code,
        0,
        "{what} failed: {}{}\n--- daemon log ---\n{}",
        r.stdout,
        r.stderr,
        d.log()
    );
    r.stdout
}

/// Runs the same checks with the docker CLI and with berth: version, run, run -i with
/// stdin, exec (also -i), logs; then the refusals.
fn clients_work_over_tls(client: fn(&Pki, &str, &[&str], Option<&str>) -> Run, name: &str) {
    let pki = Pki::new();
    let (d, tcp) = tls_daemon(&pki);
    let tls = tls_verify_flags(&pki, "client");
    let c = |args: &[&str], stdin: Option<&str>| {
        let mut all: Vec<&str> = tls.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        client(&pki, &tcp, &all, stdin)
    };
    assert_eq!(
        ok(
            c(&["version", "--format", "{{.Server.APIVersion}}"], None),
            "version",
            &d
        )
        .trim(),
        "1.41"
    );
    assert_eq!(
        ok(
            c(&["run", "--rm", "busybox", "echo", "hi"], None),
            "run",
            &d
        ),
        "hi\n"
    );
    assert_eq!(
        ok(
            c(
                &["run", "--rm", "-i", "busybox", "cat"],
                Some("through stdin\n")
            ),
            "run -i",
            &d
        ),
        "through stdin\n"
    );
    let ctr = format!("tls-{name}");
    ok(
        c(
            &[
                "run",
                "-d",
                "--name",
                &ctr,
                "busybox",
                "sh",
                "-c",
                "echo logged; sleep 300",
            ],
            None,
        ),
        "run -d",
        &d,
    );
    assert_eq!(
        ok(c(&["exec", &ctr, "echo", "from exec"], None), "exec", &d),
        "from exec\n"
    );
    assert_eq!(
        ok(
            c(&["exec", "-i", &ctr, "cat"], Some("exec stdin\n")),
            "exec -i",
            &d
        ),
        "exec stdin\n"
    );
    assert!(
        berth_e2e::eventually(10, || c(&["logs", &ctr], None).stdout == "logged\n"),
        "logs over TLS"
    );
    // The UNIX socket serves beside the TCP port.
    assert!(d
        .ok(&["ps", "--format", "{{.Names}}"])
        .lines()
        .any(|n| n == ctr));

    // Clients the daemon or the client itself must refuse, with what each is told.
    let (ca, other_ca) = (pki.p("ca.pem"), pki.p("other-ca.pem"));
    let (cert, key) = (pki.p("client.pem"), pki.p("client-key.pem"));
    let (intruder, intruder_key) = (pki.p("intruder.pem"), pki.p("intruder-key.pem"));
    let refusals: [(&str, Vec<&str>, &str); 4] = [
        ("no client certificate", vec!["--tlsverify", "--tlscacert", &ca, "version"], "remote error: tls:"),
        (
            "another CA's client certificate",
            vec!["--tlsverify", "--tlscacert", &ca, "--tlscert", &intruder, "--tlskey", &intruder_key, "version"],
            "remote error: tls:",
        ),
        (
            "an untrusted server certificate",
            vec!["--tlsverify", "--tlscacert", &other_ca, "--tlscert", &cert, "--tlskey", &key, "version"],
            "x509: certificate signed by unknown authority",
        ),
        ("plain HTTP to the TLS port", vec!["version"], "Client sent an HTTP request to an HTTPS server."),
    ];
    for (what, args, told) in refusals {
        let r = client(&pki, &tcp, &args, None);
        assert_ne!(r.code, 0, "{name} with {what} got in: {}", r.stdout);
        assert!(r.stderr.contains(told), "{name} with {what}: {}", r.stderr);
    }

    // The daemon kept serving through all that.
    assert_eq!(
        ok(
            c(&["run", "--rm", "busybox", "echo", "still here"], None),
            "run after refusals",
            &d
        ),
        "still here\n"
    );
    ok(c(&["rm", "-f", &ctr], None), "rm", &d);
}

#[test]
fn docker_cli_over_tcp_with_tls() {
    clients_work_over_tls(docker, "docker");
}

#[test]
fn berth_over_tcp_with_tls() {
    clients_work_over_tls(berth, "berth");
}

/// DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH select the daemon and the files, for
/// berth as for the docker CLI; BERTH_HOST too.
#[test]
fn environment_selects_tls() {
    let pki = Pki::new();
    let (d, tcp) = tls_daemon(&pki);
    for (bin, host_var) in [
        (docker_cli(), "DOCKER_HOST"),
        (berth_e2e::bin_dir().join("berth"), "DOCKER_HOST"),
        (berth_e2e::bin_dir().join("berth"), "BERTH_HOST"),
    ] {
        let out = Command::new(&bin)
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .env_remove("DOCKER_HOST")
            .env_remove("BERTH_HOST")
            .env(host_var, &tcp)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", pki.path("certs"))
            .env("DOCKER_CONFIG", pki.path("docker-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let r: Run = out.into();
        assert_eq!(
            (r.code, r.stdout.trim()),
            (0, "1.41"),
            "{} with {host_var}: {}\n{}",
            bin.display(),
            r.stderr,
            d.log()
        );
    }
}

/// berthd's own mistakes stop it with dockerd's messages before anything is bound.
#[test]
fn daemon_refuses_bad_tls_settings_and_hosts() {
    let pki = Pki::new();
    let root = TempDir::new();
    let sock = root.path().join("b.sock");
    let berthd = |args: &[&str]| -> Run {
        Command::new(berth_e2e::bin_dir().join("berthd"))
            .args(["--config-file", &write(root.path(), "empty.json", "{}")])
            .arg("--data-root")
            .arg(root.path().join("data"))
            .arg("--exec-root")
            .arg(root.path().join("run"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(args)
            .env("DOCKER_CERT_PATH", pki.path("empty"))
            .env_remove("DOCKER_TLS_VERIFY")
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .into()
    };
    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    let r = berthd(&["-H", &tcp, "--tls"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("failed to create API server: Could not load X509 key pair (cert: \"\", key: \"\"): open : no such file or directory"),
        "{}",
        r.stderr
    );
    let missing_ca = pki.p("empty/ca.pem");
    let r = berthd(&[
        "-H",
        &tcp,
        "--tlsverify",
        "--tlscert",
        &pki.p("server.pem"),
        "--tlskey",
        &pki.p("server-key.pem"),
    ]);
    assert!(
        r.stderr.contains(&format!("could not read CA certificate \"{missing_ca}\": open {missing_ca}: no such file or directory")),
        "{}",
        r.stderr
    );
    let garbage = write(root.path(), "garbage.pem", "garbage\n");
    let r = berthd(&[
        "-H",
        &tcp,
        "--tls",
        "--tlscert",
        &garbage,
        "--tlskey",
        &pki.p("server-key.pem"),
    ]);
    assert!(r.stderr.contains("tls: failed to find any PEM data in certificate input. Make sure the key is not encrypted."), "{}", r.stderr);
    let r = berthd(&["-H", "bogus://x"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("Invalid bind address format: bogus://x"),
        "{}",
        r.stderr
    );
    let conf = write(
        root.path(),
        "hosts.json",
        &format!("{{\"hosts\":[\"{tcp}\"]}}"),
    );
    let r = Command::new(berth_e2e::bin_dir().join("berthd"))
        .args(["--config-file", &conf, "-H", &tcp])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains(&format!(
            "the following directives are specified both as a flag and in the configuration file: hosts: (from flag: [{tcp}], from file: [{tcp}])"
        )),
        "{stderr}"
    );
    // Nothing was left behind: no socket, no data root.
    assert!(!sock.exists());
    assert!(!root.path().join("data").exists());
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}
