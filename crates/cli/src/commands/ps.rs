//! `berth ps`: lists containers in docker's table, or through a `--format` template.

use std::collections::BTreeMap;

use berth_api::models::ContainerSummary;
use clap::Args;

use crate::client::{self, Client};
use crate::commands::{CmdResult, Failure};
use crate::format;
use crate::json::Value;
use crate::listing::{label_method, ListPrinter};
use crate::template::{Shape, Template};

/// `berth ps`
#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", value_name = "int", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long = "latest")]
    pub latest: bool,
    /// Display total file sizes
    #[arg(short = 's', long = "size")]
    pub size: bool,
}

/// docker's Go type for a `ps` row, named in template errors.
const CONTEXT_TYPE: &str = "*formatter.ContainerContext";

/// As docker, a `--format` is checked before anything is listed: parsed whole (any
/// `table` prefix included, so error columns count from it) and run on an empty container.
fn validate_format(format: &str) -> Result<(), Failure> {
    let tpl = Template::parse(format)
        .map_err(|e| Failure::new(1, format!("failed to parse template: {e}")))?;
    let empty = context(&ContainerSummary::default(), true);
    let any_label = label_method(|_| None);
    tpl.render_as(&empty, &any_label, Shape::Struct(CONTEXT_TYPE))
        .map_err(|e| Failure::new(1, format!("failed to execute template: {e}")))?;
    Ok(())
}

/// Docker's default `ps` table.
const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// Column titles docker prints for each field of the `ps` context.
fn title(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID",
        "Image" => "IMAGE",
        "Command" => "COMMAND",
        "RunningFor" => "CREATED",
        "CreatedAt" => "CREATED AT",
        "Status" => "STATUS",
        "Ports" => "PORTS",
        "Names" => "NAMES",
        "State" => "STATE",
        "Labels" => "LABELS",
        "Size" => "SIZE",
        "Mounts" => "MOUNTS",
        "Networks" => "NETWORKS",
        "LocalVolumes" => "LOCAL VOLUMES",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// Builds the `filters` query value: `{"key":["v1","v2"]}`.
pub fn filters_json(filters: &[String]) -> Result<String, Failure> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Failure::new(125, format!("invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)\nSee 'berth ps --help'.")))?;
        map.entry(k.trim().to_lowercase())
            .or_default()
            .push(v.to_string());
    }
    serde_json::to_string(&map).map_err(|e| Failure::new(1, e.to_string()))
}

/// Go's `strconv.Quote` for the printable text docker puts in the COMMAND column.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A UNIX time as Go's `time.Time.String()` prints it in local time.
pub fn go_time(unix: i64) -> String {
    use chrono::{Local, TimeZone};
    match Local.timestamp_opt(unix, 0).single() {
        Some(t) => {
            let offset = t.format("%z").to_string();
            // Go names the zone; chrono only knows the offset, and UTC is the common case.
            let zone = if offset == "+0000" {
                "UTC".to_string()
            } else {
                offset.clone()
            };
            format!("{} {offset} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => unix.to_string(),
    }
}

/// The template context of one container, with docker's field names and values.
fn context(c: &ContainerSummary, trunc: bool) -> Value {
    let id = c.id.clone().unwrap_or_default();
    let id = if trunc { format::short_id(&id) } else { id };
    let mut image = c.image.clone().unwrap_or_default();
    if trunc {
        if image.starts_with("sha256:") {
            image = format::short_id(&image);
        } else if let Some((name, _digest)) = image.split_once('@') {
            image = name.to_string();
        }
    }
    let command = c.command.clone().unwrap_or_default();
    let command = go_quote(&if trunc {
        format::ellipsis(&command, 20)
    } else {
        command
    });
    let names: Vec<String> = c
        .names
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.trim_start_matches('/').to_string())
        // Legacy link names (`other/alias`) only show untruncated.
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let mut labels: Vec<(String, String)> =
        c.labels.clone().unwrap_or_default().into_iter().collect();
    labels.sort();
    let labels_text = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let ports = c
        .ports
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let typ = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
            match p.public_port {
                Some(public) => format!(
                    "{}:{public}->{}/{typ}",
                    p.ip.clone().unwrap_or_default(),
                    p.private_port
                ),
                None => format!("{}/{typ}", p.private_port),
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    networks.sort();
    let mounts = c.mounts.clone().unwrap_or_default();
    let mount_names: Vec<String> = mounts
        .iter()
        .map(|m| {
            m.name
                .clone()
                .filter(|n| !n.is_empty())
                .or_else(|| m.source.clone())
                .map(|n| if trunc { format::ellipsis(&n, 15) } else { n })
                .unwrap_or_default()
        })
        .collect();
    let local_volumes = mounts
        .iter()
        .filter(|m| m.driver.as_deref() == Some("local"))
        .count();
    let created = c.created.unwrap_or(0);
    let rw = format::human_size(c.size_rw.unwrap_or(0), 3);
    let size = match c.size_root_fs {
        Some(root) if root > 0 => format!("{rw} (virtual {})", format::human_size(root, 3)),
        _ => rw,
    };
    let s = Value::String;
    // Sorted keys, because `{{json .}}` marshals docker's context as a map.
    Value::Object(vec![
        ("Command".into(), s(command)),
        ("CreatedAt".into(), s(go_time(created))),
        ("ID".into(), s(id)),
        ("Image".into(), s(image)),
        ("Labels".into(), s(labels_text)),
        ("LocalVolumes".into(), s(local_volumes.to_string())),
        ("Mounts".into(), s(mount_names.join(","))),
        ("Names".into(), s(names.join(","))),
        ("Networks".into(), s(networks.join(","))),
        ("Ports".into(), s(ports)),
        ("RunningFor".into(), s(format::ago(created))),
        ("Size".into(), s(size)),
        (
            "State".into(),
            s(c.state.map(|st| st.to_string()).unwrap_or_default()),
        ),
        ("Status".into(), s(c.status.clone().unwrap_or_default())),
    ])
}

/// `berth ps`
pub async fn run(client: &Client, args: PsArgs) -> CmdResult {
    if let Some(f) = args.format.as_deref().filter(|f| !f.is_empty()) {
        validate_format(f)?;
    }
    let mut q = Vec::new();
    if args.all || args.latest || args.last > 0 {
        q.push(("all", "1".to_string()));
    }
    if args.latest {
        q.push(("limit", "1".to_string()));
    } else if args.last > 0 {
        q.push(("limit", args.last.to_string()));
    }
    if !args.filter.is_empty() {
        q.push(("filters", filters_json(&args.filter)?));
    }
    // Sizes cost the daemon a walk of each container's files: ask only when shown.
    let size_in_format = args
        .format
        .as_deref()
        .is_some_and(|f| f.contains(".Size") || f.contains("json ."));
    if args.size || size_in_format {
        q.push(("size", "1".to_string()));
    }
    let list: Vec<ContainerSummary> = client
        .get(&format!("/containers/json{}", client::query(&q)))
        .await?;
    let trunc = !args.no_trunc;

    if args.quiet && args.format.is_none() {
        for c in &list {
            let id = c.id.clone().unwrap_or_default();
            println!("{}", if trunc { format::short_id(&id) } else { id });
        }
        return Ok(0);
    }

    // As docker, `-s` adds a SIZE column to the default table only.
    let default_format = if args.size {
        format!("{DEFAULT_FORMAT}\t{{{{.Size}}}}")
    } else {
        DEFAULT_FORMAT.to_string()
    };
    let fmt = match args.format.as_deref() {
        None | Some("") | Some("table") => default_format.as_str(),
        Some(f) => f,
    };
    let mut out = ListPrinter::new(fmt, CONTEXT_TYPE, &title)?;
    for c in &list {
        let labels = c.labels.as_ref();
        out.row(
            &context(c, trunc),
            &label_method(|k| labels.and_then(|l| l.get(k)).cloned()),
        )?;
    }
    print!("{}", out.finish());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;

    #[test]
    fn quoting_and_filters() {
        assert_eq!(go_quote("echo \"hi\""), "\"echo \\\"hi\\\"\"");
        assert_eq!(
            filters_json(&[
                "status=exited".into(),
                "name=a".into(),
                "status=created".into()
            ])
            .unwrap(),
            r#"{"name":["a"],"status":["exited","created"]}"#
        );
        assert!(filters_json(&["bad".into()]).is_err());
    }

    #[test]
    fn rows_render_like_docker() {
        let c: ContainerSummary = serde_json::from_str(
            r#"{"Id":"0123456789abcdef","Names":["/web"],"Image":"busybox","Command":"sh -c 'while true; do sleep 1; done'","Created":0,"State":"running","Status":"Up 5 seconds","Labels":{"a":"1"}}"#,
        )
        .unwrap();
        let ctx = context(&c, true);
        let tpl =
            Template::parse(r#"{{.ID}}|{{.Command}}|{{.Names}}|{{.Labels}}|{{.State}}"#).unwrap();
        let none = |_: &str, _: &[Value]| None;
        assert_eq!(
            tpl.render(&ctx, &none).unwrap(),
            "0123456789ab|\"sh -c 'while true; …\"|web|a=1|running"
        );
    }
}
