//! `berth image`: docker's management command, whose subcommands are the image commands
//! under their short names (`image ls` is `images`, `image rm` is `rmi`), plus `prune`.

use berth_api::models::ImagePruneResponse;
use clap::{Args, Subcommand};
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::ps::filters_json;
use crate::commands::{
    build, history, images, import, inspect, load, pull, push, rmi, save, tag, CmdResult,
};
use crate::format;

/// `berth image`
#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ImageCommand {
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// List images
    #[command(alias = "list", alias = "images")]
    Ls(images::ImagesArgs),
    /// Remove one or more images
    #[command(alias = "rmi", alias = "remove")]
    Rm(rmi::RmiArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(import::ImportArgs),
    /// Load an image from a tar archive or STDIN
    Load(load::LoadArgs),
    /// Pull an image or a repository from a registry
    Pull(pull::PullArgs),
    /// Push an image or a repository to a registry
    Push(push::PushArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::SaveArgs),
}

/// `berth image inspect`
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,
    /// The images to inspect
    #[arg(required = true, value_name = "IMAGE")]
    pub names: Vec<String>,
}

/// `berth image prune`
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Provide filter values (e.g. 'until=<timestamp>')
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}

/// `berth image …`
pub async fn run(client: &Client, args: ImageArgs) -> CmdResult {
    match args.command {
        ImageCommand::Build(mut a) => {
            a.command = "image build";
            build::run(client, a).await
        }
        ImageCommand::Ls(a) => images::run(client, a).await,
        ImageCommand::Rm(a) => rmi::run(client, a).await,
        ImageCommand::Inspect(a) => {
            let a = inspect::InspectArgs {
                format: a.format,
                kind: Some("image".into()),
                size: false,
                names: a.names,
            };
            inspect::run(client, a).await
        }
        ImageCommand::History(a) => history::run(client, a).await,
        ImageCommand::Prune(a) => prune(client, a).await,
        ImageCommand::Tag(a) => tag::run(client, a).await,
        ImageCommand::Import(a) => import::run(client, a).await,
        ImageCommand::Load(a) => load::run(client, a).await,
        ImageCommand::Pull(a) => pull::run(client, a).await,
        ImageCommand::Push(a) => push::run(client, a).await,
        ImageCommand::Save(a) => save::run(client, a).await,
    }
}

/// What `image prune` prints for the daemon's answer, as docker does.
pub fn prune_report(resp: &ImagePruneResponse) -> String {
    let mut out = String::new();
    let deleted = resp.images_deleted.clone().unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for d in &deleted {
            if let Some(u) = &d.untagged {
                out.push_str(&format!("untagged: {u}\n"));
            }
            if let Some(id) = &d.deleted {
                out.push_str(&format!("deleted: {id}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        format::human_size(resp.space_reclaimed.unwrap_or(0), 4)
    ));
    out
}

async fn prune(client: &Client, a: PruneArgs) -> CmdResult {
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("dangling=false".into());
    }
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        if !crate::flags::confirm(warning) {
            // docker 20.10 still prints the (zero) total when the prompt is declined.
            println!("Total reclaimed space: 0B");
            return Ok(0);
        }
    }
    let q = if filters.is_empty() {
        String::new()
    } else {
        client::query(&[("filters", filters_json(&filters)?)])
    };
    let resp: ImagePruneResponse = client
        .json(Method::POST, &format!("/images/prune{q}"), client::empty())
        .await?;
    print!("{}", prune_report(&resp));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::ImageDeleteResponseItem;

    #[test]
    fn prune_report_like_docker() {
        let empty = ImagePruneResponse {
            images_deleted: None,
            space_reclaimed: Some(0),
        };
        assert_eq!(prune_report(&empty), "Total reclaimed space: 0B\n");
        let some = ImagePruneResponse {
            images_deleted: Some(vec![
                ImageDeleteResponseItem {
                    untagged: Some("bb:x".into()),
                    deleted: None,
                },
                ImageDeleteResponseItem {
                    untagged: None,
                    deleted: Some("sha256:abc".into()),
                },
            ]),
            space_reclaimed: Some(1_984_132),
        };
        assert_eq!(
            prune_report(&some),
            "Deleted Images:\nuntagged: bb:x\ndeleted: sha256:abc\n\nTotal reclaimed space: 1.984MB\n"
        );
    }
}
