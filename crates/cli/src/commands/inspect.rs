//! `berth inspect`: containers (falling back to images), as an indented JSON array or
//! through a `-f` template.

use clap::Args;
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::{CmdResult, Failure};
use crate::json::{self, Value};
use crate::template::Template;

/// `berth inspect`
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Return JSON for specified type
    #[arg(long = "type", value_name = "string")]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long = "size")]
    pub size: bool,
    /// The objects to inspect
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

/// The raw JSON of `name`: a container, else an image (unless `--type` narrows it).
async fn fetch(
    client: &Client,
    name: &str,
    kind: Option<&str>,
    size: bool,
) -> Result<Option<bytes::Bytes>, ClientError> {
    let try_kind = |k: &str| kind.is_none_or(|want| want == k);
    if try_kind("container") {
        let q = if size { "?size=1" } else { "" };
        match client
            .bytes(
                Method::GET,
                &format!("/containers/{}/json{q}", client::enc(name)),
                client::empty(),
            )
            .await
        {
            Ok(b) => return Ok(Some(b)),
            // Without --type, the next kind is tried.
            Err(e) if e.is_not_found() && kind.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    if try_kind("image") {
        match client
            .bytes(
                Method::GET,
                &format!("/images/{}/json", client::enc_path(name)),
                client::empty(),
            )
            .await
        {
            Ok(b) => return Ok(Some(b)),
            // Without --type, the next kind is tried.
            Err(e) if e.is_not_found() && kind.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// A bad template, reported like docker (exit 64, `template parsing error: …`).
pub fn template_failure(e: &str) -> Failure {
    let detail = e.strip_prefix("template: ").unwrap_or(e);
    Failure::new(
        64,
        format!("template parsing error: template: :1: {detail}"),
    )
}

/// `berth inspect`
pub async fn run(client: &Client, args: InspectArgs) -> CmdResult {
    if let Some(k) = args.kind.as_deref() {
        if k != "container" && k != "image" {
            return Err(Failure::new(
                1,
                format!("\"{k}\" is not a valid value for --type"),
            ));
        }
    }
    let tpl = match args.format.as_deref() {
        Some(f) if !f.is_empty() => Some(Template::parse(f).map_err(|e| template_failure(&e))?),
        _ => None,
    };
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        match fetch(client, name, args.kind.as_deref(), args.size).await {
            Ok(Some(raw)) => raws.push(raw),
            Ok(None) => errors.push(format!("Error: No such object: {name}")),
            Err(e @ ClientError::Connect { .. }) => return Err(e.into()),
            // With --type, docker's client names the missing object itself.
            Err(e) if e.is_not_found() => {
                let kind = args.kind.as_deref().unwrap_or("object");
                errors.push(format!("Error: No such {kind}: {name}"))
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    // Docker prints an empty line when a template matched nothing.
    if tpl.is_some() && raws.is_empty() {
        println!();
    }
    print_inspected(tpl.as_ref(), &raws, errors)
}

/// Prints inspected objects as `docker … inspect` does: each through the `-f` template, or
/// all as one indented JSON array (even when empty); then fails with the errors, if any.
pub fn print_inspected(tpl: Option<&Template>, raws: &[bytes::Bytes], errors: Vec<String>) -> CmdResult {
    match tpl {
        Some(tpl) => {
            for raw in raws {
                let value = Value::parse(raw).map_err(|e| Failure::new(1, e))?;
                let none = |_: &str, _: &[Value]| None;
                let text = tpl.render(&value, &none).map_err(|e| Failure::new(1, e))?;
                println!("{text}");
            }
        }
        None => {
            let mut joined = Vec::from(&b"["[..]);
            for (i, raw) in raws.iter().enumerate() {
                if i > 0 {
                    joined.push(b',');
                }
                joined.extend_from_slice(raw.trim_ascii());
            }
            joined.push(b']');
            println!("{}", json::indent(&joined, "", "    "));
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(Failure::new(1, errors.join("\n")))
    }
}
