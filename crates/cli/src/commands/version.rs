//! `berth version`: the client's and the daemon's versions, laid out as docker does.

use berth_api::models::SystemVersion;
use clap::Args;

use crate::client::Client;
use crate::commands::{CmdResult, Failure};
use crate::json::Value;
use crate::template::Template;

/// `berth version`
#[derive(Debug, Clone, Args)]
pub struct VersionArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,
}

/// docker's Go type for the template's data, named in its errors.
const VERSION_TYPE: &str = "system.versionInfo";

/// Go's field `APIVersion` is `ApiVersion` in the JSON of both halves.
const FIELD_ALIASES: &[(&str, &str)] = &[("APIVersion", "ApiVersion")];

/// The client half of docker's `versionInfo`, as its `{{json .Client}}` shows it.
fn client_info() -> Value {
    let s = |v: &str| Value::String(v.to_string());
    Value::Object(vec![
        (
            "Platform".into(),
            Value::Object(vec![("Name".into(), s(""))]),
        ),
        ("Version".into(), s(env!("CARGO_PKG_VERSION"))),
        ("ApiVersion".into(), s("1.41")),
        ("DefaultAPIVersion".into(), s("1.41")),
        ("GitCommit".into(), s("")),
        ("GoVersion".into(), s("rust")),
        ("Os".into(), s("linux")),
        ("Arch".into(), s(go_arch())),
        ("BuildTime".into(), s("")),
        ("Context".into(), s("default")),
        ("Experimental".into(), Value::Bool(true)),
    ])
}

/// The daemon's version as docker's CLI marshals its `types.Version` again: components'
/// details (Go maps) with sorted keys, and `Experimental`/`BuildTime` left out when empty.
fn go_version(server: Value) -> Value {
    let Value::Object(members) = server else {
        return server;
    };
    let members = members
        .into_iter()
        .filter(|(k, v)| {
            !(k == "Experimental" && *v == Value::Bool(false)
                || k == "BuildTime" && *v == Value::String(String::new()))
        })
        .map(|(k, v)| match (k.as_str(), v) {
            ("Components", Value::Array(components)) => {
                let sorted = components
                    .into_iter()
                    .map(|c| match c {
                        Value::Object(fields) => Value::Object(
                            fields
                                .into_iter()
                                .map(|(name, v)| match v {
                                    Value::Object(mut details) if name == "Details" => {
                                        details.sort_by(|a, b| a.0.cmp(&b.0));
                                        (name, Value::Object(details))
                                    }
                                    other => (name, other),
                                })
                                .collect(),
                        ),
                        other => other,
                    })
                    .collect();
                (k, Value::Array(sorted))
            }
            (_, v) => (k, v),
        })
        .collect();
    Value::Object(members)
}

/// `version --format`: the template runs on both halves even when the daemon is down
/// (`Server` nil), prints what it wrote and a newline, and then fails with the daemon's
/// error, else its own (exit 1). A template that does not parse exits 64 at once.
async fn run_format(client: &Client, format: &str) -> CmdResult {
    let tpl = Template::parse_named("version", format)
        .map_err(|e| Failure::new(64, format!("template parsing error: {e}")))?
        .with_field_aliases(FIELD_ALIASES)
        .with_nested_types(&[
            ("Client", "system.clientVersion"),
            ("Server", "*types.Version"),
        ]);
    let (server, daemon_error) = match client
        .bytes(hyper::Method::GET, "/version", crate::client::empty())
        .await
    {
        Ok(raw) => (
            go_version(Value::parse(&raw).map_err(|e| Failure::new(1, e))?),
            None,
        ),
        Err(e) => (Value::Null, Some(e)),
    };
    let data = Value::Object(vec![
        ("Client".into(), client_info()),
        ("Server".into(), server),
    ]);
    let (text, template_error) = match tpl.render_struct(&data, VERSION_TYPE, None) {
        Ok(text) => (text, None),
        Err((partial, e)) => (partial, Some(e)),
    };
    println!("{text}");
    match (daemon_error, template_error) {
        (Some(e), _) => Err(e.into()),
        (None, Some(e)) => Err(Failure::new(1, e)),
        (None, None) => Ok(0),
    }
}

/// Docker prints build times as Go's `time.ANSIC`; the daemon sends RFC 3339.
fn reformat_date(s: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t.format("%a %b %e %H:%M:%S %Y").to_string(),
        Err(_) => s.to_string(),
    }
}

fn print_client() {
    println!("Client:");
    println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    println!(" API version:       1.41");
    println!(" OS/Arch:           linux/{}", go_arch());
    println!(" Context:           default");
}

/// The architecture named as Go names it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `berth version`
pub async fn run(client: &Client, args: VersionArgs) -> CmdResult {
    if let Some(f) = args.format.as_deref().filter(|f| !f.is_empty()) {
        return run_format(client, f).await;
    }
    print_client();
    let v: SystemVersion = match client.get("/version").await {
        Ok(v) => v,
        Err(e) => {
            println!();
            return Err(e.into());
        }
    };
    println!();
    match &v.platform {
        Some(p) if !p.name.is_empty() => println!("Server: {}", p.name),
        _ => println!("Server:"),
    }
    let components = v.components.clone().unwrap_or_default();
    if components.is_empty() {
        print_engine(&v);
    }
    for c in &components {
        println!(" {}:", c.name);
        if c.name == "Engine" {
            print_engine(&v);
            continue;
        }
        println!("  Version:          {}", c.version);
        let mut details: Vec<(&String, &String)> = c.details.iter().flatten().collect();
        details.sort();
        for (k, val) in details {
            println!("  {:<18}{val}", format!("{k}:"));
        }
    }
    Ok(0)
}

fn print_engine(v: &SystemVersion) {
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    println!("  Version:          {}", s(&v.version));
    println!(
        "  API version:      {} (minimum version {})",
        s(&v.api_version),
        s(&v.min_api_version)
    );
    println!("  Go version:       {}", s(&v.go_version));
    println!("  Git commit:       {}", s(&v.git_commit));
    println!("  Built:            {}", reformat_date(&s(&v.build_time)));
    println!("  OS/Arch:          {}/{}", s(&v.os), s(&v.arch));
    println!("  Experimental:     {}", v.experimental.unwrap_or(false));
}
