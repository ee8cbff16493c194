//! `berth pull`: `POST /images/create?fromImage=…&tag=…` with the registry credentials from
//! config.json, the daemon's progress shown as docker shows it (one redrawn line per layer on a
//! terminal, plain lines otherwise), then the full reference on its own line.

use clap::Args;
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::{CmdResult, Failure};
use crate::credentials;

/// `berth pull`
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Skip image verification
    #[arg(long = "disable-content-trust", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "bool")]
    pub disable_content_trust: bool,
    /// Set platform if server is multi-platform capable
    #[arg(
        long = "platform",
        value_name = "string",
        env = "DOCKER_DEFAULT_PLATFORM"
    )]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

/// What the CLI sends and prints for a reference: (fromImage, tag-or-digest, full reference).
/// `None` tag means every tag (`-a`).
#[derive(Debug)]
struct Parsed {
    from_image: String,
    tag: Option<String>,
    full: String,
    defaulted: bool,
}

fn parse(name: &str, all: bool) -> Result<Parsed, Failure> {
    let r = berth_store_ref(name)?;
    let (repo, suffix) = match (name.split_once('@'), last_colon_tag(name)) {
        (Some((repo, digest)), _) => (repo.to_string(), Some(digest.to_string())),
        (None, Some(i)) => (name[..i].to_string(), Some(name[i + 1..].to_string())),
        (None, None) => (name.to_string(), None),
    };
    if all && suffix.is_some() {
        return Err(Failure::new(1, "tag can't be used with --all-tags/-a"));
    }
    let familiar = familiar_name(&repo);
    let full_name = r;
    let (tag, defaulted) = match (&suffix, all) {
        (_, true) => (None, false),
        (Some(s), _) => (Some(s.clone()), false),
        (None, false) => (Some("latest".to_string()), true),
    };
    let full = match &tag {
        None => full_name,
        Some(t) if t.contains(':') => format!("{full_name}@{t}"),
        Some(t) => format!("{full_name}:{t}"),
    };
    Ok(Parsed {
        from_image: familiar,
        tag,
        full,
        defaulted,
    })
}

/// Index of the ':' that starts a tag (after the last '/'), if any.
fn last_colon_tag(name: &str) -> Option<usize> {
    let slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    name[slash..].rfind(':').map(|i| slash + i)
}

/// The normalised repository name ("docker.io/library/busybox"), or docker's parse error.
fn berth_store_ref(name: &str) -> Result<String, Failure> {
    check_reference(name)?;
    let repo = match name.split_once('@') {
        Some((r, _)) => r,
        None => match last_colon_tag(name) {
            Some(i) => &name[..i],
            None => name,
        },
    };
    let domain = credentials::registry_domain(repo);
    let path = if repo.starts_with(&format!("{domain}/")) {
        repo[domain.len() + 1..].to_string()
    } else if let Some(rest) = repo.strip_prefix("index.docker.io/") {
        rest.to_string()
    } else {
        repo.to_string()
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    Ok(format!("{domain}/{path}"))
}

/// Docker's reference checks, with its messages.
fn check_reference(name: &str) -> Result<(), Failure> {
    let bad = |why: &str| Failure::new(1, why.to_string());
    if name.is_empty() {
        return Err(bad("invalid reference format"));
    }
    let repo = name.split('@').next().unwrap_or(name);
    let repo = match last_colon_tag(repo) {
        Some(i) => &repo[..i],
        None => repo,
    };
    let path = match repo.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => repo,
    };
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad(
            "invalid reference format: repository name must be lowercase",
        ));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:@".contains(c);
    if !name.chars().all(|c| ok_char(c) || c.is_ascii_uppercase())
        || path.is_empty()
        || path.starts_with(['-', '.', '_', '/'])
        || path.ends_with(['-', '.', '_', '/'])
    {
        return Err(bad("invalid reference format"));
    }
    Ok(())
}

/// "docker.io/library/busybox" → "busybox", as docker's `FamiliarName`.
fn familiar_name(repo: &str) -> String {
    let repo = repo
        .strip_prefix("docker.io/")
        .or_else(|| repo.strip_prefix("index.docker.io/"))
        .unwrap_or(repo);
    repo.strip_prefix("library/")
        .filter(|r| !r.contains('/'))
        .unwrap_or(repo)
        .to_string()
}

pub async fn run(client: &Client, args: PullArgs) -> CmdResult {
    let parsed = parse(&args.name, args.all_tags)?;
    if parsed.defaulted && !args.quiet {
        println!("Using default tag: latest");
    }
    let mut q = vec![
        ("fromImage", parsed.from_image.clone()),
        ("tag", parsed.tag.clone().unwrap_or_default()),
    ];
    if let Some(p) = args.platform.as_deref().filter(|p| !p.is_empty()) {
        q.push(("platform", p.to_string()));
    }
    let path = format!("/images/create{}", client::query(&q));
    let auth = credentials::registry_auth(&args.name);
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
    println!("{}", parsed.full);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_as_docker_sends_them() {
        let p = parse("busybox", false).unwrap();
        assert_eq!(
            (
                p.from_image.as_str(),
                p.tag.as_deref(),
                p.full.as_str(),
                p.defaulted
            ),
            (
                "busybox",
                Some("latest"),
                "docker.io/library/busybox:latest",
                true
            )
        );
        let p = parse("127.0.0.1:5000/a/b:v1", false).unwrap();
        assert_eq!(
            (p.from_image.as_str(), p.tag.as_deref(), p.full.as_str()),
            ("127.0.0.1:5000/a/b", Some("v1"), "127.0.0.1:5000/a/b:v1")
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let p = parse(&format!("localhost:5000/x@{d}"), false).unwrap();
        assert_eq!(p.tag.as_deref(), Some(d));
        assert_eq!(p.full, format!("localhost:5000/x@{d}"));
        let p = parse("busybox", true).unwrap();
        assert_eq!(
            (p.tag, p.full.as_str()),
            (None, "docker.io/library/busybox")
        );
        assert_eq!(
            parse("busybox:1", true).unwrap_err().message,
            "tag can't be used with --all-tags/-a"
        );
        assert_eq!(
            parse("Busybox", false).unwrap_err().message,
            "invalid reference format: repository name must be lowercase"
        );
    }
}
