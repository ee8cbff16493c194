//! `berth info`: a docker-like summary of the daemon.

use berth_api::models::SystemInfo;
use clap::Args;

use crate::client::Client;
use crate::commands::{CmdResult, Failure};
use crate::format;
use crate::json::Value;
use crate::template::Template;

/// `berth info`
#[derive(Debug, Clone, Args)]
pub struct InfoArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,
}

/// `berth info`
pub async fn run(client: &Client, args: InfoArgs) -> CmdResult {
    if let Some(f) = args.format.as_deref().filter(|f| !f.is_empty()) {
        return run_format(client, f).await;
    }
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

/// `info --format`, as docker 20.10's `formatInfo`: the template runs on the daemon's
/// `/info` with `ClientInfo` (and, when the daemon cannot be reached, `ServerErrors`)
/// beside it; what it wrote is printed with a newline even when it then fails (exit 1).
/// A template that does not parse exits 64.
async fn run_format(client: &Client, format: &str) -> CmdResult {
    let tpl = Template::parse(format)
        .map_err(|e| Failure::new(64, format!("template parsing error: {e}")))?
        .with_field_aliases(&[
            ("HTTPProxy", "HttpProxy"),
            ("HTTPSProxy", "HttpsProxy"),
            ("BridgeNfIP6tables", "BridgeNfIp6tables"),
        ])
        .with_nested_types(&[("ClientInfo", "*system.clientInfo")]);
    let mut members = match client
        .bytes(hyper::Method::GET, "/info", crate::client::empty())
        .await
    {
        Ok(raw) => match Value::parse(&raw).map_err(|e| Failure::new(1, e))? {
            Value::Object(m) => as_go_info(m),
            _ => Vec::new(),
        },
        Err(e) => vec![(
            "ServerErrors".to_string(),
            Value::Array(vec![Value::String(e.to_string())]),
        )],
    };
    members.push(("ClientInfo".into(), client_info()));
    match tpl.render_struct(&Value::Object(members), "system.info", None) {
        Ok(text) => {
            println!("{text}");
            Ok(0)
        }
        Err((partial, e)) => {
            println!("{partial}");
            Err(Failure::new(1, e))
        }
    }
}

/// docker's `clientInfo` as `{{json .ClientInfo}}` shows it (berth has no CLI plugins).
fn client_info() -> Value {
    Value::Object(vec![
        ("Debug".into(), Value::Bool(false)),
        ("Context".into(), Value::String("default".into())),
        ("Plugins".into(), Value::Array(Vec::new())),
        ("Warnings".into(), Value::Null),
    ])
}

/// `/info` as docker's CLI holds it after decoding into its `types.Info`: a field the
/// daemon did not send is there with Go's zero value, so a template can read any field
/// docker's can. The members come in the struct's order; unknown ones follow.
fn as_go_info(mut sent: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for name in INFO_FIELDS {
        match sent.iter().position(|(k, _)| k == name) {
            Some(i) => out.push(sent.remove(i)),
            None => out.push((name.to_string(), zero_value(name))),
        }
    }
    out.extend(sent);
    out
}

/// The JSON names of API 1.41's `types.Info` fields, in order (the `omitempty` ones left out).
const INFO_FIELDS: &[&str] = &[
    "ID",
    "Containers",
    "ContainersRunning",
    "ContainersPaused",
    "ContainersStopped",
    "Images",
    "Driver",
    "DriverStatus",
    "SystemStatus",
    "Plugins",
    "MemoryLimit",
    "SwapLimit",
    "KernelMemory",
    "KernelMemoryTCP",
    "CpuCfsPeriod",
    "CpuCfsQuota",
    "CPUShares",
    "CPUSet",
    "PidsLimit",
    "IPv4Forwarding",
    "BridgeNfIptables",
    "BridgeNfIp6tables",
    "Debug",
    "NFd",
    "OomKillDisable",
    "NGoroutines",
    "SystemTime",
    "LoggingDriver",
    "CgroupDriver",
    "CgroupVersion",
    "NEventsListener",
    "KernelVersion",
    "OperatingSystem",
    "OSVersion",
    "OSType",
    "Architecture",
    "IndexServerAddress",
    "RegistryConfig",
    "NCPU",
    "MemTotal",
    "GenericResources",
    "DockerRootDir",
    "HttpProxy",
    "HttpsProxy",
    "NoProxy",
    "Name",
    "Labels",
    "ExperimentalBuild",
    "ServerVersion",
    "Runtimes",
    "DefaultRuntime",
    "Swarm",
    "LiveRestoreEnabled",
    "Isolation",
    "InitBinary",
    "ContainerdCommit",
    "RuncCommit",
    "InitCommit",
    "SecurityOptions",
    "Warnings",
];

/// Go's zero value of a `types.Info` field, as a template shows it (a nil slice prints
/// `[]`, though its `json` is `null`).
fn zero_value(name: &str) -> Value {
    let s = |v: &str| Value::String(v.to_string());
    let object = |fields: &[(&str, Value)]| {
        Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    };
    match name {
        "ID" | "Driver" | "SystemTime" | "LoggingDriver" | "CgroupDriver" | "CgroupVersion"
        | "KernelVersion" | "OperatingSystem" | "OSVersion" | "OSType" | "Architecture"
        | "IndexServerAddress" | "DockerRootDir" | "HttpProxy" | "HttpsProxy" | "NoProxy"
        | "Name" | "ServerVersion" | "DefaultRuntime" | "Isolation" | "InitBinary" => s(""),
        "MemoryLimit" | "SwapLimit" | "KernelMemory" | "KernelMemoryTCP" | "CpuCfsPeriod"
        | "CpuCfsQuota" | "CPUShares" | "CPUSet" | "PidsLimit" | "IPv4Forwarding"
        | "BridgeNfIptables" | "BridgeNfIp6tables" | "Debug" | "OomKillDisable"
        | "ExperimentalBuild" | "LiveRestoreEnabled" => Value::Bool(false),
        "Plugins" => object(&[
            ("Volume", Value::Array(Vec::new())),
            ("Network", Value::Array(Vec::new())),
            ("Authorization", Value::Array(Vec::new())),
            ("Log", Value::Array(Vec::new())),
        ]),
        "Runtimes" => Value::Object(Vec::new()),
        "Swarm" => object(&[
            ("NodeID", s("")),
            ("NodeAddr", s("")),
            ("LocalNodeState", s("")),
            ("ControlAvailable", Value::Bool(false)),
            ("Error", s("")),
            ("RemoteManagers", Value::Array(Vec::new())),
        ]),
        "ContainerdCommit" | "RuncCommit" | "InitCommit" => {
            object(&[("ID", s("")), ("Expected", s(""))])
        }
        "DriverStatus" | "SystemStatus" | "GenericResources" | "Labels" | "SecurityOptions"
        | "Warnings" => Value::Array(Vec::new()),
        "RegistryConfig" => Value::Null,
        _ => Value::Int(0),
    }
}
