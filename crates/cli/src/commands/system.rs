//! `berth system`: `df [-v] [--format]`, `prune`, `info` and `events`, as docker's
//! `system` commands print them.

use berth_api::models::{
    BuildPruneResponse as BuildCachePruneResponse, ImagePruneResponse, NetworkPruneResponse,
    VolumePruneResponse,
};
use clap::{Args, Subcommand};
use hyper::Method;
use serde::Deserialize;

use crate::client::{self, Client};
use crate::commands::ps::{filters_json, go_quote};
use crate::commands::{container, events, image, info, CmdResult, Failure};
use crate::format::{self, Table};
use crate::json::Value;
use crate::listing::{self, ListPrinter};

/// `berth system`
#[derive(Debug, Args)]
pub struct SystemArgs {
    #[command(subcommand)]
    pub command: SystemCommand,
}

/// docker's system subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Display system-wide information
    Info(info::InfoArgs),
    /// Remove unused data
    Prune(PruneArgs),
}

/// `berth system prune`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Provide filter values (e.g. 'label=<key>=<value>')
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Prune volumes
    #[arg(long = "volumes")]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Pretty-print images using a Go template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
}

/// `/system/df` as the CLI reads it: lenient, since Docker sends `null` for empty lists.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DiskUsage {
    layers_size: i64,
    images: Option<Vec<DfImage>>,
    containers: Option<Vec<DfContainer>>,
    volumes: Option<Vec<DfVolume>>,
    build_cache: Option<Vec<DfBuildCache>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DfImage {
    id: String,
    repo_tags: Option<Vec<String>>,
    created: i64,
    size: i64,
    shared_size: i64,
    containers: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DfMount {
    #[serde(rename = "Driver")]
    driver: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DfContainer {
    id: String,
    names: Option<Vec<String>>,
    image: String,
    command: String,
    created: i64,
    state: String,
    status: String,
    size_rw: i64,
    mounts: Option<Vec<DfMount>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DfVolume {
    name: String,
    usage_data: Option<DfVolumeUsage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DfVolumeUsage {
    size: i64,
    ref_count: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DfBuildCache {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Type")]
    typ: String,
    size: i64,
    created_at: String,
    last_used_at: Option<String>,
    usage_count: i64,
    in_use: bool,
    shared: bool,
}

/// `berth system …`
pub async fn run(client: &Client, args: SystemArgs) -> CmdResult {
    match args.command {
        SystemCommand::Df(a) => df(client, a).await,
        SystemCommand::Events(a) => events::run(client, a).await,
        SystemCommand::Info(a) => info::run(client, a).await,
        SystemCommand::Prune(a) => prune(client, a).await,
    }
}

async fn df(client: &Client, a: DfArgs) -> CmdResult {
    let du: DiskUsage = client.get("/system/df").await?;
    // As docker 20.10: `table` (or nothing) is the default table, `raw` its own layout;
    // `-v` prints its fixed sections whatever the format.
    let out = match a
        .format
        .as_deref()
        .filter(|f| !f.is_empty() && *f != "table")
    {
        _ if a.verbose => verbose(&du),
        None => summary(&du),
        Some("raw") => formatted_summary(&du, RAW_FORMAT)?,
        Some(f) => formatted_summary(&du, f)?,
    };
    print!("{out}");
    Ok(0)
}

/// docker's `raw` layout of the summary: one block per row, blank line after each.
const RAW_FORMAT: &str = "type: {{.Type}}\ntotal: {{.TotalCount}}\nactive: {{.Active}}\nsize: {{.Size}}\nreclaimable: {{.Reclaimable}}\n";

/// The summary through a `--format` template; each row's fields are strings, as in docker's
/// disk-usage contexts (whose `{{json .}}` lists them sorted, being a map).
fn formatted_summary(du: &DiskUsage, format: &str) -> Result<String, Failure> {
    let title = |f: &str| {
        match f {
            "Type" => "TYPE",
            "TotalCount" => "TOTAL",
            "Active" => "ACTIVE",
            "Size" => "SIZE",
            "Reclaimable" => "RECLAIMABLE",
            _ => "",
        }
        .to_string()
    };
    // Every row fails alike on a bad field; docker's first row is the images context.
    let mut printer = ListPrinter::new(format, "*formatter.diskUsageImagesContext", &title)?;
    for [typ, total, active, size, reclaimable] in summary_rows(du) {
        let s = Value::String;
        let row = Value::Object(vec![
            ("Active".into(), s(active)),
            ("Reclaimable".into(), s(reclaimable)),
            ("Size".into(), s(size)),
            ("TotalCount".into(), s(total)),
            ("Type".into(), s(typ)),
        ]);
        printer.row(&row, &listing::no_methods)?;
    }
    Ok(printer.finish())
}

/// docker's confirmation for `system prune`: what goes, and the filters that narrow it.
fn prune_warning(a: &PruneArgs) -> String {
    let mut warnings = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        warnings.push("all volumes not used by at least one container");
    }
    if a.all {
        // docker 20.10 lists the build cache too (it prunes it last; berth keeps none).
        warnings.extend([
            "all images without at least one container associated to them",
            "all build cache",
        ]);
    } else {
        warnings.extend(["all dangling images", "all dangling build cache"]);
    }
    let mut out = String::from("WARNING! This will remove:\n");
    for w in warnings {
        out.push_str(&format!("  - {w}\n"));
    }
    // docker names only these keys, sorted naturally.
    let mut filters: Vec<&String> = a
        .filter
        .iter()
        .filter(|f| {
            ["label", "label!", "until"]
                .iter()
                .any(|k| f.split_once('=').is_some_and(|(key, _)| key == *k))
        })
        .collect();
    filters.sort_by(|x, y| natural_cmp(x, y));
    if !filters.is_empty() {
        out.push_str("\n  Items to be pruned will be filtered with:\n");
        for f in filters {
            out.push_str(&format!("  - {f}\n"));
        }
    }
    out
}

/// Natural order as docker's `sortorder.NaturalLess`: digit runs compare as numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
    while let (Some(&c), Some(&d)) = (x.first(), y.first()) {
        if c.is_ascii_digit() && d.is_ascii_digit() {
            let (n, m) = (digits(x), digits(y));
            let (p, q) = (
                std::str::from_utf8(&x[..n]).unwrap_or(""),
                std::str::from_utf8(&y[..m]).unwrap_or(""),
            );
            let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
            let ord = p.len().cmp(&q.len()).then(p.cmp(q));
            if ord.is_ne() {
                return ord;
            }
            (x, y) = (&x[n..], &y[m..]);
        } else {
            if c != d {
                return c.cmp(&d);
            }
            (x, y) = (&x[1..], &y[1..]);
        }
    }
    x.len().cmp(&y.len())
}

/// POSTs a prune with `filters`; the daemon's answer.
async fn prune_call<T: serde::de::DeserializeOwned>(
    client: &Client,
    what: &str,
    filters: &[String],
) -> Result<T, Failure> {
    let q = if filters.is_empty() {
        String::new()
    } else {
        client::query(&[("filters", filters_json(filters)?)])
    };
    Ok(client
        .json(Method::POST, &format!("/{what}/prune{q}"), client::empty())
        .await?)
}

/// `Deleted <Kind>:` and one line per name, or nothing.
fn deleted_block(kind: &str, names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let mut out = format!("Deleted {kind}:\n");
    for n in names {
        out.push_str(n);
        out.push('\n');
    }
    out
}

/// `system prune`: containers, networks, (volumes,) images, in docker's order, each
/// block printed as it comes and the total at the end.
async fn prune(client: &Client, a: PruneArgs) -> CmdResult {
    if a.volumes
        && a.filter
            .iter()
            .any(|f| f.split_once('=').is_some_and(|(k, _)| k == "until"))
    {
        return Err(Failure::new(
            1,
            r#"ERROR: The "until" filter is not supported with "--volumes""#,
        ));
    }
    if !a.force && !crate::flags::confirm(&prune_warning(&a)) {
        return Ok(0);
    }
    let print_block = |out: &str| {
        if !out.is_empty() {
            println!("{out}");
        }
    };
    let (mut total, out) = container::prune_request(client, &a.filter).await?;
    print_block(&out);

    let resp: NetworkPruneResponse = prune_call(client, "networks", &a.filter).await?;
    print_block(&deleted_block(
        "Networks",
        resp.networks_deleted.as_deref().unwrap_or_default(),
    ));

    if a.volumes {
        // API 1.41: without `all`, every unused volume goes, named ones too (docker 20.10).
        let resp: VolumePruneResponse = prune_call(client, "volumes", &a.filter).await?;
        let deleted = resp.volumes_deleted.unwrap_or_default();
        if !deleted.is_empty() {
            total += resp.space_reclaimed.unwrap_or(0).max(0) as u64;
        }
        print_block(&deleted_block("Volumes", &deleted));
    }

    let mut filters = a.filter.clone();
    if a.all {
        filters.push("dangling=false".into());
    }
    let resp: ImagePruneResponse = prune_call(client, "images", &filters).await?;
    if resp.images_deleted.as_ref().is_some_and(|d| !d.is_empty()) {
        total += resp.space_reclaimed.unwrap_or(0).max(0) as u64;
        let report = image::prune_report(&resp);
        // The images block without the total line, which comes once at the end.
        print!(
            "{}",
            report
                .split("Total reclaimed space:")
                .next()
                .unwrap_or_default()
        );
    }
    // Last, as docker: the build cache (berthd's is the build context store).
    let mut q = Vec::new();
    if a.all {
        q.push(("all", "1".to_string()));
    }
    if !a.filter.is_empty() {
        q.push(("filters", filters_json(&a.filter)?));
    }
    let resp: BuildCachePruneResponse = client
        .json(
            Method::POST,
            &format!("/build/prune{}", client::query(&q)),
            client::empty(),
        )
        .await?;
    // Docker counts the reclaimed space whether or not the daemon lists what it deleted.
    total += resp.space_reclaimed.unwrap_or(0).max(0) as u64;
    let deleted = resp.caches_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        print_block(&format!(
            "Deleted build cache objects:\n{}",
            deleted.iter().map(|d| format!("{d}\n")).collect::<String>()
        ));
    }
    println!(
        "Total reclaimed space: {}",
        format::human_size(total as i64, 4)
    );
    Ok(0)
}

/// go-units' `HumanSize`: 4 significant digits.
fn hs(bytes: i64) -> String {
    format::human_size(bytes, 4)
}

/// `SIZE (NN%)` as docker's RECLAIMABLE column, the percentage only when there is a total.
fn reclaimable(reclaim: i64, total: i64) -> String {
    if total > 0 {
        format!("{} ({}%)", hs(reclaim), reclaim * 100 / total)
    } else {
        hs(reclaim)
    }
}

fn is_active(state: &str) -> bool {
    ["running", "paused", "restarting"]
        .iter()
        .any(|s| state.contains(s))
}

/// The four-row summary table.
fn summary(du: &DiskUsage) -> String {
    let mut t = Table::new();
    t.row(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    for row in summary_rows(du) {
        t.row(row);
    }
    t.render()
}

/// The summary's rows: type, total, active, size, reclaimable.
fn summary_rows(du: &DiskUsage) -> Vec<[String; 5]> {
    let images = du.images.as_deref().unwrap_or_default();
    let containers = du.containers.as_deref().unwrap_or_default();
    let volumes = du.volumes.as_deref().unwrap_or_default();
    let cache = du.build_cache.as_deref().unwrap_or_default();
    let mut rows = Vec::new();

    let used: i64 = images
        .iter()
        .filter(|i| i.containers != 0 && i.size != -1 && i.shared_size != -1)
        .map(|i| i.size - i.shared_size)
        .sum();
    let active = images.iter().filter(|i| i.containers > 0).count();
    rows.push([
        "Images".to_string(),
        images.len().to_string(),
        active.to_string(),
        hs(du.layers_size),
        reclaimable(du.layers_size - used, du.layers_size),
    ]);

    let total: i64 = containers.iter().map(|c| c.size_rw).sum();
    let idle: i64 = containers
        .iter()
        .filter(|c| !is_active(&c.state))
        .map(|c| c.size_rw)
        .sum();
    let active = containers.iter().filter(|c| is_active(&c.state)).count();
    rows.push([
        "Containers".to_string(),
        containers.len().to_string(),
        active.to_string(),
        hs(total),
        reclaimable(idle, total),
    ]);

    let usage = |v: &DfVolume| {
        v.usage_data
            .as_ref()
            .map(|u| (u.size, u.ref_count))
            .unwrap_or((-1, -1))
    };
    let total: i64 = volumes
        .iter()
        .map(usage)
        .filter(|(s, _)| *s != -1)
        .map(|(s, _)| s)
        .sum();
    let unused: i64 = volumes
        .iter()
        .map(usage)
        .filter(|(s, r)| *s != -1 && *r == 0)
        .map(|(s, _)| s)
        .sum();
    let active = volumes.iter().map(usage).filter(|(_, r)| *r > 0).count();
    rows.push([
        "Local Volumes".to_string(),
        volumes.len().to_string(),
        active.to_string(),
        hs(total),
        reclaimable(unused, total),
    ]);

    let total: i64 = cache.iter().filter(|c| !c.shared).map(|c| c.size).sum();
    let in_use: i64 = cache
        .iter()
        .filter(|c| c.in_use && !c.shared)
        .map(|c| c.size)
        .sum();
    let active = cache.iter().filter(|c| c.in_use).count();
    rows.push([
        "Build Cache".to_string(),
        cache.len().to_string(),
        active.to_string(),
        hs(total),
        hs(total - in_use),
    ]);
    rows
}

/// `busybox:latest` → (`busybox`, `latest`); untagged or dangling → `<none>`s.
fn repo_tag(tags: &[String]) -> (String, String) {
    let none = || ("<none>".to_string(), "<none>".to_string());
    let Some(first) = tags.first().filter(|t| t.as_str() != "<none>:<none>") else {
        return none();
    };
    let slash = first.rfind('/').map(|i| i + 1).unwrap_or(0);
    match first[slash..].rfind(':') {
        Some(i) => (
            first[..slash + i].to_string(),
            first[slash + i + 1..].to_string(),
        ),
        None => none(),
    }
}

/// The per-image, per-container, per-volume and build-cache sections of `-v`.
fn verbose(du: &DiskUsage) -> String {
    let mut out = String::from("Images space usage:\n\n");
    let mut t = Table::new();
    t.row([
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "SHARED SIZE",
        "UNIQUE SIZE",
        "CONTAINERS",
    ]);
    for i in du.images.as_deref().unwrap_or_default() {
        let (repo, tag) = repo_tag(i.repo_tags.as_deref().unwrap_or_default());
        let (shared, unique) = if i.shared_size == -1 {
            ("N/A".to_string(), "N/A".to_string())
        } else {
            (hs(i.shared_size), hs(i.size - i.shared_size))
        };
        t.row([
            repo,
            tag,
            format::short_id(&i.id),
            format::ago(i.created),
            // docker 20.10 shows `{{.VirtualSize}}` here, in go-units' 4 digits.
            hs(i.size),
            shared,
            unique,
            i.containers.to_string(),
        ]);
    }
    out.push_str(&t.render());

    out.push_str("\nContainers space usage:\n\n");
    let mut t = Table::new();
    t.row([
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "LOCAL VOLUMES",
        "SIZE",
        "CREATED",
        "STATUS",
        "NAMES",
    ]);
    for c in du.containers.as_deref().unwrap_or_default() {
        let image = if c.image.starts_with("sha256:") {
            format::short_id(&c.image)
        } else {
            c.image.split('@').next().unwrap_or_default().to_string()
        };
        let volumes = c
            .mounts
            .iter()
            .flatten()
            .filter(|m| m.driver.as_deref() == Some("local"))
            .count();
        let names: Vec<&str> = c
            .names
            .iter()
            .flatten()
            .map(|n| n.trim_start_matches('/'))
            .filter(|n| !n.contains('/'))
            .collect();
        t.row([
            format::short_id(&c.id),
            image,
            go_quote(&format::ellipsis(&c.command, 20)),
            volumes.to_string(),
            format::human_size(c.size_rw, 3),
            format::ago(c.created),
            c.status.clone(),
            names.join(","),
        ]);
    }
    out.push_str(&t.render());

    out.push_str("\nLocal Volumes space usage:\n\n");
    let mut t = Table::new();
    t.row(["VOLUME NAME", "LINKS", "SIZE"]);
    for v in du.volumes.as_deref().unwrap_or_default() {
        let (size, links) = match &v.usage_data {
            Some(u) if u.size != -1 => (hs(u.size), u.ref_count.to_string()),
            Some(u) => ("N/A".to_string(), u.ref_count.to_string()),
            None => ("N/A".to_string(), "N/A".to_string()),
        };
        t.row([v.name.clone(), links, size]);
    }
    out.push_str(&t.render());

    let cache = du.build_cache.as_deref().unwrap_or_default();
    let builder_size: i64 = cache.iter().filter(|c| !c.shared).map(|c| c.size).sum();
    out.push_str(&format!("\nBuild cache usage: {}\n\n", hs(builder_size)));
    let mut t = Table::new();
    t.row([
        "CACHE ID",
        "CACHE TYPE",
        "SIZE",
        "CREATED",
        "LAST USED",
        "USAGE",
        "SHARED",
    ]);
    let since = |ts: &str| {
        chrono::DateTime::parse_from_rfc3339(ts)
            .map(|t| format::ago(t.timestamp()))
            .unwrap_or_default()
    };
    for c in cache {
        t.row([
            c.id.chars().take(12).collect::<String>(),
            c.typ.clone(),
            format::human_size(c.size, 3),
            since(&c.created_at),
            c.last_used_at.as_deref().map(since).unwrap_or_default(),
            c.usage_count.to_string(),
            c.shared.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DiskUsage {
        serde_json::from_str(
            r#"{"LayersSize":3968373,
                "Images":[{"Id":"sha256:940f4176874e21d3","RepoTags":["berth-bench/busybox:latest"],"Created":0,"Size":1984241,"SharedSize":0,"Containers":0},
                          {"Id":"sha256:5d29bc371fc299d3","RepoTags":["busybox:latest"],"Created":0,"Size":1984132,"SharedSize":0,"Containers":1}],
                "Containers":[{"Id":"72b329712ee85c7cb7","Names":["/dfc"],"Image":"busybox","Command":"sh -c 'head -c 3000000 /dev/zero'","Created":0,
                               "State":"exited","Status":"Exited (0) 5 seconds ago","SizeRw":3000000,"SizeRootFs":4984132,"Mounts":[{"Type":"volume","Driver":"local"}]}],
                "Volumes":[{"Name":"dfvol","Driver":"local","UsageData":{"RefCount":1,"Size":2000000}}],
                "BuildCache":null,"BuilderSize":0}"#,
        )
        .unwrap()
    }

    #[test]
    fn summary_matches_docker() {
        // What docker 28's CLI printed for this answer from Docker 20.10.
        assert_eq!(
            summary(&sample()),
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n\
             Images          2         1         3.968MB   1.984MB (50%)\n\
             Containers      1         0         3MB       3MB (100%)\n\
             Local Volumes   1         1         2MB       0B (0%)\n\
             Build Cache     0         0         0B        0B\n"
        );
        assert_eq!(
            summary(&DiskUsage::default()).lines().nth(1),
            Some("Images          0         0         0B        0B")
        );
    }

    #[test]
    fn verbose_sections_match_docker() {
        let out = verbose(&sample());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "Images space usage:");
        assert!(
            lines[2].starts_with("REPOSITORY            TAG       IMAGE ID       CREATED "),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].ends_with("SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].starts_with("berth-bench/busybox   latest    940f4176874e   "),
            "{}",
            lines[3]
        );
        // docker 20.10 (the CLI berth answers like) prints these image and volume sizes
        // with 4 digits: it shows `{{.VirtualSize}}` and go-units' `HumanSize`.
        assert!(
            lines[3].ends_with("1.984MB   0B            1.984MB       0"),
            "{}",
            lines[3]
        );
        assert_eq!(lines[6], "Containers space usage:");
        assert!(
            lines[9].starts_with(
                "72b329712ee8   busybox   \"sh -c 'head -c 3000…\"   1               3MB       "
            ),
            "{}",
            lines[9]
        );
        assert!(
            lines[9].ends_with("Exited (0) 5 seconds ago   dfc"),
            "{}",
            lines[9]
        );
        assert_eq!(
            &lines[11..],
            [
                "Local Volumes space usage:",
                "",
                "VOLUME NAME   LINKS     SIZE",
                "dfvol         1         2MB",
                "",
                "Build cache usage: 0B",
                "",
                "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED",
            ]
        );
    }

    #[test]
    fn prune_warning_as_docker_20_10() {
        let args = |all, volumes, filter: &[&str]| PruneArgs {
            all,
            volumes,
            force: false,
            filter: filter.iter().map(|f| f.to_string()).collect(),
        };
        assert_eq!(
            prune_warning(&args(false, false, &[])),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - all dangling build cache\n"
        );
        // Only label, label! and until are named, in natural order.
        let w = prune_warning(&args(
            true,
            true,
            &["label=a10", "foo=x", "until=1h", "label!=b", "label=a9"],
        ));
        assert!(w.ends_with("  - all build cache\n\n  Items to be pruned will be filtered with:\n  - label!=b\n  - label=a9\n  - label=a10\n  - until=1h\n"), "{w}");
        assert!(w.contains("  - all volumes not used by at least one container\n  - all images without at least one container associated to them\n"));
    }

    #[test]
    fn df_format_rows_as_docker() {
        let out = formatted_summary(&sample(), "{{.Type}}: {{.Reclaimable}}").unwrap();
        assert_eq!(out, "Images: 1.984MB (50%)\nContainers: 3MB (100%)\nLocal Volumes: 0B (0%)\nBuild Cache: 0B\n");
        let json = formatted_summary(&sample(), "{{json .}}").unwrap();
        assert_eq!(
            json.lines().nth(3),
            Some(
                r#"{"Active":"0","Reclaimable":"0B","Size":"0B","TotalCount":"0","Type":"Build Cache"}"#
            )
        );
        let e = formatted_summary(&sample(), "{{.Nope}}").unwrap_err();
        assert_eq!(e.message, "template parsing error: template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type *formatter.diskUsageImagesContext");
    }

    #[test]
    fn repo_and_tag_split_like_docker() {
        assert_eq!(
            repo_tag(&["localhost:5000/a/b:v1".into()]),
            ("localhost:5000/a/b".into(), "v1".into())
        );
        assert_eq!(repo_tag(&[]), ("<none>".into(), "<none>".into()));
        assert_eq!(
            repo_tag(&["<none>:<none>".into()]),
            ("<none>".into(), "<none>".into())
        );
    }
}
