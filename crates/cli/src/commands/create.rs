//! `berth create`: the container flags shared with `run`, turning them into a
//! `ContainerCreateBody`, and creating (pulling the image first when it is missing).

use std::collections::HashMap;

use berth_api::models::{
    ContainerCreateBody, ContainerCreateResponse, CreateImageInfo, HostConfig, HostConfigLogConfig,
};
use clap::Args;
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::{CmdResult, Failure};
use crate::format;

/// The flags `run` and `create` share, spelled as docker spells them.
#[derive(Debug, Clone, Args)]
pub struct ContainerOpts {
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Assign a name to the container
    #[arg(long = "name", value_name = "string")]
    pub name: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "string")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user", value_name = "string")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long = "entrypoint", value_name = "string")]
    pub entrypoint: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory", value_name = "bytes")]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long = "cpus", value_name = "decimal")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares", value_name = "int")]
    pub cpu_shares: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent", value_name = "string")]
    pub cgroup_parent: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Ulimit options (default [])
    #[arg(long = "ulimit", value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long = "hostname", value_name = "string")]
    pub hostname: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach", value_name = "list")]
    pub attach: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount", value_name = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs", value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Give extended privileges to this container
    #[arg(long = "privileged")]
    pub privileged: bool,
    /// Automatically remove the container when it exits
    #[arg(long = "rm")]
    pub rm: bool,
    /// Logging driver for the container
    #[arg(long = "log-driver", value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt", value_name = "list")]
    pub log_opt: Vec<String>,
    /// Print usage
    #[arg(long = "help", action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// The image to run
    pub image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub lifecycle: crate::commands::lifecycle_opts::LifecycleOpts,
    #[command(flatten)]
    pub net: crate::commands::network_opts::NetworkOpts,
    #[command(flatten)]
    pub namespaces: crate::commands::namespace_opts::NamespaceOpts,
    #[command(flatten)]
    pub security: crate::commands::security_opts::SecurityOpts,
}

/// `berth create`
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
}

/// A flag error as docker words it: `invalid argument "x" for "-m, --memory" flag: …`,
/// exit 125 with the usage hint of `cmd`.
pub fn flag_error(cmd: &str, value: &str, flag: &str, why: &str) -> Failure {
    Failure::new(
        125,
        format!(
            "invalid argument \"{value}\" for \"{flag}\" flag: {why}\nSee 'berth {cmd} --help'."
        ),
    )
}

/// Docker's env-file format: one `NAME=value` per line, `#` comments and blank lines
/// skipped, a bare `NAME` taking the value from our environment (dropped when unset).
pub fn parse_env_file(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (line, None),
        };
        if name.is_empty() {
            return Err(format!("invalid environment variable: {line}"));
        }
        if name.contains(char::is_whitespace) {
            return Err(format!("variable '{name}' contains whitespaces"));
        }
        match value {
            Some(v) => out.push(format!("{name}={v}")),
            None => {
                if let Some(v) = lookup(name) {
                    out.push(format!("{name}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// `-e NAME=value` as given; `-e NAME` takes our value, dropped when we have none.
pub fn env_flag(e: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if e.contains('=') {
        Some(e.to_string())
    } else {
        lookup(e).map(|v| format!("{e}={v}"))
    }
}

pub fn host_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl ContainerOpts {
    /// The create body for these flags; `detach` decides which streams are attached.
    pub fn body(&self, cmd: &str, detach: bool) -> Result<ContainerCreateBody, Failure> {
        let mut env = Vec::new();
        for file in &self.env_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure::new(125, format!("open {file}: {}", io_reason(&e))))?;
            let vars = parse_env_file(&text, &host_env).map_err(|e| Failure::new(125, e))?;
            env.extend(vars);
        }
        env.extend(self.env.iter().filter_map(|e| env_flag(e, &host_env)));

        let memory = match &self.memory {
            Some(m) => {
                Some(format::ram_in_bytes(m).map_err(|e| flag_error(cmd, m, "-m, --memory", &e))?)
            }
            None => None,
        };
        let nano_cpus = match &self.cpus {
            Some(c) => {
                let v: f64 = c
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        flag_error(
                            cmd,
                            c,
                            "--cpus",
                            &format!("failed to parse {c} as a rational number"),
                        )
                    })?;
                Some((v * 1e9) as i64)
            }
            None => None,
        };
        let cpu_shares = match &self.cpu_shares {
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                flag_error(
                    cmd,
                    c,
                    "-c, --cpu-shares",
                    &format!("strconv.ParseInt: parsing \"{c}\": invalid syntax"),
                )
            })?),
            None => None,
        };
        let pids_limit = match &self.pids_limit {
            Some(p) => Some(p.parse::<i64>().map_err(|_| {
                flag_error(
                    cmd,
                    p,
                    "--pids-limit",
                    &format!("strconv.ParseInt: parsing \"{p}\": invalid syntax"),
                )
            })?),
            None => None,
        };

        // docker keeps one per name (the last given), sent sorted by name.
        let mut ulimits = std::collections::BTreeMap::new();
        for u in &self.ulimit {
            let l = parse_ulimit(u).map_err(|why| flag_error(cmd, u, "--ulimit", &why))?;
            ulimits.insert(l.name.clone().unwrap_or_default(), l);
        }

        let mut labels = HashMap::new();
        for l in &self.label {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            labels.insert(k.to_string(), v.to_string());
        }

        // Which streams to attach: `-a` picks them; otherwise stdout and stderr unless
        // detached, plus stdin with `-i`.
        let (mut a_in, mut a_out, mut a_err) = (false, false, false);
        if self.attach.is_empty() {
            if !detach {
                a_out = true;
                a_err = true;
                a_in = self.interactive;
            }
        } else {
            for a in &self.attach {
                match a.to_ascii_lowercase().as_str() {
                    "stdin" => a_in = true,
                    "stdout" => a_out = true,
                    "stderr" => a_err = true,
                    _ => {
                        return Err(flag_error(
                            cmd,
                            a,
                            "-a, --attach",
                            "valid streams are STDIN, STDOUT and STDERR",
                        ))
                    }
                }
            }
        }

        let mut mounts = Vec::new();
        for m in &self.mount {
            mounts.push(
                crate::commands::mount_opts::parse_mount(m)
                    .map_err(|why| flag_error(cmd, m, "--mount", &why))?,
            );
        }
        let (binds, volumes) = crate::commands::mount_opts::split_volumes(&self.volume);
        let host_config = HostConfig {
            auto_remove: self.rm.then_some(true),
            memory,
            nano_cpus,
            cpu_shares,
            pids_limit,
            ulimits: (!ulimits.is_empty()).then(|| ulimits.into_values().collect()),
            cgroup_parent: self.cgroup_parent.clone(),
            network_mode: self.network.clone(),
            binds: (!binds.is_empty()).then_some(binds),
            mounts: (!mounts.is_empty()).then_some(mounts),
            tmpfs: (!self.tmpfs.is_empty())
                .then(|| crate::commands::mount_opts::tmpfs_map(&self.tmpfs)),
            volumes_from: (!self.volumes_from.is_empty()).then(|| self.volumes_from.clone()),
            readonly_rootfs: self.read_only.then_some(true),
            privileged: self.privileged.then_some(true),
            ..Default::default()
        };

        let mut body = ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: (!self.command.is_empty()).then(|| self.command.clone()),
            // Docker sends `--entrypoint ""` as an empty list: it resets the image's.
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.clone()]
                }
            }),
            env: (!env.is_empty()).then_some(env),
            hostname: self.hostname.clone(),
            user: self.user.clone(),
            working_dir: self.workdir.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            tty: Some(self.tty),
            open_stdin: Some(self.interactive),
            stdin_once: Some(self.interactive && a_in),
            attach_stdin: Some(a_in),
            attach_stdout: Some(a_out),
            attach_stderr: Some(a_err),
            volumes: (!volumes.is_empty()).then_some(volumes),
            host_config: Some(host_config),
            ..Default::default()
        };
        self.lifecycle.apply(cmd, self.rm, &mut body)?;
        self.net.apply(cmd, self.network.as_deref(), &mut body)?;
        self.namespaces.apply(cmd, &mut body)?;
        self.security.apply(cmd, &mut body)?;
        if let Some(hc) = body.host_config.as_mut() {
            hc.log_config = Some(log_config(cmd, self.log_driver.as_deref(), &self.log_opt)?);
        }
        Ok(body)
    }
}

/// One `--ulimit` as docker 20.10 parses it (go-units `ParseUlimit`): `name=soft[:hard]`,
/// names from its table (`as` is not one), Go's `strconv.ParseInt` wording, and a soft
/// limit above the hard one refused unless the hard one is -1 (unlimited).
pub fn parse_ulimit(val: &str) -> Result<berth_api::models::ResourcesUlimits, String> {
    const NAMES: [&str; 15] = [
        "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
        "rss", "rtprio", "rttime", "sigpending", "stack",
    ];
    let Some((name, limits)) = val.split_once('=') else {
        return Err(format!("invalid ulimit argument: {val}"));
    };
    if !NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let parse_int = |x: &str| {
        x.parse::<i64>().map_err(|e| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            format!("strconv.ParseInt: parsing {}: {why}", crate::commands::ps::go_quote(x))
        })
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        // Go parses the hard limit first.
        [s, h] => {
            let h = parse_int(h)?;
            (parse_int(s)?, h)
        }
        [s] => {
            let s = parse_int(s)?;
            (s, s)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 && soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(berth_api::models::ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

/// `--log-driver` and `--log-opt` as docker sends them: always a LogConfig (an empty type
/// means the daemon's default), options split at the first `=`.
fn log_config(cmd: &str, driver: Option<&str>, opts: &[String]) -> Result<HostConfigLogConfig, Failure> {
    let driver = driver.unwrap_or_default();
    if driver == "none" && !opts.is_empty() {
        return Err(Failure::new(
            125,
            format!("berth: invalid logging opts for driver none.\nSee 'berth {cmd} --help'."),
        ));
    }
    let config = opts
        .iter()
        .map(|o| {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    Ok(HostConfigLogConfig { typ: Some(driver.to_string()), config: Some(config) })
}

/// An I/O error worded like Go's (`no such file or directory`).
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        // Rust appends " (os error N)"; Go does not.
        _ => e
            .to_string()
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_lowercase(),
    }
}

/// Splits an image reference into (name, tag) for `/images/create`: `busybox` →
/// (`busybox`, `latest`); a digest reference keeps its digest in the name and no tag.
pub fn split_image(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    let slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[slash..].rfind(':') {
        Some(i) => (
            image[..slash + i].to_string(),
            image[slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

/// Docker's familiar form of a reference with its tag: `busybox` → `busybox:latest`,
/// `docker.io/library/busybox` → `busybox:latest`.
pub fn familiar(image: &str) -> String {
    let (name, tag) = split_image(image);
    let name = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(&name)
        .to_string();
    if tag.is_empty() {
        name
    } else {
        format!("{name}:{tag}")
    }
}

/// Pulls `image`, printing the daemon's progress messages to stderr as plain lines.
pub async fn pull(client: &Client, image: &str) -> Result<(), Failure> {
    let (name, tag) = split_image(image);
    let path = format!(
        "/images/create{}",
        client::query(&[("fromImage", name), ("tag", tag)])
    );
    let auth = crate::credentials::registry_auth(image);
    let resp = client
        .send_with_headers(Method::POST, &path, client::empty(), &[("X-Registry-Auth", auth)])
        .await?;
    let mut body = resp.into_body();
    let mut lines = LineSplitter::default();
    while let Some(chunk) = client::next_chunk(&mut body).await? {
        for line in lines.push(&chunk) {
            report_progress(&line)?;
        }
    }
    if let Some(line) = lines.finish() {
        report_progress(&line)?;
    }
    Ok(())
}

/// Prints one JSON progress message; an error message in the stream becomes a failure.
fn report_progress(line: &str) -> Result<(), Failure> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(());
    }
    let info: CreateImageInfo = match serde_json::from_str(line) {
        Ok(i) => i,
        Err(_) => return Ok(()),
    };
    if let Some(detail) = info.error_detail {
        return Err(Failure::new(1, detail.message.unwrap_or_default()));
    }
    // The top-level `error` field of older daemons is not in the model; read it raw.
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(line) {
        if let Some(serde_json::Value::String(e)) = m.get("error") {
            return Err(Failure::new(1, e.clone()));
        }
    }
    // As docker does off a terminal: byte progress ("Downloading […] 1MB/2MB") is not shown.
    if info.progress_detail.as_ref().is_some_and(|p| p.current.unwrap_or(0) > 0 || p.total.unwrap_or(0) > 0) {
        return Ok(());
    }
    if let Some(status) = info.status {
        match info.id {
            Some(id) if !id.is_empty() => eprintln!("{id}: {status}"),
            _ => eprintln!("{status}"),
        }
    }
    Ok(())
}

/// Splits a byte stream into `\n`-terminated lines (JSON progress messages).
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; returns the complete lines.
    pub fn push(&mut self, data: &[u8]) -> Vec<String> {
        self.buf.extend_from_slice(data);
        let mut lines = Vec::new();
        while let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            lines.push(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        lines
    }

    /// What is left without a final newline.
    pub fn finish(&mut self) -> Option<String> {
        let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buf))
            .trim()
            .to_string();
        (!rest.is_empty()).then_some(rest)
    }
}

/// Creates the container, pulling its image first when the daemon lacks it (as docker
/// does). Failures carry exit code 125 (`docker run`'s code for daemon refusals).
pub async fn create(
    client: &Client,
    name: Option<&str>,
    body: &ContainerCreateBody,
) -> Result<String, Failure> {
    let mut q = Vec::new();
    if let Some(n) = name {
        q.push(("name", n.to_string()));
    }
    let path = format!("/containers/create{}", client::query(&q));
    let post = || async {
        let b = client::json_body(body)?;
        client
            .json::<ContainerCreateResponse>(Method::POST, &path, b)
            .await
    };
    let resp = match post().await {
        Ok(r) => r,
        Err(e) if e.is_not_found() && e.message().starts_with("No such image") => {
            let image = body.image.clone().unwrap_or_default();
            eprintln!("Unable to find image '{}' locally", familiar(&image));
            pull(client, &image)
                .await
                .map_err(|f| Failure::new(125, f.message))?;
            post().await.map_err(to_125)?
        }
        Err(e) => return Err(to_125(e)),
    };
    for w in &resp.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(resp.id)
}

fn to_125(e: ClientError) -> Failure {
    let code = if matches!(e, ClientError::Connect { .. }) {
        1
    } else {
        125
    };
    Failure::new(code, e.to_string())
}

/// `berth create`: prints the new container's full ID.
pub async fn run(client: &Client, args: CreateArgs) -> CmdResult {
    let body = args.opts.body("create", true)?;
    // `docker create` exits 1 when the daemon refuses (125 is for `run`).
    let id = create(client, args.opts.name.as_deref(), &body)
        .await
        .map_err(|f| Failure::new(if f.code == 125 { 1 } else { f.code }, f.message))?;
    println!("{id}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_env(name: &str) -> Option<String> {
        (name == "HOME").then(|| "/root".to_string())
    }

    /// The messages docker's CLI gives (checked against docker with dockerd 20.10).
    #[test]
    fn ulimits_as_docker_parses_them() {
        let err = |v: &str| parse_ulimit(v).unwrap_err();
        assert_eq!(err("nofile"), "invalid ulimit argument: nofile");
        assert_eq!(err("nofile="), "strconv.ParseInt: parsing \"\": invalid syntax");
        assert_eq!(err("foo=1"), "invalid ulimit type: foo");
        assert_eq!(err("as=100"), "invalid ulimit type: as");
        assert_eq!(
            err("nofile=1:2:3"),
            "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"
        );
        assert_eq!(err("nofile=a:b"), "strconv.ParseInt: parsing \"b\": invalid syntax");
        assert_eq!(err("nofile=0x10"), "strconv.ParseInt: parsing \"0x10\": invalid syntax");
        assert_eq!(err("nofile= 1"), "strconv.ParseInt: parsing \" 1\": invalid syntax");
        assert_eq!(
            err("nofile=99999999999999999999"),
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(err("nofile=5:3"), "ulimit soft limit must be less than or equal to hard limit: 5 > 3");
        let ok = |v: &str| {
            let u = parse_ulimit(v).unwrap();
            (u.name.unwrap(), u.soft.unwrap(), u.hard.unwrap())
        };
        assert_eq!(ok("nofile=+5"), ("nofile".into(), 5, 5));
        assert_eq!(ok("nofile=5:-1"), ("nofile".into(), 5, -1));
        assert_eq!(ok("core=-1"), ("core".into(), -1, -1));
        assert_eq!(ok("nproc=3:4"), ("nproc".into(), 3, 4));
    }

    #[test]
    fn env_files() {
        let text = "# comment\n\nA=1\n  B=two words\nHOME\nUNSET\nC=\n";
        assert_eq!(
            parse_env_file(text, &fake_env).unwrap(),
            vec!["A=1", "B=two words", "HOME=/root", "C="]
        );
        assert!(parse_env_file("BAD NAME=1\n", &fake_env).is_err());
        assert_eq!(env_flag("HOME", &fake_env), Some("HOME=/root".into()));
        assert_eq!(env_flag("NOPE", &fake_env), None);
        assert_eq!(env_flag("X=1", &fake_env), Some("X=1".into()));
    }

    #[test]
    fn image_refs() {
        assert_eq!(split_image("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(
            split_image("busybox:1.36"),
            ("busybox".into(), "1.36".into())
        );
        assert_eq!(
            split_image("localhost:5000/x"),
            ("localhost:5000/x".into(), "latest".into())
        );
        assert_eq!(
            split_image("x@sha256:ab"),
            ("x@sha256:ab".into(), "".into())
        );
        assert_eq!(familiar("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(familiar("busybox"), "busybox:latest");
    }

    #[test]
    fn lines() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"{\"a\":1}\r\n{\"b\""), vec!["{\"a\":1}"]);
        assert_eq!(s.push(b":2}\n"), vec!["{\"b\":2}"]);
        assert_eq!(s.finish(), None);
    }
}
