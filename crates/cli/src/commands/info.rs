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
    println!(" Cgroup Driver: {}", info.cgroup_driver.map(|c| c.to_string()).unwrap_or_default());
    println!(" Cgroup Version: {}", info.cgroup_version.map(|c| c.to_string()).unwrap_or_default());
    if let Some(rt) = &info.default_runtime {
        println!(" Default Runtime: {rt}");
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
    println!(" Experimental: {}", info.experimental_build.unwrap_or(false));
    println!(" Live Restore Enabled: {}", info.live_restore_enabled.unwrap_or(false));
    println!();
    for w in info.warnings.iter().flatten() {
        eprintln!("{w}");
    }
    Ok(0)
}
