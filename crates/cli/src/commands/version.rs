//! `berth version`: the client's and the daemon's versions, laid out as docker does.

use berth_api::models::SystemVersion;
use clap::Args;

use crate::client::Client;
use crate::commands::CmdResult;

/// `berth version`
#[derive(Debug, Clone, Args)]
pub struct VersionArgs {}

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
pub async fn run(client: &Client, _args: VersionArgs) -> CmdResult {
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
