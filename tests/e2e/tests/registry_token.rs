//! Bearer token auth against a real peer: Debian's `docker-registry` (Distribution 2.8) with
//! `auth: token`, and a token server of the test's own that checks the Basic credentials and
//! the requested scopes and issues Distribution-format JWTs (RS256, signed with `openssl` by
//! a key whose self-signed certificate is the registry's `rootcertbundle`, sent in `x5c`).
//! berth logs in, pushes and pulls; wrong passwords and anonymous pulls fail with the same
//! messages the real docker CLI and dockerd print against the same set-up; a token that
//! expires in the middle of a push or a pull is replaced and the request sent again (where
//! dockerd 20.10 fails); and failed uploads are retried after Docker's countdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_e2e::registry::{
    assert_ok, berth_with_config as berth, docker_with_config as docker, Auth, Registry, TcpServer,
};
use berth_e2e::{tempdir::TempDir, Daemon, Dockerd};

const SERVICE: &str = "test-registry";
const ISSUER: &str = "test-issuer";
/// Distribution accepts a token this long past its `exp` (its `Leeway`, for clock skew).
const REGISTRY_LEEWAY: i64 = 60;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const STD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 with `alphabet`; padded with '=' when `pad` (JWTs use the URL alphabet, unpadded).
fn base64(bytes: &[u8], alphabet: &[u8], pad: bool) -> String {
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in s.bytes().filter(|b| *b != b'=') {
        let Some(v) = STD.iter().position(|x| *x == b) else {
            return Vec::new();
        };
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// `%3A` → `:` and `+` → space, as a query string encodes them.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token issuer's RSA key and its self-signed certificate, made with `openssl`.
struct Issuer {
    key: PathBuf,
    cert: PathBuf,
    /// The certificate's DER in standard base64: the JWT header's `x5c`.
    cert_der: String,
}

impl Issuer {
    fn new(dir: &Path) -> Issuer {
        let key = dir.join("issuer.key");
        let cert = dir.join("issuer.crt");
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=berth test token issuer", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(made.success(), "openssl req failed");
        let der = Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .output()
            .expect("openssl x509");
        assert!(der.status.success());
        Issuer {
            key,
            cert,
            cert_der: base64(&der.stdout, STD, true),
        }
    }

    /// A JWT as Distribution's token auth verifies it: RS256 over "header.claims".
    fn token(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der]});
        let signed = format!(
            "{}.{}",
            base64(header.to_string().as_bytes(), URL, false),
            base64(claims.to_string().as_bytes(), URL, false)
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("openssl dgst");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(signed.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl dgst failed");
        format!("{signed}.{}", base64(&out.stdout, URL, false))
    }
}

/// One request the token server answered.
#[derive(Debug, Clone)]
struct TokenRequest {
    /// The Basic credentials' user, when the client sent some.
    user: Option<String>,
    /// Whether those credentials were right.
    authenticated: bool,
    scopes: Vec<String>,
    service: String,
    account: Option<String>,
}

struct TokenState {
    user: String,
    password: String,
    /// Seconds the registry accepts a token for (its leeway included); also `expires_in`.
    valid_for: i64,
    /// Answer anonymous requests 401 instead of a token without access.
    refuse_anonymous: bool,
    log: Vec<TokenRequest>,
}

/// The token server: `GET /token?service=…&scope=…` with optional Basic credentials. The
/// right credentials get what they ask for on any repository; anonymous clients get pull on
/// `public/*` only; wrong credentials get Docker Hub's 401.
struct TokenServer {
    addr: String,
    state: Arc<Mutex<TokenState>>,
    _server: TcpServer,
}

impl TokenServer {
    fn start(issuer: Issuer, user: &str, password: &str) -> TokenServer {
        let state = Arc::new(Mutex::new(TokenState {
            user: user.into(),
            password: password.into(),
            valid_for: 300,
            refuse_anonymous: false,
            log: Vec::new(),
        }));
        let st = state.clone();
        let server = TcpServer::start(move |conn| {
            let _ = answer_token_request(conn, &st, &issuer);
        });
        TokenServer {
            addr: server.addr.clone(),
            state,
            _server: server,
        }
    }

    fn log(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().log.clone()
    }

    fn set_valid_for(&self, secs: i64) {
        self.state.lock().unwrap().valid_for = secs;
    }
}

/// Reads one request head (GET: no body).
fn read_head(conn: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn answer_token_request(
    mut conn: TcpStream,
    state: &Mutex<TokenState>,
    issuer: &Issuer,
) -> std::io::Result<()> {
    let head = read_head(&mut conn)?;
    let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scopes = Vec::new();
    let (mut service, mut account) = (String::new(), None);
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "scope" => scopes.push(unescape(v)),
            "service" => service = unescape(v),
            "account" => account = Some(unescape(v)),
            _ => {}
        }
    }
    let basic = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        if !name.eq_ignore_ascii_case("authorization") {
            return None;
        }
        let creds = String::from_utf8(unbase64(value.trim().strip_prefix("Basic ")?)).ok()?;
        creds
            .split_once(':')
            .map(|(u, p)| (u.to_string(), p.to_string()))
    });
    let mut st = state.lock().unwrap();
    let authenticated = basic
        .as_ref()
        .is_some_and(|(u, p)| *u == st.user && *p == st.password);
    st.log.push(TokenRequest {
        user: basic.as_ref().map(|(u, _)| u.clone()),
        authenticated,
        scopes: scopes.clone(),
        service: service.clone(),
        account: account.clone(),
    });
    if basic.is_none() && st.refuse_anonymous {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        write!(
            conn,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    if basic.is_some() && !authenticated {
        let body = r#"{"details":"incorrect username or password"}"#;
        write!(
            conn,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    let mut access = Vec::new();
    for scope in &scopes {
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let granted: Vec<&str> = actions
            .split(',')
            .filter(|a| authenticated || (*a == "pull" && name.starts_with("public/")))
            .collect();
        access.push(serde_json::json!({"type": kind, "name": name, "actions": granted}));
    }
    let issued = now();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": if authenticated { st.user.clone() } else { String::new() },
        "aud": service,
        "exp": issued + st.valid_for - REGISTRY_LEEWAY,
        "nbf": issued - 1,
        "iat": issued,
        "jti": format!("token-{}", st.log.len()),
        "access": access,
    });
    let valid_for = st.valid_for;
    drop(st);
    let token = issuer.token(&claims);
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": valid_for})
        .to_string();
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    Ok(())
}

/// A TCP relay in front of the registry that holds the first request starting with a given
/// method and path for a while before passing it on: long enough for the token it carries
/// to expire on the way.
struct HoldingProxy {
    addr: String,
    hold: Arc<Mutex<Option<(String, Duration)>>>,
    held: Arc<AtomicBool>,
    /// Answer this many next requests starting with this prefix 500 themselves.
    fail: Arc<Mutex<Option<(String, u32)>>>,
    _server: TcpServer,
}

impl HoldingProxy {
    fn start(upstream: &str) -> HoldingProxy {
        let hold: Arc<Mutex<Option<(String, Duration)>>> = Arc::default();
        let held = Arc::new(AtomicBool::new(false));
        let fail: Arc<Mutex<Option<(String, u32)>>> = Arc::default();
        let (h, hd, f, up) = (
            hold.clone(),
            held.clone(),
            fail.clone(),
            upstream.to_string(),
        );
        let server = TcpServer::start(move |client| {
            let Ok(server) = TcpStream::connect(&up) else {
                return;
            };
            let (h, hd, f) = (h.clone(), hd.clone(), f.clone());
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            let mut c_fail = client.try_clone().unwrap();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    // A read that starts a request: the head comes first on its connection.
                    let wait = {
                        let mut hold = h.lock().unwrap();
                        match hold.as_ref() {
                            Some((prefix, d)) if buf[..n].starts_with(prefix.as_bytes()) => {
                                let d = *d;
                                *hold = None;
                                Some(d)
                            }
                            _ => None,
                        }
                    };
                    let failing = {
                        let mut fail = f.lock().unwrap();
                        match fail.as_mut() {
                            Some((prefix, left))
                                if *left > 0 && buf[..n].starts_with(prefix.as_bytes()) =>
                            {
                                *left -= 1;
                                true
                            }
                            _ => false,
                        }
                    };
                    if failing {
                        // The request never reaches the registry; the connection ends.
                        let body = r#"{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}"#;
                        let _ = write!(
                            c_fail,
                            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = c_fail.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if let Some(d) = wait {
                        std::thread::sleep(d);
                        hd.store(true, Ordering::SeqCst);
                    }
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            let (mut s_read, mut c_write) = (server, client);
            let _ = std::io::copy(&mut s_read, &mut c_write);
            let _ = c_write.shutdown(std::net::Shutdown::Write);
        });
        HoldingProxy {
            addr: server.addr.clone(),
            hold,
            held,
            fail,
            _server: server,
        }
    }

    /// Answers the next `times` requests whose line starts with `prefix` with a 500.
    fn fail_next(&self, prefix: &str, times: u32) {
        *self.fail.lock().unwrap() = Some((prefix.to_string(), times));
    }

    /// Holds the next request whose line starts with `prefix` ("PATCH /v2/app/") for `d`.
    fn hold_next(&self, prefix: &str, d: Duration) {
        self.held.store(false, Ordering::SeqCst);
        *self.hold.lock().unwrap() = Some((prefix.to_string(), d));
    }

    /// Whether the request set by `hold_next` came and was held.
    fn was_held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }
}

/// A token registry and its token server, for user `alice`, password `s3cret`.
struct TokenRegistry {
    tokens: TokenServer,
    registry: Registry,
    _keys: TempDir,
}

impl TokenRegistry {
    fn start() -> TokenRegistry {
        let keys = TempDir::new();
        let issuer = Issuer::new(keys.path());
        let cert = issuer.cert.clone();
        let tokens = TokenServer::start(issuer, "alice", "s3cret");
        let registry = Registry::distribution(Auth::Token {
            realm: &format!("http://{}/token", tokens.addr),
            service: SERVICE,
            issuer: ISSUER,
            cert: &cert,
        });
        TokenRegistry {
            tokens,
            registry,
            _keys: keys,
        }
    }
}

/// A token registry behind a HoldingProxy, and a daemon whose client (config dir) is
/// logged in to it through the proxy as `alice`.
fn logged_in_through_proxy() -> (TokenRegistry, HoldingProxy, Daemon, TempDir) {
    let reg = TokenRegistry::start();
    let proxy = HoldingProxy::start(&reg.registry.addr);
    let (d, cfg) = logged_in_daemon(&proxy.addr);
    (reg, proxy, d, cfg)
}

/// A daemon whose client (config dir) is logged in to `registry` as `alice`.
fn logged_in_daemon(registry: &str) -> (Daemon, TempDir) {
    let d = Daemon::start();
    let cfg = TempDir::new();
    assert_ok(
        &berth(
            &d,
            cfg.path(),
            &["login", "-u", "alice", "-p", "s3cret", registry],
        ),
        "login",
    );
    (d, cfg)
}

#[test]
fn login_push_and_pull_with_distribution_token_auth_as_docker() {
    let reg = TokenRegistry::start();
    let addr = reg.registry.addr.clone();
    let d = Daemon::start();
    let dockerd = Dockerd::start();
    let (ours, theirs) = (TempDir::new(), TempDir::new());

    // A wrong password: the token server's 401, in the same words as docker's.
    let bad = berth(
        &d,
        ours.path(),
        &["login", "-u", "alice", "-p", "nope", &addr],
    );
    let docker_bad = docker(
        &dockerd,
        theirs.path(),
        &["login", "-u", "alice", "-p", "nope", &addr],
    );
    assert_eq!(bad.code, 1, "{}{}", bad.stdout, bad.stderr);
    assert_eq!(
        (bad.code, bad.stderr.clone()),
        (docker_bad.code, docker_bad.stderr.clone())
    );
    assert!(
        bad.stderr
            .contains("unauthorized: incorrect username or password"),
        "{}",
        bad.stderr
    );
    assert!(!ours.path().join("config.json").exists());

    // The right one: a token fetched with the credentials (no scope: login only pings).
    let good = berth(
        &d,
        ours.path(),
        &["login", "-u", "alice", "-p", "s3cret", &addr],
    );
    assert_ok(&good, "login");
    assert_eq!(good.stdout, "Login Succeeded\n");
    assert_ok(
        &docker(
            &dockerd,
            theirs.path(),
            &["login", "-u", "alice", "-p", "s3cret", &addr],
        ),
        "docker login",
    );
    let login = reg.tokens.log().into_iter().rev().nth(1).unwrap();
    assert!(login.authenticated && login.scopes.is_empty(), "{login:?}");
    assert_eq!(login.service, SERVICE);

    // Push: the token asks for pull and push on the repository, with the credentials.
    let app = format!("{addr}/team/app:v1");
    d.ok(&["tag", "busybox", &app]);
    let pushed = berth(&d, ours.path(), &["push", &app]);
    assert_ok(&pushed, "push");
    assert!(
        pushed.stdout.contains("v1: digest: sha256:"),
        "{}",
        pushed.stdout
    );
    let log = reg.tokens.log();
    assert!(
        log.iter().any(|t| t.authenticated
            && t.account.as_deref() == Some("alice")
            && t.scopes == ["repository:team/app:pull,push"]),
        "{log:?}"
    );

    // Anonymous pulls: the token server hands out a token without access, the registry
    // refuses it; berth says what docker says.
    let anon = TempDir::new();
    let refused = berth(&d, anon.path(), &["pull", &app]);
    let docker_refused = docker(&dockerd, anon.path(), &["pull", &app]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert_eq!(
        (refused.code, refused.stderr.clone()),
        (docker_refused.code, docker_refused.stderr.clone())
    );
    assert!(
        refused.stderr.contains("pull access denied for"),
        "{}",
        refused.stderr
    );
    assert!(
        reg.tokens
            .log()
            .iter()
            .any(|t| t.user.is_none() && t.scopes == ["repository:team/app:pull"]),
        "the refused pull asked for a token anonymously: {:?}",
        reg.tokens.log()
    );
    // A token server that refuses anonymous clients outright: the manifest request fails.
    reg.tokens.state.lock().unwrap().refuse_anonymous = true;
    let refused = berth(&d, anon.path(), &["pull", &app]);
    let docker_refused = docker(&dockerd, anon.path(), &["pull", &app]);
    reg.tokens.state.lock().unwrap().refuse_anonymous = false;
    assert_eq!(
        (refused.code, refused.stderr.clone()),
        (docker_refused.code, docker_refused.stderr.clone())
    );
    assert_eq!(
        refused.stderr.trim(),
        format!("Error response from daemon: Head \"http://{addr}/v2/team/app/manifests/v1\": unauthorized")
    );

    // A stored password that has since changed: the request the token was for fails.
    let stale = TempDir::new();
    let auth = base64(b"alice:old-password", STD, true);
    std::fs::write(
        stale.path().join("config.json"),
        serde_json::json!({"auths": {addr.clone(): {"auth": auth}}}).to_string(),
    )
    .unwrap();
    let refused = berth(&d, stale.path(), &["pull", &app]);
    let docker_refused = docker(&dockerd, stale.path(), &["pull", &app]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert_eq!(
        (refused.code, refused.stderr.clone()),
        (docker_refused.code, docker_refused.stderr.clone())
    );

    // Logged in: berth pulls (a fresh daemon) and runs it; docker pulls berth's push too.
    let d2 = Daemon::start();
    let pulled = berth(&d2, ours.path(), &["pull", &app]);
    assert_ok(&pulled, "pull");
    assert!(
        pulled
            .stdout
            .contains(&format!("Status: Downloaded newer image for {app}")),
        "{}",
        pulled.stdout
    );
    let run = berth(
        &d2,
        ours.path(),
        &["run", "--rm", &app, "echo", "token auth"],
    );
    assert_ok(&run, "run");
    assert_eq!(run.stdout.trim(), "token auth");
    assert_ok(
        &docker(&dockerd, theirs.path(), &["pull", &app]),
        "docker pull",
    );
    assert_eq!(
        berth(
            &d2,
            ours.path(),
            &["image", "inspect", "-f", "{{.Id}}", &app]
        )
        .stdout,
        docker(
            &dockerd,
            theirs.path(),
            &["image", "inspect", "-f", "{{.Id}}", &app]
        )
        .stdout
    );

    // Pushing with the stale password: the same refusal as docker's.
    let other = format!("{addr}/team/other:v1");
    d.ok(&["tag", "busybox", &other]);
    assert_ok(&dockerd.docker(&["tag", &app, &other]), "docker tag");
    let refused = berth(&d, stale.path(), &["push", &other]);
    let docker_refused = docker(&dockerd, stale.path(), &["push", &other]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert_eq!(
        (refused.code, refused.stdout.clone(), refused.stderr.clone()),
        (
            docker_refused.code,
            docker_refused.stdout,
            docker_refused.stderr
        )
    );
    assert_eq!(
        refused.stderr.trim(),
        "unauthorized: incorrect username or password"
    );

    assert!(
        reg.tokens
            .log()
            .iter()
            .all(|t| t.service == SERVICE
                && (t.user.is_none() || t.user.as_deref() == Some("alice"))),
        "{:?}",
        reg.tokens.log()
    );
}

#[test]
fn tokens_expiring_mid_push_and_mid_pull_are_replaced() {
    // dockerd 20.10 fails both ("unauthorized: authentication required", "error pulling image
    // configuration: download failed after attempts=1: …"): it keeps a refused token until
    // its cached lifetime ends. berth drops a refused token and asks for a new one once.
    let (reg, proxy, d, cfg) = logged_in_through_proxy();
    // Tokens the registry takes for 3 s, kept a minute by the client (Docker's floor for
    // `expires_in`): the request held 5 s on its way carries a token refused on arrival.
    reg.tokens.set_valid_for(3);
    let hold = Duration::from_secs(5);

    // Push: the layer's streamed upload is the late request; the layer is sent again (from
    // what was compressed meanwhile) with a new token.
    let app = format!("{}/team/app:v1", proxy.addr);
    d.ok(&["tag", "busybox", &app]);
    proxy.hold_next("PATCH /v2/team/app/blobs/uploads/", hold);
    let before = reg.tokens.log().len();
    let pushed = berth(&d, cfg.path(), &["push", &app]);
    assert_ok(&pushed, "push with an expiring token");
    assert!(proxy.was_held(), "the upload was not held");
    assert!(
        pushed.stdout.contains("v1: digest: sha256:"),
        "{}",
        pushed.stdout
    );
    let fetched = reg.tokens.log().len() - before;
    assert!(
        fetched >= 2,
        "a new token after the refusal: {:?}",
        reg.tokens.log()
    );

    // Pull (a fresh daemon): a blob request held past its token's end is sent again.
    let (d2, cfg2) = logged_in_daemon(&proxy.addr);
    proxy.hold_next("GET /v2/team/app/blobs/", hold);
    let before = reg.tokens.log().len();
    let pulled = berth(&d2, cfg2.path(), &["pull", &app]);
    assert_ok(&pulled, "pull with an expiring token");
    assert!(proxy.was_held(), "no blob request was held");
    let fetched = reg.tokens.log().len() - before;
    assert!(
        fetched >= 2,
        "a new token after the refusal: {:?}",
        reg.tokens.log()
    );
    let run = berth(&d2, cfg2.path(), &["run", "--rm", &app, "echo", "renewed"]);
    assert_eq!(run.stdout.trim(), "renewed", "{}", run.stderr);
}

#[test]
fn failed_uploads_are_retried_after_dockers_countdown() {
    // Docker's countdown (5 s, then 10 s) with 20 ms seconds (see berth_distribution::retry).
    std::env::set_var("BERTH_REGISTRY_RETRY_SECOND_MS", "20");
    let (_reg, proxy, d, cfg) = logged_in_through_proxy();
    let app = format!("{}/team/app:v1", proxy.addr);
    d.ok(&["tag", "busybox", &app]);
    let layer = d.ok(&["image", "inspect", "-f", "{{index .RootFS.Layers 0}}", &app]);
    let id = &layer.trim()["sha256:".len()..][..12];

    // Failing every time: 5 attempts, then the registry's error. (First: once the layer is
    // in team/app, berth would mount it from there.)
    let other = format!("{}/team/other:v1", proxy.addr);
    d.ok(&["tag", "busybox", &other]);
    proxy.fail_next("POST /v2/team/other/blobs/uploads/", 100);
    let failed = berth(&d, cfg.path(), &["push", &other]);
    assert_eq!(failed.code, 1, "{}{}", failed.stdout, failed.stderr);
    assert!(
        failed.stdout.contains("Retrying in 20 seconds"),
        "{}",
        failed.stdout
    );
    assert_eq!(
        failed.stderr.trim(),
        "received unexpected HTTP status: 500 Internal Server Error"
    );
    let left = proxy.fail.lock().unwrap().as_ref().map(|(_, n)| *n);
    assert_eq!(left, Some(95), "Docker's 5 attempts");

    // Two failed starts of the layer's upload: retried after 5, then 10 seconds.
    proxy.fail_next("POST /v2/team/app/blobs/uploads/", 2);
    let pushed = berth(&d, cfg.path(), &["push", &app]);
    assert_ok(&pushed, "push");
    for line in [
        format!("{id}: Retrying in 5 seconds"),
        format!("{id}: Retrying in 1 second"),
        format!("{id}: Retrying in 10 seconds"),
        format!("{id}: Pushed"),
    ] {
        assert!(
            pushed.stdout.contains(&line),
            "no {line:?} in:\n{}",
            pushed.stdout
        );
    }
    assert!(
        !pushed.stdout.contains("Retrying in 15 seconds"),
        "{}",
        pushed.stdout
    );
}
