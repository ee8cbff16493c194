//! `berth info`: a docker-like summary of the daemon.

use berth_api::models::SystemInfo;
use clap::Args;

use crate::client::Client;
use crate::commands::CmdResult;
use crate::format;

/// `berth info`
#[derive(Debug, Clone, Args)]
pub struct InfoArgs {}

/// `berth info`
pub async fn run(client: &Client, _args: InfoArgs) -> CmdResult {
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    default");
    println!(" Debug Mode: false");
    println!();
    let info: SystemInfo = client.get("/info").await?;
    let s = |o: &Option<String>| o.clone().unwrap_or_default();
    let n = |o: Option<i64>| o.unwrap_or(0);
    println!("Server:");
    println!(" Containers: {}", n(info.containers));
    println!("  Running: {}", n(info.containers_running));
    println!("  Paused: {}", n(info.containers_paused));
    println!("  Stopped: {}", n(info.containers_stopped));
    println!(" Images: {}", n(info.images));
    println!(" Server Version: {}", s(&info.server_version));
    println!(" Storage Driver: {}", s(&info.driver));
    for pair in info.driver_status.iter().flatten() {
        if let [k, v] = pair.as_slice() {
            println!("  {k}: {v}");
        }
    }
    println!(" Logging Driver: {}", s(&info.logging_driver));
    println!(
        " Cgroup Driver: {}",
        info.cgroup_driver
            .map(|c| c.to_string())
            .unwrap_or_default()
    );
    println!(
        " Cgroup Version: {}",
        info.cgroup_version
            .map(|c| c.to_string())
            .unwrap_or_default()
    );
    if let Some(p) = &info.plugins {
        println!(" Plugins:");
        let list = |name: &str, v: &Option<Vec<String>>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                println!("  {name}: {}", v.join(" "));
            }
        };
        list("Volume", &p.volume);
        list("Network", &p.network);
        list("Authorization", &p.authorization);
        list("Log", &p.log);
    }
    if let Some(state) = info.swarm.as_ref().and_then(|sw| sw.local_node_state) {
        println!(" Swarm: {state}");
    }
    if let Some(rts) = &info.runtimes {
        let mut names: Vec<&String> = rts.keys().collect();
        names.sort();
        let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        println!(" Runtimes: {}", names.join(" "));
    }
    if let Some(rt) = &info.default_runtime {
        println!(" Default Runtime: {rt}");
    }
    if let Some(init) = &info.init_binary {
        println!(" Init Binary: {init}");
    }
    let commit = |c: &Option<berth_api::models::Commit>| {
        c.as_ref().and_then(|c| c.id.clone()).unwrap_or_default()
    };
    if info.containerd_commit.is_some() {
        println!(" containerd version: {}", commit(&info.containerd_commit));
    }
    if info.runc_commit.is_some() {
        println!(" runc version: {}", commit(&info.runc_commit));
    }
    if info.init_commit.is_some() {
        println!(" init version: {}", commit(&info.init_commit));
    }
    if let Some(opts) = info.security_options.as_ref().filter(|o| !o.is_empty()) {
        println!(" Security Options:");
        // Each option is `name=x,key=value,…`; docker shows the name, then its settings.
        for opt in opts {
            let mut name = String::new();
            let mut settings = Vec::new();
            for kv in opt.split(',') {
                match kv.split_once('=') {
                    Some(("name", v)) => name = v.to_string(),
                    Some((k, v)) => settings.push((k.to_string(), v.to_string())),
                    None => name = kv.to_string(),
                }
            }
            println!("  {name}");
            for (k, v) in settings {
                let mut k = k;
                if let Some(f) = k.get(..1) {
                    k = f.to_uppercase() + &k[1..];
                }
                println!("   {k}: {v}");
            }
        }
    }
    println!(" Kernel Version: {}", s(&info.kernel_version));
    println!(" Operating System: {}", s(&info.operating_system));
    println!(" OSType: {}", s(&info.os_type));
    println!(" Architecture: {}", s(&info.architecture));
    println!(" CPUs: {}", n(info.ncpu));
    println!(" Total Memory: {}", format::bytes_size(n(info.mem_total)));
    println!(" Name: {}", s(&info.name));
    println!(" ID: {}", s(&info.id));
    println!(" Docker Root Dir: {}", s(&info.docker_root_dir));
    println!(" Debug Mode: {}", info.debug.unwrap_or(false));
    println!(
        " Experimental: {}",
        info.experimental_build.unwrap_or(false)
    );
    if let Some(cidrs) = info
        .registry_config
        .as_ref()
        .and_then(|r| r.insecure_registry_cidrs.as_ref())
    {
        if !cidrs.is_empty() {
            println!(" Insecure Registries:");
            for c in cidrs {
                println!("  {c}");
            }
        }
    }
    println!(
        " Live Restore Enabled: {}",
        info.live_restore_enabled.unwrap_or(false)
    );
    println!();
    for w in info.warnings.iter().flatten() {
        eprintln!("{w}");
    }
    Ok(0)
}
