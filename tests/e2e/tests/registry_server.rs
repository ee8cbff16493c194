//! `berth registry serve`: the real docker CLI (against a private dockerd) pushes to it and
//! pulls from it; its HTTP answers are checked request by request against the distribution
//! spec as Distribution 2.8 gives them (uploads chunked, streamed and monolithic, mounts,
//! ranges, deletes, pagination, bad input that must publish nothing, basic auth, TLS, and
//! upload sessions that survive a restart).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use berth_e2e::{bin_dir, eventually, repo_root, require_root, tempdir::TempDir, Dockerd};

/// A `berth registry serve` on a free loopback port with its own root.
struct Registry {
    addr: String,
    root: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
    _dir: TempDir,
}

impl Registry {
    fn start(extra: &[&str]) -> Registry {
        let dir = TempDir::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Registry {
            addr: format!("127.0.0.1:{port}"),
            root: dir.path().join("root"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            _dir: dir,
        };
        r.spawn();
        r
    }

    /// Starts the server through the CLI (which execs `berth-registry`).
    fn spawn(&mut self) {
        let child = Command::new(bin_dir().join("berth"))
            .args(["registry", "serve", "--addr", &self.addr, "--root"])
            .arg(&self.root)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("berth registry serve");
        self.child = Some(child);
        let addr = self.addr.clone();
        assert!(
            eventually(30, || TcpStream::connect(&addr).is_ok()),
            "registry did not start"
        );
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        request(&self.addr, method, path, headers, body)
    }

    fn get(&self, path: &str) -> Resp {
        self.req("GET", path, &[], b"")
    }

    /// Files in the content store.
    fn blob_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("blobs/sha256"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The error code of a spec error body.
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The path part of the `Location` header (which is absolute, as Distribution's is).
    fn location_path(&self) -> String {
        let loc = self.header("location").expect("location");
        let rest = loc.strip_prefix("http://").expect("absolute location");
        rest[rest.find('/').unwrap()..].to_string()
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        raw[split + 4..].to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn sha256(bytes: &[u8]) -> String {
    // The e2e crate has no hashing dependency; sha256sum is in coreutils.
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = c.wait_with_output().unwrap();
    format!(
        "sha256:{}",
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    )
}

fn oci_manifest(config: &str, config_len: usize, layers: &[(&str, usize)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, n)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len},
        "layers": layers,
    }))
    .unwrap()
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Monolithic upload of `bytes` to `repo`; returns the digest.
fn push_blob(r: &Registry, repo: &str, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let resp = r.req(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
        &[("Content-Type", "application/octet-stream")],
        bytes,
    );
    assert_eq!(resp.status, 201, "{resp:?}");
    d
}

/// Pushes a one-layer image as `repo:tag`; returns the manifest digest.
fn push_image(r: &Registry, repo: &str, tag: &str, layer: &[u8]) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = push_blob(r, repo, config);
    let l = push_blob(r, repo, layer);
    let m = oci_manifest(&c, config.len(), &[(&l, layer.len())]);
    let resp = r.req(
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", OCI_MANIFEST)],
        &m,
    );
    assert_eq!(resp.status, 201, "{resp:?}");
    resp.header("docker-content-digest").unwrap().to_string()
}

#[test]
fn docker_pushes_to_and_pulls_from_berth_registry() {
    require_root();
    let r = Registry::start(&[]);
    let docker = Dockerd::start();
    let tmp = TempDir::new();
    let tar = busybox_tar(tmp.path());
    let r_import = docker.docker(&[
        "import",
        "--change",
        "CMD [\"sh\"]",
        tar.to_str().unwrap(),
        "busybox:latest",
    ]);
    assert_eq!(r_import.code, 0, "{}", r_import.stderr);

    let image = format!("{}/e2e/busybox:v1", r.addr);
    assert_eq!(docker.docker(&["tag", "busybox:latest", &image]).code, 0);
    let push = docker.docker(&["push", &image]);
    assert_eq!(push.code, 0, "{}{}", push.stdout, push.stderr);
    let pushed_digest = push
        .stdout
        .split("digest: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("push prints the digest")
        .to_string();
    // A second push finds every blob already there.
    let again = docker.docker(&["push", &image]);
    assert!(
        again.stdout.contains("Layer already exists"),
        "{}",
        again.stdout
    );

    assert_eq!(docker.docker(&["rmi", "busybox:latest", &image]).code, 0);
    let pull = docker.docker(&["pull", &image]);
    assert_eq!(pull.code, 0, "{}{}", pull.stdout, pull.stderr);
    assert!(
        pull.stdout.contains(&format!("Digest: {pushed_digest}")),
        "{}",
        pull.stdout
    );
    let run = docker.docker(&["run", "--rm", &image, "echo", "pulled from berth"]);
    assert_eq!(run.stdout, "pulled from berth\n", "{}", run.stderr);
    // By digest too.
    let by_digest = format!("{}/e2e/busybox@{pushed_digest}", r.addr);
    assert_eq!(docker.docker(&["pull", &by_digest]).code, 0);

    assert_eq!(
        r.get("/v2/_catalog").json(),
        serde_json::json!({"repositories": ["e2e/busybox"]})
    );
    assert_eq!(
        r.get("/v2/e2e/busybox/tags/list").json(),
        serde_json::json!({"name": "e2e/busybox", "tags": ["v1"]})
    );
    let m = r.req("HEAD", "/v2/e2e/busybox/manifests/v1", &[], b"");
    assert_eq!(
        m.header("docker-content-digest"),
        Some(pushed_digest.as_str())
    );
    assert_eq!(
        m.header("content-type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
}

#[test]
fn uploads_chunked_streamed_mounted_ranged_and_deleted() {
    let r = Registry::start(&[]);
    let base = r.get("/v2/");
    assert_eq!(
        (base.status, base.header("docker-distribution-api-version")),
        (200, Some("registry/2.0"))
    );
    assert_eq!(base.body, b"{}");

    // Chunked: POST, two PATCHes with Content-Range, PUT with the last bytes.
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let d = sha256(&blob);
    let start = r.req("POST", "/v2/app/blobs/uploads/", &[], b"");
    assert_eq!((start.status, start.header("range")), (202, Some("0-0")));
    let uuid = start.header("docker-upload-uuid").unwrap().to_string();
    let loc = start.location_path();
    assert_eq!(loc, format!("/v2/app/blobs/uploads/{uuid}"));
    let p1 = r.req(
        "PATCH",
        &loc,
        &[
            ("Content-Range", "0-99999"),
            ("Content-Type", "application/octet-stream"),
        ],
        &blob[..100_000],
    );
    assert_eq!(
        (p1.status, p1.header("range")),
        (202, Some("0-99999")),
        "{p1:?}"
    );
    // Out of order: refused, nothing written.
    let bad = r.req(
        "PATCH",
        &loc,
        &[("Content-Range", "150000-199999")],
        &blob[150_000..200_000],
    );
    assert_eq!((bad.status, bad.code().as_str()), (416, "RANGE_INVALID"));
    // Streamed (no Content-Range).
    let p2 = r.req("PATCH", &p1.location_path(), &[], &blob[100_000..200_000]);
    assert_eq!((p2.status, p2.header("range")), (202, Some("0-199999")));
    let status = r.get(&loc);
    assert_eq!(
        (
            status.status,
            status.header("range"),
            status.header("docker-upload-uuid")
        ),
        (204, Some("0-199999"), Some(uuid.as_str()))
    );
    let done = r.req(
        "PUT",
        &format!("{loc}?digest={d}"),
        &[("Content-Type", "application/octet-stream")],
        &blob[200_000..],
    );
    assert_eq!(done.status, 201, "{done:?}");
    assert_eq!(done.header("docker-content-digest"), Some(d.as_str()));
    assert_eq!(done.location_path(), format!("/v2/app/blobs/{d}"));
    assert_eq!(
        r.get(&loc).code(),
        "BLOB_UPLOAD_UNKNOWN",
        "a finished upload is gone"
    );

    // GET, HEAD and ranges.
    let got = r.get(&format!("/v2/app/blobs/{d}"));
    assert_eq!((got.status, got.body == blob), (200, true));
    assert_eq!(got.header("docker-content-digest"), Some(d.as_str()));
    let head = r.req("HEAD", &format!("/v2/app/blobs/{d}"), &[], b"");
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("300000"))
    );
    let part = r.req(
        "GET",
        &format!("/v2/app/blobs/{d}"),
        &[("Range", "bytes=1000-1999")],
        b"",
    );
    assert_eq!(
        (part.status, part.header("content-range")),
        (206, Some("bytes 1000-1999/300000"))
    );
    assert_eq!(part.body, &blob[1000..2000]);
    let tail = r.req(
        "GET",
        &format!("/v2/app/blobs/{d}"),
        &[("Range", "bytes=-10")],
        b"",
    );
    assert_eq!((tail.status, tail.body.as_slice()), (206, &blob[299_990..]));
    let beyond = r.req(
        "GET",
        &format!("/v2/app/blobs/{d}"),
        &[("Range", "bytes=300000-")],
        b"",
    );
    assert_eq!(
        (beyond.status, beyond.header("content-range")),
        (416, Some("bytes */300000"))
    );

    // Blobs belong to repositories; a mount from one that has it is immediate.
    assert_eq!(
        r.req("HEAD", &format!("/v2/other/blobs/{d}"), &[], b"")
            .status,
        404
    );
    let mount = r.req(
        "POST",
        &format!("/v2/other/blobs/uploads/?mount={d}&from=app"),
        &[],
        b"",
    );
    assert_eq!(
        (mount.status, mount.header("docker-content-digest")),
        (201, Some(d.as_str()))
    );
    assert_eq!(
        r.req("HEAD", &format!("/v2/other/blobs/{d}"), &[], b"")
            .status,
        200
    );
    // From a repository without it: a normal upload starts instead.
    let no_mount = r.req(
        "POST",
        &format!("/v2/third/blobs/uploads/?mount={d}&from=nosuch"),
        &[],
        b"",
    );
    assert_eq!(no_mount.status, 202);
    assert_eq!(
        r.req("DELETE", &no_mount.location_path(), &[], b"").status,
        204
    );
    assert_eq!(
        r.get(&no_mount.location_path()).code(),
        "BLOB_UPLOAD_UNKNOWN"
    );

    // Blob delete: gone from that repository only.
    assert_eq!(
        r.req("DELETE", &format!("/v2/other/blobs/{d}"), &[], b"")
            .status,
        202
    );
    assert_eq!(
        r.req("GET", &format!("/v2/other/blobs/{d}"), &[], b"")
            .code(),
        "BLOB_UNKNOWN"
    );
    assert_eq!(
        r.req("DELETE", &format!("/v2/other/blobs/{d}"), &[], b"")
            .status,
        404
    );
    assert_eq!(
        r.req("HEAD", &format!("/v2/app/blobs/{d}"), &[], b"")
            .status,
        200
    );

    // Manifests: by tag and digest, type kept, delete by digest drops its tags.
    let md = push_image(&r, "app", "v1", &blob);
    let m = r.get("/v2/app/manifests/v1");
    assert_eq!(
        (m.status, m.header("content-type")),
        (200, Some(OCI_MANIFEST))
    );
    assert_eq!(
        sha256(&m.body),
        md,
        "the digest is of the exact bytes served"
    );
    assert_eq!(r.get(&format!("/v2/app/manifests/{md}")).body, m.body);
    // An index over it.
    let index = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": md, "size": m.body.len(), "platform": {"architecture": "amd64", "os": "linux"}}]})).unwrap();
    let put = r.req(
        "PUT",
        "/v2/app/manifests/multi",
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        &index,
    );
    assert_eq!(put.status, 201, "{put:?}");
    assert_eq!(
        r.req("DELETE", "/v2/app/manifests/v1", &[], b"").code(),
        "DIGEST_INVALID",
        "tags are not deleted, as Distribution"
    );
    assert_eq!(
        r.req("DELETE", &format!("/v2/app/manifests/{md}"), &[], b"")
            .status,
        202
    );
    assert_eq!(r.get("/v2/app/manifests/v1").code(), "MANIFEST_UNKNOWN");
    assert_eq!(r.get(&format!("/v2/app/manifests/{md}")).status, 404);
    assert_eq!(
        r.get("/v2/app/tags/list").json()["tags"],
        serde_json::json!(["multi"])
    );
}

#[test]
fn bad_input_is_refused_and_publishes_nothing() {
    let r = Registry::start(&[]);
    let before = r.blob_files();

    // Wrong digest on finish: 400 DIGEST_INVALID, no blob, and the session stays.
    let start = r.req("POST", "/v2/app/blobs/uploads/", &[], b"");
    let loc = start.location_path();
    let wrong = sha256(b"something else");
    let put = r.req(
        "PUT",
        &format!("{loc}?digest={wrong}"),
        &[],
        b"the real bytes",
    );
    assert_eq!((put.status, put.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        r.req("HEAD", &format!("/v2/app/blobs/{wrong}"), &[], b"")
            .status,
        404
    );
    assert_eq!(
        r.req(
            "HEAD",
            &format!("/v2/app/blobs/{}", sha256(b"the real bytes")),
            &[],
            b""
        )
        .status,
        404
    );
    assert_eq!(r.blob_files(), before, "nothing published");
    assert_eq!(r.get(&loc).status, 204);
    let missing = r.req("PUT", &loc, &[], b"");
    assert_eq!(
        (missing.status, missing.code().as_str()),
        (400, "DIGEST_INVALID")
    );
    // Monolithic with a wrong digest: nothing published, no session left.
    let mono = r.req(
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={wrong}"),
        &[],
        b"the real bytes",
    );
    assert_eq!((mono.status, mono.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(r.blob_files(), before);

    // Names, digests and upload IDs that could escape the root, or are just malformed.
    for path in [
        "/v2/UPPER/tags/list",
        "/v2/a..b/tags/list",
        "/v2/../../etc/tags/list",
        "/v2/a/%2e%2e/tags/list",
        "/v2/-x/blobs/uploads/",
    ] {
        let resp = r.req("GET", path, &[], b"");
        assert!(resp.status == 400 || resp.status == 404, "{path}: {resp:?}");
        if resp.status == 400 {
            assert_eq!(resp.code(), "NAME_INVALID", "{path}");
        }
    }
    let bad_digest = r.get("/v2/app/blobs/sha256:..%2f..%2fetc");
    assert_eq!(
        (bad_digest.status, bad_digest.code().as_str()),
        (400, "DIGEST_INVALID")
    );
    assert_eq!(
        r.get("/v2/app/blobs/uploads/..%2f..%2fx").code(),
        "BLOB_UPLOAD_UNKNOWN"
    );
    // An upload of one repository cannot be used through another.
    assert_eq!(
        r.get(&loc.replace("/app/", "/other/")).code(),
        "BLOB_UPLOAD_UNKNOWN"
    );

    // Manifests: blobs must be in the repository, a digest reference must match the bytes,
    // the body must be a manifest.
    let config = push_blob(&r, "app", b"{}");
    let ghost = sha256(b"never pushed");
    let m = oci_manifest(&config, 2, &[(&ghost, 12)]);
    let resp = r.req(
        "PUT",
        "/v2/app/manifests/v1",
        &[("Content-Type", OCI_MANIFEST)],
        &m,
    );
    assert_eq!(
        (resp.status, resp.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    assert_eq!(resp.json()["errors"][0]["detail"], ghost);
    let other_repo = oci_manifest(&config, 2, &[]);
    assert_eq!(
        r.req(
            "PUT",
            "/v2/elsewhere/manifests/v1",
            &[("Content-Type", OCI_MANIFEST)],
            &other_repo
        )
        .code(),
        "MANIFEST_BLOB_UNKNOWN"
    );
    let good = oci_manifest(&config, 2, &[]);
    let resp = r.req(
        "PUT",
        &format!("/v2/app/manifests/{wrong}"),
        &[("Content-Type", OCI_MANIFEST)],
        &good,
    );
    assert_eq!((resp.status, resp.code().as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        r.req(
            "PUT",
            "/v2/app/manifests/v1",
            &[("Content-Type", OCI_MANIFEST)],
            b"not json"
        )
        .code(),
        "MANIFEST_INVALID"
    );
    assert_eq!(
        r.req(
            "PUT",
            "/v2/app/manifests/v1",
            &[("Content-Type", "text/plain")],
            &good
        )
        .code(),
        "MANIFEST_INVALID"
    );
    assert_eq!(
        r.get("/v2/app/tags/list").json()["tags"],
        serde_json::json!([]),
        "no tag from a refused manifest"
    );
    assert_eq!(r.get("/v2/app/manifests/v1").code(), "MANIFEST_UNKNOWN");
    assert_eq!(r.get("/v2/nosuch/tags/list").code(), "NAME_UNKNOWN");
    assert_eq!(r.req("POST", "/v2/app/tags/list", &[], b"").status, 405);
}

#[test]
fn catalog_and_tags_paginate() {
    let r = Registry::start(&[]);
    for repo in ["alpha", "beta/one", "gamma"] {
        for tag in ["v1", "v2", "v3"] {
            push_image(&r, repo, tag, repo.as_bytes());
        }
    }
    let all = r.get("/v2/_catalog");
    assert_eq!(
        all.json()["repositories"],
        serde_json::json!(["alpha", "beta/one", "gamma"])
    );
    assert_eq!(all.header("link"), None);
    let first = r.get("/v2/_catalog?n=2");
    assert_eq!(
        first.json()["repositories"],
        serde_json::json!(["alpha", "beta/one"])
    );
    assert_eq!(
        first.header("link"),
        Some("</v2/_catalog?last=beta%2Fone&n=2>; rel=\"next\"")
    );
    let next = r.get("/v2/_catalog?last=beta%2Fone&n=2");
    assert_eq!(
        (next.json()["repositories"].clone(), next.header("link")),
        (serde_json::json!(["gamma"]), None)
    );
    let tags = r.get("/v2/beta/one/tags/list?n=1&last=v1");
    assert_eq!(
        tags.json(),
        serde_json::json!({"name": "beta/one", "tags": ["v2"]})
    );
    assert_eq!(
        tags.header("link"),
        Some("</v2/beta/one/tags/list?last=v2&n=1>; rel=\"next\"")
    );
    assert_eq!(
        r.get("/v2/_catalog?n=0").json()["repositories"],
        serde_json::json!([])
    );
}

#[test]
fn uploads_survive_a_restart_and_abandoned_ones_are_purged() {
    let mut r = Registry::start(&[]);
    let blob: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let d = sha256(&blob);
    let kept = r
        .req("POST", "/v2/app/blobs/uploads/", &[], b"")
        .location_path();
    assert_eq!(r.req("PATCH", &kept, &[], &blob[..40_000]).status, 202);
    let abandoned = r
        .req("POST", "/v2/app/blobs/uploads/", &[], b"")
        .location_path();
    assert_eq!(r.req("PATCH", &abandoned, &[], b"old bytes").status, 202);
    r.stop();

    // Age the second session past the purge age (a week, as Distribution's default).
    let id = abandoned.rsplit('/').next().unwrap();
    let data = r.root.join("uploads").join(id).join("data");
    assert!(data.exists());
    let ok = Command::new("touch")
        .args(["-m", "-d", "8 days ago"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(ok.success());
    r.spawn();

    assert_eq!(r.get(&abandoned).code(), "BLOB_UPLOAD_UNKNOWN");
    assert!(!r.root.join("uploads").join(id).exists());
    let status = r.get(&kept);
    assert_eq!(
        (status.status, status.header("range")),
        (204, Some("0-39999"))
    );
    let done = r.req("PUT", &format!("{kept}?digest={d}"), &[], &blob[40_000..]);
    assert_eq!(
        done.status, 201,
        "the digest covers the bytes from before the restart: {done:?}"
    );
    assert_eq!(r.get(&format!("/v2/app/blobs/{d}")).body, blob);
}

/// Blobs that no repository holds any more are freed when the server next starts.
#[test]
fn deleted_blobs_are_freed_at_the_next_start() {
    let mut r = Registry::start(&[]);
    let d = push_blob(&r, "app", b"short-lived");
    let hex = d.trim_start_matches("sha256:").to_string();
    assert!(r.blob_files().contains(&hex));
    assert_eq!(
        r.req("DELETE", &format!("/v2/app/blobs/{d}"), &[], b"")
            .status,
        202
    );
    r.stop();
    r.spawn();
    assert!(!r.blob_files().contains(&hex));
}

/// The project's busybox root filesystem as a tar in `dir`.
fn busybox_tar(dir: &Path) -> PathBuf {
    let tar = dir.join("bb.tar");
    let file = std::fs::File::create(&tar).unwrap();
    let ok = Command::new("bash")
        .arg(repo_root().join("scripts/mkimage.sh"))
        .stdout(file)
        .status()
        .unwrap();
    assert!(ok.success());
    tar
}

fn htpasswd(dir: &Path) -> PathBuf {
    let out = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils; scripts/deps.sh --test)");
    assert!(out.status.success());
    let path = dir.join("htpasswd");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

#[test]
fn basic_auth_with_htpasswd() {
    let tmp = TempDir::new();
    let file = htpasswd(tmp.path());
    let r = Registry::start(&["--htpasswd", file.to_str().unwrap()]);
    let anon = r.get("/v2/");
    assert_eq!(
        (anon.status, anon.header("www-authenticate")),
        (401, Some("Basic realm=\"berth-registry\""))
    );
    assert_eq!(anon.code(), "UNAUTHORIZED");
    // "alice:wrong" and "alice:s3cret" in base64.
    assert_eq!(
        r.req(
            "GET",
            "/v2/_catalog",
            &[("Authorization", "Basic YWxpY2U6d3Jvbmc=")],
            b""
        )
        .status,
        401
    );
    let ok = r.req(
        "GET",
        "/v2/",
        &[("Authorization", "Basic YWxpY2U6czNjcmV0")],
        b"",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(
        r.req("POST", "/v2/app/blobs/uploads/", &[], b"").status,
        401,
        "every endpoint needs it"
    );
}

/// docker login and push through basic auth.
#[test]
fn docker_logs_in_and_pushes_with_basic_auth() {
    require_root();
    let tmp = TempDir::new();
    let file = htpasswd(tmp.path());
    let r = Registry::start(&["--htpasswd", file.to_str().unwrap()]);
    let docker = Dockerd::start();
    let tar = busybox_tar(tmp.path());
    let image = format!("{}/private/busybox:v1", r.addr);
    assert_eq!(
        docker
            .docker(&["import", tar.to_str().unwrap(), &image])
            .code,
        0
    );
    // The docker CLI keeps credentials in $DOCKER_CONFIG; keep them in the test's directory.
    let config = tmp.path().join("docker-config");
    let with_config = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        docker.docker(&all)
    };
    let denied = with_config(&["push", &image]);
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("no basic auth credentials"),
        "{}",
        denied.stderr
    );
    let bad = with_config(&["login", "-u", "alice", "-p", "nope", &r.addr]);
    assert_ne!(bad.code, 0);
    let login = with_config(&["login", "-u", "alice", "-p", "s3cret", &r.addr]);
    assert_eq!(login.code, 0, "{}", login.stderr);
    let push = with_config(&["push", &image]);
    assert_eq!(push.code, 0, "{}{}", push.stdout, push.stderr);
}

#[test]
fn serves_tls_with_the_given_certificate() {
    let tmp = TempDir::new();
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success());
    let r = Registry::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let out = Command::new("curl")
        .args(["-sS", "-i", "--cacert"])
        .arg(&cert)
        .arg(format!("https://{}/v2/", r.addr))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{text}"
    );
    // Plain HTTP to a TLS port gets no answer.
    let mut s = TcpStream::connect(&r.addr).unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("registry/2.0"));
}

/// OCI 1.1: a manifest with a `subject` is listed by the referrers API, filterable by
/// artifact type, and leaves it when deleted.
#[test]
fn referrers_list_manifests_by_subject() {
    let r = Registry::start(&[]);
    let image = push_image(&r, "app", "v1", b"layer");
    let empty = push_blob(&r, "app", b"{}");
    let sbom = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": image, "size": 1},
        "annotations": {"org.example": "sbom"},
    }))
    .unwrap();
    let put = r.req(
        "PUT",
        &format!("/v2/app/manifests/{}", sha256(&sbom)),
        &[("Content-Type", OCI_MANIFEST)],
        &sbom,
    );
    assert_eq!(
        (put.status, put.header("oci-subject")),
        (201, Some(image.as_str())),
        "{put:?}"
    );
    let sbom_digest = put.header("docker-content-digest").unwrap().to_string();

    let list = r.get(&format!("/v2/app/referrers/{image}"));
    assert_eq!(
        (list.status, list.header("content-type")),
        (200, Some("application/vnd.oci.image.index.v1+json"))
    );
    let index = list.json();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(index["manifests"][0]["digest"], sbom_digest.as_str());
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/spdx+json"
    );
    assert_eq!(index["manifests"][0]["size"], sbom.len());
    assert_eq!(index["manifests"][0]["annotations"]["org.example"], "sbom");
    let filtered = r.get(&format!(
        "/v2/app/referrers/{image}?artifactType=application/other"
    ));
    assert_eq!(filtered.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(filtered.json()["manifests"], serde_json::json!([]));

    assert_eq!(
        r.req(
            "DELETE",
            &format!("/v2/app/manifests/{sbom_digest}"),
            &[],
            b""
        )
        .status,
        202
    );
    assert_eq!(
        r.get(&format!("/v2/app/referrers/{image}")).json()["manifests"],
        serde_json::json!([])
    );
    assert_eq!(
        r.get("/v2/app/referrers/sha256:nope").code(),
        "DIGEST_INVALID"
    );
}
