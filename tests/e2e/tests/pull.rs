//! `berth pull`, `POST /images/create?fromImage=` and `run` of a missing image, against real
//! registries started on loopback ports: `berth registry serve` and Debian's `docker-registry`
//! (Distribution 2.8, with htpasswd basic auth), with images pushed by the real docker CLI
//! (a private dockerd) or uploaded through the registry API (multi-platform indexes, images
//! with chosen layers). Network trouble comes from a proxy in the test that sits between berthd
//! and the registry: it cuts a layer's connection, answers 500, corrupts a byte, slows a layer
//! down, or asks for bearer tokens that its own small token endpoint hands out.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_e2e::registry::{berth_with_config, free_port, Auth, Registry, TcpServer};
use berth_e2e::{repo_root, tempdir::TempDir, Daemon, Dockerd};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A raw HTTP/1.1 exchange (one request per connection).
struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = Vec::new();
    if method != "HEAD" {
        r.read_to_end(&mut body).unwrap();
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// Uploads a blob monolithically (POST then PUT ?digest=).
fn upload_blob(addr: &str, repo: &str, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let start = http(
        addr,
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(
        start.status,
        202,
        "upload start: {}",
        String::from_utf8_lossy(&start.body)
    );
    let loc = start.headers["location"].clone();
    let path = loc
        .split_once("//")
        .map(|(_, r)| &r[r.find('/').unwrap()..])
        .unwrap_or(&loc)
        .to_string();
    let sep = if path.contains('?') { '&' } else { '?' };
    let put = http(
        addr,
        "PUT",
        &format!("{path}{sep}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        bytes,
    );
    assert_eq!(
        put.status,
        201,
        "upload: {}",
        String::from_utf8_lossy(&put.body)
    );
    digest
}

fn put_manifest(addr: &str, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) -> String {
    let r = http(
        addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        bytes,
    );
    assert_eq!(
        r.status,
        201,
        "manifest: {}",
        String::from_utf8_lossy(&r.body)
    );
    sha256(bytes)
}

/// A gzip'd layer tar holding `files`; returns (blob, diff ID).
fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, String) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let diff_id = sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// An uploaded image: its manifest's digest and the digests of its layer blobs.
struct Pushed {
    manifest: String,
    manifest_bytes: Vec<u8>,
    layers: Vec<String>,
}

/// Uploads an image of `layers` for `arch` (config and manifest as Docker writes them); tags
/// it `tag` when given.
fn push_image(
    addr: &str,
    repo: &str,
    tag: Option<&str>,
    arch: &str,
    layers: &[(Vec<u8>, String)],
) -> Pushed {
    let diff_ids: Vec<&str> = layers.iter().map(|(_, d)| d.as_str()).collect();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": layers.iter().map(|_| serde_json::json!({"created_by": "test"})).collect::<Vec<_>>(),
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = upload_blob(addr, repo, &config);
    let mut descs = Vec::new();
    let mut digests = Vec::new();
    for (blob, _) in layers {
        let d = upload_blob(addr, repo, blob);
        descs.push(serde_json::json!({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": blob.len(), "digest": d}));
        digests.push(d);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": config_digest},
        "layers": descs,
    }))
    .unwrap();
    let reference = tag.map(String::from).unwrap_or_else(|| sha256(&manifest));
    let digest = put_manifest(
        addr,
        repo,
        &reference,
        "application/vnd.docker.distribution.manifest.v2+json",
        &manifest,
    );
    Pushed {
        manifest: digest,
        manifest_bytes: manifest,
        layers: digests,
    }
}

fn inspect(d: &Daemon, image: &str, format: &str) -> String {
    d.ok(&["image", "inspect", "--format", format, image])
        .trim()
        .to_string()
}

/// What the proxy does to the next requests.
#[derive(Default)]
struct Faults {
    /// Cut the connection after this many body bytes of the next GET of this blob digest.
    cut: Option<(String, usize)>,
    /// Answer 500 to this many next GETs of this blob.
    fail: Option<(String, u32)>,
    /// Flip one byte of every GET of this blob.
    corrupt: Option<String>,
    /// Send this blob slowly: bytes per 50 ms.
    slow: Option<(String, usize)>,
    /// Require bearer tokens from the proxy's own `/token`, handed out for these Basic creds.
    bearer: Option<(String, String)>,
    /// What it saw: request lines (with a Range header, if any) and token requests.
    log: Vec<String>,
}

/// A proxy in front of a registry, playing the hostile network.
struct Proxy {
    addr: String,
    faults: Arc<Mutex<Faults>>,
    _server: TcpServer,
}

const TOKEN: &str = "test-token-0123456789";

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let faults = Arc::new(Mutex::new(Faults::default()));
        let (f, up) = (faults.clone(), upstream.to_string());
        let server = TcpServer::start(move |conn| {
            // The proxy's own address, for the token realm it hands out.
            let me = conn.local_addr().unwrap().to_string();
            let _ = serve(conn, &up, &me, &f);
        });
        Proxy {
            addr: server.addr.clone(),
            faults,
            _server: server,
        }
    }

    fn set(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.faults.lock().unwrap());
    }

    fn log(&self) -> Vec<String> {
        self.faults.lock().unwrap().log.clone()
    }
}

/// One request per connection: read its head, apply the faults, relay the answer.
fn serve(
    client: TcpStream,
    upstream: &str,
    me: &str,
    faults: &Mutex<Faults>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let request_line = head[0].trim().to_string();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let header = |name: &str| {
        head.iter()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
            .map(|l| l.split_once(':').unwrap().1.trim().to_string())
    };
    let mut client = client;
    let mut f = faults.lock().unwrap();
    f.log.push(match header("range") {
        Some(r) => format!("{request_line} {r}"),
        None => request_line.clone(),
    });
    if let Some((user, password)) = f.bearer.clone() {
        if path.starts_with("/token") {
            let want = format!("Basic {}", base64(&format!("{user}:{password}")));
            let (status, body) = if header("authorization") == Some(want) {
                (
                    "200 OK",
                    format!("{{\"token\":\"{TOKEN}\",\"expires_in\":300}}"),
                )
            } else {
                ("401 Unauthorized", "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}".to_string())
            };
            drop(f);
            return client.write_all(format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
        }
        if header("authorization") != Some(format!("Bearer {TOKEN}")) {
            drop(f);
            let body = "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"authentication required\"}]}";
            return client.write_all(format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"test-registry\"\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
        }
    }
    let is_get = request_line.starts_with("GET ");
    let blob = |d: &Option<String>| {
        is_get
            && d.as_ref()
                .is_some_and(|d| path.ends_with(&format!("/blobs/{d}")))
    };
    if let Some((d, n)) = f.fail.clone() {
        if blob(&Some(d.clone())) && n > 0 {
            f.fail = Some((d, n - 1));
            drop(f);
            return client.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    }
    let mut cut = None;
    if let Some((d, n)) = f.cut.clone() {
        if blob(&Some(d)) {
            cut = Some(n);
            f.cut = None;
        }
    }
    let corrupt = blob(&f.corrupt);
    let slow = f
        .slow
        .as_ref()
        .filter(|(d, _)| blob(&Some(d.clone())))
        .map(|(_, n)| *n);
    drop(f);
    let mut up = TcpStream::connect(upstream)?;
    let mut out = String::new();
    for l in &head {
        if !l.to_ascii_lowercase().starts_with("connection:") {
            out += l;
        }
    }
    out += "Connection: close\r\n\r\n";
    up.write_all(out.as_bytes())?;
    // Request bodies (uploads) are not proxied: pulls send none.
    let mut up_reader = BufReader::new(up);
    let mut resp_head = Vec::new();
    loop {
        let mut line = String::new();
        if up_reader.read_line(&mut line)? == 0 {
            break;
        }
        let end = line == "\r\n";
        resp_head.extend_from_slice(line.as_bytes());
        if end {
            break;
        }
    }
    client.write_all(&resp_head)?;
    let mut sent = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let want = slow.unwrap_or(buf.len()).min(buf.len());
        let n = up_reader.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        let chunk = &mut buf[..n];
        if corrupt && sent == 0 && n > 100 {
            chunk[100] ^= 0xff;
        }
        if let Some(limit) = cut {
            if sent + n >= limit {
                client.write_all(&chunk[..limit - sent])?;
                // Gone mid-body: the client sees the connection close early.
                return client.shutdown(std::net::Shutdown::Both);
            }
        }
        client.write_all(chunk)?;
        sent += n;
        if slow.is_some() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn base64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A docker config dir holding `user`/`password` for `registry`, as `docker login` writes it.
fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) -> PathBuf {
    let cfg = dir.join("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    let json =
        serde_json::json!({"auths": {registry: {"auth": base64(&format!("{user}:{password}"))}}});
    std::fs::write(
        cfg.join("config.json"),
        serde_json::to_vec_pretty(&json).unwrap(),
    )
    .unwrap();
    cfg
}

/// Images the store lists, to show a failed pull changed nothing.
fn image_ids(d: &Daemon) -> String {
    d.ok(&[
        "images",
        "-a",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ])
}

#[test]
fn pulls_what_docker_pushed_to_distribution_with_basic_auth() {
    let reg = Registry::distribution(Auth::Basic {
        user: "alice",
        password: "s3cret",
    });
    let dockerd = Dockerd::start();
    let tmp = TempDir::new();
    // busybox made as the project makes it, pushed by the real docker CLI after `docker login`.
    let tar = tmp.path().join("bb.tar");
    let made = Command::new("bash")
        .arg(repo_root().join("scripts/mkimage.sh"))
        .stdout(std::fs::File::create(&tar).unwrap())
        .status()
        .unwrap();
    assert!(made.success());
    let image = format!("{}/team/bb:v1", reg.addr);
    let import = dockerd.docker(&[
        "import",
        "--change",
        "CMD [\"sh\"]",
        "--change",
        "ENV PATH=/bin:/usr/bin:/sbin:/usr/sbin",
        tar.to_str().unwrap(),
        &image,
    ]);
    assert_eq!(import.code, 0, "{}", import.stderr);
    let config = docker_config(tmp.path(), &reg.addr, "alice", "s3cret");
    let push = dockerd.docker(&["--config", config.to_str().unwrap(), "push", &image]);
    assert_eq!(push.code, 0, "{}", push.stderr);
    let digest = push
        .stdout
        .split("digest: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let d = Daemon::start();
    // The daemon's own busybox has the same layer; without it the layer is really downloaded.
    d.ok(&["rmi", "busybox"]);
    // No credentials: Distribution's basic challenge cannot be answered, as Docker says.
    let r = d.berth(&["pull", &image]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!("Error response from daemon: Head \"http://{}/v2/team/bb/manifests/v1\": no basic auth credentials", reg.addr)
    );
    let anonymous_docker = dockerd.docker(&[
        "--config",
        tmp.path().join("empty").to_str().unwrap(),
        "pull",
        &image,
    ]);
    assert!(
        anonymous_docker.stderr.trim().ends_with(r.stderr.trim()),
        "docker's own words: {}",
        anonymous_docker.stderr
    );

    let r = berth_with_config(&d, &config, &["pull", &image]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "v1: Pulling from team/bb");
    assert!(
        lines.iter().any(|l| l.ends_with(": Pull complete")),
        "{}",
        r.stdout
    );
    assert!(
        lines.contains(&format!("Digest: {digest}").as_str()),
        "{}",
        r.stdout
    );
    assert!(lines.contains(&format!("Status: Downloaded newer image for {image}").as_str()));
    assert_eq!(lines.last().copied(), Some(image.as_str()));
    assert_eq!(
        d.ok(&["run", "--rm", &image, "echo", "pulled and ran"])
            .trim(),
        "pulled and ran"
    );
    // Same image ID as Docker's: the config came through byte for byte.
    let docker_id = dockerd
        .docker(&["image", "inspect", "--format", "{{.Id}}", &image])
        .stdout;
    assert_eq!(inspect(&d, &image, "{{.Id}}"), docker_id.trim());
    let repo_digest = format!("{}/team/bb@{digest}", reg.addr);
    assert_eq!(
        inspect(&d, &image, "{{json .RepoDigests}}"),
        format!("[\"{repo_digest}\"]")
    );

    // Again: up to date. By digest: found, and `run` by digest works.
    let again = berth_with_config(&d, &config, &["pull", &image]);
    assert!(
        again
            .stdout
            .contains(&format!("Status: Image is up to date for {image}")),
        "{}",
        again.stdout
    );
    d.ok(&["rmi", &image]);
    let by_digest = berth_with_config(&d, &config, &["pull", "-q", &repo_digest]);
    assert_eq!(by_digest.code, 0, "{}", by_digest.stderr);
    assert_eq!(by_digest.stdout.trim(), repo_digest);
    assert_eq!(
        d.ok(&["run", "--rm", &repo_digest, "echo", "by digest"])
            .trim(),
        "by digest"
    );

    // `run` of an image not here pulls it first, with docker's messages on stderr.
    let image2 = format!("{}/team/bb:v2", reg.addr);
    assert_eq!(dockerd.docker(&["tag", &image, &image2]).code, 0);
    assert_eq!(
        dockerd
            .docker(&["--config", config.to_str().unwrap(), "push", &image2])
            .code,
        0
    );
    let run = berth_with_config(&d, &config, &["run", "--rm", &image2, "echo", "ran"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "ran");
    assert!(
        run.stderr
            .starts_with(&format!("Unable to find image '{image2}' locally\n")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains(&format!("Status: Downloaded newer image for {image2}")),
        "{}",
        run.stderr
    );

    // The docker CLI against berthd pulls normally too (credentials from its config).
    d.ok(&["rmi", &image2]);
    let via_docker = d.docker(&["--config", config.to_str().unwrap(), "pull", &image2]);
    assert_eq!(via_docker.code, 0, "{}", via_docker.stderr);
    assert!(
        via_docker.stdout.starts_with("v2: Pulling from team/bb\n"),
        "{}",
        via_docker.stdout
    );
    assert!(
        via_docker.stdout.ends_with(&format!(
            "Status: Downloaded newer image for {image2}\n{image2}\n"
        )),
        "{}",
        via_docker.stdout
    );
}

#[test]
fn index_platforms_all_tags_and_unknown_images() {
    let reg = Registry::berth();
    let d = Daemon::start();
    let amd = push_image(
        &reg.addr,
        "multi",
        None,
        "amd64",
        &[layer(&[("amd", b"amd64 file")])],
    );
    let arm = push_image(
        &reg.addr,
        "multi",
        None,
        "arm64",
        &[layer(&[("arm", b"arm64 file")])],
    );
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": arm.manifest_bytes.len(), "digest": arm.manifest, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": amd.manifest_bytes.len(), "digest": amd.manifest, "platform": {"os": "linux", "architecture": "amd64"}},
        ],
    }))
    .unwrap();
    let index_digest = put_manifest(
        &reg.addr,
        "multi",
        "latest",
        "application/vnd.oci.image.index.v1+json",
        &index,
    );
    let image = format!("{}/multi", reg.addr);
    let host_arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };

    let r = d.berth(&["pull", &image]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("Using default tag: latest\nlatest: Pulling from multi\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("Digest: {index_digest}")),
        "RepoDigests name the index: {}",
        r.stdout
    );
    assert_eq!(inspect(&d, &image, "{{.Architecture}}"), host_arch);
    assert_eq!(
        inspect(&d, &image, "{{json .RepoDigests}}"),
        format!("[\"{image}@{index_digest}\"]")
    );

    let other = if host_arch == "amd64" {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let r = d.berth(&["pull", "--platform", other, &image]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        inspect(&d, &image, "{{.Architecture}}"),
        other.trim_start_matches("linux/")
    );

    let r = d.berth(&["pull", "--platform", "linux/s390x", &image]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim(), "Error response from daemon: no matching manifest for linux/s390x in the manifest list entries");

    // --all-tags: every tag of the repository, then the repository's status line.
    push_image(
        &reg.addr,
        "multi",
        Some("v1"),
        host_arch,
        &[layer(&[("v1", b"one")])],
    );
    push_image(
        &reg.addr,
        "multi",
        Some("v2"),
        host_arch,
        &[layer(&[("v2", b"two")])],
    );
    let r = d.berth(&["pull", "-a", &image]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for tag in ["latest", "v1", "v2"] {
        assert!(
            r.stdout.contains(&format!("{tag}: Pulling from multi\n")),
            "{}",
            r.stdout
        );
    }
    assert!(
        r.stdout.ends_with(&format!(
            "Status: Downloaded newer image for {image}\n{image}\n"
        )),
        "{}",
        r.stdout
    );
    let tags = d.ok(&["images", "--format", "{{.Tag}}", &image]);
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, ["latest", "v1", "v2"]);

    // Unknown image and bad input: Docker's messages, nothing stored.
    let before = image_ids(&d);
    let r = d.berth(&["pull", &format!("{}/nope", reg.addr)]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim(), format!("Error response from daemon: manifest for {}/nope:latest not found: manifest unknown: manifest unknown", reg.addr));
    let r = d.berth(&["pull", "Bad/Name"]);
    assert_eq!(
        (r.code, r.stderr.trim()),
        (
            1,
            "invalid reference format: repository name must be lowercase"
        )
    );
    let down = format!("127.0.0.1:{}", free_port());
    let r = d.berth(&["pull", &format!("{down}/x")]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim(), format!("Error response from daemon: Get \"http://{down}/v2/\": dial tcp {down}: connect: connection refused"));
    let r = d.berth(&["run", "--rm", &format!("{}/nope", reg.addr)]);
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains(&format!(
            "manifest for {}/nope:latest not found: manifest unknown: manifest unknown",
            reg.addr
        )),
        "{}",
        r.stderr
    );
    assert_eq!(image_ids(&d), before);
}

#[test]
fn broken_connections_and_bad_blobs() {
    // Docker's retry countdown (5, 10, 15, 20 s) with 20 ms seconds: the waits are Docker's,
    // only shorter (berthd reads this; see berth_distribution::retry).
    std::env::set_var("BERTH_REGISTRY_RETRY_SECOND_MS", "20");
    let reg = Registry::berth();
    let proxy = Proxy::start(&reg.addr);
    let d = Daemon::start();
    // 2 MB of incompressible bytes, so the layer spans many chunks.
    let mut noise = Vec::with_capacity(2 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while noise.len() < 2 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let big = layer(&[("noise", &noise)]);
    let pushed = push_image(
        &reg.addr,
        "app",
        Some("v1"),
        "amd64",
        &[big.clone(), layer(&[("small", b"small")])],
    );
    let image = format!("{}/app:v1", proxy.addr);
    let blob = pushed.layers[0].clone();

    // A corrupted byte: refused, naming the digest and where it came from; nothing stored.
    let before = image_ids(&d);
    proxy.set(|f| f.corrupt = Some(blob.clone()));
    let r = d.berth(&["pull", &image]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains(&format!(
            "filesystem layer verification failed for digest {blob}"
        )),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("{}/v2/app/blobs/{blob}", proxy.addr)),
        "names the registry: {}",
        r.stderr
    );
    assert_eq!(image_ids(&d), before);
    proxy.set(|f| f.corrupt = None);

    // Cut mid-layer: resumed with a Range request from the byte reached, and the pull succeeds.
    proxy.set(|f| f.cut = Some((blob.clone(), 300_000)));
    let r = d.berth(&["pull", &image]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("{}: Retrying in 5 seconds", &blob[7..19])),
        "{}",
        r.stdout
    );
    let log = proxy.log();
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("/blobs/{blob}")) && l.ends_with("bytes=300000-")),
        "{log:?}"
    );
    d.ok(&["rmi", &image]);

    // 500s are retried (Docker's 5 attempts), then it works.
    proxy.set(|f| f.fail = Some((blob.clone(), 2)));
    let r = d.berth(&["pull", &image]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Retrying in 10 seconds"), "{}", r.stdout);
    assert!(!r.stdout.contains("Retrying in 15 seconds"), "{}", r.stdout);
    d.ok(&["rmi", &image]);

    // More 500s than attempts: the registry's error, nothing stored.
    proxy.set(|f| f.fail = Some((blob.clone(), 10)));
    let blob_gets = || {
        let wanted = format!("GET /v2/app/blobs/{blob} ");
        proxy.log().iter().filter(|l| l.starts_with(&wanted)).count()
    };
    let gets_before = blob_gets();
    let r = d.berth(&["pull", "-q", &image]);
    assert_eq!(r.code, 1);
    assert_eq!(blob_gets() - gets_before, 5, "Docker's 5 attempts");
    assert!(
        r.stderr
            .contains("received unexpected HTTP status: 500 Internal Server Error"),
        "{}",
        r.stderr
    );
    assert_eq!(image_ids(&d), before);
}

#[test]
fn interrupted_pull_leaves_no_image_and_keeps_complete_layers() {
    let reg = Registry::berth();
    let proxy = Proxy::start(&reg.addr);
    let d = Daemon::start();
    let small = layer(&[("small", b"done quickly")]);
    // Incompressible, so the slowed-down blob takes seconds: 8 kB at 64 bytes per 50 ms.
    let noise: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let slow = layer(&[("slow", &noise)]);
    let pushed = push_image(&reg.addr, "ctrlc", Some("v1"), "amd64", &[small, slow]);
    let image = format!("{}/ctrlc:v1", proxy.addr);
    let (small_id, slow_id) = (&pushed.layers[0][7..19], &pushed.layers[1][7..19]);
    proxy.set(|f| f.slow = Some((pushed.layers[1].clone(), 64)));

    let before = image_ids(&d);
    let mut pull = d
        .berth_cmd(&["pull", &image])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(pull.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains(&format!("{small_id}: Pull complete")) {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "pull ended early: {seen}"
        );
        seen += &line;
    }
    // ctrl-c: the client goes away; the daemon stops the pull.
    unsafe { libc::kill(pull.id() as i32, libc::SIGINT) };
    let _ = pull.wait();
    assert_eq!(image_ids(&d), before, "nothing half-registered");

    proxy.set(|f| f.slow = None);
    let r = d.berth(&["pull", &image]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("{small_id}: Already exists")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("{slow_id}: Pull complete")),
        "{}",
        r.stdout
    );
}

#[test]
fn bearer_tokens_from_the_challenge() {
    let reg = Registry::berth();
    let proxy = Proxy::start(&reg.addr);
    proxy.set(|f| f.bearer = Some(("bob".into(), "hunter2".into())));
    push_image(
        &reg.addr,
        "private/app",
        Some("v1"),
        "amd64",
        &[layer(&[("f", b"x")])],
    );
    let d = Daemon::start();
    let tmp = TempDir::new();
    let image = format!("{}/private/app:v1", proxy.addr);

    let r = d.berth(&["pull", &image]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        // As dockerd words a token request refused with distribution's bare UNAUTHORIZED
        // (checked against it in registry_token.rs): the manifest request it was for failed.
        format!(
            "Error response from daemon: Head \"http://{}/v2/private/app/manifests/v1\": unauthorized",
            proxy.addr
        )
    );
    let config = docker_config(tmp.path(), &proxy.addr, "bob", "hunter2");
    let r = berth_with_config(&d, &config, &["pull", &image]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let log = proxy.log();
    let token_requests: Vec<&String> = log.iter().filter(|l| l.starts_with("GET /token")).collect();
    assert!(
        token_requests
            .iter()
            .any(|l| l.contains("scope=repository%3Aprivate%2Fapp%3Apull")
                && l.contains("service=test-registry")),
        "{log:?}"
    );
    // One token for the whole pull: the cache answers every later request of the scope.
    assert_eq!(
        token_requests.len(),
        2,
        "one refused anonymous try, one with credentials: {log:?}"
    );
}
