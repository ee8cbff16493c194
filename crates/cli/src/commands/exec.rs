//! `berth exec`: run a command in a running container — create the exec instance, start it
//! attached (or detached with `-d`), then exit with its exit code as docker does.

use berth_api::models::{ExecConfig, ExecInspectResponse};
use clap::Args;
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::create::{env_flag, host_env, io_reason, parse_env_file};
use crate::commands::{CmdResult, Failure};
use crate::stream::{self, AttachStreams};
use crate::term;

/// `berth exec`
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true, trailing_var_arg = true)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long = "privileged")]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long = "user", value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "string")]
    pub workdir: Option<String>,
    /// Print usage
    #[arg(long = "help", action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// CONTAINER
    #[arg(required = true, value_name = "CONTAINER")]
    pub container: String,
    /// COMMAND [ARG...]
    #[arg(required = true, value_name = "COMMAND", allow_hyphen_values = true)]
    pub command: Vec<String>,
}

impl ExecArgs {
    /// The exec instance's configuration for these flags.
    fn config(&self) -> Result<ExecConfig, Failure> {
        let mut env = Vec::new();
        for file in &self.env_file {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure::new(1, format!("open {file}: {}", io_reason(&e))))?;
            env.extend(parse_env_file(&text, &host_env).map_err(|e| Failure::new(1, e))?);
        }
        env.extend(self.env.iter().filter_map(|e| env_flag(e, &host_env)));
        Ok(ExecConfig {
            attach_stdin: Some(self.interactive && !self.detach),
            attach_stdout: Some(!self.detach),
            attach_stderr: Some(!self.detach),
            detach_keys: stream::detach_keys(self.detach_keys.as_deref()),
            tty: Some(self.tty),
            env: (!env.is_empty()).then_some(env),
            cmd: Some(self.command.clone()),
            privileged: Some(self.privileged),
            user: self.user.clone(),
            working_dir: self.workdir.clone(),
            console_size: None,
        })
    }
}

/// `berth exec`
pub async fn run(client: &Client, args: ExecArgs) -> CmdResult {
    if args.tty && args.interactive && !args.detach && !term::is_tty(0) {
        return Err(Failure::new(1, "the input device is not a TTY"));
    }
    let config = args.config()?;
    let path = format!("/containers/{}/exec", client::enc(&args.container));
    let created: serde_json::Value =
        client.json(Method::POST, &path, client::json_body(&config)?).await?;
    let Some(id) = created.get("Id").and_then(|v| v.as_str()).map(String::from) else {
        return Err(Failure::new(1, "the daemon's answer has no exec Id"));
    };
    let start = format!("/exec/{}/start", client::enc(&id));
    if args.detach {
        let body = serde_json::json!({ "Detach": true, "Tty": args.tty });
        client.bytes(Method::POST, &start, client::json_body(&body)?).await?;
        return Ok(0);
    }

    // Raw mode only when we forward a terminal: keys must reach the process unprocessed.
    let _raw = if args.tty && args.interactive { term::RawMode::enable(0) } else { None };
    let streams = AttachStreams { stdin: args.interactive, stdout: true, stderr: true, tty: args.tty };
    let output = stream::hijack(client, &start, streams, config.detach_keys.as_deref()).await?;
    if args.tty {
        let target = format!("/exec/{}", client::enc(&id));
        stream::resize(client, &target).await;
        stream::spawn_resize_watch(client.clone(), target);
    }
    let ended = output.finish().await;
    drop(_raw);
    match ended {
        Ok(stream::Ended::Finished) => {}
        // As docker exec: the process runs on, and the CLI reports the detach as an error.
        Ok(stream::Ended::Detached) => return Err(Failure::new(1, "read escape sequence")),
        Err(e) => eprintln!("{e}"),
    }
    let inspect: ExecInspectResponse = client.get(&format!("/exec/{}/json", client::enc(&id))).await?;
    Ok(inspect.exit_code.and_then(|c| i32::try_from(c).ok()).unwrap_or(0))
}

