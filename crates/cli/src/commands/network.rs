//! `berth network`: create, ls, inspect, rm, prune, connect and disconnect, as docker's
//! `network` commands.

use std::collections::HashMap;

use berth_api::models::{
    EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest, NetworkPruneResponse,
};
use clap::{Args, Subcommand};
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::ps::filters_json;
use crate::commands::{CmdResult, Failure};
use crate::json::Value;
use crate::listing::{label_method, ListPrinter};
use crate::template::Template;

/// `berth network`
#[derive(Debug, Args)]
pub struct NetworkArgs {
    #[command(subcommand)]
    pub command: NetworkCommand,
}

/// docker's network subcommands.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum NetworkCommand {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(RmArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Enable manual container attachment
    #[arg(long = "attachable")]
    pub attachable: bool,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address", value_name = "map")]
    pub aux_address: Vec<String>,
    /// Driver to manage the Network
    #[arg(
        short = 'd',
        long = "driver",
        value_name = "string",
        default_value = "bridge"
    )]
    pub driver: String,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long = "gateway", value_name = "strings")]
    pub gateway: Vec<String>,
    /// Restrict external access to the network
    #[arg(long = "internal")]
    pub internal: bool,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_name = "strings")]
    pub ip_range: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", value_name = "string", default_value = "default")]
    pub ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt", value_name = "map")]
    pub ipam_opt: Vec<String>,
    /// Enable IPv6 networking
    #[arg(long = "ipv6")]
    pub ipv6: bool,
    /// Set metadata on a network
    #[arg(long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long = "subnet", value_name = "strings")]
    pub subnet: Vec<String>,
    /// The network's name
    #[arg(value_name = "NETWORK")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Provide filter values (e.g. 'driver=bridge')
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print networks using a Go template
    #[arg(long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only display network IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// The networks
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// The networks
    #[arg(required = true, value_name = "NETWORK")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. 'until=<timestamp>')
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias", value_name = "strings")]
    pub alias: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt", value_name = "strings")]
    pub driver_opt: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long = "ip", value_name = "string")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long = "ip6", value_name = "string")]
    pub ip6: Option<String>,
    /// Add link to another container
    #[arg(long = "link", value_name = "list")]
    pub link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip", value_name = "strings")]
    pub link_local_ip: Vec<String>,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    #[arg(value_name = "NETWORK")]
    pub network: String,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}


/// Runs a `network` subcommand.
pub async fn run(client: &Client, args: NetworkArgs) -> CmdResult {
    match args.command {
        NetworkCommand::Connect(a) => connect(client, a).await,
        NetworkCommand::Create(a) => create(client, a).await,
        NetworkCommand::Disconnect(a) => disconnect(client, a).await,
        NetworkCommand::Inspect(a) => inspect(client, a).await,
        NetworkCommand::Ls(a) => ls(client, a).await,
        NetworkCommand::Prune(a) => prune(client, a).await,
        NetworkCommand::Rm(a) => rm(client, a).await,
    }
}

/// Does `data` (an address or a CIDR) fall in `subnet`? Errors as Go's `net.ParseCIDR`.
fn subnet_matches(subnet: &str, data: &str) -> Result<bool, String> {
    let (net, prefix) = parse_cidr(subnet)
        .ok_or_else(|| format!("invalid subnet: invalid CIDR address: {subnet}"))?;
    let ip = match data.split_once('/') {
        Some(_) => {
            parse_cidr(data)
                .ok_or_else(|| format!("invalid CIDR address: {data}"))?
                .0
        }
        None => match data.parse::<std::net::IpAddr>() {
            Ok(ip) => ip,
            Err(_) => return Ok(false),
        },
    };
    Ok(match (net, ip) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(i)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(i)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    })
}

fn parse_cidr(s: &str) -> Option<(std::net::IpAddr, u32)> {
    let (ip, prefix) = s.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let prefix: u32 = prefix.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

/// The IPAM pools from `--subnet`, `--ip-range`, `--gateway` and `--aux-address`, each
/// range, gateway and aux address put in the subnet it belongs to (docker's `consolidateIpam`).
fn consolidate_ipam(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    aux: &[String],
) -> Result<Vec<IpamConfig>, String> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    let mut pools: Vec<IpamConfig> = Vec::new();
    for s in subnets {
        for p in &pools {
            let k = p.subnet.as_deref().unwrap_or_default();
            if subnet_matches(s, k)? || subnet_matches(k, s)? {
                return Err("multiple overlapping subnet configuration is not supported".into());
            }
        }
        pools.push(IpamConfig {
            subnet: Some(s.clone()),
            auxiliary_addresses: Some(HashMap::new()),
            ..Default::default()
        });
    }
    for r in ranges {
        let mut matched = false;
        for p in pools.iter_mut() {
            let s = p.subnet.clone().unwrap_or_default();
            if !subnet_matches(&s, r)? {
                continue;
            }
            if let Some(old) = &p.ip_range {
                return Err(format!(
                    "cannot configure multiple ranges ({r}, {old}) on the same subnet ({s})"
                ));
            }
            p.ip_range = Some(r.clone());
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in gateways {
        let mut matched = false;
        for p in pools.iter_mut() {
            let s = p.subnet.clone().unwrap_or_default();
            if !subnet_matches(&s, g)? {
                continue;
            }
            if let Some(old) = &p.gateway {
                return Err(format!(
                    "cannot configure multiple gateways ({g}, {old}) for the same subnet ({s})"
                ));
            }
            p.gateway = Some(g.clone());
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    for (key, addr) in crate::flags::kv_map(aux) {
        let mut matched = false;
        for p in pools.iter_mut() {
            let s = p.subnet.clone().unwrap_or_default();
            if !subnet_matches(&s, &addr)? {
                continue;
            }
            p.auxiliary_addresses
                .get_or_insert_with(HashMap::new)
                .insert(key.clone(), addr.clone());
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for aux-address {addr}"));
        }
    }
    Ok(pools)
}

async fn create(client: &Client, a: CreateArgs) -> CmdResult {
    let pools = consolidate_ipam(&a.subnet, &a.ip_range, &a.gateway, &a.aux_address)
        .map_err(|e| Failure::new(1, e))?;
    let req = NetworkCreateRequest {
        name: a.name.clone(),
        driver: Some(a.driver.clone()),
        scope: Some(String::new()),
        internal: Some(a.internal),
        attachable: Some(a.attachable),
        ingress: Some(false),
        config_only: Some(false),
        ipam: Some(Ipam {
            driver: Some(a.ipam_driver.clone()),
            config: Some(pools),
            options: Some(crate::flags::kv_map(&a.ipam_opt)),
        }),
        enable_ipv6: Some(a.ipv6),
        options: Some(crate::flags::kv_map(&a.opt)),
        labels: Some(crate::flags::kv_map(&a.label)),
        ..Default::default()
    };
    // API 1.41 daemons create a second network of the same name unless told not to, and
    // docker's CLI always tells them; the model of newer APIs lacks the field.
    let mut body = serde_json::to_value(&req).map_err(|e| Failure::new(1, e.to_string()))?;
    body["CheckDuplicate"] = serde_json::Value::Bool(true);
    let resp: NetworkCreateResponse = client
        .json(Method::POST, "/networks/create", client::json_body(&body)?)
        .await?;
    if !resp.warning.is_empty() {
        eprintln!("{}", resp.warning);
    }
    println!("{}", resp.id);
    Ok(0)
}

/// Go's `time.Time.String()` of an RFC 3339 time (`2026-11-22 09:49:25.529009828 +0000 UTC`).
fn go_time_string(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let utc = t.with_timezone(&chrono::Utc);
            let nanos = utc.timestamp_subsec_nanos();
            let frac = if nanos == 0 {
                String::new()
            } else {
                format!(".{nanos:09}").trim_end_matches('0').to_string()
            };
            format!("{}{frac} +0000 UTC", utc.format("%Y-%m-%d %H:%M:%S"))
        }
        Err(_) => rfc3339.to_string(),
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    match v.get(key) {
        Some(Value::String(s)) => s,
        _ => "",
    }
}

fn bool_of(v: &Value, key: &str) -> bool {
    matches!(v.get(key), Some(Value::Bool(true)))
}

fn labels_of(v: &Value) -> Vec<(String, String)> {
    let mut labels: Vec<(String, String)> = match v.get("Labels") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    if let Value::String(s) = v {
                        s.clone()
                    } else {
                        String::new()
                    },
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    labels.sort();
    labels
}

/// The `ls` template context of one network, with docker's field names.
fn context(n: &Value, no_trunc: bool) -> Value {
    let id = str_of(n, "Id");
    let id = if no_trunc {
        id.to_string()
    } else {
        id.chars().take(12).collect()
    };
    let labels = labels_of(n)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let s = |x: &str| Value::String(x.to_string());
    let b = |x: bool| Value::String(x.to_string());
    Value::Object(vec![
        ("CreatedAt".into(), s(&go_time_string(str_of(n, "Created")))),
        ("Driver".into(), s(str_of(n, "Driver"))),
        ("ID".into(), s(&id)),
        ("IPv6".into(), b(bool_of(n, "EnableIPv6"))),
        ("Internal".into(), b(bool_of(n, "Internal"))),
        ("Labels".into(), s(&labels)),
        ("Name".into(), s(str_of(n, "Name"))),
        ("Scope".into(), s(str_of(n, "Scope"))),
    ])
}

fn title(field: &str) -> String {
    match field {
        "ID" => "NETWORK ID",
        "Name" => "NAME",
        "Driver" => "DRIVER",
        "Scope" => "SCOPE",
        "IPv6" => "IPV6",
        "Internal" => "INTERNAL",
        "Labels" => "LABELS",
        "CreatedAt" => "CREATED AT",
        other => return other.to_uppercase(),
    }
    .to_string()
}

/// Docker's natural order of names: digit runs compare as numbers.
fn natural_less(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (xn, yn) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                xn.len().cmp(&yn.len()).then(xn.cmp(yn))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

async fn ls(client: &Client, a: LsArgs) -> CmdResult {
    let q = if a.filter.is_empty() {
        String::new()
    } else {
        client::query(&[("filters", filters_json(&a.filter)?)])
    };
    let raw = client
        .bytes(Method::GET, &format!("/networks{q}"), client::empty())
        .await?;
    let mut networks = match Value::parse(&raw).map_err(|e| Failure::new(1, e))? {
        Value::Array(list) => list,
        _ => Vec::new(),
    };
    networks.sort_by(|x, y| natural_less(str_of(x, "Name"), str_of(y, "Name")));
    let fmt = match a.format.as_deref() {
        None | Some("") if a.quiet => "{{.ID}}",
        None | Some("") | Some("table") => "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        Some(f) => f,
    };
    let mut out = ListPrinter::new(fmt, "*network.networkContext", &title)?;
    for n in &networks {
        let labels = labels_of(n);
        let method = label_method(|k| labels.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()));
        out.row(&context(n, a.no_trunc), &method)?;
    }
    print!("{}", out.finish());
    Ok(0)
}

async fn inspect(client: &Client, a: InspectArgs) -> CmdResult {
    let tpl = match a.format.as_deref() {
        Some(f) if !f.is_empty() => {
            Some(Template::parse(f).map_err(|e| crate::commands::inspect::template_failure(&e))?)
        }
        _ => None,
    };
    let q = if a.verbose { "?verbose=true" } else { "" };
    // Each name's object or error, in order: docker reports them in that order.
    let mut found = Vec::new();
    for name in &a.names {
        match client
            .bytes(
                Method::GET,
                &format!("/networks/{}{q}", client::enc(name)),
                client::empty(),
            )
            .await
        {
            Ok(raw) => found.push(Ok(raw)),
            Err(e @ ClientError::Connect { .. }) => return Err(e.into()),
            Err(e) => found.push(Err(e.to_string())),
        }
    }
    super::inspect::print_inspected(tpl.as_ref(), crate::template::Shape::Inspect, found)
}

async fn rm(client: &Client, a: RmArgs) -> CmdResult {
    let force = a.force;
    let mut failed = false;
    for name in &a.names {
        let path = format!("/networks/{}", client::enc(name));
        match client.bytes(Method::DELETE, &path, client::empty()).await {
            Ok(_) => println!("{name}"),
            Err(e @ ClientError::Connect { .. }) => return Err(e.into()),
            // `-f`: a network that is already gone is no error.
            Err(e) if force && e.is_not_found() => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

async fn prune(client: &Client, a: PruneArgs) -> CmdResult {
    if !a.force {
        if !crate::flags::confirm("WARNING! This will remove all custom networks not used by at least one container.") {
            return Ok(0);
        }
    }
    let q = if a.filter.is_empty() {
        String::new()
    } else {
        client::query(&[("filters", filters_json(&a.filter)?)])
    };
    let resp: NetworkPruneResponse = client
        .json(
            Method::POST,
            &format!("/networks/prune{q}"),
            client::empty(),
        )
        .await?;
    let deleted = resp.networks_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        println!("Deleted Networks:");
        for d in &deleted {
            println!("{d}");
        }
        println!();
    }
    Ok(0)
}

async fn connect(client: &Client, a: ConnectArgs) -> CmdResult {
    let ipam = (a.ip.is_some() || a.ip6.is_some() || !a.link_local_ip.is_empty()).then(|| {
        EndpointIpamConfig {
            ipv4_address: a.ip.clone(),
            ipv6_address: a.ip6.clone(),
            link_local_ips: (!a.link_local_ip.is_empty()).then(|| a.link_local_ip.clone()),
        }
    });
    let req = NetworkConnectRequest {
        container: a.container.clone(),
        endpoint_config: Some(EndpointSettings {
            ipam_config: ipam,
            links: (!a.link.is_empty()).then(|| a.link.clone()),
            aliases: (!a.alias.is_empty()).then(|| a.alias.clone()),
            driver_opts: (!a.driver_opt.is_empty()).then(|| crate::flags::kv_map(&a.driver_opt)),
            ..Default::default()
        }),
    };
    let path = format!("/networks/{}/connect", client::enc(&a.network));
    client
        .bytes(Method::POST, &path, client::json_body(&req)?)
        .await?;
    Ok(0)
}

async fn disconnect(client: &Client, a: DisconnectArgs) -> CmdResult {
    let req = NetworkDisconnectRequest {
        container: a.container.clone(),
        force: Some(a.force),
    };
    let path = format!("/networks/{}/disconnect", client::enc(&a.network));
    client
        .bytes(Method::POST, &path, client::json_body(&req)?)
        .await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ipam_flags_consolidate_like_docker() {
        let pools = consolidate_ipam(
            &v(&["10.99.0.0/24"]),
            &v(&["10.99.0.128/25"]),
            &v(&["10.99.0.254"]),
            &[],
        )
        .unwrap();
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].ip_range.as_deref(), Some("10.99.0.128/25"));
        assert_eq!(pools[0].gateway.as_deref(), Some("10.99.0.254"));
        assert_eq!(
            consolidate_ipam(&[], &[], &v(&["10.1.1.1"]), &[]).unwrap_err(),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            consolidate_ipam(&v(&["10.98.0.0/24"]), &[], &v(&["10.97.0.1"]), &[]).unwrap_err(),
            "no matching subnet for gateway 10.97.0.1"
        );
        assert_eq!(
            consolidate_ipam(&v(&["10.0.0.0/8", "10.1.0.0/16"]), &[], &[], &[]).unwrap_err(),
            "multiple overlapping subnet configuration is not supported"
        );
        // One bad subnet alone is the daemon's to refuse, as with docker.
        assert!(consolidate_ipam(&v(&["bad"]), &[], &[], &[]).is_ok());
    }

    #[test]
    fn names_sort_naturally_and_times_print_as_go() {
        let mut names = vec!["net10", "net2", "bridge", "Net1"];
        names.sort_by(|a, b| natural_less(a, b));
        assert_eq!(names, ["Net1", "bridge", "net2", "net10"]);
        assert_eq!(
            go_time_string("2026-11-22T09:49:25.529009828Z"),
            "2026-11-22 09:49:25.529009828 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2026-11-22T09:49:25.5Z"),
            "2026-11-22 09:49:25.5 +0000 UTC"
        );
    }
}
