//! `POST /build`'s query and `X-Registry-Config` header as typed options, read as dockerd 20.10
//! reads them (`newImageBuildOptions`): every error here is a 400 sent before the stream.

use std::collections::{BTreeMap, HashMap};

use berth_api::models::ResourcesUlimits;
use berth_dockerfile::go_quote;
use berth_store::Reference;
use serde_json::Value;

use crate::engine::build_step::RunOptions;

/// One `--ulimit` as the CLI sends it (`{"Name":"nofile","Hard":2048,"Soft":1024}`): every
/// field required, which the API model's optional fields would not check.
#[derive(serde::Deserialize)]
struct Ulimit {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Hard")]
    hard: i64,
    #[serde(rename = "Soft")]
    soft: i64,
}

/// Everything a build request asks for besides the context.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `t`: the tags to apply at the end, checked (and made canonical) before the build.
    pub tags: Vec<Reference>,
    /// `dockerfile`: its path inside the context.
    pub dockerfile: String,
    /// `buildargs`: `--build-arg`s; `None` = named without a value and not set in the CLI's env.
    pub build_args: BTreeMap<String, Option<String>>,
    /// `labels`: `--label`s, added as a last `LABEL` step of the target stage.
    pub labels: BTreeMap<String, String>,
    /// `cachefrom`: images whose layers may serve as cache.
    pub cache_from: Vec<String>,
    /// `target`: the stage to stop at (empty: the last one).
    pub target: Option<String>,
    pub no_cache: bool,
    /// `pull`: always pull the FROM images.
    pub pull: bool,
    /// `q`: buffer the output; send only the image ID on success.
    pub quiet: bool,
    /// `rm`: remove intermediate containers after a successful step (default true).
    pub remove: bool,
    /// `forcerm`: also print their removal when a step fails.
    pub force_remove: bool,
    /// The resources and network of the containers RUN steps create.
    pub resources: RunOptions,
    /// `platform`: "os/arch[/variant]" every FROM must match.
    pub platform: Option<String>,
    /// `X-Registry-Config`: credentials per registry, for FROM pulls.
    pub auth_configs: HashMap<String, Value>,
    /// `context`: berth's uploaded manifest (`sha256:…`) instead of a tar body.
    pub context: Option<String>,
}

/// Query pairs in order (repeated keys kept), as `form_urlencoded` decodes them.
struct Pairs(Vec<(String, String)>);

impl Pairs {
    fn get(&self, key: &str) -> Option<&str> {
        // Go's FormValue: the first value.
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn value(&self, key: &str) -> &str {
        self.get(key).unwrap_or_default()
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// httputils.BoolValue: anything but "", "0", "no", "false", "none" is true.
    fn flag(&self, key: &str) -> bool {
        !matches!(
            self.value(key).trim().to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        )
    }

    /// httputils.Int64ValueOrZero: a bad number is 0.
    fn int_or_zero(&self, key: &str) -> i64 {
        self.value(key).parse().unwrap_or(0)
    }
}

impl BuildOptions {
    /// Reads the raw query string and the `X-Registry-Config` header. The error is the 400's
    /// message.
    pub fn parse(raw_query: &str, registry_config: Option<&str>) -> Result<BuildOptions, String> {
        let q = Pairs(
            form_urlencoded::parse(raw_query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        );
        if q.has("securityopt") {
            return Err(
                "The daemon on this platform does not support setting security options on build"
                    .into(),
            );
        }
        let shm_size = match q.value("shmsize") {
            "" => 0,
            s => s.parse::<i64>().map_err(|_| {
                format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(s))
            })?,
        };
        let isolation = q.value("isolation");
        if !isolation.is_empty() && !isolation.eq_ignore_ascii_case("default") {
            return Err(format!("Unsupported isolation: {}", go_quote(isolation)));
        }
        let ulimits = match q.value("ulimits") {
            "" => Vec::new(),
            raw => serde_json::from_str::<Option<Vec<Ulimit>>>(raw)
                .map_err(|e| format!("error reading ulimit settings: {e}"))?
                .unwrap_or_default()
                .into_iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect(),
        };
        let build_args = match q.value("buildargs") {
            "" => BTreeMap::new(),
            raw => serde_json::from_str::<Option<BTreeMap<String, Option<String>>>>(raw)
                .map_err(|e| format!("error reading build args: {e}"))?
                .unwrap_or_default(),
        };
        let labels = match q.value("labels") {
            "" => BTreeMap::new(),
            raw => serde_json::from_str::<Option<BTreeMap<String, String>>>(raw)
                .map_err(|e| format!("error reading labels: {e}"))?
                .unwrap_or_default(),
        };
        let cache_from = match q.value("cachefrom") {
            "" => Vec::new(),
            raw => serde_json::from_str::<Option<Vec<String>>>(raw)
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
        };
        match q.value("version") {
            "" | "1" => {}
            "2" => {
                return Err(
                    "BuildKit sessions are not supported by berthd: build with DOCKER_BUILDKIT=0"
                        .into(),
                )
            }
            v => return Err(format!("invalid version {}", go_quote(v))),
        }
        if q.flag("squash") {
            return Err("squash is only supported with experimental mode".into());
        }
        if !q.value("remote").is_empty() {
            return Err("remote build contexts (URL or git) are not supported by berthd: send the context as a tar".into());
        }
        let tags = tags(&q.all("t"))?;
        let platform = match q.value("platform").trim() {
            "" => None,
            p => Some(p.to_string()),
        };
        let dockerfile = match q.value("dockerfile") {
            "" => "Dockerfile".to_string(),
            d => d.to_string(),
        };
        let network_mode = match q.value("networkmode") {
            "" => "default".to_string(),
            n => n.to_string(),
        };
        Ok(BuildOptions {
            tags,
            dockerfile,
            build_args,
            labels,
            cache_from,
            target: Some(q.value("target").to_string()).filter(|t| !t.is_empty()),
            no_cache: q.flag("nocache"),
            pull: q.flag("pull"),
            quiet: q.flag("q"),
            // API ≥ 1.12: rm defaults to true, and forcerm implies it.
            remove: q.flag("forcerm") || q.value("rm").is_empty() || q.flag("rm"),
            force_remove: q.flag("forcerm"),
            resources: RunOptions {
                network_mode,
                memory: q.int_or_zero("memory"),
                memswap: q.int_or_zero("memswap"),
                cpu_shares: q.int_or_zero("cpushares"),
                cpu_period: q.int_or_zero("cpuperiod"),
                cpu_quota: q.int_or_zero("cpuquota"),
                cpuset_cpus: q.value("cpusetcpus").to_string(),
                cpuset_mems: q.value("cpusetmems").to_string(),
                shm_size,
                cgroup_parent: q.value("cgroupparent").to_string(),
                ulimits,
                extra_hosts: q.all("extrahosts"),
            },
            platform,
            auth_configs: auth_configs(registry_config),
            context: Some(q.value("context").to_string()).filter(|c| !c.is_empty()),
        })
    }

    /// The `X-Registry-Auth` value (base64url JSON of one AuthConfig) to pull `image` with,
    /// picked from the `X-Registry-Config` map by the image's registry, as dockerd does.
    pub fn pull_auth(&self, image: &Reference) -> Option<String> {
        use base64_url::encode;
        let domain = image.domain();
        let keys: Vec<String> = if domain == "docker.io" {
            vec![
                "https://index.docker.io/v1/".into(),
                "index.docker.io".into(),
                "docker.io".into(),
            ]
        } else {
            vec![
                domain.to_string(),
                format!("https://{domain}"),
                format!("http://{domain}"),
            ]
        };
        let found = keys
            .iter()
            .find_map(|k| self.auth_configs.get(k))
            .or_else(|| {
                // Keys may carry a scheme or a path: compare their host part.
                self.auth_configs
                    .iter()
                    .find(|(k, _)| registry_host(k) == domain)
                    .map(|(_, v)| v)
            })?;
        Some(encode(&serde_json::to_vec(found).ok()?))
    }
}

/// The host a credential-store key names: `https://host/v1/` → `host`.
fn registry_host(key: &str) -> &str {
    let rest = key.split_once("://").map(|(_, r)| r).unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        "docker.io"
    } else {
        host
    }
}

/// `X-Registry-Config`: base64url JSON `{registry: AuthConfig}`; bad input is ignored, as
/// dockerd does (a pull without credentials then says what is wrong).
fn auth_configs(header: Option<&str>) -> HashMap<String, Value> {
    let Some(raw) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return HashMap::new();
    };
    base64_url::decode(raw)
        .and_then(|bytes| serde_json::from_slice::<HashMap<String, Value>>(&bytes).ok())
        .unwrap_or_default()
}

/// dockerd's `sanitizeRepoAndTags`: each `t` a name with an optional tag (`latest` when none),
/// no digest, duplicates dropped.
fn tags(raw: &[String]) -> Result<Vec<Reference>, String> {
    let mut out: Vec<Reference> = Vec::new();
    for t in raw.iter().filter(|t| !t.is_empty()) {
        let r = Reference::parse(t).map_err(|e| e.to_string())?;
        if r.digest().is_some() {
            return Err("build tag cannot contain a digest".into());
        }
        if !out.iter().any(|o| o.full() == r.full()) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Base64 with the URL alphabet, padded or not (Go's `base64.URLEncoding` decoder needs the
/// padding; the docker CLI sends it).
mod base64_url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(s: &str) -> Option<Vec<u8>> {
        let value = |c: u8| -> Option<u32> {
            Some(match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' | b'+' => 62,
                b'_' | b'/' => 63,
                _ => return None,
            } as u32)
        };
        let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
        let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
        for chunk in bytes.chunks(4) {
            if chunk.len() == 1 {
                return None;
            }
            let mut n = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                n |= value(c)? << (18 - 6 * i);
            }
            out.push((n >> 16) as u8);
            if chunk.len() > 2 {
                out.push((n >> 8) as u8);
            }
            if chunk.len() > 3 {
                out.push(n as u8);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query the docker CLI 20.10 sends (build-transcripts.md).
    const CLI_QUERY: &str = "buildargs=%7B%22V%22%3A%227%22%7D&cachefrom=%5B%5D&cgroupparent=&cpuperiod=0&cpuquota=0&cpusetcpus=&cpusetmems=&cpushares=0&dockerfile=Dockerfile&labels=%7B%22lab%22%3A%221%22%7D&memory=0&memswap=0&networkmode=default&rm=1&shmsize=0&t=h6test%2Fa%3A1&t=h6test%2Fa%3A2&target=&ulimits=null&version=1";

    #[test]
    fn reads_the_cli_query() {
        let o = BuildOptions::parse(CLI_QUERY, Some("e30=")).unwrap();
        let tags: Vec<String> = o.tags.iter().map(|t| t.familiar()).collect();
        assert_eq!(tags, ["h6test/a:1", "h6test/a:2"]);
        assert_eq!(o.build_args.get("V"), Some(&Some("7".to_string())));
        assert_eq!(o.labels.get("lab").map(String::as_str), Some("1"));
        assert_eq!(o.dockerfile, "Dockerfile");
        assert_eq!(o.resources.network_mode, "default");
        assert!(o.remove && !o.force_remove && !o.quiet && !o.no_cache && !o.pull);
        assert!(o.target.is_none() && o.cache_from.is_empty() && o.resources.ulimits.is_empty());
        assert!(o.auth_configs.is_empty());
    }

    #[test]
    fn reads_the_optional_flags() {
        let q = format!(
            "{CLI_QUERY}&cachefrom=%5B%22busybox%22%5D&forcerm=1&nocache=1&pull=1&q=1&buildargs=x"
        );
        // Go's FormValue takes the first value: the CLI's cachefrom=[] and buildargs win.
        let o = BuildOptions::parse(&q, None).unwrap();
        assert!(o.cache_from.is_empty());
        assert!(o.force_remove && o.remove && o.no_cache && o.pull && o.quiet);
        let o = BuildOptions::parse(
            "cachefrom=%5B%22busybox%22%5D&rm=0&buildargs=%7B%22N%22%3Anull%7D",
            None,
        )
        .unwrap();
        assert_eq!(o.cache_from, ["busybox"]);
        assert!(!o.remove);
        assert_eq!(o.build_args.get("N"), Some(&None));
        let o = BuildOptions::parse("ulimits=%5B%7B%22Name%22%3A%22nofile%22%2C%22Hard%22%3A20%2C%22Soft%22%3A10%7D%5D&memory=x", None).unwrap();
        assert_eq!(
            o.resources.ulimits,
            [ResourcesUlimits {
                name: Some("nofile".into()),
                hard: Some(20),
                soft: Some(10)
            }]
        );
        assert_eq!(o.resources.memory, 0);
    }

    #[test]
    fn refuses_what_dockerd_refuses() {
        let err = |q: &str| BuildOptions::parse(q, None).unwrap_err();
        assert!(err("buildargs=%7B").starts_with("error reading build args: "));
        assert!(err("labels=%5B%5D").starts_with("error reading labels: "));
        assert!(err("ulimits=x").starts_with("error reading ulimit settings: "));
        assert_eq!(
            err("securityopt=seccomp%3Dunconfined"),
            "The daemon on this platform does not support setting security options on build"
        );
        assert_eq!(err("isolation=hyperv"), "Unsupported isolation: \"hyperv\"");
        assert_eq!(err("version=3"), "invalid version \"3\"");
        // Go's %q, not JSON's quoting: a control character is `\x01`, not `\u0001`.
        assert_eq!(
            err("isolation=a%01%22"),
            "Unsupported isolation: \"a\\x01\\\"\""
        );
        assert_eq!(
            err("squash=1"),
            "squash is only supported with experimental mode"
        );
        assert_eq!(
            err("shmsize=x"),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(err("t=busybox%40sha256%3Ae3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "build tag cannot contain a digest");
        assert!(!err("t=Bad%2FName").is_empty());
        assert!(!err("version=2").is_empty());
        assert!(BuildOptions::parse("isolation=default", None).is_ok());
    }

    #[test]
    fn picks_the_registry_credentials() {
        let header = base64_url::encode(br#"{"https://index.docker.io/v1/":{"username":"a"},"localhost:5000":{"username":"b"}}"#);
        let o = BuildOptions::parse("", Some(&header)).unwrap();
        let auth = |image: &str| {
            o.pull_auth(&Reference::parse(image).unwrap())
                .map(|a| String::from_utf8(base64_url::decode(&a).unwrap()).unwrap())
        };
        assert_eq!(auth("busybox").as_deref(), Some(r#"{"username":"a"}"#));
        assert_eq!(
            auth("localhost:5000/x").as_deref(),
            Some(r#"{"username":"b"}"#)
        );
        assert_eq!(auth("example.com/x"), None);
        assert_eq!(base64_url::decode("e30=").unwrap(), b"{}");
        assert_eq!(base64_url::encode(b"{}"), "e30=");
    }
}
