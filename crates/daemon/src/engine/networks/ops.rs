//! The `/networks` operations: create, inspect, list, remove, prune, connect, disconnect.

use super::records::NetworkRecord;
use super::{attachment_for, link_error, new_id, not_found, views, State};
use crate::engine::{lock, Engine, Error, Result};
use crate::state::Status;
use berth_api::models::{EndpointSettings, NetworkCreateRequest};
use berth_net::bridge;
use berth_net::ipam::{self, Subnet};
use serde_json::Value;
use std::collections::HashMap;
use std::net::Ipv4Addr;

const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

impl Engine {
    fn container_names(&self) -> HashMap<String, String> {
        self.all_containers()
            .iter()
            .map(|c| c.snapshot())
            .map(|r| (r.id, r.name))
            .collect()
    }

    /// `POST /networks/create`: returns the new network's ID.
    pub fn network_create(&self, req: NetworkCreateRequest) -> Result<String> {
        let name = req.name.clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            return Err(Error::InvalidParameter(format!(
                "invalid network name \"{name}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        match req.driver.as_deref().unwrap_or("") {
            "" | "bridge" => {}
            d @ ("host" | "null") => {
                return Err(Error::Conflict(format!(
                    "only one instance of \"{d}\" network is allowed"
                )))
            }
            d => return Err(Error::NotFound(format!("plugin \"{d}\" not found"))),
        }
        if req.enable_ipv6 == Some(true) {
            return Err(Error::InvalidParameter(
                "berth's bridge networks are IPv4 only (--ipv6 is not supported)".into(),
            ));
        }
        let configs = req
            .ipam
            .as_ref()
            .and_then(|i| i.config.clone())
            .unwrap_or_default();
        // Docker takes IPv6 subnets (with or without --ipv6); berth has no IPv6 yet, so it
        // says so rather than calling the CIDR invalid.
        if let Some(v6) = configs
            .iter()
            .filter_map(|c| c.subnet.as_deref())
            .find(|s| s.contains(':'))
        {
            return Err(Error::InvalidParameter(format!(
                "berth's bridge networks are IPv4 only (IPv6 subnet {v6} is not supported)"
            )));
        }
        if configs.len() > 1 {
            return Err(Error::InvalidParameter(
                "berth supports one IPv4 subnet per network".into(),
            ));
        }
        let requested = configs.first();
        let subnet = match requested
            .and_then(|c| c.subnet.as_deref())
            .filter(|s| !s.is_empty())
        {
            Some(s) => Some(
                s.parse::<Subnet>()
                    .map_err(|e| Error::InvalidParameter(e.to_string()))?,
            ),
            None => None,
        };
        let gateway = match requested
            .and_then(|c| c.gateway.as_deref())
            .filter(|s| !s.is_empty())
        {
            Some(g) => {
                let Some(subnet) = subnet else {
                    return Err(Error::InvalidParameter(
                        "every ip-range or gateway must have a corresponding subnet".into(),
                    ));
                };
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| Error::InvalidParameter(format!("invalid gateway address {g}")))?;
                if !subnet.contains(ip) {
                    return Err(Error::InvalidParameter(format!(
                        "no matching subnet for gateway {g}"
                    )));
                }
                Some(ip)
            }
            None => None,
        };
        let options = req.options.clone().unwrap_or_default();
        let id = new_id();
        let bridge_name = options
            .get(BRIDGE_NAME_OPTION)
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        if bridge_name.is_empty() || bridge_name.len() > 15 {
            return Err(Error::InvalidParameter(format!(
                "invalid bridge name {bridge_name}"
            )));
        }

        let _host = bridge::host_lock().map_err(link_error)?;
        let mut st = self.nets();
        if st.networks.values().any(|n| n.name == name) {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        if st.networks.values().any(|n| n.bridge == bridge_name) {
            return Err(Error::Conflict(format!(
                "bridge name {bridge_name} is already in use by another network"
            )));
        }
        let ours: Vec<Subnet> = st
            .networks
            .values()
            .filter_map(|n| n.subnet.as_deref()?.parse().ok())
            .collect();
        let subnet = match subnet {
            Some(s) => {
                if ours.iter().any(|o| o.overlaps(&s)) {
                    return Err(Error::Conflict(
                        "Pool overlaps with other one on this address space".into(),
                    ));
                }
                s
            }
            None => {
                let mut taken = bridge::host_routes().map_err(link_error)?;
                taken.extend(ours);
                ipam::pick_pool(&taken).ok_or_else(|| {
                    Error::Internal("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into())
                })?
            }
        };
        let gateway_ip = gateway.unwrap_or_else(|| subnet.first_host());
        let rec = NetworkRecord {
            id: id.clone(),
            name: name.clone(),
            created: crate::engine::create::now_rfc3339(),
            driver: "bridge".into(),
            subnet: Some(subnet.to_string()),
            gateway: Some(gateway_ip),
            bridge: bridge_name.clone(),
            internal: req.internal == Some(true),
            attachable: req.attachable == Some(true),
            labels: req.labels.clone().unwrap_or_default(),
            options,
            ipam_options: req
                .ipam
                .as_ref()
                .and_then(|i| i.options.clone())
                .unwrap_or_default(),
            predefined: false,
            user_subnet: requested
                .and_then(|c| c.subnet.as_deref())
                .is_some_and(|s| !s.is_empty()),
        };
        // The bridge and rules first: a failure leaves no record and no bridge.
        let made = (|| -> Result<()> {
            bridge::ensure_bridge(&bridge_name, gateway_ip, subnet).map_err(link_error)?;
            st.networks.insert(id.clone(), rec.clone());
            self.networks.apply_rules(&st)?;
            self.networks
                .db
                .save_network(&rec)
                .map_err(|e| Error::Internal(e.to_string()))
        })();
        if let Err(e) = made {
            st.networks.remove(&id);
            let _ = bridge::remove_link(&bridge_name);
            let _ = self.networks.apply_rules(&st);
            return Err(e);
        }
        self.networks.sync_forward(&st);
        drop(st);
        self.network_event_for(&id, &name, "bridge", "create", None);
        Ok(id)
    }

    /// `GET /networks/{id}`.
    pub fn network_inspect(&self, name: &str) -> Result<Value> {
        let names = self.container_names();
        let st = self.nets();
        let n = st.network(name).ok_or_else(|| not_found(name))?;
        Ok(views::network_json(&st, n, &names, true))
    }

    /// `GET /networks`, with Docker's filters.
    pub fn network_list(&self, filters: &HashMap<String, Vec<String>>) -> Result<Vec<Value>> {
        for key in filters.keys() {
            if !["dangling", "driver", "id", "label", "name", "scope", "type"]
                .contains(&key.as_str())
            {
                return Err(Error::InvalidParameter(format!("Invalid filter '{key}'")));
            }
        }
        let st = self.nets();
        let any = |key: &str, test: &dyn Fn(&str) -> bool| {
            filters.get(key).is_none_or(|vs| vs.iter().any(|v| test(v)))
        };
        let mut out: Vec<&NetworkRecord> = st
            .networks
            .values()
            .filter(|n| any("name", &|v| n.name.contains(v)))
            .filter(|n| any("id", &|v| n.id.starts_with(v)))
            .filter(|n| any("driver", &|v| n.driver == v))
            .filter(|_| any("scope", &|v| v == "local"))
            .filter(|n| any("type", &|v| (v == "builtin") == n.predefined))
            .filter(|n| {
                filters.get("label").is_none_or(|vs| {
                    vs.iter().all(|v| match v.split_once('=') {
                        Some((k, val)) => n.labels.get(k).is_some_and(|x| x == val),
                        None => n.labels.contains_key(v),
                    })
                })
            })
            .filter(|n| {
                any("dangling", &|v| {
                    (v == "true" || v == "1") == (!n.predefined && !in_use(&st, &n.id))
                })
            })
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out
            .into_iter()
            .map(|n| views::network_json(&st, n, &HashMap::new(), false))
            .collect())
    }

    /// `DELETE /networks/{id}`.
    pub fn network_remove(&self, name: &str) -> Result<()> {
        let mut st = self.nets();
        let n = st.network(name).ok_or_else(|| not_found(name))?.clone();
        if n.predefined {
            return Err(Error::Conflict(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if in_use(&st, &n.id) {
            return Err(Error::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                n.name, n.id
            )));
        }
        self.networks
            .db
            .delete_network(&n.id)
            .map_err(|e| Error::Internal(e.to_string()))?;
        st.networks.remove(&n.id);
        if let Err(e) = bridge::remove_link(&n.bridge) {
            tracing::warn!("{e}");
        }
        if let Err(e) = self.networks.apply_rules(&st) {
            tracing::warn!("{e}");
        }
        self.networks.sync_forward(&st);
        drop(st);
        self.network_event_for(&n.id, &n.name, &n.driver, "destroy", None);
        Ok(())
    }

    /// `POST /networks/prune`: removes user networks without active endpoints; returns their
    /// names.
    pub fn network_prune(&self, filters: &HashMap<String, Vec<String>>) -> Result<Vec<String>> {
        for key in filters.keys() {
            if !["label", "label!", "until"].contains(&key.as_str()) {
                return Err(Error::InvalidParameter(format!("Invalid filter '{key}'")));
            }
        }
        let label_ok = |n: &NetworkRecord| {
            let has = |v: &String| match v.split_once('=') {
                Some((k, val)) => n.labels.get(k).is_some_and(|x| x == val),
                None => n.labels.contains_key(v),
            };
            filters.get("label").is_none_or(|vs| vs.iter().all(has))
                && filters.get("label!").is_none_or(|vs| !vs.iter().any(has))
        };
        let candidates: Vec<String> = {
            let st = self.nets();
            let mut v: Vec<&NetworkRecord> = st
                .networks
                .values()
                .filter(|n| !n.predefined && !in_use(&st, &n.id) && label_ok(n))
                .collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v.into_iter().map(|n| n.id.clone()).collect()
        };
        let mut removed = Vec::new();
        for id in candidates {
            let name = self
                .nets()
                .networks
                .get(&id)
                .map(|n| n.name.clone())
                .unwrap_or_default();
            if self.network_remove(&id).is_ok() {
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// `POST /networks/{id}/connect`: joins at once when the container runs, else at its
    /// next start.
    pub fn network_connect(
        self: &std::sync::Arc<Self>,
        network: &str,
        container: &str,
        settings: Option<EndpointSettings>,
    ) -> Result<()> {
        let c = self.container(container)?;
        let rec = c.snapshot();
        let mut st = self.nets();
        let net = st
            .network(network)
            .ok_or_else(|| not_found(network))?
            .clone();
        let mode = rec.host_config.network_mode.as_deref().unwrap_or("");
        if net.driver != "bridge"
            || mode == "host"
            || mode == "none"
            || mode.starts_with("container:")
        {
            let which = if net.driver == "null" || mode == "none" {
                "none"
            } else {
                "host"
            };
            return Err(Error::Conflict(format!(
                "container cannot be disconnected from {which} network or connected to {which} network"
            )));
        }
        let mut nets = st.containers.get(&rec.id).cloned().unwrap_or_default();
        if nets.attachments.iter().any(|a| a.network_id == net.id) {
            return Err(Error::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, net.name
            )));
        }
        let mut attachment = attachment_for(&net, &settings.unwrap_or_default())?;
        let running = rec.state.status == Status::Running;
        let mut joined = Vec::new();
        if running {
            let index = (0..)
                .find(|i| {
                    !nets.attachments.iter().any(|a| {
                        a.active
                            .as_ref()
                            .is_some_and(|e| e.ifname == format!("eth{i}"))
                    })
                })
                .unwrap_or(0);
            let first = !nets.attachments.iter().any(|a| a.active.is_some());
            let ep =
                self.new_endpoint(&st, &net, attachment.requested_ip, &format!("eth{index}"))?;
            attachment.active = Some(ep.clone());
            nets.attachments.push(attachment);
            self.networks
                .save_container(&mut st, &rec.id, nets.clone())?;
            if let Err(e) = self.plug(&net, &ep, &self.paths.netns(&rec.id), first) {
                nets.attachments.pop();
                let _ = self.networks.save_container(&mut st, &rec.id, nets);
                return Err(e);
            }
            joined.push(berth_net::fastpath::Member {
                mac: ep.mac.clone(),
                host_ifname: ep.host_ifname.clone(),
            });
        } else {
            nets.attachments.push(attachment);
            self.networks.save_container(&mut st, &rec.id, nets)?;
        }
        let shared = running && st.shared(&net.id);
        drop(st);
        if shared {
            self.networks.refresh_fast_path(&joined);
        }
        if running {
            // A container started on the default bridge gets the embedded DNS server now.
            if self.uses_embedded_dns(&rec.id) {
                if let Err(e) = self.join_embedded_dns(&rec) {
                    tracing::warn!("{}: {e}", rec.id);
                }
            }
            self.network_event_for(&net.id, &net.name, &net.driver, "connect", Some(&rec.id));
        }
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub fn network_disconnect(&self, network: &str, container: &str, force: bool) -> Result<()> {
        let mut st = self.nets();
        let net = st
            .network(network)
            .ok_or_else(|| not_found(network))?
            .clone();
        let c = match self.container(container) {
            Ok(c) => c,
            // `--force` forgets an endpoint whose container is gone.
            Err(_) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let rec = c.snapshot();
        let mut nets = st.containers.get(&rec.id).cloned().unwrap_or_default();
        let Some(pos) = nets.attachments.iter().position(|a| a.network_id == net.id) else {
            if net.driver != "bridge" {
                return Err(Error::Conflict(format!(
                    "container cannot be disconnected from {0} network or connected to {0} network",
                    if net.driver == "null" { "none" } else { "host" }
                )));
            }
            return Err(Error::Conflict(format!(
                "container {} is not connected to network {}",
                rec.id, net.name
            )));
        };
        let removed = nets.attachments.remove(pos);
        if removed.active.is_some() && nets.attachments.iter().all(|a| a.active.is_none()) {
            // Its only network: its published ports go with it.
            nets.ports.clear();
            lock(&self.networks.reservations).remove(&rec.id);
        }
        self.networks.save_container(&mut st, &rec.id, nets)?;
        if let Some(ep) = &removed.active {
            if let Err(e) = bridge::detach(&ep.host_ifname) {
                tracing::warn!("{e}");
            }
            self.networks.refresh_fast_path(&[]);
            if let Err(e) = self.networks.apply_rules(&st) {
                tracing::warn!("{e}");
            }
        }
        drop(st);
        if removed.active.is_some() {
            self.network_event_for(&net.id, &net.name, &net.driver, "disconnect", Some(&rec.id));
        }
        Ok(())
    }
}

/// Whether any running container has an endpoint on the network.
fn in_use(st: &State, id: &str) -> bool {
    st.containers.values().any(|c| {
        c.attachments
            .iter()
            .any(|a| a.network_id == id && a.active.is_some())
    })
}
