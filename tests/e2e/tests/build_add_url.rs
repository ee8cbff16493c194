//! `ADD <http URL> <dest>` with the classic builder, against a tiny HTTP server this test runs
//! on 127.0.0.1: the file's name, mode, mtime and owner, no unpacking, the history text, the
//! request dockerd's Go client sends, the progress stream, redirects and the errors — and the
//! same build on a private dockerd, compared (docs/design/build-transcripts.md, "ADD of a URL").

use berth_e2e::{docker_cli, tempdir::TempDir, Daemon, Dockerd, Run};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

const HELLO: &[u8] = b"hello world\n";
const HELLO_DATE: &str = "Thu, 02 Jan 2020 03:04:05 GMT";

/// An HTTP/1.1 server on 127.0.0.1 (a thread per connection), recording each request's head.
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(conn, &log));
            }
        });
        Server { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests_for(&self, path: &str) -> Vec<String> {
        let prefix = format!("GET {path} ");
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with(&prefix))
            .cloned()
            .collect()
    }
}

fn tar_of(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(content.len() as u64);
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

fn serve(mut conn: TcpStream, log: &Mutex<Vec<String>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match conn.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    log.lock().unwrap().push(head.clone());
    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
    let respond = |conn: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]| {
        let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        let _ = conn.write_all(out.as_bytes());
        let _ = conn.write_all(body);
    };
    let len = |b: &[u8]| ("Content-Length", b.len().to_string());
    match path.as_str() {
        "/hello.txt" | "/dir/hello.txt?x=1" => respond(
            &mut conn,
            "200 OK",
            &[len(HELLO), ("Last-Modified", HELLO_DATE.into())],
            HELLO,
        ),
        "/" => respond(&mut conn, "200 OK", &[len(b"index\n")], b"index\n"),
        "/nolm" => respond(&mut conn, "200 OK", &[len(b"no date\n")], b"no date\n"),
        "/a.tar" => {
            let tar = tar_of("inner.txt", b"inner\n");
            respond(&mut conn, "200 OK", &[len(&tar)], &tar)
        }
        "/named/" => respond(
            &mut conn,
            "200 OK",
            &[
                len(b"cd\n"),
                (
                    "Content-Disposition",
                    "attachment; filename=\"from-header.txt\"".into(),
                ),
            ],
            b"cd\n",
        ),
        "/moved" => respond(
            &mut conn,
            "301 Moved Permanently",
            &[("Location", "/hello.txt".into()), len(b"")],
            b"",
        ),
        p if p.starts_with("/loop/") => {
            let n: u32 = p[6..].parse().unwrap_or(0);
            respond(
                &mut conn,
                "302 Found",
                &[("Location", format!("/loop/{}", n + 1)), len(b"")],
                b"",
            )
        }
        "/short" => respond(
            &mut conn,
            "200 OK",
            &[("Content-Length", "100".into())],
            b"abc",
        ),
        _ => respond(
            &mut conn,
            "404 Not Found",
            &[len(b"no such file\n")],
            b"no such file\n",
        ),
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// `docker build` (classic builder) of `dir` against berthd.
fn build_on_berth(d: &Daemon, dir: &Path, tag: &str) -> Run {
    Command::new(docker_cli())
        .args(["build", "-t", tag])
        .arg(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", d.root.path().join("docker-config"))
        .output()
        .expect("docker build")
        .into()
}

fn history(run: impl Fn(&[&str]) -> Run, image: &str) -> Vec<String> {
    let r = run(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", image]);
    assert_eq!(r.code, 0, "history {image}: {}", r.stderr);
    r.stdout.lines().map(String::from).collect()
}

/// The tarsum dockerd keys a downloaded file with: its tar header fields (a 0600 regular
/// file of root's, named `name`) then its content.
fn download_hash(name: &str, content: &[u8]) -> String {
    let mut s = Sha256::new();
    for (k, v) in [
        ("name", name.to_string()),
        ("mode", (0o100600).to_string()),
        ("uid", "0".into()),
        ("gid", "0".into()),
        ("size", content.len().to_string()),
        ("typeflag", "0".into()),
        ("linkname", String::new()),
        ("uname", "root".into()),
        ("gname", "root".into()),
        ("devmajor", "0".into()),
        ("devminor", "0".into()),
    ] {
        s.update(k.as_bytes());
        s.update(v.as_bytes());
    }
    s.update(content);
    hex_string(&s.finalize())
}

fn hex_string(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// IDs and the current time blurred.
fn normalize(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("Sending build context") {
            continue;
        }
        let mut l = String::new();
        let mut run = String::new();
        for c in line.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
                run.push(c);
                continue;
            }
            l.push_str(if run.len() == 12 || run.len() == 64 {
                "<id>"
            } else {
                &run
            });
            run.clear();
            l.push(c);
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out
}

#[test]
fn downloads_as_dockerd_does() {
    std::env::set_var("DOCKER_BUILDKIT", "0");
    let server = Server::start();
    let d = Daemon::start();
    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM busybox\n\
             ADD {} /d/\n\
             ADD {} /named\n\
             ADD {} /t/\n\
             ADD {} /n/\n\
             ADD {} /c/\n\
             ADD {} /r/\n\
             ADD {} /q/\n\
             ADD --chown=1:2 {} /o/\n\
             RUN ls -ln --full-time /d /named /t /n /c /r /q /o\n",
            server.url("/hello.txt"),
            server.url("/hello.txt"),
            server.url("/a.tar"),
            server.url("/nolm"),
            server.url("/named/"),
            server.url("/moved"),
            server.url("/dir/hello.txt?x=1#fragment"),
            server.url("/hello.txt"),
        ),
    );
    let r = build_on_berth(&d, ctx.path(), "addurl");
    assert_eq!(r.code, 0, "build: {}{}\n{}", r.stdout, r.stderr, d.log());
    let out = &r.stdout;
    let has = |line: &str| {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().eq(line.split_whitespace())),
            "no line {line:?} in:\n{out}"
        )
    };
    // Mode 0600, mtime from Last-Modified, else the epoch; named after the URL's path
    // (a redirect does not rename it), the destination, or Content-Disposition; never unpacked.
    has("-rw------- 1 0 0 12 2020-01-02 03:04:05 +0000 hello.txt");
    has("-rw------- 1 0 0 12 2020-01-02 03:04:05 +0000 /named");
    has("-rw------- 1 0 0 2048 1970-01-01 00:00:00 +0000 a.tar");
    has("-rw------- 1 0 0 8 1970-01-01 00:00:00 +0000 nolm");
    has("-rw------- 1 0 0 3 1970-01-01 00:00:00 +0000 from-header.txt");
    has("-rw------- 1 0 0 12 2020-01-02 03:04:05 +0000 moved");
    has("-rw------- 1 1 2 12 2020-01-02 03:04:05 +0000 hello.txt");
    // The query reaches the server, the fragment does not.
    assert_eq!(server.requests_for("/dir/hello.txt?x=1").len(), 1);
    // Go's client headers (names are case-insensitive; hyper writes them lower-case).
    let req = server.requests_for("/nolm")[0].to_ascii_lowercase();
    assert!(
        req.contains("\r\nuser-agent: go-http-client/1.1\r\n"),
        "{req}"
    );
    assert!(req.contains("\r\naccept-encoding: gzip\r\n"), "{req}");

    // History: the bare tarsum of the downloaded file (no `file:`), `--chown` glued to it.
    let hist = history(|a| d.docker(a), "addurl");
    let hello = download_hash("hello.txt", HELLO);
    assert_eq!(
        hist[1],
        format!("/bin/sh -c #(nop) ADD --chown=1:2{hello} in /o/ ")
    );
    // Keyed by the URL's name, whatever the destination calls the file.
    assert_eq!(hist[7], format!("/bin/sh -c #(nop) ADD {hello} in /named "));
    assert_eq!(hist[8], format!("/bin/sh -c #(nop) ADD {hello} in /d/ "));

    // A second build downloads again, and its content hits the cache.
    let before = server.requests_for("/hello.txt").len();
    let r = build_on_berth(&d, ctx.path(), "addurl");
    assert_eq!(r.code, 0, "rebuild: {}{}", r.stdout, r.stderr);
    assert_eq!(r.stdout.matches("Using cache").count(), 9, "{}", r.stdout);
    // /d/, /named, /o/ and the redirect's target.
    assert_eq!(server.requests_for("/hello.txt").len(), before + 4);
}

#[test]
fn failures_read_as_dockerd_words_them() {
    std::env::set_var("DOCKER_BUILDKIT", "0");
    let server = Server::start();
    let d = Daemon::start();
    // A port nothing listens on.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cases = [
        (
            format!("ADD {} /x", server.url("/missing")),
            format!(
                "ADD failed: failed to GET {} with status 404 Not Found: no such file",
                server.url("/missing")
            ),
        ),
        (
            format!("ADD http://127.0.0.1:{closed}/x /x"),
            format!(
                "ADD failed: Get \"http://127.0.0.1:{closed}/x\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
            ),
        ),
        (
            format!("ADD {} /x", server.url("/loop/0")),
            "ADD failed: Get \"/loop/10\": stopped after 10 redirects".to_string(),
        ),
        (
            format!("ADD {} /x/", server.url("/")),
            format!(
                "ADD failed: cannot determine filename for source {}",
                server.url("/")
            ),
        ),
        (
            format!("ADD {} /x", server.url("/short")),
            "ADD failed: unexpected EOF".to_string(),
        ),
        (
            "ADD http://[::1 /x".to_string(),
            "ADD failed: parse \"http://[::1\": missing ']' in host".to_string(),
        ),
        // Source by source: a local source that is not there fails before the download.
        (
            format!("ADD missing.txt {} /d/", server.url("/never")),
            "ADD failed: file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist".to_string(),
        ),
        (
            format!("COPY {} /x", server.url("/hello.txt")),
            "COPY failed: source can't be a URL for COPY".to_string(),
        ),
    ];
    for (step, want) in cases {
        let ctx = TempDir::new();
        write(ctx.path(), "Dockerfile", &format!("FROM busybox\n{step}\n"));
        let r = build_on_berth(&d, ctx.path(), "addurl-bad");
        assert_eq!(r.code, 1, "{step}: {}{}", r.stdout, r.stderr);
        assert_eq!(r.stderr.trim(), want, "{step}");
    }
    assert!(server.requests_for("/never").is_empty());
    assert_eq!(server.requests_for("/loop/9").len(), 1);
    assert!(server.requests_for("/loop/10").is_empty());
    // A failed download leaves nothing in the store's scratch area.
    let leftovers: Vec<_> = std::fs::read_dir(d.data_root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() != 64)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn builds_as_on_dockerd() {
    std::env::set_var("DOCKER_BUILDKIT", "0");
    let server = Server::start();
    let berth = Daemon::start();
    let docker = Dockerd::start();
    let scratch = TempDir::new();
    let image = scratch.path().join("busybox.tar");
    berth.ok(&["save", "-o", image.to_str().unwrap(), "busybox"]);
    let r = docker.docker(&["load", "-i", image.to_str().unwrap()]);
    assert_eq!(r.code, 0, "load busybox into dockerd: {}", r.stderr);
    let ctx = TempDir::new();
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM busybox\n\
             ADD {} /d/\n\
             ADD {} {} /m/\n\
             ADD {} /r\n\
             RUN ls -ln --full-time /d /m /r\n",
            server.url("/hello.txt"),
            server.url("/nolm"),
            server.url("/a.tar"),
            server.url("/moved"),
        ),
    );
    let on_berth = build_on_berth(&berth, ctx.path(), "addurl");
    let on_docker = docker.docker(&["build", "-t", "addurl", ctx.path().to_str().unwrap()]);
    assert_eq!(on_berth.code, 0, "{}{}", on_berth.stdout, on_berth.stderr);
    assert_eq!(
        on_docker.code, 0,
        "{}{}",
        on_docker.stdout, on_docker.stderr
    );
    // Directory times are the build's own: blur them.
    let blur = |s: &str| {
        s.lines()
            .map(|l| {
                if l.starts_with('d') {
                    l.split_whitespace().take(5).collect::<Vec<_>>().join(" ")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        blur(&normalize(&on_berth.stdout)),
        blur(&normalize(&on_docker.stdout))
    );
    assert_eq!(
        history(|a| berth.docker(a), "addurl")[..4],
        history(|a| docker.docker(a), "addurl")[..4]
    );
    // Errors too.
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM busybox\nADD {} /x\n", server.url("/missing")),
    );
    let on_berth = build_on_berth(&berth, ctx.path(), "addurl-bad");
    let on_docker = docker.docker(&["build", ctx.path().to_str().unwrap()]);
    assert_eq!(
        (on_berth.code, on_berth.stderr.clone()),
        (on_docker.code, on_docker.stderr.clone())
    );
}
