//! `berth builder`: docker 20.10's build management command, `build` (the same as `berth
//! build`) and `prune`, which empties the daemon's build cache through `POST /build/prune`.

use std::collections::BTreeMap;

use berth_api::models::BuildPruneResponse;
use clap::{Args, Subcommand};
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::create::flag_error;
use crate::commands::{build, CmdResult, Failure};
use crate::format;

/// `berth builder`
#[derive(Debug, Args)]
pub struct BuilderArgs {
    #[command(subcommand)]
    pub command: BuilderCommand,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum BuilderCommand {
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Remove build cache
    Prune(PruneArgs),
}

/// `berth builder prune`
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Provide filter values (e.g. 'until=24h')
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Amount of disk space to keep for cache
    #[arg(
        long = "keep-storage",
        value_name = "bytes",
        allow_hyphen_values = true
    )]
    pub keep_storage: Option<String>,
    /// docker refuses arguments with its own message, so they are taken and checked here.
    #[arg(hide = true)]
    pub extra: Vec<String>,
}

/// `berth builder …`
pub async fn run(client: &Client, args: BuilderArgs) -> CmdResult {
    match args.command {
        BuilderCommand::Build(mut a) => {
            a.command = "builder build";
            build::run(client, a).await
        }
        BuilderCommand::Prune(a) => prune(client, a).await,
    }
}

const CMD: &str = "builder prune";

/// docker's `FilterOpt`: `name=value` items as the API's `{"name":{"value":true}}` JSON.
fn filters_json(items: &[String]) -> Result<String, Failure> {
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(flag_error(
                CMD,
                item,
                "--filter",
                "bad format of filter (expected name=value)",
            ));
        };
        map.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.trim().to_string(), true);
    }
    if map.is_empty() {
        return Ok(String::new());
    }
    serde_json::to_string(&map).map_err(|e| Failure::new(1, e.to_string()))
}

/// The request query, as docker's client builds it: `all` only when set, `filters` and
/// `keep-storage` always.
fn prune_query(a: &PruneArgs) -> Result<String, Failure> {
    let keep_storage = match &a.keep_storage {
        None => 0,
        Some(s) => format::ram_in_bytes(s).map_err(|e| flag_error(CMD, s, "--keep-storage", &e))?,
    };
    let filters = filters_json(&a.filter)?;
    let mut q: Vec<(&str, String)> = Vec::new();
    if a.all {
        q.push(("all", "1".into()));
    }
    q.push(("filters", filters));
    q.push(("keep-storage", keep_storage.to_string()));
    Ok(client::query(&q))
}

/// What docker prints for the daemon's answer.
fn prune_report(resp: &BuildPruneResponse) -> String {
    let mut out = String::new();
    let deleted = resp.caches_deleted.as_deref().unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str("Deleted build cache objects:\n");
        for id in deleted {
            out.push_str(id);
            out.push('\n');
        }
        out.push('\n');
    }
    let reclaimed = resp.space_reclaimed.unwrap_or(0).max(0);
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        format::human_size(reclaimed, 4)
    ));
    out
}

async fn prune(client: &Client, a: PruneArgs) -> CmdResult {
    if !a.extra.is_empty() {
        return Err(Failure::new(
            1,
            format!("\"berth {CMD}\" accepts no arguments.\nSee 'berth {CMD} --help'.\n\nUsage:  berth {CMD}\n\nRemove build cache"),
        ));
    }
    let q = prune_query(&a)?;
    let question = if a.all {
        "WARNING! This will remove all build cache. Are you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
    };
    if !a.force && !crate::flags::prompt(question) {
        // docker 20.10 prints the (zero) total when the prompt is declined.
        println!("Total reclaimed space: 0B");
        return Ok(0);
    }
    let resp: BuildPruneResponse = client
        .json(Method::POST, &format!("/build/prune{q}"), client::empty())
        .await?;
    print!("{}", prune_report(&resp));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        p: PruneArgs,
    }

    fn query(args: &[&str]) -> Result<String, Failure> {
        let p = P::try_parse_from(std::iter::once("prune").chain(args.iter().copied())).unwrap();
        prune_query(&p.p)
    }

    #[test]
    fn query_as_the_docker_cli_sends_it() {
        // Captured from docker 20.10: `builder prune -f` and
        // `builder prune -f -a --keep-storage 1m --filter until=1h --filter type=regular`.
        assert_eq!(query(&["-f"]).unwrap(), "?filters=&keep-storage=0");
        let q = query(&[
            "-f",
            "-a",
            "--keep-storage",
            "1m",
            "--filter",
            "until=1h",
            "--filter",
            "type=regular",
        ])
        .unwrap();
        assert_eq!(q, "?all=1&filters=%7B%22type%22%3A%7B%22regular%22%3Atrue%7D%2C%22until%22%3A%7B%221h%22%3Atrue%7D%7D&keep-storage=1048576");
    }

    #[test]
    fn flag_errors_are_dockers() {
        let e = query(&["--filter", "x"]).unwrap_err();
        assert_eq!(e.code, 125);
        assert_eq!(e.message, "invalid argument \"x\" for \"--filter\" flag: bad format of filter (expected name=value)\nSee 'berth builder prune --help'.");
        let e = query(&["--keep-storage", "abc"]).unwrap_err();
        assert_eq!(e.message, "invalid argument \"abc\" for \"--keep-storage\" flag: invalid size: 'abc'\nSee 'berth builder prune --help'.");
    }

    #[test]
    fn report_like_docker() {
        let none = BuildPruneResponse {
            caches_deleted: None,
            space_reclaimed: Some(0),
        };
        assert_eq!(prune_report(&none), "Total reclaimed space: 0B\n");
        let some = BuildPruneResponse {
            caches_deleted: Some(vec!["a1".into(), "b2".into()]),
            space_reclaimed: Some(2_500_000),
        };
        assert_eq!(
            prune_report(&some),
            "Deleted build cache objects:\na1\nb2\n\nTotal reclaimed space: 2.5MB\n"
        );
    }
}
