//! `berth port`: a container's published ports, from its inspect data.

use berth_api::models::{ContainerInspectResponse, PortBinding};
use clap::Args;

use crate::client::{self, Client};
use crate::commands::{CmdResult, Failure};

/// `berth port`
#[derive(Debug, Clone, Args)]
pub struct PortArgs {
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

pub async fn run(client: &Client, args: PortArgs) -> CmdResult {
    let info: ContainerInspectResponse =
        client.get(&format!("/containers/{}/json", client::enc(&args.container))).await?;
    let ports = info.network_settings.and_then(|n| n.ports).unwrap_or_default();
    let address = |b: &PortBinding| host_port(b.host_ip.as_deref().unwrap_or(""), b.host_port.as_deref().unwrap_or(""));
    match &args.port {
        Some(wanted) => {
            let key = match wanted.split_once('/') {
                Some((port, proto)) if !proto.is_empty() => format!("{port}/{proto}"),
                Some((port, _)) => format!("{port}/tcp"),
                None => format!("{wanted}/tcp"),
            };
            match ports.get(&key) {
                Some(Some(bindings)) => {
                    for b in bindings {
                        println!("{}", address(b));
                    }
                    Ok(0)
                }
                _ => Err(Failure::new(1, format!("Error: No public port '{key}' published for {}", args.container))),
            }
        }
        None => {
            let mut lines: Vec<String> = ports
                .iter()
                .flat_map(|(from, bindings)| bindings.iter().flatten().map(move |b| format!("{from} -> {}", address(b))))
                .collect();
            lines.sort();
            for line in lines {
                println!("{line}");
            }
            Ok(0)
        }
    }
}

/// Go's `net.JoinHostPort`: IPv6 addresses in brackets.
fn host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn joins_like_go() {
        assert_eq!(super::host_port("0.0.0.0", "8080"), "0.0.0.0:8080");
        assert_eq!(super::host_port("::", "8080"), "[::]:8080");
    }
}
