//! `berth push`: uploads an image (or every tag of a repository) to its registry, showing
//! the daemon's progress stream as docker does.

use clap::Args;
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::{CmdResult, Failure};
use crate::credentials;

/// `berth push`
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Push all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Skip image signing (berth never signs)
    #[arg(long = "disable-content-trust", default_value_t = true, action = clap::ArgAction::Set, value_name = "bool", hide = true)]
    pub disable_content_trust: bool,
    /// NAME[:TAG]
    pub name: String,
}

/// Splits "host:5000/repo:tag" into ("host:5000/repo", Some("tag")); a digest stays in the name.
fn split_tag(name: &str) -> (&str, Option<&str>) {
    if name.contains('@') {
        return (name, None);
    }
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    }
}

/// The full reference docker prints after a quiet push: "docker.io/library/x:latest".
fn full_reference(repo: &str, tag: &str) -> String {
    let domain = credentials::registry_domain(repo);
    let path = if repo.starts_with(&format!("{domain}/")) {
        repo[domain.len() + 1..].to_string()
    } else if domain == "docker.io" && !repo.contains('/') {
        format!("library/{repo}")
    } else {
        repo.to_string()
    };
    if tag.is_empty() {
        format!("{domain}/{path}")
    } else {
        format!("{domain}/{path}:{tag}")
    }
}

/// `berth push`
pub async fn run(client: &Client, args: PushArgs) -> CmdResult {
    let (repo, tag) = split_tag(&args.name);
    let tag = match (args.all_tags, tag) {
        (true, Some(_)) => return Err(Failure::new(1, "tag can't be used with --all-tags/-a")),
        (true, None) => String::new(),
        (false, Some(t)) => t.to_string(),
        (false, None) if args.name.contains('@') => String::new(),
        (false, None) => {
            if !args.quiet {
                println!("Using default tag: latest");
            }
            "latest".to_string()
        }
    };
    let path = format!(
        "/images/{}/push{}",
        client::enc_path(repo),
        client::query(&[("tag", tag.clone())])
    );
    let auth = credentials::registry_auth(repo);
    let resp = client
        .send_with_headers(
            Method::POST,
            &path,
            client::empty(),
            &[("X-Registry-Auth", auth)],
        )
        .await?;
    crate::jsonmessage::display_stream(resp.into_body(), args.quiet, |_| {})
        .await
        .map_err(|e| Failure::new(1, e))?;
    if args.quiet {
        println!("{}", full_reference(repo, &tag));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tags() {
        assert_eq!(split_tag("127.0.0.1:5000/x"), ("127.0.0.1:5000/x", None));
        assert_eq!(
            split_tag("127.0.0.1:5000/x:v1"),
            ("127.0.0.1:5000/x", Some("v1"))
        );
        assert_eq!(split_tag("busybox:1"), ("busybox", Some("1")));
        assert_eq!(
            full_reference("busybox", "latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full_reference("127.0.0.1:5000/a/b", "v1"),
            "127.0.0.1:5000/a/b:v1"
        );
    }
}
