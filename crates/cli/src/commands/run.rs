//! `berth run`: create (pulling if needed), attach, wait, start, and exit with the
//! container's code, in the order docker uses so no output is lost.

use berth_api::models::ContainerWaitResponse;
use clap::Args;
use hyper::Method;
use tokio::task::JoinHandle;

use crate::client::{self, Client, ClientError};
use crate::commands::create::{self, ContainerOpts};
use crate::commands::{CmdResult, Failure};
use crate::stream::{self, AttachStreams};
use crate::term;

/// `berth run`
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(
        long = "sig-proxy",
        value_name = "bool",
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        value_parser = parse_go_bool
    )]
    pub sig_proxy: bool,
    #[command(flatten)]
    pub opts: ContainerOpts,
}

/// A boolean flag's value as Go's `strconv.ParseBool` reads it (docker's `--flag=false`).
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing \"{s}\": invalid syntax"
        )),
    }
}

/// The exit code docker gives a failed start: 127 when the command does not exist, 126
/// when it cannot be executed, 125 for any other refusal.
pub fn start_error_code(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("system cannot find the file specified")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        125
    }
}

/// A daemon error as `docker run` reports it.
fn run_failure(code: i32, e: &ClientError) -> Failure {
    match e {
        ClientError::Connect { .. } => Failure::new(1, e.to_string()),
        _ => Failure::new(
            code,
            format!("berth: {e}\n\nRun 'berth run --help' for more information"),
        ),
    }
}

/// Output streams and options of an attached session.
pub struct Session {
    pub id: String,
    pub streams: AttachStreams,
    /// Wait for removal (the daemon auto-removes) instead of the next exit.
    pub auto_remove: bool,
    /// Forward the signals we receive to the container (docker's `--sig-proxy`).
    pub sig_proxy: bool,
    /// `--detach-keys` or the config file's `detachKeys`.
    pub detach_keys: Option<String>,
}

/// Attaches, registers the wait, starts, and returns the container's exit code once its
/// output has drained, or 0 at once if the user detached (the container runs on).
/// `start_code` maps a start failure to an exit code.
pub async fn attached_start(client: &Client, s: Session, start_code: fn(&str) -> i32) -> CmdResult {
    if s.sig_proxy {
        stream::forward_signals(client.clone(), s.id.clone());
    }
    // Raw mode only when we forward a terminal: keys must reach the container unprocessed.
    let _raw = if s.streams.tty && s.streams.stdin {
        term::RawMode::enable(0)
    } else {
        None
    };

    // The wait must be registered before the start, or a fast container's exit is missed;
    // the daemon sends the answer's headers once it is registered. The attach and the wait
    // are independent, so both requests travel at once: one round trip less before the start.
    let condition = if s.auto_remove {
        "removed"
    } else {
        "next-exit"
    };
    let wait_path = format!(
        "/containers/{}/wait?condition={condition}",
        client::enc(&s.id)
    );
    let attach = async {
        if s.streams.stdin || s.streams.stdout || s.streams.stderr {
            stream::attach(client, &s.id, s.streams, s.detach_keys.as_deref())
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    };
    let (output, wait_resp) = tokio::join!(
        attach,
        client.send(Method::POST, &wait_path, client::empty())
    );
    let output = output?;
    let wait_resp = wait_resp?;
    let wait: JoinHandle<Result<ContainerWaitResponse, ClientError>> = tokio::spawn(async move {
        let data = client::collect(wait_resp.into_body()).await?;
        serde_json::from_slice(&data)
            .map_err(|e| ClientError::Io(format!("cannot decode wait answer: {e}")))
    });

    if let Err(e) = client
        .post(&format!("/containers/{}/start", client::enc(&s.id)))
        .await
    {
        let code = start_code(&e.message());
        return Err(run_failure(code, &e));
    }

    if s.streams.tty {
        let target = format!("/containers/{}", client::enc(&s.id));
        stream::resize(client, &target).await;
        stream::spawn_resize_watch(client.clone(), target);
    }

    if let Some(out) = output {
        match out.finish().await {
            Ok(stream::Ended::Finished) => {}
            // As docker: detaching is no error, and the container's end is not awaited.
            Ok(stream::Ended::Detached) => return Ok(0),
            Err(e) => eprintln!("{e}"),
        }
    }
    let resp = match wait.await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(Failure::new(125, e.to_string())),
        Err(e) => return Err(Failure::new(125, e.to_string())),
    };
    if let Some(msg) = resp.error.and_then(|e| e.message).filter(|m| !m.is_empty()) {
        return Err(Failure::new(
            125,
            format!("berth: Error response from daemon: {msg}"),
        ));
    }
    Ok(i32::try_from(resp.status_code).unwrap_or(125))
}

/// `berth run`
pub async fn run(client: &Client, args: RunArgs) -> CmdResult {
    let opts = &args.opts;
    // As docker: a detached container does not read our stdin.
    if opts.tty && opts.interactive && !args.detach && !term::is_tty(0) {
        return Err(Failure::new(1, "the input device is not a TTY"));
    }
    let detach_keys = stream::detach_keys(args.detach_keys.as_deref());
    // Checked before anything is created: the daemon would refuse the attach, leaving the
    // container behind.
    if let Some(keys) = detach_keys.as_deref().filter(|_| !args.detach) {
        if berth_api::detach::parse(keys).is_err() {
            return Err(Failure::new(
                125,
                format!("berth: Error response from daemon: Invalid detach keys ({keys}) provided\n\nRun 'berth run --help' for more information"),
            ));
        }
    }
    let body = opts.body("run", args.detach)?;
    let id = create::create(client, opts.name.as_deref(), &body)
        .await
        .map_err(|f| {
            if f.code == 125 {
                Failure::new(
                    125,
                    format!(
                        "berth: {}\n\nRun 'berth run --help' for more information",
                        f.message
                    ),
                )
            } else {
                f
            }
        })?;

    if args.detach {
        if let Err(e) = client
            .post(&format!("/containers/{}/start", client::enc(&id)))
            .await
        {
            return Err(run_failure(start_error_code(&e.message()), &e));
        }
        println!("{id}");
        return Ok(0);
    }

    let streams = AttachStreams {
        stdin: body.attach_stdin.unwrap_or(false),
        stdout: body.attach_stdout.unwrap_or(false),
        stderr: body.attach_stderr.unwrap_or(false),
        tty: opts.tty,
    };
    let session = Session {
        id,
        streams,
        auto_remove: opts.rm,
        // docker run proxies signals with a TTY too (start and attach do not).
        sig_proxy: args.sig_proxy,
        detach_keys,
    };
    attached_start(client, session, start_error_code).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_booleans_like_go() {
        assert_eq!(parse_go_bool("false"), Ok(false));
        assert_eq!(parse_go_bool("T"), Ok(true));
        assert!(parse_go_bool("yes").is_err());
    }

    #[test]
    fn start_errors_map_to_docker_codes() {
        assert_eq!(
            start_error_code("exec: \"nope\": executable file not found in $PATH: unknown"),
            127
        );
        assert_eq!(
            start_error_code("stat /etc/x: no such file or directory"),
            127
        );
        assert_eq!(
            start_error_code("exec: \"/etc\": permission denied: unknown"),
            126
        );
        assert_eq!(start_error_code("cgroup trouble"), 125);
    }
}
