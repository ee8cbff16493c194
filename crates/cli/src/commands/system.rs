//! `berth system df [-v]`: disk usage, printed as docker's `system df` prints it.

use clap::{Args, Subcommand};
use serde::Deserialize;

use crate::client::Client;
use crate::commands::ps::go_quote;
use crate::commands::CmdResult;
use crate::format::{self, Table};

/// `berth system`
#[derive(Debug, Args)]
pub struct SystemArgs {
    #[command(subcommand)]
    pub command: SystemCommand,
}

/// docker's system subcommands that berth implements.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
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
    }
}

async fn df(client: &Client, a: DfArgs) -> CmdResult {
    let du: DiskUsage = client.get("/system/df").await?;
    let out = if a.verbose { verbose(&du) } else { summary(&du) };
    print!("{out}");
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
    ["running", "paused", "restarting"].iter().any(|s| state.contains(s))
}

/// The four-row summary table.
fn summary(du: &DiskUsage) -> String {
    let images = du.images.as_deref().unwrap_or_default();
    let containers = du.containers.as_deref().unwrap_or_default();
    let volumes = du.volumes.as_deref().unwrap_or_default();
    let cache = du.build_cache.as_deref().unwrap_or_default();
    let mut t = Table::new();
    t.row(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);

    let used: i64 = images
        .iter()
        .filter(|i| i.containers != 0 && i.size != -1 && i.shared_size != -1)
        .map(|i| i.size - i.shared_size)
        .sum();
    let active = images.iter().filter(|i| i.containers > 0).count();
    t.row([
        "Images".to_string(),
        images.len().to_string(),
        active.to_string(),
        hs(du.layers_size),
        reclaimable(du.layers_size - used, du.layers_size),
    ]);

    let total: i64 = containers.iter().map(|c| c.size_rw).sum();
    let idle: i64 = containers.iter().filter(|c| !is_active(&c.state)).map(|c| c.size_rw).sum();
    let active = containers.iter().filter(|c| is_active(&c.state)).count();
    t.row([
        "Containers".to_string(),
        containers.len().to_string(),
        active.to_string(),
        hs(total),
        reclaimable(idle, total),
    ]);

    let usage = |v: &DfVolume| v.usage_data.as_ref().map(|u| (u.size, u.ref_count)).unwrap_or((-1, -1));
    let total: i64 = volumes.iter().map(usage).filter(|(s, _)| *s != -1).map(|(s, _)| s).sum();
    let unused: i64 = volumes.iter().map(usage).filter(|(s, r)| *s != -1 && *r == 0).map(|(s, _)| s).sum();
    let active = volumes.iter().map(usage).filter(|(_, r)| *r > 0).count();
    t.row([
        "Local Volumes".to_string(),
        volumes.len().to_string(),
        active.to_string(),
        hs(total),
        reclaimable(unused, total),
    ]);

    let total: i64 = cache.iter().filter(|c| !c.shared).map(|c| c.size).sum();
    let in_use: i64 = cache.iter().filter(|c| c.in_use && !c.shared).map(|c| c.size).sum();
    let active = cache.iter().filter(|c| c.in_use).count();
    t.row([
        "Build Cache".to_string(),
        cache.len().to_string(),
        active.to_string(),
        hs(total),
        hs(total - in_use),
    ]);
    t.render()
}

/// `busybox:latest` → (`busybox`, `latest`); untagged or dangling → `<none>`s.
fn repo_tag(tags: &[String]) -> (String, String) {
    let none = || ("<none>".to_string(), "<none>".to_string());
    let Some(first) = tags.first().filter(|t| t.as_str() != "<none>:<none>") else { return none() };
    let slash = first.rfind('/').map(|i| i + 1).unwrap_or(0);
    match first[slash..].rfind(':') {
        Some(i) => (first[..slash + i].to_string(), first[slash + i + 1..].to_string()),
        None => none(),
    }
}

/// The per-image, per-container, per-volume and build-cache sections of `-v`.
fn verbose(du: &DiskUsage) -> String {
    let mut out = String::from("Images space usage:\n\n");
    let mut t = Table::new();
    t.row(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]);
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
    t.row(["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]);
    for c in du.containers.as_deref().unwrap_or_default() {
        let image = if c.image.starts_with("sha256:") {
            format::short_id(&c.image)
        } else {
            c.image.split('@').next().unwrap_or_default().to_string()
        };
        let volumes = c.mounts.iter().flatten().filter(|m| m.driver.as_deref() == Some("local")).count();
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
    t.row(["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]);
    let since = |ts: &str| {
        chrono::DateTime::parse_from_rfc3339(ts).map(|t| format::ago(t.timestamp())).unwrap_or_default()
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
        assert_eq!(summary(&DiskUsage::default()).lines().nth(1), Some("Images          0         0         0B        0B"));
    }

    #[test]
    fn verbose_sections_match_docker() {
        let out = verbose(&sample());
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "Images space usage:");
        assert!(lines[2].starts_with("REPOSITORY            TAG       IMAGE ID       CREATED "), "{}", lines[2]);
        assert!(lines[2].ends_with("SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS"), "{}", lines[2]);
        assert!(lines[3].starts_with("berth-bench/busybox   latest    940f4176874e   "), "{}", lines[3]);
        // docker 20.10 (the CLI berth answers like) prints these image and volume sizes
        // with 4 digits: it shows `{{.VirtualSize}}` and go-units' `HumanSize`.
        assert!(lines[3].ends_with("1.984MB   0B            1.984MB       0"), "{}", lines[3]);
        assert_eq!(lines[6], "Containers space usage:");
        assert!(lines[9].starts_with("72b329712ee8   busybox   \"sh -c 'head -c 3000…\"   1               3MB       "), "{}", lines[9]);
        assert!(lines[9].ends_with("Exited (0) 5 seconds ago   dfc"), "{}", lines[9]);
        assert_eq!(&lines[11..], [
            "Local Volumes space usage:",
            "",
            "VOLUME NAME   LINKS     SIZE",
            "dfvol         1         2MB",
            "",
            "Build cache usage: 0B",
            "",
            "CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED",
        ]);
    }

    #[test]
    fn repo_and_tag_split_like_docker() {
        assert_eq!(repo_tag(&["localhost:5000/a/b:v1".into()]), ("localhost:5000/a/b".into(), "v1".into()));
        assert_eq!(repo_tag(&[]), ("<none>".into(), "<none>".into()));
        assert_eq!(repo_tag(&["<none>:<none>".into()]), ("<none>".into(), "<none>".into()));
    }
}
