//! `berth commit`: makes an image of a container's changes and prints its ID.

use clap::Args;
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::create::split_image;
use crate::commands::run::parse_go_bool;
use crate::commands::{CmdResult, Failure};

/// `berth commit`
#[derive(Debug, Clone, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long = "author", value_name = "string")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long = "message", value_name = "string")]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(
        short = 'p',
        long = "pause",
        value_name = "bool",
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        value_parser = parse_go_bool
    )]
    pub pause: bool,
    /// The container to commit
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The new image's name
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

#[derive(serde::Deserialize)]
struct IdResponse {
    #[serde(rename = "Id")]
    id: String,
}

/// `berth commit`
pub async fn run(client: &Client, args: CommitArgs) -> CmdResult {
    let mut q = vec![("container", args.container.clone())];
    if let Some(r) = &args.reference {
        let (repo, tag) = split_image(r);
        q.push(("repo", repo));
        q.push(("tag", tag));
    }
    q.push(("comment", args.message.clone().unwrap_or_default()));
    q.push(("author", args.author.clone().unwrap_or_default()));
    for c in &args.change {
        q.push(("changes", c.clone()));
    }
    if !args.pause {
        q.push(("pause", "0".to_string()));
    }
    let path = format!("/commit{}", client::query(&q));
    let answer: IdResponse = client
        .json(Method::POST, &path, client::empty())
        .await
        .map_err(reference_error)?;
    println!("{}", answer.id);
    Ok(0)
}

/// docker checks the name before it asks the daemon and says what is wrong without
/// "Error response from daemon"; berth leaves the checking to the daemon and shows its
/// answer for a bad name the same way.
fn reference_error(e: ClientError) -> Failure {
    match &e {
        ClientError::Api { status, message }
            if status.as_u16() == 400
                && (message.starts_with("invalid reference format")
                    || message.starts_with("refusing to create a tag with a digest reference")) =>
        {
            Failure::new(1, message.clone())
        }
        _ => e.into(),
    }
}
