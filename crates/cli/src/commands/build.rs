//! `berth build`: docker 20.10's classic `docker build` (flags, the context tar, the output
//! and exit codes), plus berth's fast context upload (`context_sync`) when the daemon has it.

use std::io::Write;

use bytes::Bytes;
use clap::Args;
use http_body_util::{channel::Channel, BodyExt};
use hyper::body::Incoming;
use hyper::{Method, Response, StatusCode};

use crate::client::{self, Client, ClientError};
use crate::commands::build_context::{self, Prepared};
use crate::commands::build_query;
use crate::commands::context_sync::{self, SyncOutcome};
use crate::commands::create::io_reason;
use crate::commands::{CmdResult, Failure};
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

/// Where build output goes: stdout, or (with `-q`) a buffer shown on stderr only on failure.
pub struct BuildOutput {
    quiet: bool,
    /// docker's progBuff: the upload line held back by `-q`.
    progress: Vec<u8>,
    /// docker's buildBuff: the daemon's output held back by `-q`.
    buf: Vec<u8>,
}

impl BuildOutput {
    pub fn new(quiet: bool) -> BuildOutput {
        BuildOutput {
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
    let query = build_query::query_from_flags(&args)?;
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
    let mut out = BuildOutput::new(args.quiet);
    let resp = match prepared {
        Prepared::Stdin { head, dockerfile } => {
            let q = query.encode(&[("dockerfile", dockerfile)]);
            send_stream(client, &q, head, &mut out).await
        }
        Prepared::Dir(ctx) => {
            let dockerfile = ctx.dockerfile.clone();
            let with_context =
                |id: String| query.encode(&[("context", id), ("dockerfile", dockerfile.clone())]);
            let tar_query = query.encode(&[("dockerfile", dockerfile.clone())]);
            match context_sync::sync(client, ctx, &mut out).await? {
                SyncOutcome::Synced { id, context } => {
                    match post_build(client, &with_context(id), client::empty()).await {
                        // The daemon lost part of the context meanwhile (pruned): sync again, once.
                        Err(ClientError::Api { status, .. }) if status == StatusCode::CONFLICT => {
                            match context_sync::sync(client, context, &mut BuildOutput::new(true))
                                .await?
                            {
                                SyncOutcome::Synced { id, .. } => {
                                    post_build(client, &with_context(id), client::empty()).await
                                }
                                SyncOutcome::Unsupported(ctx) => {
                                    send_tar(client, &tar_query, ctx, args.compress, &mut out).await
                                }
                            }
                        }
                        other => other,
                    }
                }
                SyncOutcome::Unsupported(ctx) => {
                    send_tar(client, &tar_query, ctx, args.compress, &mut out).await
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
fn show_progress(out: &BuildOutput) -> bool {
    !out.quiet && crate::term::is_tty(1)
}

/// The classic upload: the context as docker's tar (gzip with `--compress`).
async fn send_tar(
    client: &Client,
    query: &str,
    ctx: build_context::DirContext,
    compress: bool,
    out: &mut BuildOutput,
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
    out: &mut BuildOutput,
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
    out: &mut BuildOutput,
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
