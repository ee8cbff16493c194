//! `berth build`: docker 20.10's classic `docker build` (flags, the context tar, the output
//! and exit codes), plus berth's fast context upload (`context_sync`) when the daemon has it.

use std::collections::BTreeMap;
use std::io::Write;

use bytes::Bytes;
use clap::Args;
use http_body_util::{channel::Channel, BodyExt};
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};

use crate::client::{self, Client, ClientError};
use crate::commands::build_context::{self, Prepared};
use crate::commands::context_sync::{self, SyncOutcome};
use crate::commands::create::{flag_error, host_env, io_reason};
use crate::commands::network_opts::validate_extra_host;
use crate::commands::run::parse_go_bool;
use crate::commands::{CmdResult, Failure};
use crate::format::ram_in_bytes;
use crate::jsonmessage::{human_size, Message};

/// `berth build`
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "list")]
    pub add_host: Vec<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "list")]
    pub build_arg: Vec<String>,
    /// Images to consider as cache sources
    #[arg(long = "cache-from", value_name = "strings", value_delimiter = ',')]
    pub cache_from: Vec<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent", value_name = "string")]
    pub cgroup_parent: Option<String>,
    /// Compress the build context using gzip
    #[arg(long = "compress")]
    pub compress: bool,
    /// Limit the CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "int")]
    pub cpu_period: Option<String>,
    /// Limit the CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "int")]
    pub cpu_quota: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Skip image verification (default true)
    #[arg(long = "disable-content-trust", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub disable_content_trust: Option<String>,
    /// Name of the Dockerfile (Default is 'PATH/Dockerfile')
    #[arg(short = 'f', long = "file", value_name = "string")]
    pub file: Option<String>,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    /// Write the image ID to the file
    #[arg(long = "iidfile", value_name = "string")]
    pub iidfile: Option<String>,
    /// Container isolation technology
    #[arg(long = "isolation", value_name = "string")]
    pub isolation: Option<String>,
    /// Set metadata for an image
    #[arg(long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory", value_name = "bytes")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long = "network", value_name = "string", default_value = "default")]
    pub network: String,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Set platform if server is multi-platform capable
    #[arg(
        long = "platform",
        value_name = "string",
        env = "DOCKER_DEFAULT_PLATFORM",
        hide_env = true
    )]
    pub platform: Option<String>,
    /// Always attempt to pull a newer version of the image
    #[arg(long = "pull")]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Remove intermediate containers after a successful build (default true)
    #[arg(long = "rm", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    pub rm: Option<String>,
    /// Security options
    #[arg(long = "security-opt", value_name = "strings", value_delimiter = ',')]
    pub security_opt: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size", value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Squash newly built layers into a single new layer
    #[arg(long = "squash", hide = true)]
    pub squash: bool,
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag", value_name = "list")]
    pub tag: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long = "target", value_name = "string")]
    pub target: Option<String>,
    /// Ulimit options
    #[arg(long = "ulimit", value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// PATH | URL | -
    #[arg(value_name = "PATH | URL | -", num_args = 0..)]
    pub context: Vec<String>,
    /// How the command was named (`build`, `image build`, `builder build`): docker's
    /// usage errors name the command as typed.
    #[arg(skip = "build")]
    pub command: &'static str,
}

/// docker's usage text for `berth <cmd>`.
fn usage(cmd: &str) -> String {
    format!("Usage:  berth {cmd} [OPTIONS] PATH | URL | -\n\nBuild an image from a Dockerfile")
}

/// The build request's query, from the flags (docker's `imageBuildOptionsToQuery`, keys
/// sorted as Go's `url.Values.Encode` sorts them).
#[derive(Debug)]
pub struct Query {
    pairs: Vec<(&'static str, String)>,
}

impl Query {
    /// `?k=v&…`, plus `extra` (berth's `context=`).
    pub fn encode(&self, extra: &[(&'static str, String)]) -> String {
        let mut all: Vec<&(&str, String)> = self.pairs.iter().chain(extra).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        let parts: Vec<String> = all
            .iter()
            .map(|(k, v)| format!("{k}={}", client::enc(v)))
            .collect();
        format!("?{}", parts.join("&"))
    }
}

fn parse_bool(cmd: &str, v: &Option<String>, default: bool, flag: &str) -> Result<bool, Failure> {
    match v {
        None => Ok(default),
        Some(s) => parse_go_bool(s).map_err(|e| flag_error(cmd, s, flag, &e)),
    }
}

fn parse_int(cmd: &str, v: &Option<String>, flag: &str) -> Result<i64, Failure> {
    match v {
        None => Ok(0),
        Some(s) => s.parse::<i64>().map_err(|_| {
            flag_error(
                cmd,
                s,
                flag,
                &format!("strconv.ParseInt: parsing \"{s}\": invalid syntax"),
            )
        }),
    }
}

fn parse_bytes(
    cmd: &str,
    v: &Option<String>,
    flag: &str,
    allow_minus_one: bool,
) -> Result<i64, Failure> {
    match v {
        None => Ok(0),
        Some(s) if allow_minus_one && s == "-1" => Ok(-1),
        Some(s) => ram_in_bytes(s).map_err(|e| flag_error(cmd, s, flag, &e)),
    }
}

/// docker's `ValidateEnv` for `--build-arg`: `K=V` as is, a bare `K` takes our value, or
/// stays valueless (null) when we have none.
pub fn build_args(
    cmd: &str,
    items: &[String],
) -> Result<BTreeMap<String, Option<String>>, Failure> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (item.as_str(), host_env(item)),
        };
        if k.is_empty() {
            return Err(flag_error(
                cmd,
                item,
                "--build-arg",
                &format!("invalid environment variable: {item}"),
            ));
        }
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// docker's `ValidateLabel`: a name is required and has no blanks; `k` alone is `k=""`.
pub fn labels(cmd: &str, items: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for item in items {
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        let key = k.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
        if key.is_empty() {
            return Err(flag_error(
                cmd,
                item,
                "--label",
                &format!("invalid label '{item}': empty name"),
            ));
        }
        if key.contains(char::is_whitespace) {
            return Err(flag_error(
                cmd,
                item,
                "--label",
                &format!("label '{key}' contains whitespaces"),
            ));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// docker's `units.ParseUlimit`: `name=soft[:hard]`.
fn ulimit(s: &str) -> Result<serde_json::Value, String> {
    const NAMES: [&str; 16] = [
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    let Some((name, limits)) = s.split_once('=') else {
        return Err(format!("invalid ulimit argument: {s}"));
    };
    if !NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let num = |x: &str| {
        x.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing \"{x}\": invalid syntax"))
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => {
            let v = num(limits)?;
            (v, v)
        }
    };
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(serde_json::json!({"Name": name, "Hard": hard, "Soft": soft}))
}

/// docker's `validateTag` (reference.ParseNormalizedNamed), with its messages.
fn check_tag(tag: &str) -> Result<(), String> {
    let invalid = || "invalid reference format".to_string();
    let (name, tag_part) = match tag.rfind(':') {
        Some(i) if !tag[i + 1..].contains('/') => (&tag[..i], Some(&tag[i + 1..])),
        _ => (tag, None),
    };
    if let Some(t) = tag_part {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return Err(invalid());
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let domain = parts.remove(0);
        if domain.is_empty()
            || !domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        {
            return Err(invalid());
        }
    }
    if name.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err(invalid());
    }
    if parts
        .iter()
        .any(|p| p.chars().any(|c| c.is_ascii_uppercase()))
    {
        return Err("invalid reference format: repository name must be lowercase".into());
    }
    for p in &parts {
        // path-component: [a-z0-9]+ (separator [a-z0-9]+)*, separators `.`, `_`, `__`, `-+`.
        let bytes = p.as_bytes();
        if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
            return Err(invalid());
        }
        let mut run = String::new();
        for c in p.chars() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                if !(run.is_empty()
                    || run == "."
                    || run == "_"
                    || run == "__"
                    || run.chars().all(|r| r == '-'))
                {
                    return Err(invalid());
                }
                run.clear();
            } else if ".-_".contains(c) {
                run.push(c);
            } else {
                return Err(invalid());
            }
        }
    }
    if name.len() > 255 {
        return Err(
            "invalid reference format: repository name must not be more than 255 characters".into(),
        );
    }
    Ok(())
}

/// The flags checked and turned into the request query, in docker's order of checks.
fn query_from_flags(a: &BuildArgs) -> Result<Query, Failure> {
    let cmd = a.command;
    for t in &a.tag {
        check_tag(t).map_err(|e| flag_error(cmd, t, "-t, --tag", &e))?;
    }
    let buildargs = build_args(cmd, &a.build_arg)?;
    let labels = labels(cmd, &a.label)?;
    for h in &a.add_host {
        validate_extra_host(h).map_err(|e| flag_error(cmd, h, "--add-host", &e))?;
    }
    let mut ulimits = Vec::new();
    for u in &a.ulimit {
        ulimits.push(ulimit(u).map_err(|e| flag_error(cmd, u, "--ulimit", &e))?);
    }
    let memory = parse_bytes(cmd, &a.memory, "-m, --memory", false)?;
    let memswap = parse_bytes(cmd, &a.memory_swap, "--memory-swap", true)?;
    let shmsize = parse_bytes(cmd, &a.shm_size, "--shm-size", false)?;
    let cpushares = parse_int(cmd, &a.cpu_shares, "-c, --cpu-shares")?;
    let cpuperiod = parse_int(cmd, &a.cpu_period, "--cpu-period")?;
    let cpuquota = parse_int(cmd, &a.cpu_quota, "--cpu-quota")?;
    let rm = parse_bool(cmd, &a.rm, true, "--rm")?;
    parse_bool(
        cmd,
        &a.disable_content_trust,
        true,
        "--disable-content-trust",
    )?;

    let json = |v: serde_json::Value| v.to_string();
    let mut pairs: Vec<(&'static str, String)> = vec![
        (
            "buildargs",
            json(serde_json::to_value(&buildargs).unwrap_or_default()),
        ),
        (
            "cachefrom",
            json(serde_json::to_value(&a.cache_from).unwrap_or_default()),
        ),
        ("cgroupparent", a.cgroup_parent.clone().unwrap_or_default()),
        ("cpuperiod", cpuperiod.to_string()),
        ("cpuquota", cpuquota.to_string()),
        ("cpusetcpus", a.cpuset_cpus.clone().unwrap_or_default()),
        ("cpusetmems", a.cpuset_mems.clone().unwrap_or_default()),
        ("cpushares", cpushares.to_string()),
        (
            "labels",
            json(serde_json::to_value(&labels).unwrap_or_default()),
        ),
        ("memory", memory.to_string()),
        ("memswap", memswap.to_string()),
        ("networkmode", a.network.clone()),
        ("rm", if rm { "1" } else { "0" }.to_string()),
        ("shmsize", shmsize.to_string()),
        ("target", a.target.clone().unwrap_or_default()),
        (
            "ulimits",
            if ulimits.is_empty() {
                "null".to_string()
            } else {
                json(serde_json::Value::Array(ulimits))
            },
        ),
        ("version", "1".to_string()),
    ];
    for t in &a.tag {
        pairs.push(("t", t.clone()));
    }
    for h in &a.add_host {
        pairs.push(("extrahosts", h.clone()));
    }
    for s in &a.security_opt {
        pairs.push(("securityopt", s.clone()));
    }
    let flags = [
        (a.quiet, "q"),
        (a.no_cache, "nocache"),
        (a.force_rm, "forcerm"),
        (a.pull, "pull"),
        (a.squash, "squash"),
    ];
    for (on, key) in flags {
        if on {
            pairs.push((key, "1".to_string()));
        }
    }
    if let Some(i) = a
        .isolation
        .as_deref()
        .filter(|i| !i.is_empty() && *i != "default")
    {
        pairs.push(("isolation", i.to_string()));
    }
    if let Some(p) = a.platform.as_deref().filter(|p| !p.is_empty()) {
        pairs.push(("platform", p.to_lowercase()));
    }
    Ok(Query { pairs })
}

/// Where build output goes: stdout, or (with `-q`) a buffer shown on stderr only on failure.
pub struct Out {
    quiet: bool,
    /// docker's progBuff: the upload line held back by `-q`.
    progress: Vec<u8>,
    /// docker's buildBuff: the daemon's output held back by `-q`.
    buf: Vec<u8>,
}

impl Out {
    pub fn new(quiet: bool) -> Out {
        Out {
            quiet,
            progress: Vec::new(),
            buf: Vec::new(),
        }
    }

    pub fn write(&mut self, data: &[u8]) {
        if self.quiet {
            self.buf.extend_from_slice(data);
        } else {
            let mut o = std::io::stdout().lock();
            let _ = o.write_all(data);
            let _ = o.flush();
        }
    }

    /// docker's last line of the upload progress (`lastProgressOutput`).
    pub fn sent(&mut self, bytes: u64) {
        let line = format!(
            "Sending build context to Docker daemon {:>8}\r\r\n",
            human_size(bytes as f64)
        );
        if self.quiet {
            self.progress.extend_from_slice(line.as_bytes());
        } else {
            self.write(line.as_bytes());
        }
    }

    /// With `-q`, what was held back goes to stderr (the build failed).
    fn flush_to_stderr(&mut self) {
        if self.quiet {
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().write_all(&self.progress);
            let _ = std::io::stderr().write_all(&self.buf);
            self.progress.clear();
            self.buf.clear();
        }
    }
}

/// `berth build`
pub async fn run(client: &Client, args: BuildArgs) -> CmdResult {
    let cmd = args.command;
    let query = query_from_flags(&args)?;
    if args.context.len() != 1 {
        return Err(Failure::new(
            1,
            format!(
                "\"berth {cmd}\" requires exactly 1 argument.\nSee 'berth {cmd} --help'.\n\n{}",
                usage(cmd)
            ),
        ));
    }
    if args.squash {
        return Err(Failure::new(
            1,
            "\"--squash\" is only supported on a Docker daemon with experimental features enabled",
        ));
    }
    if let Some(f) = &args.iidfile {
        // Avoid leaving a stale file if the build fails.
        if let Err(e) = std::fs::remove_file(f) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(Failure::new(
                    1,
                    format!("Removing image ID file: remove {f}: {}", io_reason(&e)),
                ));
            }
        }
    }
    let context = args.context[0].clone();
    let file = args.file.clone();
    let prepared =
        tokio::task::spawn_blocking(move || build_context::prepare(&context, file.as_deref()))
            .await
            .map_err(|e| Failure::new(1, e.to_string()))?
            .map_err(|m| Failure::new(1, m))?;
    let mut out = Out::new(args.quiet);
    let resp = match prepared {
        Prepared::Stdin { head, dockerfile } => {
            let q = query.encode(&[("dockerfile", dockerfile)]);
            send_stream(client, &q, head, &mut out).await
        }
        Prepared::Dir(ctx) => {
            let dockerfile = ctx.dockerfile.clone();
            let with_context =
                |id: String| query.encode(&[("context", id), ("dockerfile", dockerfile.clone())]);
            match context_sync::sync(client, ctx, &mut out).await? {
                SyncOutcome::Synced { id, context } => {
                    match post_build(client, &with_context(id), client::empty()).await {
                        // The daemon lost part of the context meanwhile (pruned): sync again, once.
                        Err(ClientError::Api { status, .. }) if status == StatusCode::CONFLICT => {
                            match context_sync::sync(client, context, &mut Out::new(true)).await? {
                                SyncOutcome::Synced { id, .. } => {
                                    post_build(client, &with_context(id), client::empty()).await
                                }
                                SyncOutcome::Unsupported(ctx) => {
                                    let q = query.encode(&[("dockerfile", dockerfile.clone())]);
                                    send_tar(client, &q, ctx, args.compress, &mut out).await
                                }
                            }
                        }
                        other => other,
                    }
                }
                SyncOutcome::Unsupported(ctx) => {
                    let q = query.encode(&[("dockerfile", dockerfile.clone())]);
                    send_tar(client, &q, ctx, args.compress, &mut out).await
                }
            }
        }
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            out.flush_to_stderr();
            return Err(e.into());
        }
    };
    show_build_stream(
        resp.into_body(),
        &mut out,
        args.quiet,
        args.iidfile.as_deref(),
    )
    .await
}

/// `POST /build` with the context as `body`; a non-2xx answer is `ClientError::Api`.
async fn post_build(
    client: &Client,
    query: &str,
    body: client::Body,
) -> Result<Response<Incoming>, ClientError> {
    client
        .send_with_headers(
            Method::POST,
            &format!("/build{query}"),
            body,
            &build_headers(),
        )
        .await
}

/// The headers the docker CLI sends with a build.
fn build_headers() -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/x-tar".to_string()),
        ("X-Registry-Config", registry_config()),
    ]
}

/// `X-Registry-Config`: base64url JSON of the credentials kept for Docker Hub (`e30=` = `{}`).
fn registry_config() -> String {
    use base64::Engine;
    let key = "https://index.docker.io/v1/";
    let ac = crate::credentials::ConfigFile::load()
        .and_then(|cf| cf.get(key))
        .ok()
        .and_then(|ac| serde_json::to_value(&ac).ok())
        .filter(|v| {
            v.get("username")
                .and_then(|u| u.as_str())
                .is_some_and(|u| !u.is_empty())
        });
    let json = match ac {
        Some(v) => serde_json::json!({ key: v }).to_string(),
        None => "{}".to_string(),
    };
    base64::engine::general_purpose::URL_SAFE.encode(json)
}

/// A request body written on a blocking thread (the context walk and file reads block),
/// sent on in 256 KiB chunks; counts the bytes and, when asked, shows the upload progress.
pub struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    sent: u64,
    show_progress: bool,
    last_shown: std::time::Instant,
}

impl Write for BodyWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buf));
        self.sent += chunk.len() as u64;
        self.tx.blocking_send(chunk).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the daemon closed the connection",
            )
        })?;
        if self.show_progress && self.last_shown.elapsed().as_millis() >= 100 {
            self.last_shown = std::time::Instant::now();
            print!(
                "Sending build context to Docker daemon {:>8}\r",
                human_size(self.sent as f64)
            );
            let _ = std::io::stdout().flush();
        }
        Ok(())
    }
}

/// Sends `request` with the body `produce` writes on a blocking thread. Returns the response,
/// the bytes written and `produce`'s error (a body cut short by it ends the request too).
pub async fn send_produced<R>(
    show_progress: bool,
    produce: impl FnOnce(&mut BodyWriter) -> std::io::Result<()> + Send + 'static,
    request: impl FnOnce(client::Body) -> R,
) -> (R::Output, u64, Option<std::io::Error>)
where
    R: std::future::Future,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let (mut body_tx, body) = Channel::<Bytes, std::io::Error>::new(4);
    let producer = tokio::task::spawn_blocking(move || {
        let mut w = BodyWriter {
            tx,
            buf: Vec::new(),
            sent: 0,
            show_progress,
            last_shown: std::time::Instant::now(),
        };
        let res = produce(&mut w).and_then(|_| w.flush());
        (w.sent, res.err())
    });
    let forward = async move {
        while let Some(chunk) = rx.recv().await {
            if body_tx.send_data(chunk).await.is_err() {
                break;
            }
        }
    };
    let (resp, _) = tokio::join!(request(body.boxed()), forward);
    let (sent, err) = producer
        .await
        .unwrap_or_else(|e| (0, Some(std::io::Error::other(e.to_string()))));
    (resp, sent, err)
}

/// docker shows the upload's progress while it lasts on a terminal only.
fn show_progress(out: &Out) -> bool {
    !out.quiet && crate::term::is_tty(1)
}

/// The classic upload: the context as docker's tar (gzip with `--compress`).
async fn send_tar(
    client: &Client,
    query: &str,
    ctx: build_context::DirContext,
    compress: bool,
    out: &mut Out,
) -> Result<Response<Incoming>, ClientError> {
    let produce = move |w: &mut BodyWriter| {
        if compress {
            let gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
            build_context::write_tar(gz, &ctx)?.finish()?;
        } else {
            build_context::write_tar(w, &ctx)?;
        }
        Ok(())
    };
    let (resp, sent, err) = send_produced(show_progress(out), produce, |body| {
        post_build(client, query, body)
    })
    .await;
    out.sent(sent);
    match (resp, err) {
        (Ok(r), _) => Ok(r),
        // The context could not be read: that is the error to show.
        (Err(_), Some(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(ClientError::Io(e.to_string()))
        }
        (Err(e), _) => Err(e),
    }
}

/// Context `-`: stdin's tar passed on as it is (the daemon sniffs compression).
async fn send_stream(
    client: &Client,
    query: &str,
    head: Vec<u8>,
    out: &mut Out,
) -> Result<Response<Incoming>, ClientError> {
    let produce = move |w: &mut BodyWriter| {
        w.write_all(&head)?;
        std::io::copy(&mut std::io::stdin().lock(), w)?;
        Ok(())
    };
    let (resp, sent, _) = send_produced(show_progress(out), produce, |body| {
        post_build(client, query, body)
    })
    .await;
    out.sent(sent);
    resp
}

/// Shows the daemon's JSON stream as the docker CLI does: `stream` text raw, pull progress
/// without bars off a terminal, `aux.ID` kept for `--iidfile`, an `errorDetail` ends the build
/// with its code (1 when it has none).
async fn show_build_stream(
    mut body: Incoming,
    out: &mut Out,
    quiet: bool,
    iidfile: Option<&str>,
) -> CmdResult {
    let tty = !quiet && crate::term::is_tty(1);
    let width = crate::term::size(1).map(|(_, c)| c as usize).unwrap_or(200);
    let mut image_id = String::new();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = client::next_chunk(&mut body).await;
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                out.flush_to_stderr();
                return Err(e.into());
            }
        };
        let done = chunk.is_none();
        if let Some(c) = chunk {
            buf.extend_from_slice(&c);
        }
        let mut start = 0;
        // Messages are separated by newlines (JSON escapes the ones inside strings).
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = buf[start..start + pos].to_vec();
            start += pos + 1;
            let text = String::from_utf8_lossy(&line);
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let m: Message = match serde_json::from_str(text) {
                Ok(m) => m,
                Err(e) => {
                    out.flush_to_stderr();
                    return Err(Failure::new(1, e.to_string()));
                }
            };
            if let Some(aux) = &m.aux {
                match aux.get("ID").and_then(|v| v.as_str()) {
                    Some(id) => image_id = id.to_string(),
                    None => eprint!("Failed to parse aux message: {aux}"),
                }
                continue;
            }
            if let Some(e) = &m.error_detail {
                out.flush_to_stderr();
                let code = if e.code == 0 { 1 } else { e.code as i32 };
                return Err(Failure::new(code, e.message.clone()));
            }
            if !m.error.is_empty() {
                out.flush_to_stderr();
                return Err(Failure::new(1, m.error.clone()));
            }
            out.write(render(&m, tty, width).as_bytes());
        }
        buf.drain(..start);
        if done {
            break;
        }
    }
    if quiet {
        // With -q the daemon sends only the image ID line: that is the output.
        image_id = String::from_utf8_lossy(&out.buf).into_owned();
        print!("{image_id}");
        let _ = std::io::stdout().flush();
    }
    if let Some(f) = iidfile {
        if image_id.is_empty() {
            return Err(Failure::new(
                1,
                format!("Server did not provide an image ID. Cannot write {f}"),
            ));
        }
        std::fs::write(f, &image_id)
            .map_err(|e| Failure::new(1, format!("open {f}: {}", io_reason(&e))))?;
    }
    Ok(0)
}

/// One message as docker's `JSONMessage.Display` shows it.
fn render(m: &Message, tty: bool, width: usize) -> String {
    let progress = m
        .progress
        .as_ref()
        .map(|p| p.render(width))
        .unwrap_or_default();
    let mut s = String::new();
    let mut endl = "";
    if tty && m.stream.is_empty() && m.progress.is_some() {
        s.push_str("\x1b[2K\r");
        endl = "\r";
    } else if !progress.is_empty() {
        return s;
    }
    if !m.id.is_empty() {
        s.push_str(&format!("{}: ", m.id));
    }
    if !m.from.is_empty() {
        s.push_str(&format!("(from {}) ", m.from));
    }
    if tty && m.progress.is_some() {
        s.push_str(&format!("{} {progress}{endl}", m.status));
    } else if !m.progress_message.is_empty() {
        s.push_str(&format!("{} {}{endl}", m.status, m.progress_message));
    } else if !m.stream.is_empty() {
        s.push_str(&format!("{}{endl}", m.stream));
    } else {
        s.push_str(&format!("{}{endl}\n", m.status));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        b: BuildArgs,
    }

    fn parse(args: &[&str]) -> BuildArgs {
        P::try_parse_from(std::iter::once("build").chain(args.iter().copied()))
            .unwrap()
            .b
    }

    #[test]
    fn query_matches_the_docker_cli() {
        // build-transcripts.md: `-t h6test/a:1 -t h6test/a:2 --build-arg V=7 --label lab=1`.
        let a = parse(&[
            "-t",
            "h6test/a:1",
            "-t",
            "h6test/a:2",
            "--build-arg",
            "V=7",
            "--label",
            "lab=1",
            ".",
        ]);
        let q = query_from_flags(&a)
            .unwrap()
            .encode(&[("dockerfile", "Dockerfile".into())]);
        assert_eq!(q, "?buildargs=%7B%22V%22%3A%227%22%7D&cachefrom=%5B%5D&cgroupparent=&cpuperiod=0&cpuquota=0&cpusetcpus=&cpusetmems=&cpushares=0&dockerfile=Dockerfile&labels=%7B%22lab%22%3A%221%22%7D&memory=0&memswap=0&networkmode=default&rm=1&shmsize=0&t=h6test%2Fa%3A1&t=h6test%2Fa%3A2&target=&ulimits=null&version=1");
        let a = parse(&[
            "-q",
            "--no-cache",
            "--pull",
            "--network",
            "host",
            "--cache-from",
            "busybox",
            "--force-rm",
            ".",
        ]);
        let q = query_from_flags(&a).unwrap().encode(&[]);
        for part in [
            "cachefrom=%5B%22busybox%22%5D",
            "forcerm=1",
            "networkmode=host",
            "nocache=1",
            "pull=1",
            "q=1",
        ] {
            assert!(q.contains(part), "{part} in {q}");
        }
    }

    #[test]
    fn flag_errors_are_dockers() {
        let msg = |args: &[&str]| query_from_flags(&parse(args)).unwrap_err().message;
        // pflag booleans never take the next word as their value.
        let a = parse(&["--rm", "--disable-content-trust", "."]);
        assert_eq!(
            (a.rm.as_deref(), a.context.as_slice()),
            (Some("true"), &[".".to_string()][..])
        );
        assert!(query_from_flags(&parse(&["--rm=false", "."]))
            .unwrap()
            .pairs
            .contains(&("rm", "0".into())));
        assert_eq!(
            msg(&["--build-arg", "=x", "."]),
            "invalid argument \"=x\" for \"--build-arg\" flag: invalid environment variable: =x\nSee 'berth build --help'."
        );
        assert!(msg(&["--label", "=x", "."]).contains("invalid label '=x': empty name"));
        assert!(msg(&["-t", "BAD:x", "."])
            .contains("invalid reference format: repository name must be lowercase"));
        assert!(msg(&["-t", "a:b:c", "."])
            .contains("\"a:b:c\" for \"-t, --tag\" flag: invalid reference format\n"));
        assert!(msg(&["-m", "1x", "."]).contains("for \"-m, --memory\" flag: invalid size: '1x'"));
        assert!(msg(&["--ulimit", "nofile", "."]).contains("invalid ulimit argument: nofile"));
        assert!(msg(&["-c", "x", "."]).contains("strconv.ParseInt: parsing \"x\": invalid syntax"));
        assert!(msg(&["--add-host", "bad", "."]).contains("bad format for add-host: \"bad\""));
        for ok in [
            "busybox",
            "h6test/a:1",
            "localhost:5000/x/y:tag",
            "a__b",
            "a-----b:v1.0",
        ] {
            assert!(check_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["a:", "-a", "a..b", "a/", ":t", "a@b"] {
            assert!(check_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn build_args_and_labels() {
        std::env::set_var("H2_TEST_BUILD_ARG", "from-env");
        let m = build_args(
            "build",
            &[
                "A=1".into(),
                "H2_TEST_BUILD_ARG".into(),
                "H2_UNSET_XYZ".into(),
            ],
        )
        .unwrap();
        assert_eq!(m["A"].as_deref(), Some("1"));
        assert_eq!(m["H2_TEST_BUILD_ARG"].as_deref(), Some("from-env"));
        assert_eq!(m["H2_UNSET_XYZ"], None);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"A":"1","H2_TEST_BUILD_ARG":"from-env","H2_UNSET_XYZ":null}"#
        );
        assert_eq!(labels("build", &["foo".into()]).unwrap()["foo"], "");
    }

    #[test]
    fn renders_like_docker() {
        let m = |j: &str| serde_json::from_str::<Message>(j).unwrap();
        assert_eq!(
            render(&m(r#"{"stream":"Step 1/2 : FROM x"}"#), false, 80),
            "Step 1/2 : FROM x"
        );
        assert_eq!(
            render(&m(r#"{"status":"Pulling fs layer","id":"abc"}"#), false, 80),
            "abc: Pulling fs layer\n"
        );
        assert_eq!(
            render(
                &m(
                    r#"{"status":"Downloading","id":"abc","progressDetail":{"current":1,"total":9}}"#
                ),
                false,
                80
            ),
            ""
        );
    }
}
