//! `berth inspect`: containers (falling back to images), as an indented JSON array or
//! through a `-f` template.

use clap::Args;
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::{CmdResult, Failure};
use crate::json::{self, Value};
use crate::template::{Shape, Template};

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

/// A template that does not parse, reported as docker's inspect commands do (exit 64).
pub fn template_failure(e: &str) -> Failure {
    Failure::new(64, format!("template parsing error: {e}"))
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
    // Each name's object or error, in order: docker reports them in that order.
    let mut found = Vec::new();
    for name in &args.names {
        match fetch(client, name, args.kind.as_deref(), args.size).await {
            Ok(Some(raw)) => found.push(Ok(raw)),
            Ok(None) => found.push(Err(format!("Error: No such object: {name}"))),
            Err(e @ ClientError::Connect { .. }) => return Err(e.into()),
            // With --type, docker's client names the missing object itself.
            Err(e) if e.is_not_found() => {
                let kind = args.kind.as_deref().unwrap_or("object");
                found.push(Err(format!("Error: No such {kind}: {name}")))
            }
            Err(e) => found.push(Err(e.to_string())),
        }
    }
    print_inspected(tpl.as_ref(), Shape::Inspect, found)
}

/// Prints inspected objects as `docker … inspect` does: each through the `-f` template
/// (run on data that stands for `shape`), or all as one indented JSON array (even when
/// empty); then fails with the errors, if any, template errors among them.
pub fn print_inspected(
    tpl: Option<&Template>,
    shape: Shape<'_>,
    found: Vec<Result<bytes::Bytes, String>>,
) -> CmdResult {
    let mut errors = Vec::new();
    let mut raws = Vec::new();
    match tpl {
        Some(tpl) => {
            // Docker buffers the rendered objects, and prints an empty line when none
            // rendered.
            let mut out = String::new();
            for item in found {
                let raw = match item {
                    Ok(raw) => raw,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                let value = Value::parse(&raw).map_err(|e| Failure::new(1, e))?;
                let none = |_: &str, _: &[Value]| None;
                match tpl.render_as(&value, &none, shape) {
                    Ok(text) => {
                        out.push_str(&text);
                        out.push('\n');
                    }
                    Err(e) => errors.push(format!("template parsing error: {e}")),
                }
            }
            if out.is_empty() {
                out.push('\n');
            }
            print!("{out}");
        }
        None => {
            for item in found {
                match item {
                    Ok(raw) => raws.push(raw),
                    Err(e) => errors.push(e),
                }
            }
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
