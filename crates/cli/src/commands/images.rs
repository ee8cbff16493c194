//! `berth images` (and `berth image ls`): lists images in docker's table, or through a
//! `--format` template.

use std::collections::BTreeMap;

use berth_api::models::ImageSummary;
use clap::Args;

use crate::client::{self, Client};
use crate::commands::ps::{filters_json, go_time};
use crate::commands::{CmdResult, Failure};
use crate::format;
use crate::json::Value;
use crate::listing::{no_methods, ListPrinter};

/// `berth images`
#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Show digests
    #[arg(long = "digests")]
    pub digests: bool,
    /// Only show image IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print images using a Go template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

const DEFAULT_FORMAT: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const DIGEST_FORMAT: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// Column titles docker prints for each field of the image context.
fn title(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID",
        "Repository" => "REPOSITORY",
        "Tag" => "TAG",
        "Digest" => "DIGEST",
        "CreatedSince" => "CREATED",
        "CreatedAt" => "CREATED AT",
        "Size" => "SIZE",
        "Containers" => "CONTAINERS",
        // docker 20.10 titles the virtual size as plain SIZE.
        "VirtualSize" => "SIZE",
        "SharedSize" => "SHARED SIZE",
        "UniqueSize" => "UNIQUE SIZE",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// One output row: an image under one repository, tag and digest.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub repo: String,
    pub tag: String,
    pub digest: String,
}

/// Splits `repo:tag` (the tag is after the last colon that is not part of a registry host).
fn split_tag(r: &str) -> (String, String) {
    match r.rfind(':') {
        Some(i) if !r[i..].contains('/') => (r[..i].to_string(), r[i + 1..].to_string()),
        _ => (r.to_string(), "<none>".to_string()),
    }
}

fn is_dangling(img: &ImageSummary) -> bool {
    let none = |v: &[String], n: &str| v.is_empty() || (v.len() == 1 && v[0] == n);
    none(&img.repo_tags, "<none>:<none>") && none(&img.repo_digests, "<none>@<none>")
}

/// docker's rows for one image: a row per tag (per tag and digest with `--digests`), then
/// rows for repositories known only by digest; `<none>` everything for a dangling image.
pub fn rows(img: &ImageSummary, show_digests: bool) -> Vec<Row> {
    if is_dangling(img) {
        return vec![Row {
            repo: "<none>".into(),
            tag: "<none>".into(),
            digest: "<none>".into(),
        }];
    }
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in img
        .repo_tags
        .iter()
        .filter(|t| t.as_str() != "<none>:<none>")
    {
        let (repo, tag) = split_tag(t);
        tags.entry(repo).or_default().push(tag);
    }
    let mut digests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in img
        .repo_digests
        .iter()
        .filter(|d| d.as_str() != "<none>@<none>")
    {
        if let Some((repo, dgst)) = d.split_once('@') {
            digests
                .entry(repo.to_string())
                .or_default()
                .push(dgst.to_string());
        }
    }
    let mut out = Vec::new();
    for (repo, repo_tags) in tags {
        let ds = digests
            .remove(&repo)
            .filter(|_| show_digests)
            .unwrap_or_default();
        for tag in repo_tags {
            if ds.is_empty() {
                out.push(Row {
                    repo: repo.clone(),
                    tag,
                    digest: "<none>".into(),
                });
            } else {
                for d in &ds {
                    out.push(Row {
                        repo: repo.clone(),
                        tag: tag.clone(),
                        digest: d.clone(),
                    });
                }
            }
        }
    }
    for (repo, ds) in digests {
        if show_digests {
            for d in ds {
                out.push(Row {
                    repo: repo.clone(),
                    tag: "<none>".into(),
                    digest: d,
                });
            }
        } else {
            out.push(Row {
                repo,
                tag: "<none>".into(),
                digest: String::new(),
            });
        }
    }
    out
}

/// The template context of one row, with docker's field names (sorted, as `{{json .}}`
/// marshals docker's map).
pub fn context(img: &ImageSummary, virtual_size: i64, row: &Row, trunc: bool) -> Value {
    let s = |v: String| Value::String(v);
    let id = if trunc {
        format::short_id(&img.id)
    } else {
        img.id.clone()
    };
    let na_or = |v: i64, f: &dyn Fn(i64) -> String| if v == -1 { "N/A".to_string() } else { f(v) };
    Value::Object(vec![
        (
            "Containers".into(),
            s(na_or(img.containers, &|v| v.to_string())),
        ),
        ("CreatedAt".into(), s(go_time(img.created))),
        ("CreatedSince".into(), s(format::ago(img.created))),
        ("Digest".into(), s(row.digest.clone())),
        ("ID".into(), s(id)),
        ("Repository".into(), s(row.repo.clone())),
        (
            "SharedSize".into(),
            s(na_or(img.shared_size, &|v| format::human_size(v, 4))),
        ),
        ("Size".into(), s(format::human_size(img.size, 3))),
        ("Tag".into(), s(row.tag.clone())),
        (
            "UniqueSize".into(),
            s(if img.shared_size == -1 {
                "N/A".into()
            } else {
                format::human_size(virtual_size - img.shared_size, 4)
            }),
        ),
        ("VirtualSize".into(), s(format::human_size(virtual_size, 4))),
    ])
}

/// A list entry as API 1.41 sends it: the summary plus `VirtualSize`.
#[derive(serde::Deserialize)]
struct Listed {
    #[serde(flatten)]
    summary: ImageSummary,
    #[serde(rename = "VirtualSize", default)]
    virtual_size: Option<i64>,
}

/// `berth images`
pub async fn run(client: &Client, args: ImagesArgs) -> CmdResult {
    let mut filters = args.filter.clone();
    if let Some(r) = &args.reference {
        filters.push(format!("reference={r}"));
    }
    let mut q = Vec::new();
    if args.all {
        q.push(("all", "1".to_string()));
    }
    if !filters.is_empty() {
        q.push(("filters", filters_json(&filters)?));
    }
    let list: Vec<Listed> = client
        .get(&format!("/images/json{}", client::query(&q)))
        .await?;
    let fmt = match args.format.as_deref() {
        _ if args.quiet => "{{.ID}}",
        Some(f) if !f.is_empty() && f != "table" => f,
        _ if args.digests => DIGEST_FORMAT,
        _ => DEFAULT_FORMAT,
    };
    print!(
        "{}",
        render(
            &list,
            fmt,
            args.digests || fmt.contains(".Digest"),
            !args.no_trunc
        )?
    );
    Ok(0)
}

fn render(list: &[Listed], fmt: &str, show_digests: bool, trunc: bool) -> Result<String, Failure> {
    let mut out = ListPrinter::new(fmt, "*formatter.imageContext", &title)?;
    for item in list {
        let img = &item.summary;
        let vsize = item.virtual_size.unwrap_or(img.size);
        for row in rows(img, show_digests) {
            out.row(&context(img, vsize, &row, trunc), &no_methods)?;
        }
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(tags: &[&str], digests: &[&str]) -> Listed {
        Listed {
            summary: ImageSummary {
                id: "sha256:5d29bc371fc299d3349b34c8eb08e5661425b71fd39af5c58a38848f24dd7f61"
                    .into(),
                repo_tags: tags.iter().map(|s| s.to_string()).collect(),
                repo_digests: digests.iter().map(|s| s.to_string()).collect(),
                created: 0,
                size: 1_984_132,
                shared_size: -1,
                containers: -1,
                ..Default::default()
            },
            virtual_size: Some(1_984_132),
        }
    }

    #[test]
    fn table_rows_like_docker() {
        let list = [
            img(&["busybox:latest", "localhost:5000/bb:v1"], &[]),
            img(&["<none>:<none>"], &["<none>@<none>"]),
        ];
        let out = render(&list, DEFAULT_FORMAT, false, true).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("REPOSITORY          TAG       IMAGE ID       CREATED"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("busybox             latest    5d29bc371fc2   "),
            "{out}"
        );
        assert!(lines[1].ends_with("1.98MB"), "{out}");
        assert!(
            lines[2].starts_with("localhost:5000/bb   v1        5d29bc371fc2"),
            "{out}"
        );
        assert!(
            lines[3].starts_with("<none>              <none>    5d29bc371fc2"),
            "{out}"
        );
    }

    #[test]
    fn digests_column_and_plain_templates() {
        let list = [img(&["busybox:latest"], &["busybox@sha256:abc"])];
        let out = render(&list, DIGEST_FORMAT, true, true).unwrap();
        assert!(
            out.lines()
                .next()
                .unwrap()
                .starts_with("REPOSITORY   TAG       DIGEST       IMAGE ID"),
            "{out}"
        );
        assert!(out.contains("latest    sha256:abc   "), "{out}");
        let out = render(
            &list,
            "{{.Repository}}:{{.Tag}} {{.ID}} {{.VirtualSize}}",
            false,
            false,
        )
        .unwrap();
        assert_eq!(out, "busybox:latest sha256:5d29bc371fc299d3349b34c8eb08e5661425b71fd39af5c58a38848f24dd7f61 1.984MB\n");
        let out = render(&list, "{{json .}}", false, true).unwrap();
        assert!(
            out.starts_with(r#"{"Containers":"N/A","CreatedAt":"#),
            "{out}"
        );
        assert!(out.contains(r#""Digest":"\u003cnone\u003e","ID":"5d29bc371fc2","Repository":"busybox","SharedSize":"N/A","Size":"1.98MB","Tag":"latest","UniqueSize":"N/A","VirtualSize":"1.984MB"}"#), "{out}");
    }

    #[test]
    fn quiet_keeps_one_line_per_row() {
        let list = [img(&["a:1", "b:2"], &[])];
        assert_eq!(
            render(&list, "{{.ID}}", false, true).unwrap(),
            "5d29bc371fc2\n5d29bc371fc2\n"
        );
    }
}
