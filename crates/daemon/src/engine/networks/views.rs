//! Networks and container network settings as Docker 20.10's API shows them. Built as JSON
//! rather than with the API models: API 1.41 has fields (the top-level `IPAddress` of a
//! container's `NetworkSettings`, `ConfigFrom`) that newer models no longer carry.

use super::records::{Attachment, ContainerNetworks, NetworkRecord};
use super::State;
use crate::engine::Engine;
use crate::state::Record;
use berth_api::models::{
    EndpointIpamConfig, EndpointSettings, PortBinding, PortMap, PortSummary, PortSummaryTypeEnum,
};
use berth_net::ports::Proto;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The options Docker shows for its default bridge.
fn default_bridge_options(bridge: &str) -> Value {
    json!({
        "com.docker.network.bridge.default_bridge": "true",
        "com.docker.network.bridge.enable_icc": "true",
        "com.docker.network.bridge.enable_ip_masquerade": "true",
        "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
        "com.docker.network.bridge.name": bridge,
        "com.docker.network.driver.mtu": "1500"
    })
}

/// One network; `containers` adds the active endpoints (inspect does, list does not).
pub(super) fn network_json(
    st: &State,
    n: &NetworkRecord,
    names: &HashMap<String, String>,
    containers: bool,
) -> Value {
    let ipam_config: Vec<Value> = match (&n.subnet, n.gateway) {
        (Some(subnet), Some(gw)) => vec![json!({"Subnet": subnet, "Gateway": gw.to_string()})],
        _ => Vec::new(),
    };
    let mut endpoints = Map::new();
    if containers {
        for (id, c) in &st.containers {
            for a in c.attachments.iter().filter(|a| a.network_id == n.id) {
                if let Some(ep) = &a.active {
                    endpoints.insert(
                        id.clone(),
                        json!({
                            "Name": names.get(id).cloned().unwrap_or_default(),
                            "EndpointID": ep.endpoint_id,
                            "MacAddress": ep.mac,
                            "IPv4Address": format!("{}/{}", ep.ip, ep.prefix),
                            "IPv6Address": ""
                        }),
                    );
                }
            }
        }
    }
    let options = if n.predefined && n.name == "bridge" {
        default_bridge_options(&n.bridge)
    } else {
        json!(n.options)
    };
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            // Docker shows null for its predefined networks, the given options otherwise.
            "Options": if n.predefined { Value::Null } else { json!(n.ipam_options) },
            "Config": ipam_config
        },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": endpoints,
        "Options": options,
        "Labels": n.labels
    })
}

/// A container's `Networks` entries, stopped containers' too (with empty addresses).
pub(super) fn endpoint_settings(
    st: &State,
    id: &str,
    nets: &ContainerNetworks,
) -> Vec<(String, EndpointSettings)> {
    nets.attachments
        .iter()
        .filter_map(|a| {
            let n = st.networks.get(&a.network_id)?;
            Some((n.name.clone(), settings_of(n, id, a)))
        })
        .collect()
}

fn settings_of(n: &NetworkRecord, id: &str, a: &Attachment) -> EndpointSettings {
    let ep = a.active.as_ref();
    let aliases = if n.predefined {
        None
    } else {
        let mut v = a.aliases.clone();
        v.push(id.chars().take(12).collect());
        Some(v)
    };
    EndpointSettings {
        ipam_config: a.requested_ip.map(|ip| EndpointIpamConfig {
            ipv4_address: Some(ip.to_string()),
            ..Default::default()
        }),
        links: None,
        aliases,
        network_id: Some(n.id.clone()),
        endpoint_id: Some(ep.map(|e| e.endpoint_id.clone()).unwrap_or_default()),
        gateway: Some(ep.map(|e| e.gateway.to_string()).unwrap_or_default()),
        ip_address: Some(ep.map(|e| e.ip.to_string()).unwrap_or_default()),
        ip_prefix_len: Some(ep.map(|e| e.prefix as i64).unwrap_or(0)),
        ipv6_gateway: Some(String::new()),
        global_ipv6_address: Some(String::new()),
        global_ipv6_prefix_len: Some(0),
        mac_address: Some(ep.map(|e| e.mac.clone()).unwrap_or_default()),
        driver_opts: None,
        ..Default::default()
    }
}

/// As Docker 20.10 serialises an endpoint: every field present, in its order.
fn settings_json(s: &EndpointSettings) -> Value {
    json!({
        "IPAMConfig": s.ipam_config.as_ref().map(|c| json!({"IPv4Address": c.ipv4_address})),
        "Links": s.links,
        "Aliases": s.aliases,
        "NetworkID": s.network_id,
        "EndpointID": s.endpoint_id,
        "Gateway": s.gateway,
        "IPAddress": s.ip_address,
        "IPPrefixLen": s.ip_prefix_len,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": s.mac_address,
        "DriverOpts": null
    })
}

/// `Ports`: published ports with their bindings, exposed ones with null, while running.
fn port_map(rec: &Record, nets: Option<&ContainerNetworks>) -> PortMap {
    let mut map = PortMap::new();
    let running = nets.is_some_and(|n| n.attachments.iter().any(|a| a.active.is_some()));
    if !running {
        return map;
    }
    for key in rec.config.exposed_ports.iter().flatten() {
        let key = if key.contains('/') {
            key.clone()
        } else {
            format!("{key}/tcp")
        };
        map.insert(key, None);
    }
    for p in nets.map(|n| n.ports.as_slice()).unwrap_or_default() {
        let key = format!("{}/{}", p.container_port, p.proto.as_str());
        map.entry(key)
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(p.host_ip.to_string()),
                host_port: Some(p.host_port.to_string()),
            });
    }
    map
}

impl Engine {
    /// `NetworkSettings` of `docker inspect`.
    pub fn container_network_settings(&self, rec: &Record) -> Value {
        let st = self.nets();
        let nets = st.containers.get(&rec.id);
        let settings = nets
            .map(|n| endpoint_settings(&st, &rec.id, n))
            .unwrap_or_default();
        let default = settings
            .iter()
            .find(|(name, _)| name == "bridge")
            .map(|(_, s)| s.clone());
        let running = nets.is_some_and(|n| n.attachments.iter().any(|a| a.active.is_some()));
        let top = |f: fn(&EndpointSettings) -> Value| default.as_ref().map(f);
        let mut networks = Map::new();
        for (name, s) in &settings {
            networks.insert(name.clone(), settings_json(s));
        }
        // A container in `host` or `none` mode shows that network, as Docker does.
        let mode = rec.host_config.network_mode.as_deref().unwrap_or("default");
        if settings.is_empty() && matches!(mode, "host" | "none") {
            if let Some(n) = st.network(mode) {
                networks.insert(n.name.clone(), json!({
                    "IPAMConfig": null, "Links": null, "Aliases": null, "NetworkID": n.id,
                    "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": null
                }));
            }
        }
        let empty = json!("");
        json!({
            "Bridge": "",
            "SandboxID": if running { rec.id.clone() } else { String::new() },
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": port_map(rec, nets),
            "SandboxKey": if running { self.paths.netns(&rec.id).display().to_string() } else { String::new() },
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": top(|s| json!(s.endpoint_id)).unwrap_or(empty.clone()),
            "Gateway": top(|s| json!(s.gateway)).unwrap_or(empty.clone()),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": top(|s| json!(s.ip_address)).unwrap_or(empty.clone()),
            "IPPrefixLen": top(|s| json!(s.ip_prefix_len)).unwrap_or(json!(0)),
            "IPv6Gateway": "",
            "MacAddress": top(|s| json!(s.mac_address)).unwrap_or(empty),
            "Networks": networks
        })
    }

    /// `Ports` of `GET /containers/json`.
    pub fn summary_ports(&self, rec: &Record) -> Vec<PortSummary> {
        let st = self.nets();
        let map = port_map(rec, st.containers.get(&rec.id));
        let mut out = Vec::new();
        for (key, bindings) in map {
            let Ok((port, proto)) = super::publish::parse_port_key(&key) else {
                continue;
            };
            let typ = Some(match proto {
                Proto::Tcp => PortSummaryTypeEnum::TCP,
                Proto::Udp => PortSummaryTypeEnum::UDP,
            });
            match bindings {
                None => out.push(PortSummary {
                    ip: None,
                    private_port: port,
                    public_port: None,
                    typ,
                }),
                Some(list) => out.extend(list.iter().map(|b| PortSummary {
                    ip: b.host_ip.clone(),
                    private_port: port,
                    public_port: b.host_port.as_deref().and_then(|p| p.parse().ok()),
                    typ,
                })),
            }
        }
        out.sort_by_key(|p| (p.private_port, p.public_port));
        out
    }

    /// `NetworkSettings.Networks` of `GET /containers/json`.
    pub fn summary_networks(&self, rec: &Record) -> HashMap<String, EndpointSettings> {
        let st = self.nets();
        st.containers
            .get(&rec.id)
            .map(|n| endpoint_settings(&st, &rec.id, n).into_iter().collect())
            .unwrap_or_default()
    }
}
