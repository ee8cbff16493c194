//! `berth`: docker's command line, talking the Docker Engine API over a UNIX socket or TCP.

mod client;
mod commands;
mod credentials;
mod flags;
mod format;
mod json;
mod jsonmessage;
mod listing;
mod stream;
mod template;
mod term;
mod timestamp;
mod tls;

use std::io::Write;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Parser;

use crate::client::Client;
use crate::commands::Command;

/// A self-sufficient runtime for containers
#[derive(Debug, Parser)]
#[command(name = "berth", disable_help_subcommand = true)]
struct Cli {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", value_name = "list")]
    host: Option<String>,
    /// Use TLS; implied by --tlsverify
    #[arg(long = "tls", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tls: Option<bool>,
    /// Use TLS and verify the remote
    #[arg(long = "tlsverify", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    tlsverify: Option<bool>,
    /// Trust certs signed only by this CA
    #[arg(long = "tlscacert", value_name = "string")]
    tlscacert: Option<std::path::PathBuf>,
    /// Path to TLS certificate file
    #[arg(long = "tlscert", value_name = "string")]
    tlscert: Option<std::path::PathBuf>,
    /// Path to TLS key file
    #[arg(long = "tlskey", value_name = "string")]
    tlskey: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// The daemon address: `-H`, else `BERTH_HOST`, else `DOCKER_HOST`, else berth's socket
/// (docker's `tcp://localhost:2376` when TLS is on).
fn resolve_host(flag: Option<String>, tls: bool) -> String {
    flag.filter(|h| !h.is_empty())
        .or_else(|| std::env::var("BERTH_HOST").ok().filter(|h| !h.is_empty()))
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| if tls { client::DEFAULT_TLS_HOST } else { client::DEFAULT_HOST }.to_string())
}

/// Commands whose subcommand is part of the name docker's usage hints give.
const MANAGEMENT: &[&str] = &["builder", "container", "image", "network", "system", "volume"];

/// The subcommand named on the command line (for usage hints), skipping `-H value`; for a
/// management command with its subcommand, both words (`builder prune`).
fn subcommand_name(args: &[String]) -> Option<String> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if matches!(a.as_str(), "-H" | "--host" | "--tlscacert" | "--tlscert" | "--tlskey") {
            it.next();
        } else if !a.starts_with('-') {
            return Some(match it.next() {
                Some(sub) if MANAGEMENT.contains(&a.as_str()) && !sub.starts_with('-') => {
                    format!("{a} {sub}")
                }
                _ => a.clone(),
            });
        }
    }
    None
}

/// Reports a command-line error as docker does and returns the exit code: 125 for bad
/// flags (docker's code for flag errors), 1 for a missing argument or unknown command.
fn report_usage_error(err: clap::Error, args: &[String]) -> i32 {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            return 0;
        }
        _ => {}
    }
    let sub = subcommand_name(args);
    let hint = match &sub {
        Some(s) => format!("See 'berth {s} --help'."),
        None => "See 'berth --help'.".to_string(),
    };
    let invalid = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    match err.kind() {
        ErrorKind::UnknownArgument => {
            let flag = invalid.split('=').next().unwrap_or(&invalid).to_string();
            if let Some(short) = flag.strip_prefix('-').filter(|f| !f.starts_with('-')) {
                let c = short.chars().next().unwrap_or('-');
                eprintln!("unknown shorthand flag: '{c}' in {flag}\n{hint}");
            } else {
                eprintln!("unknown flag: {flag}\n{hint}");
            }
            125
        }
        ErrorKind::InvalidSubcommand => {
            eprintln!(
                "berth: unknown command: berth {}\n\nRun 'berth --help' for more information",
                sub.unwrap_or_default()
            );
            1
        }
        ErrorKind::MissingRequiredArgument | ErrorKind::TooFewValues => {
            let name = sub.unwrap_or_default();
            // Docker words it by the command's arity.
            let need = match name.rsplit(' ').next().unwrap_or_default() {
                "tag" => "2 arguments",
                "logs" => "1 argument",
                _ => "at least 1 argument",
            };
            eprintln!("berth: 'berth {name}' requires {need}\n\n{hint}");
            1
        }
        ErrorKind::MissingSubcommand => {
            let _ = err.print();
            1
        }
        _ => {
            // Clap's wording, minus its "error: " prefix, in docker's two-line shape.
            let rendered = err.render().to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string();
            eprintln!("{first}\n{hint}");
            125
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => std::process::exit(report_usage_error(e, &args)),
    };
    let tls = tls::TlsFlags {
        tls: cli.tls,
        tlsverify: cli.tlsverify,
        tlscacert: cli.tlscacert,
        tlscert: cli.tlscert,
        tlskey: cli.tlskey,
    };
    let host = resolve_host(cli.host, tls.enabled());
    let code = match tls.config().and_then(|config| Client::new(&host, config)) {
        Err(msg) => {
            eprintln!("{msg}");
            1
        }
        Ok(client) => {
            // One thread: a CLI waits on one socket at a time, and starts faster this way.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Err(e) => {
                    eprintln!("cannot start the runtime: {e}");
                    1
                }
                Ok(rt) => {
                    let result = rt.block_on(commands::dispatch(&client, cli.command));
                    // Dropping the runtime would wait for a blocking stdin read that may
                    // never end; nothing left running matters once the command is done.
                    rt.shutdown_background();
                    match result {
                        Ok(code) => code,
                        Err(f) => {
                            let _ = std::io::stdout().flush();
                            if !f.message.is_empty() {
                                eprintln!("{}", f.message);
                            }
                            f.code
                        }
                    }
                }
            }
        }
    };
    let _ = std::io::stdout().flush();
    // Exit at once: a task may still block on stdin, which must not hold the process.
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_subcommand() {
        let args: Vec<String> = ["berth", "-H", "unix:///x", "ps", "-a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(subcommand_name(&args), Some("ps".into()));
        let args: Vec<String> = ["berth", "builder", "prune", "--bogus"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(subcommand_name(&args), Some("builder prune".into()));
    }

    #[test]
    fn cli_parses_run_like_docker() {
        let cli = Cli::try_parse_from([
            "berth",
            "run",
            "--rm",
            "-h",
            "box",
            "-e",
            "A=1",
            "busybox",
            "sh",
            "-c",
            "echo -n hi",
        ]);
        let Ok(Cli {
            command: Command::Run(r),
            ..
        }) = cli
        else {
            panic!("parse failed")
        };
        assert!(r.opts.rm);
        assert_eq!(r.opts.hostname.as_deref(), Some("box"));
        assert_eq!(r.opts.command, vec!["sh", "-c", "echo -n hi"]);
    }
}
