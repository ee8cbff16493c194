//! Registry credentials as the docker CLI keeps them: `config.json` in `$DOCKER_CONFIG` (else
//! `~/.docker`), with `auths` holding base64 "user:password" pairs, or credential helpers
//! (`credsStore` for every registry, `credHelpers` per registry) that keep the secrets in
//! `docker-credential-<name>` programs. The file is written byte for byte as docker 20.10
//! writes it (Go's field order, tab indentation, unknown keys dropped), so both CLIs can share
//! one file.
//!
//! The small API other commands use:
//! - [`registry_auth`]: the `X-Registry-Auth` header value for pulling or pushing an image;
//! - [`ConfigFile::load`], [`ConfigFile::get`], [`ConfigFile::store`], [`ConfigFile::erase`]:
//!   what `login` and `logout` do.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Docker Hub's auth server, the key its credentials are stored under.
pub const DEFAULT_SERVER: &str = "https://index.docker.io/v1/";

/// What a credential helper answers when it has nothing for a server.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// A helper keeps an identity token under this user name.
const TOKEN_USERNAME: &str = "<token>";

/// Docker's `AuthConfig`, in its JSON field order (config.json and X-Registry-Auth alike).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub serveraddress: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identitytoken: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub registrytoken: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach a debug print.
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .finish_non_exhaustive()
    }
}

/// docker 20.10's `ConfigFile`, field for field in its order; keys it does not know are
/// dropped on save, as docker drops them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FileFormat {
    #[serde(default)]
    auths: BTreeMap<String, AuthConfig>,
    #[serde(
        rename = "HttpHeaders",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    http_headers: BTreeMap<String, String>,
    #[serde(rename = "psFormat", default, skip_serializing_if = "String::is_empty")]
    ps_format: String,
    #[serde(
        rename = "imagesFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    images_format: String,
    #[serde(
        rename = "networksFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    networks_format: String,
    #[serde(
        rename = "pluginsFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    plugins_format: String,
    #[serde(
        rename = "volumesFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    volumes_format: String,
    #[serde(
        rename = "statsFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    stats_format: String,
    #[serde(
        rename = "detachKeys",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    detach_keys: String,
    #[serde(
        rename = "credsStore",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    creds_store: String,
    #[serde(
        rename = "credHelpers",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    cred_helpers: BTreeMap<String, String>,
    #[serde(
        rename = "serviceInspectFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    service_inspect_format: String,
    #[serde(
        rename = "servicesFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    services_format: String,
    #[serde(
        rename = "tasksFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    tasks_format: String,
    #[serde(
        rename = "secretFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    secret_format: String,
    #[serde(
        rename = "configFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    config_format: String,
    #[serde(
        rename = "nodesFormat",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    nodes_format: String,
    #[serde(
        rename = "pruneFilters",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    prune_filters: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proxies: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    experimental: String,
    #[serde(
        rename = "stackOrchestrator",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    stack_orchestrator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kubernetes: Option<serde_json::Value>,
    #[serde(
        rename = "currentContext",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    current_context: String,
    #[serde(
        rename = "cliPluginsExtraDirs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    cli_plugins_extra_dirs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plugins: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aliases: Option<serde_json::Value>,
}

/// The docker CLI's config file, loaded: credentials decoded (`username`, `password` and
/// `serveraddress` filled in, `auth` cleared), as docker holds it in memory.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    file: FileFormat,
}

/// The docker CLI's config directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".docker"),
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// "user:password" from config.json's `auth`.
fn decode_auth(auth: &str) -> Result<(String, String), String> {
    let bytes = b64()
        .decode(auth)
        .map_err(|e| format!("illegal base64 data: {e}"))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match text.split_once(':') {
        Some((u, p)) => Ok((u.to_string(), p.trim_matches('\0').to_string())),
        None => Err("Invalid auth configuration file".to_string()),
    }
}

/// The host part of a server address, as docker's `ConvertToHostname`: scheme and path removed.
pub fn convert_to_hostname(server: &str) -> String {
    let s = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"))
        .unwrap_or(server);
    s.split('/').next().unwrap_or(s).to_string()
}

impl ConfigFile {
    /// Loads `config.json` from [`config_dir`]; a missing file is an empty config.
    pub fn load() -> Result<ConfigFile, String> {
        ConfigFile::load_from(&config_dir())
    }

    /// Loads `config.json` from `dir`.
    pub fn load_from(dir: &Path) -> Result<ConfigFile, String> {
        let path = dir.join("config.json");
        let mut file: FileFormat = match std::fs::read(&path) {
            Ok(data) if data.iter().all(u8::is_ascii_whitespace) => FileFormat::default(),
            Ok(data) => serde_json::from_slice(&data)
                .map_err(|e| format!("loading config file: {}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileFormat::default(),
            Err(e) => return Err(format!("loading config file: {}: {e}", path.display())),
        };
        for (addr, ac) in file.auths.iter_mut() {
            if !ac.auth.is_empty() {
                let (u, p) = decode_auth(&ac.auth)?;
                ac.username = u;
                ac.password = p;
            }
            ac.auth.clear();
            ac.serveraddress = addr.clone();
        }
        Ok(ConfigFile { path, file })
    }

    /// Where the file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper for `server`, if any (`credHelpers` first, then `credsStore`).
    fn helper_for(&self, server: &str) -> Option<String> {
        if !server.is_empty() {
            if let Some(h) = self.file.cred_helpers.get(server) {
                return Some(h.clone());
            }
        }
        Some(self.file.creds_store.clone()).filter(|s| !s.is_empty())
    }

    /// Whether credentials for `server` would go into the file itself (no helper).
    pub fn stores_in_file(&self, server: &str) -> bool {
        self.helper_for(server).is_none()
    }

    /// The credentials kept for `server` (empty when there are none).
    pub fn get(&self, server: &str) -> Result<AuthConfig, String> {
        let from_file = self.file_get(server);
        let Some(helper) = self.helper_for(server) else {
            return Ok(from_file);
        };
        let mut ac = from_file;
        match helper_call(&helper, "get", server.as_bytes())? {
            None => {}
            Some(out) => {
                #[derive(Deserialize)]
                struct Creds {
                    #[serde(rename = "Username", default)]
                    username: String,
                    #[serde(rename = "Secret", default)]
                    secret: String,
                }
                let c: Creds = serde_json::from_slice(&out).map_err(|e| {
                    format!(
                        "error getting credentials - err: {e}, out: `{}`",
                        String::from_utf8_lossy(&out).trim()
                    )
                })?;
                if c.username == TOKEN_USERNAME {
                    ac.identitytoken = c.secret;
                } else {
                    ac.username = c.username;
                    ac.password = c.secret;
                }
                ac.serveraddress = server.to_string();
            }
        }
        Ok(ac)
    }

    /// The file's own entry for `server`, or one saved under a URL of the same host.
    fn file_get(&self, server: &str) -> AuthConfig {
        if let Some(ac) = self.file.auths.get(server) {
            return ac.clone();
        }
        self.file
            .auths
            .iter()
            .find(|(k, _)| convert_to_hostname(k) == server)
            .map(|(_, ac)| ac.clone())
            .unwrap_or_default()
    }

    /// Keeps `ac` for `ac.serveraddress`: in its credential helper (the file then keeps an
    /// empty entry, as docker's native store does), else in the file.
    pub fn store(&mut self, mut ac: AuthConfig) -> Result<(), String> {
        let server = ac.serveraddress.clone();
        if let Some(helper) = self.helper_for(&server) {
            let (user, secret) = if ac.identitytoken.is_empty() {
                (ac.username.clone(), ac.password.clone())
            } else {
                (TOKEN_USERNAME.to_string(), ac.identitytoken.clone())
            };
            // Go's json.Encoder: compact, then a newline.
            #[derive(Serialize)]
            struct Creds<'a> {
                #[serde(rename = "ServerURL")]
                server_url: &'a str,
                #[serde(rename = "Username")]
                username: &'a str,
                #[serde(rename = "Secret")]
                secret: &'a str,
            }
            let creds = Creds {
                server_url: &server,
                username: &user,
                secret: &secret,
            };
            let mut input = go_escape(serde_json::to_vec(&creds).map_err(|e| e.to_string())?);
            input.push(b'\n');
            helper_call(&helper, "store", &input)?;
            ac.username.clear();
            ac.password.clear();
            ac.identitytoken.clear();
            ac.registrytoken.clear();
        }
        self.file.auths.insert(server, ac);
        self.save()
    }

    /// Forgets the credentials for `server` (in the file and in its helper).
    pub fn erase(&mut self, server: &str) -> Result<(), String> {
        self.file.auths.remove(server);
        self.save()?;
        if let Some(helper) = self.helper_for(server) {
            helper_call(&helper, "erase", server.as_bytes())?;
        }
        Ok(())
    }

    /// The file's bytes as docker writes them.
    fn render(&self) -> Result<Vec<u8>, String> {
        let mut out = FileFormat {
            auths: BTreeMap::new(),
            ..clone_format(&self.file)?
        };
        for (k, ac) in &self.file.auths {
            let mut copy = ac.clone();
            copy.auth = if ac.username.is_empty() && ac.password.is_empty() {
                String::new()
            } else {
                b64().encode(format!("{}:{}", ac.username, ac.password))
            };
            copy.username.clear();
            copy.password.clear();
            copy.serveraddress.clear();
            out.auths.insert(k.clone(), copy);
        }
        out.http_headers
            .retain(|k, _| !k.eq_ignore_ascii_case("User-Agent"));
        Ok(go_json_indent(&out))
    }

    /// Writes the file atomically (temp file, rename), mode 0600 in a 0700 directory.
    pub fn save(&self) -> Result<(), String> {
        let data = self.render()?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| e.to_string())?;
        let tmp = dir.join(format!("config.json{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            // Keep the mode and owner of the file being replaced, as docker does.
            if let Ok(meta) = std::fs::metadata(&self.path) {
                use std::os::unix::fs::MetadataExt;
                let _ = std::fs::set_permissions(&tmp, meta.permissions());
                let _ = std::os::unix::fs::chown(&tmp, Some(meta.uid()), Some(meta.gid()));
            }
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            e.to_string()
        })
    }
}

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

fn clone_format(f: &FileFormat) -> Result<FileFormat, String> {
    serde_json::to_value(f)
        .and_then(serde_json::from_value)
        .map_err(|e| e.to_string())
}

/// `json.MarshalIndent(v, "", "\t")`: tab indentation, and `<`, `>`, `&` escaped as Go does.
fn go_json_indent<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    // Plain data: serializing cannot fail.
    let _ = v.serialize(&mut ser);
    go_escape(out)
}

/// Go's encoder escapes HTML characters; outside strings JSON never holds them.
fn go_escape(json: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    for b in json {
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            _ => out.push(b),
        }
    }
    out
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin. `Ok(None)` is the
/// helper's "not found"; other failures carry docker's wording.
fn helper_call(helper: &str, action: &str, input: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let program = format!("docker-credential-{helper}");
    let verb = match action {
        "store" => "storing",
        "erase" => "erasing",
        _ => "getting",
    };
    let child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Err(format!(
                "error {verb} credentials - err: exec: \"{program}\": {}, out: ``",
                if e.kind() == std::io::ErrorKind::NotFound {
                    "executable file not found in $PATH".to_string()
                } else {
                    e.to_string()
                }
            ))
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        return Ok(Some(out.stdout));
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if text == NOT_FOUND {
        return Ok(None);
    }
    let status = match out.status.code() {
        Some(c) => format!("exit status {c}"),
        None => "signal: killed".to_string(),
    };
    Err(format!(
        "error {verb} credentials - err: {status}, out: `{text}`"
    ))
}

/// The registry domain of an image name, as docker's reference parser splits it: the first
/// component when it has a `.` or `:`, is `localhost` or has an uppercase letter, else Docker Hub.
pub fn registry_domain(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            if first == "index.docker.io" {
                "docker.io".to_string()
            } else {
                first.to_string()
            }
        }
        _ => "docker.io".to_string(),
    }
}

/// The key credentials for `domain` are kept under: Docker Hub's is its auth server URL.
pub fn server_key(domain: &str) -> String {
    if domain == "docker.io" {
        DEFAULT_SERVER.to_string()
    } else {
        domain.to_string()
    }
}

/// base64url of the compact JSON of `ac`: the `X-Registry-Auth` header.
pub fn encode_header(ac: &AuthConfig) -> String {
    let json = serde_json::to_vec(ac).unwrap_or_else(|_| b"{}".to_vec());
    base64::engine::general_purpose::URL_SAFE.encode(go_escape(json))
}

/// The `X-Registry-Auth` value for pulling or pushing `image`, from config.json and its
/// credential helpers as docker sends it (`e30=`, "{}", when nothing is kept). A broken helper
/// or file means anonymous, as a pull of a public image must still work.
pub fn registry_auth(image: &str) -> String {
    let key = server_key(&registry_domain(image));
    let ac = ConfigFile::load()
        .and_then(|cf| cf.get(&key))
        .unwrap_or_default();
    encode_header(&ac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("berth-creds-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_the_file_as_docker_does() {
        let dir = temp_dir("write");
        std::fs::write(
            dir.join("config.json"),
            r#"{"psFormat":"x","unknown":1,"credHelpers":{"a":"b"}}"#,
        )
        .unwrap();
        let mut cf = ConfigFile::load_from(&dir).unwrap();
        cf.store(AuthConfig {
            username: "user".into(),
            password: "pass".into(),
            serveraddress: "127.0.0.1:5055".into(),
            ..Default::default()
        })
        .unwrap();
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        assert_eq!(
            text,
            "{\n\t\"auths\": {\n\t\t\"127.0.0.1:5055\": {\n\t\t\t\"auth\": \"dXNlcjpwYXNz\"\n\t\t}\n\t},\n\t\"psFormat\": \"x\",\n\t\"credHelpers\": {\n\t\t\"a\": \"b\"\n\t}\n}"
        );
        let cf = ConfigFile::load_from(&dir).unwrap();
        let ac = cf.get("127.0.0.1:5055").unwrap();
        assert_eq!(
            (ac.username.as_str(), ac.password.as_str()),
            ("user", "pass")
        );
        assert_eq!(ac.serveraddress, "127.0.0.1:5055");
        // Old files keyed by URL are found by host.
        std::fs::write(
            dir.join("config.json"),
            r#"{"auths":{"https://r.example:5000/v2/":{"auth":"YTpi"}}}"#,
        )
        .unwrap();
        let ac = ConfigFile::load_from(&dir)
            .unwrap()
            .get("r.example:5000")
            .unwrap();
        assert_eq!(ac.username, "a");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn header_is_base64url_json() {
        assert_eq!(encode_header(&AuthConfig::default()), "e30=");
        let ac = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            serveraddress: "h".into(),
            ..Default::default()
        };
        let json = base64::engine::general_purpose::URL_SAFE
            .decode(encode_header(&ac))
            .unwrap();
        assert_eq!(
            json,
            br#"{"username":"u","password":"p","serveraddress":"h"}"#
        );
    }

    #[test]
    fn domains_follow_dockers_reference_rules() {
        assert_eq!(registry_domain("busybox"), "docker.io");
        assert_eq!(registry_domain("library/busybox:1"), "docker.io");
        assert_eq!(registry_domain("127.0.0.1:5000/x"), "127.0.0.1:5000");
        assert_eq!(registry_domain("localhost/x"), "localhost");
        assert_eq!(registry_domain("ghcr.io/a/b"), "ghcr.io");
        assert_eq!(server_key("docker.io"), DEFAULT_SERVER);
        assert_eq!(
            convert_to_hostname("https://r.example:5000/v2/"),
            "r.example:5000"
        );
    }
}
