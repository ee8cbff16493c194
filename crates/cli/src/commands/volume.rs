//! `berth volume`: create, ls, inspect, rm and prune, as docker's `volume` commands.


use berth_api::models::{Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};
use clap::{Args, Subcommand};
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::ps::filters_json;
use crate::commands::{for_each_name, CmdResult, Failure};
use crate::format;
use crate::json::Value;
use crate::listing::{label_method, ListPrinter};
use crate::template::Template;

/// `berth volume`
#[derive(Debug, Args)]
pub struct VolumeArgs {
    #[command(subcommand)]
    pub command: VolumeCommand,
}

/// docker's volume subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long = "driver", value_name = "string", default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", value_name = "string")]
    pub name: Option<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// The volume's name
    #[arg(value_name = "VOLUME")]
    pub volume: Option<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Only display volume names
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,
    /// The volumes
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// The volumes
    #[arg(required = true, value_name = "VOLUME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}


/// Runs a `volume` subcommand.
pub async fn run(client: &Client, args: VolumeArgs) -> CmdResult {
    match args.command {
        VolumeCommand::Create(a) => create(client, a).await,
        VolumeCommand::Ls(a) => ls(client, a).await,
        VolumeCommand::Inspect(a) => inspect(client, a).await,
        VolumeCommand::Rm(a) => rm(client, a).await,
        VolumeCommand::Prune(a) => prune(client, a).await,
    }
}

async fn create(client: &Client, a: CreateArgs) -> CmdResult {
    if let (Some(n), Some(v)) = (&a.name, &a.volume) {
        if n != v {
            return Err(Failure::new(
                1,
                "conflicting options: either specify --name or provide positional arg, not both\nSee 'berth volume create --help'.",
            ));
        }
    }
    for o in &a.opt {
        if !o.contains('=') {
            return Err(Failure::new(
                125,
                format!("invalid argument \"{o}\" for \"-o, --opt\" flag: bad format for opt: {o}\nSee 'berth volume create --help'."),
            ));
        }
    }
    let req = VolumeCreateRequest {
        name: a.name.or(a.volume),
        driver: Some(a.driver),
        driver_opts: Some(crate::flags::kv_map(&a.opt)),
        labels: Some(crate::flags::kv_map(&a.label)),
        cluster_volume_spec: None,
    };
    let v: Volume = client.json(Method::POST, "/volumes/create", client::json_body(&req)?).await?;
    println!("{}", v.name);
    Ok(0)
}

/// The `ls` template context of one volume, with docker 20.10's field names (its CLI has
/// no cluster-volume fields).
fn context(v: &Volume) -> Value {
    let mut labels: Vec<(&String, &String)> = v.labels.iter().collect();
    labels.sort();
    let labels = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let s = |x: &str| Value::String(x.to_string());
    Value::Object(vec![
        ("Driver".into(), s(&v.driver)),
        ("Labels".into(), s(&labels)),
        ("Links".into(), s("N/A")),
        ("Mountpoint".into(), s(&v.mountpoint)),
        ("Name".into(), s(&v.name)),
        ("Scope".into(), s(&v.scope.map(|s| s.to_string()).unwrap_or_default())),
        ("Size".into(), s("N/A")),
    ])
}

fn title(field: &str) -> String {
    match field {
        "Name" => "VOLUME NAME",
        "Driver" => "DRIVER",
        "Scope" => "SCOPE",
        "Mountpoint" => "MOUNTPOINT",
        "Labels" => "LABELS",
        "Links" => "LINKS",
        "Size" => "SIZE",
        other => return other.to_uppercase(),
    }
    .to_string()
}

async fn ls(client: &Client, a: LsArgs) -> CmdResult {
    let q = if a.filter.is_empty() {
        String::new()
    } else {
        client::query(&[("filters", filters_json(&a.filter)?)])
    };
    let list: VolumeListResponse = client.get(&format!("/volumes{q}")).await?;
    let mut volumes = list.volumes.unwrap_or_default();
    volumes.sort_by(|x, y| x.name.cmp(&y.name));
    if a.quiet && a.format.is_none() {
        for v in &volumes {
            println!("{}", v.name);
        }
        return Ok(0);
    }
    let fmt = match a.format.as_deref() {
        None | Some("") | Some("table") => "table {{.Driver}}\t{{.Name}}",
        Some(f) => f,
    };
    let mut out = ListPrinter::new(fmt, "*formatter.volumeContext", &title)?;
    for v in &volumes {
        out.row(&context(v), &label_method(|k| v.labels.get(k).cloned()))?;
    }
    print!("{}", out.finish());
    Ok(0)
}

async fn inspect(client: &Client, a: InspectArgs) -> CmdResult {
    let tpl = match a.format.as_deref() {
        Some(f) if !f.is_empty() => Some(Template::parse(f).map_err(|e| crate::commands::inspect::template_failure(&e))?),
        _ => None,
    };
    // Each name's object or error, in order: docker reports them in that order.
    let mut found = Vec::new();
    for name in &a.names {
        match client.bytes(Method::GET, &format!("/volumes/{}", client::enc(name)), client::empty()).await {
            Ok(raw) => found.push(Ok(raw)),
            Err(e @ ClientError::Connect { .. }) => return Err(e.into()),
            Err(e) => found.push(Err(e.to_string())),
        }
    }
    super::inspect::print_inspected(tpl.as_ref(), crate::template::Shape::Struct("types.Volume"), found)
}

async fn rm(client: &Client, a: RmArgs) -> CmdResult {
    let q = if a.force { "?force=1" } else { "" };
    for_each_name(&a.names, |name| {
        let path = format!("/volumes/{}{q}", client::enc(&name));
        async move { client.bytes(Method::DELETE, &path, client::empty()).await.map(|_| ()) }
    })
    .await
}

async fn prune(client: &Client, a: PruneArgs) -> CmdResult {
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("all=true".into());
    } else if !filters.iter().any(|f| f.starts_with("all=")) {
        // berthd speaks API 1.41, where a prune without `all` takes named volumes too;
        // berth keeps today's docker default (anonymous only) by saying so.
        filters.push("all=false".into());
    }
    if !a.force {
        let what = if a.all { "all local volumes" } else { "anonymous local volumes" };
        if !crate::flags::confirm(&format!("WARNING! This will remove {what} not used by at least one container.")) {
            println!();
            return Ok(0);
        }
    }
    let q = if filters.is_empty() {
        String::new()
    } else {
        client::query(&[("filters", filters_json(&filters)?)])
    };
    let resp: VolumePruneResponse = client.json(Method::POST, &format!("/volumes/prune{q}"), client::empty()).await?;
    let deleted = resp.volumes_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Volumes:");
        for d in &deleted {
            println!("{d}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", format::human_size(resp.space_reclaimed.unwrap_or(0), 3));
    Ok(0)
}
