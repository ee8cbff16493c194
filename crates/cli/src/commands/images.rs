//! `berth images`: lists images in docker's table.

use std::collections::HashSet;

use berth_api::models::ImageSummary;
use clap::Args;

use crate::client::{self, Client};
use crate::commands::ps::filters_json;
use crate::commands::CmdResult;
use crate::format::{self, Table};

/// `berth images`
#[derive(Debug, Clone, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// One table row per repository:tag of `img` (or `<none>` rows when it has none).
fn rows(img: &ImageSummary) -> Vec<(String, String)> {
    let tags: Vec<&String> = img
        .repo_tags
        .iter()
        .filter(|t| t.as_str() != "<none>:<none>")
        .collect();
    if !tags.is_empty() {
        return tags
            .iter()
            .map(|t| match t.rfind(':') {
                Some(i) if !t[i..].contains('/') => (t[..i].to_string(), t[i + 1..].to_string()),
                _ => (t.to_string(), "<none>".to_string()),
            })
            .collect();
    }
    let digests: Vec<&String> = img
        .repo_digests
        .iter()
        .filter(|d| d.as_str() != "<none>@<none>")
        .collect();
    if let Some(d) = digests.first() {
        let repo = d.split('@').next().unwrap_or("<none>").to_string();
        return vec![(repo, "<none>".into())];
    }
    vec![("<none>".into(), "<none>".into())]
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
    let list: Vec<ImageSummary> = client
        .get(&format!("/images/json{}", client::query(&q)))
        .await?;
    let id_of = |img: &ImageSummary| {
        if args.no_trunc {
            img.id.clone()
        } else {
            format::short_id(&img.id)
        }
    };
    if args.quiet {
        let mut seen = HashSet::new();
        for img in &list {
            let id = id_of(img);
            if seen.insert(id.clone()) {
                println!("{id}");
            }
        }
        return Ok(0);
    }
    let mut t = Table::new();
    t.line("REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE");
    for img in &list {
        for (repo, tag) in rows(img) {
            t.row([
                repo,
                tag,
                id_of(img),
                format::ago(img.created),
                format::human_size(img.size, 3),
            ]);
        }
    }
    print!("{}", t.render());
    Ok(0)
}
