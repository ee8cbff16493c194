//! Networks: the predefined `bridge` (Docker's docker0, here `berth0`), `host` and `none`,
//! user-defined bridge networks, and the containers' endpoints and published ports on them.
//! IPv4 only.
//!
//! For the embedded DNS server and `/etc/hosts`: [`Engine::resolve_on_networks`] answers
//! "which IPv4 addresses does name N have on the networks container C is attached to"
//! (container names, `--network-alias`es and short IDs of running containers sharing a
//! user-defined network with C, as Docker's resolver answers), and
//! [`Engine::container_addresses`] lists a running container's own addresses.
//!
//! Life cycle: a container's attachments (which networks, aliases, `--ip`) are saved at
//! create; at start each gets an address (saved before use), a veth pair and, on its first
//! network, the published ports; at exit they are released. Live restore: berthd leaves
//! bridges, veths and rules alone when it stops while containers run, and a new berthd
//! takes the saved state over (re-reserving published ports); it rebuilds its nftables table
//! from that state at start. When berthd stops with no container running it removes its
//! table, its accept rules in `filter FORWARD` and its bridges, leaving nothing behind.
//! Traffic between two containers of one network skips the bridge through the fast path
//! (`table netdev <table>`, see `fast_path`), kept in step in the background.
//!
//! Several berthd instances may share a host (the tests run many): the default instance
//! (exec root `/run/berth`) uses bridge `berth0` and table `ip berth`; others derive their
//! names from their exec root, and all pick subnets under one host-wide lock.

mod embedded_dns;
mod fast_path;
mod ops;
mod publish;
mod records;
mod views;

use super::{lock, Engine, Error, Result};
use crate::state::{Record, Status};
use berth_net::bridge;
use berth_net::fastpath;
use berth_net::ipam::{self, Subnet};
use berth_net::nft::{self, BridgeRules, PortRule, Ruleset};
use berth_net::ports::Reservation;
use rand::RngCore;
use records::{ActiveEndpoint, Attachment, ContainerNetworks, Durable, NetworkDb, NetworkRecord};
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Addresses and ports `assign_networks` gave a starting container, for `plug_networks`.
pub(crate) struct AssignedNetworks {
    nets: ContainerNetworks,
    /// Host sockets holding its published ports until the rules are in place.
    held: Vec<Reservation>,
}

/// berthd's network state.
pub struct Networks {
    db: NetworkDb,
    /// Shared with the fast path's background installs.
    state: Arc<Mutex<State>>,
    /// Host sockets holding published ports, per container.
    reservations: Mutex<HashMap<String, Vec<Reservation>>>,
    /// This instance's nftables table.
    table: String,
    /// This instance's default bridge.
    default_bridge: String,
    /// Networking could not be set up at start; containers on bridges fail with this.
    broken: Mutex<Option<String>>,
    /// For the host-wide registry of instances (`berth_net::instances`).
    exec_root: std::path::PathBuf,
    /// The same-network fast path as installed.
    fast_path: Arc<fast_path::FastPathState>,
}

#[derive(Default)]
struct State {
    networks: HashMap<String, NetworkRecord>,
    containers: HashMap<String, ContainerNetworks>,
}

impl State {
    fn network(&self, name: &str) -> Option<&NetworkRecord> {
        find(self.networks.values(), name)
    }

    /// Addresses in use on a network: its gateway and every active endpoint.
    fn used(&self, net: &NetworkRecord) -> BTreeSet<Ipv4Addr> {
        let mut used: BTreeSet<Ipv4Addr> = net.gateway.into_iter().collect();
        for c in self.containers.values() {
            for a in c.attachments.iter().filter(|a| a.network_id == net.id) {
                if let Some(ep) = &a.active {
                    used.insert(ep.ip);
                }
            }
        }
        used
    }

    /// The nftables ruleset for this state.
    fn ruleset(&self) -> Ruleset {
        let mut bridges: Vec<BridgeRules> = self
            .networks
            .values()
            .filter(|n| n.is_bridge())
            .filter_map(|n| {
                let subnet: Subnet = n.subnet.as_deref()?.parse().ok()?;
                Some(BridgeRules {
                    bridge: n.bridge.clone(),
                    subnet,
                    gateway: n.gateway.unwrap_or_else(|| subnet.first_host()),
                    internal: n.internal,
                })
            })
            .collect();
        bridges.sort_by(|a, b| a.bridge.cmp(&b.bridge));
        let mut ports = Vec::new();
        for c in self.containers.values() {
            let Some(ep) = c.attachments.iter().find_map(|a| a.active.as_ref()) else {
                continue;
            };
            for p in &c.ports {
                ports.push(PortRule {
                    proto: p.proto,
                    host_ip: (!p.host_ip.is_unspecified()).then_some(p.host_ip),
                    host_port: p.host_port,
                    container_ip: ep.ip,
                    container_port: p.container_port,
                });
            }
        }
        ports.sort_by_key(|p| (p.host_port, p.proto));
        Ruleset { bridges, ports }
    }

    /// The running members of each bridge network that has two or more, for the same-network
    /// fast path.
    fn fast_path(&self) -> Vec<fastpath::Segment> {
        let mut segments: Vec<fastpath::Segment> = self
            .networks
            .values()
            .filter(|n| n.is_bridge())
            .map(|n| {
                let mut members: Vec<fastpath::Member> = self
                    .containers
                    .values()
                    .flat_map(|c| &c.attachments)
                    .filter(|a| a.network_id == n.id)
                    .filter_map(|a| a.active.as_ref())
                    .map(|ep| fastpath::Member {
                        mac: ep.mac.clone(),
                        host_ifname: ep.host_ifname.clone(),
                    })
                    .collect();
                members.sort_by(|a, b| a.mac.cmp(&b.mac));
                fastpath::Segment {
                    bridge: n.bridge.clone(),
                    members,
                }
            })
            // A lone member has no one to shortcut to.
            .filter(|s| s.members.len() > 1)
            .collect();
        segments.sort_by(|a, b| a.bridge.cmp(&b.bridge));
        segments
    }

    /// Whether network `id` has two running members or more (then a new member needs the
    /// fast path re-applied; a lone one has no one to shortcut to).
    fn shared(&self, id: &str) -> bool {
        self.containers
            .values()
            .flat_map(|c| &c.attachments)
            .filter(|a| a.network_id == id && a.active.is_some())
            .count()
            > 1
    }
}

/// Finds by full ID, exact name, then unique ID prefix, as Docker resolves networks.
fn find<'a>(
    all: impl Iterator<Item = &'a NetworkRecord> + Clone,
    name: &str,
) -> Option<&'a NetworkRecord> {
    if name.is_empty() {
        return None;
    }
    all.clone()
        .find(|n| n.id == name)
        .or_else(|| all.clone().find(|n| n.name == name))
        .or_else(|| {
            let mut by_prefix = all.filter(|n| n.id.starts_with(name));
            match (by_prefix.next(), by_prefix.next()) {
                (Some(n), None) => Some(n),
                _ => None,
            }
        })
}

fn new_id() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// A tag naming this instance's kernel objects: empty for the default exec root.
fn instance_tag(exec_root: &Path) -> String {
    if exec_root == Path::new("/run/berth") {
        return String::new();
    }
    // FNV-1a: stable across runs and builds, unlike std's hasher.
    let hash = exec_root
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x100000001b3)
        });
    format!("{:06x}", hash & 0xff_ffff)
}

/// Docker's refusal of `--ip`/`--ip6` on the predefined networks.
const PREDEFINED_IP: &str = "user specified IP address is supported on user defined networks only";

/// Whether `s` is a full 64-digit container ID (lower-case hex, as berth makes them).
fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("network {name} not found"))
}

fn link_error(e: berth_net::Error) -> Error {
    Error::Internal(e.to_string())
}

impl Networks {
    pub fn open(db: Arc<redb::Database>, exec_root: &Path) -> anyhow::Result<Networks> {
        let db = NetworkDb::new(db)?;
        let (networks, containers) = db.load()?;
        let tag = instance_tag(exec_root);
        let (table, default_bridge) = if tag.is_empty() {
            ("berth".to_string(), "berth0".to_string())
        } else {
            (format!("berth_{tag}"), format!("berth0-{tag}"))
        };
        Ok(Networks {
            db,
            state: Arc::new(Mutex::new(State {
                networks: networks.into_iter().map(|n| (n.id.clone(), n)).collect(),
                containers: containers.into_iter().collect(),
            })),
            reservations: Mutex::default(),
            table,
            default_bridge,
            broken: Mutex::default(),
            exec_root: exec_root.to_path_buf(),
            fast_path: Default::default(),
        })
    }

    /// Replaces this instance's nftables table with the state's rules.
    fn apply_rules(&self, state: &State) -> Result<()> {
        state
            .ruleset()
            .apply(&self.table)
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// Re-syncs the accept rules for our bridges in `filter FORWARD` (see `berth_net::nft`),
    /// and records our bridges in the host-wide registry.
    fn sync_forward(&self, state: &State) {
        let bridges: Vec<String> = state
            .networks
            .values()
            .filter(|n| n.is_bridge())
            .map(|n| n.bridge.clone())
            .collect();
        if let Err(e) = nft::sync_filter_forward(&self.table, &bridges) {
            tracing::warn!("{e}");
        }
        if let Err(e) = berth_net::instances::record(&self.table, &self.exec_root, &bridges) {
            tracing::warn!("recording this instance's bridges: {e}");
        }
    }

    fn save_container(&self, state: &mut State, id: &str, nets: ContainerNetworks) -> Result<()> {
        self.save_container_as(state, id, nets, Durable::Now)
    }

    fn save_container_as(&self, state: &mut State, id: &str, nets: ContainerNetworks, durable: Durable) -> Result<()> {
        self.db
            .save_container(id, &nets, durable)
            .map_err(|e| Error::Internal(e.to_string()))?;
        state.containers.insert(id.to_string(), nets);
        Ok(())
    }
}

impl Engine {
    fn nets(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.networks.state)
    }

    /// At start-up: the predefined networks, the default bridge's range (`--bip`, else the
    /// first of Docker's pools that no host route covers), the bridges, the rules, and the
    /// published ports of containers that kept running. Kernel failures are logged and
    /// reported when a container needs a bridge, so berthd still serves everything else.
    pub fn start_networking(&self, bip: Option<&str>) -> anyhow::Result<()> {
        let bip = match bip.filter(|b| !b.is_empty()) {
            Some(b) => {
                let (addr, _prefix) = b
                    .split_once('/')
                    .ok_or_else(|| anyhow::anyhow!("invalid CIDR address: {b}"))?;
                let addr: Ipv4Addr = addr
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid CIDR address: {b}"))?;
                let subnet: Subnet = b
                    .parse()
                    .map_err(|e: ipam::BadCidr| anyhow::anyhow!("{e}"))?;
                Some((subnet, addr))
            }
            None => None,
        };
        self.ensure_predefined();
        if let Err(e) = self.bring_up(bip) {
            tracing::error!("networking unavailable: {e}");
            *lock(&self.networks.broken) = Some(e.to_string());
        }
        Ok(())
    }

    fn ensure_predefined(&self) {
        let mut st = self.nets();
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            if st.networks.values().any(|n| n.predefined && n.name == name) {
                continue;
            }
            let rec = NetworkRecord {
                id: new_id(),
                name: name.into(),
                created: super::create::now_rfc3339(),
                driver: driver.into(),
                subnet: None,
                gateway: None,
                bridge: if name == "bridge" {
                    self.networks.default_bridge.clone()
                } else {
                    String::new()
                },
                internal: false,
                attachable: false,
                labels: HashMap::new(),
                options: HashMap::new(),
                ipam_options: HashMap::new(),
                predefined: true,
                user_subnet: false,
            };
            if let Err(e) = self.networks.db.save_network(&rec) {
                tracing::error!("{e}");
            }
            st.networks.insert(rec.id.clone(), rec);
        }
    }

    fn bring_up(&self, bip: Option<(Subnet, Ipv4Addr)>) -> Result<()> {
        let _host = bridge::host_lock().map_err(link_error)?;
        for table in berth_net::instances::collect_stale() {
            tracing::info!("removed the bridges and rules of a gone berthd ({table})");
        }
        let mut st = self.nets();
        let default = st
            .networks
            .values()
            .find(|n| n.predefined && n.name == "bridge")
            .cloned();
        if let Some(mut default) = default {
            let in_use = st.containers.values().any(|c| {
                c.attachments
                    .iter()
                    .any(|a| a.network_id == default.id && a.active.is_some())
            });
            let exists = bridge::link_exists(&default.bridge).map_err(link_error)?;
            // Keep the range while an endpoint on it lives (running containers must keep
            // their addresses), or while the bridge lives unless `--bip` asks for another;
            // otherwise choose again, as dockerd does at each start.
            let current = default
                .subnet
                .as_deref()
                .and_then(|s| s.parse::<Subnet>().ok())
                .zip(default.gateway);
            let keep =
                current.is_some() && (in_use || (exists && bip.is_none_or(|b| Some(b) == current)));
            if keep && bip.is_some_and(|b| Some(b) != current) {
                tracing::warn!("--bip takes effect once no container runs on the default bridge");
            }
            if !keep {
                let (subnet, gateway) = match bip {
                    Some(b) => b,
                    None => {
                        let mut taken = bridge::host_routes().map_err(link_error)?;
                        taken.extend(
                            st.networks
                                .values()
                                .filter(|n| n.id != default.id)
                                .filter_map(|n| n.subnet.as_deref()?.parse::<Subnet>().ok()),
                        );
                        let subnet = ipam::pick_pool(&taken).ok_or_else(|| {
                            Error::Internal("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into())
                        })?;
                        (subnet, subnet.first_host())
                    }
                };
                if exists {
                    // A leftover bridge with another address: start it afresh.
                    bridge::remove_link(&default.bridge).map_err(link_error)?;
                }
                default.subnet = Some(subnet.to_string());
                default.gateway = Some(gateway);
                self.networks
                    .db
                    .save_network(&default)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                st.networks.insert(default.id.clone(), default);
            }
        }
        for n in st.networks.values().filter(|n| n.is_bridge()) {
            if let (Some(subnet), Some(gw)) = (
                n.subnet.as_deref().and_then(|s| s.parse::<Subnet>().ok()),
                n.gateway,
            ) {
                bridge::ensure_bridge(&n.bridge, gw, subnet).map_err(link_error)?;
            }
        }
        // Endpoints of containers that are not running any more (a crash between a start
        // and its record) are released; running ones get their port reservations back.
        let running: std::collections::HashSet<String> = self
            .all_containers()
            .iter()
            .map(|c| c.snapshot())
            .filter(|r| r.state.status == Status::Running)
            .map(|r| r.id)
            .collect();
        let ids: Vec<String> = st.containers.keys().cloned().collect();
        for id in ids {
            if running.contains(&id) {
                let ports = st.containers[&id].ports.clone();
                lock(&self.networks.reservations).insert(id.clone(), publish::reclaim(&ports));
            } else {
                self.release_locked(&mut st, &id, true);
            }
        }
        self.networks.apply_rules(&st)?;
        self.networks.install_fast_path(&st);
        self.networks.sync_forward(&st);
        Ok(())
    }

    /// When berthd stops: with no container running, remove the table, our FORWARD accept
    /// rules and the bridges; with some running, leave everything for the next berthd (live
    /// restore) so their traffic and published ports keep working.
    pub fn stop_networking(&self) {
        let _no_install = self.networks.hold_fast_path();
        let st = self.nets();
        let active = st
            .containers
            .values()
            .any(|c| c.attachments.iter().any(|a| a.active.is_some()));
        if active {
            tracing::info!("containers still run: leaving their networks in place");
            return;
        }
        if let Err(e) = nft::delete_table(&self.networks.table) {
            tracing::warn!("{e}");
        }
        if let Err(e) = fastpath::delete(&self.networks.table) {
            tracing::warn!("{e}");
        }
        if let Err(e) = nft::sync_filter_forward(&self.networks.table, &[]) {
            tracing::warn!("{e}");
        }
        for n in st.networks.values().filter(|n| n.is_bridge()) {
            if let Err(e) = bridge::remove_link(&n.bridge) {
                tracing::warn!("{e}");
            }
        }
        berth_net::instances::forget(&self.networks.table);
    }

    /// Create time: which networks the container joins, checked (aliases on the default
    /// bridge, `--ip` without a user subnet) before anything is made.
    pub(crate) fn plan_networks(
        &self,
        hc: &berth_api::models::HostConfig,
        networking: Option<&berth_api::models::NetworkingConfig>,
    ) -> Result<ContainerNetworks> {
        use berth_net::mode::NetworkMode;
        let mode =
            NetworkMode::parse(hc.network_mode.as_deref()).map_err(Error::InvalidParameter)?;
        let target = match mode {
            NetworkMode::Bridge => "bridge".to_string(),
            NetworkMode::User(name) => name,
            NetworkMode::None | NetworkMode::Host => {
                // Their endpoints take no address, as Docker answers.
                let addressed = networking
                    .and_then(|n| n.endpoints_config.as_ref())
                    .into_iter()
                    .flat_map(|e| e.values())
                    .filter_map(|s| s.ipam_config.as_ref())
                    .any(|c| {
                        [&c.ipv4_address, &c.ipv6_address]
                            .iter()
                            .any(|ip| ip.as_deref().is_some_and(|ip| !ip.is_empty()))
                    });
                if addressed {
                    return Err(Error::InvalidParameter(PREDEFINED_IP.into()));
                }
                return Ok(ContainerNetworks::default());
            }
            NetworkMode::Container(_) => return Ok(ContainerNetworks::default()),
        };
        let st = self.nets();
        let Some(net) = st.network(&target) else {
            // As Docker: an unknown network fails the start, not the create.
            let attachment = Attachment {
                network_id: target,
                aliases: Vec::new(),
                requested_ip: None,
                active: None,
            };
            return Ok(ContainerNetworks {
                attachments: vec![attachment],
                ports: Vec::new(),
            });
        };
        if net.driver != "bridge" {
            // `--network host` / `none` by name or ID.
            return Ok(ContainerNetworks::default());
        }
        let endpoints = networking
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default();
        let settings = endpoints
            .iter()
            // The docker CLI keys the settings by the mode it sent, `default` for the
            // default bridge.
            .find(|(k, _)| {
                *k == &target
                    || *k == &net.name
                    || *k == &net.id
                    || (net.predefined && k.as_str() == "default")
            })
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let attachment = attachment_for(net, &settings)?;
        Ok(ContainerNetworks {
            attachments: vec![attachment],
            ports: Vec::new(),
        })
    }

    /// Saves what `plan_networks` decided, once the container exists.
    /// Create time: the plan reaches the disk with the container's record, saved right
    /// after it (a crash in between loses both: no orphan, and one disk flush fewer).
    pub(crate) fn save_network_plan(&self, id: &str, plan: ContainerNetworks) -> Result<()> {
        let mut st = self.nets();
        self.networks.save_container_as(&mut st, id, plan, Durable::WithNextCommit)
    }

    /// Start time, first half: picks and saves the container's addresses and published ports
    /// (holding the host ports), so its /etc/hosts can name the address; `None` when it has
    /// no bridge network. The interfaces come with `plug_networks`, which may run beside the
    /// shim's create: the container's process does not run before its start. Until then (or
    /// on error) `release_locked` (`teardown_network`) undoes this: nothing is left.
    pub(crate) fn assign_networks(&self, rec: &Record) -> Result<Option<AssignedNetworks>> {
        let mut st = self.nets();
        let Some(mut nets) = st.containers.get(&rec.id).cloned() else {
            return Ok(None);
        };
        if nets.attachments.is_empty() {
            return Ok(None);
        }
        if let Some(why) = lock(&self.networks.broken).clone() {
            return Err(Error::Internal(format!("networking is unavailable: {why}")));
        }
        let exposed = rec.config.exposed_ports.clone().unwrap_or_default();
        let requests =
            publish::requests(&rec.host_config, &exposed).map_err(Error::InvalidParameter)?;
        // Assign everything first and save it: the addresses are ours before they are used.
        let original = nets.clone();
        for i in 0..nets.attachments.len() {
            let (wanted, requested_ip) = (
                nets.attachments[i].network_id.clone(),
                nets.attachments[i].requested_ip,
            );
            // A network named at create may have been made (or removed) since.
            let assigned = match st.network(&wanted).cloned() {
                Some(net) => {
                    nets.attachments[i].network_id = net.id.clone();
                    self.new_endpoint(&st, &net, requested_ip, &format!("eth{i}"))
                }
                None => Err(not_found(&wanted)),
            };
            match assigned {
                Ok(ep) => nets.attachments[i].active = Some(ep),
                Err(e) => {
                    st.containers.insert(rec.id.clone(), original);
                    return Err(e);
                }
            }
            // In the state at once, so the next attachment sees the address taken.
            st.containers.insert(rec.id.clone(), nets.clone());
        }
        let taken: Vec<_> = st
            .containers
            .iter()
            .filter(|(id, _)| **id != rec.id)
            .flat_map(|(_, c)| c.ports.clone())
            .collect();
        let on_bridge = nets
            .attachments
            .first()
            .and_then(|a| st.networks.get(&a.network_id))
            .is_some_and(|n| !n.internal);
        let (ports, held) = if on_bridge && !requests.is_empty() {
            match publish::allocate(&requests, &taken) {
                Ok(p) => p,
                Err(why) => {
                    let ep_id = nets.attachments[0]
                        .active
                        .as_ref()
                        .map(|e| e.endpoint_id.clone())
                        .unwrap_or_default();
                    nets.attachments.iter_mut().for_each(|a| a.active = None);
                    st.containers.insert(rec.id.clone(), nets);
                    return Err(Error::Internal(format!(
                        "driver failed programming external connectivity on endpoint {} ({ep_id}): {why}",
                        rec.name
                    )));
                }
            }
        } else {
            (Vec::new(), Vec::new())
        };
        nets.ports = ports;
        if let Err(e) = self.networks.save_container(&mut st, &rec.id, nets.clone()) {
            self.release_locked(&mut st, &rec.id, true);
            return Err(e);
        }
        Ok(Some(AssignedNetworks { nets, held }))
    }

    /// Start time, second half: the veth pairs and the port rules of what `assign_networks`
    /// saved. On error everything assigned is released (no veth, rule, address or port).
    /// Blocks briefly (netlink, and `nft` when ports are published).
    pub(crate) fn plug_networks(&self, rec: &Record, assigned: AssignedNetworks) -> Result<()> {
        let AssignedNetworks { nets, held } = assigned;
        let mut st = self.nets();
        let result = (|| {
            let netns = self.paths.netns(&rec.id);
            for (i, a) in nets.attachments.iter().enumerate() {
                let ep = a.active.as_ref().expect("assigned above");
                // A `network disconnect` since the assignment took the endpoint away (the
                // state lock was let go in between): no veth for it, or it would leak.
                let still_assigned = st.containers.get(&rec.id).is_some_and(|c| {
                    c.attachments.iter().any(|x| {
                        x.active.as_ref().is_some_and(|x| x.endpoint_id == ep.endpoint_id)
                    })
                });
                let Some(net) = st.networks.get(&a.network_id).filter(|_| still_assigned) else {
                    continue;
                };
                self.plug(net, ep, &netns, i == 0)?;
            }
            if !nets.ports.is_empty() {
                self.networks.apply_rules(&st)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => {
                // Unless a disconnect since took the ports away with the last network.
                if st.containers.get(&rec.id).is_some_and(|c| !c.ports.is_empty()) {
                    lock(&self.networks.reservations).insert(rec.id.clone(), held);
                }
                let shared = nets.attachments.iter().any(|a| st.shared(&a.network_id));
                drop(st);
                if shared {
                    self.networks.refresh_fast_path(&members_of(&nets));
                }
                for a in &nets.attachments {
                    self.network_event(&a.network_id, "connect", Some(&rec.id));
                }
                Ok(())
            }
            Err(e) => {
                drop(held);
                self.release_locked(&mut st, &rec.id, true);
                Err(e)
            }
        }
    }

    /// Picks an address (the one asked for, else the lowest free) and names for an endpoint.
    fn new_endpoint(
        &self,
        st: &State,
        net: &NetworkRecord,
        requested: Option<Ipv4Addr>,
        ifname: &str,
    ) -> Result<ActiveEndpoint> {
        let subnet: Subnet = net
            .subnet
            .as_deref()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Internal(format!("network {} has no subnet", net.name)))?;
        let gateway = net.gateway.unwrap_or_else(|| subnet.first_host());
        let used = st.used(net);
        let ip = match requested {
            Some(ip) if used.contains(&ip) => {
                return Err(Error::Internal(format!("Address already in use")));
            }
            Some(ip) if !subnet.contains(ip) => {
                return Err(Error::InvalidParameter(format!(
                    "no available IPv4 address on network {}: {ip} is outside {subnet}",
                    net.name
                )));
            }
            Some(ip) => ip,
            None => subnet.first_free(&used).ok_or_else(|| {
                Error::Internal(format!(
                    "no available IPv4 addresses on this network's address pools: {} ({})",
                    net.name, net.id
                ))
            })?,
        };
        let endpoint_id = new_id();
        Ok(ActiveEndpoint {
            host_ifname: format!("veth{}", &endpoint_id[..7]),
            endpoint_id,
            ip,
            prefix: subnet.prefix,
            gateway,
            mac: ipam::format_mac(ipam::mac_for(ip)),
            ifname: ifname.to_string(),
        })
    }

    /// Creates the veth pair of one endpoint (and the bridge, if someone removed it).
    fn plug(
        &self,
        net: &NetworkRecord,
        ep: &ActiveEndpoint,
        netns: &Path,
        default_route: bool,
    ) -> Result<()> {
        let subnet: Subnet = net
            .subnet
            .as_deref()
            .and_then(|s| s.parse().ok())
            .unwrap_or(Subnet::new(ep.ip, ep.prefix));
        if !bridge::link_exists(&net.bridge).map_err(link_error)? {
            bridge::ensure_bridge(&net.bridge, ep.gateway, subnet).map_err(link_error)?;
        }
        bridge::attach(&bridge::Endpoint {
            netns,
            bridge: &net.bridge,
            host_ifname: &ep.host_ifname,
            ifname: &ep.ifname,
            addr: ep.ip,
            prefix: ep.prefix,
            mac: ipam::mac_for(ep.ip),
            // An internal network has no way out: no default route through it.
            gateway: (default_route && !net.internal).then_some(ep.gateway),
        })
        .map_err(link_error)
    }

    /// Exit, failed start or removal: releases the container's endpoints and ports. Without
    /// `persist` only in memory, for a container whose record is deleted next (`--rm`): a
    /// crash before that deletion leaves it "running" with its endpoints, as if berthd had
    /// died at the exit, and start-up then releases them.
    pub(crate) fn disconnect_networks(&self, id: &str, persist: bool) {
        let mut st = self.nets();
        let had: Vec<String> = st
            .containers
            .get(id)
            .map(|c| {
                c.attachments
                    .iter()
                    .filter(|a| a.active.is_some())
                    .map(|a| a.network_id.clone())
                    .collect()
            })
            .unwrap_or_default();
        self.release_locked(&mut st, id, persist);
        drop(st);
        for net in had {
            self.network_event(&net, "disconnect", Some(id));
        }
    }

    /// Deletes the veths, forgets addresses and ports, and drops the port rules; saves the
    /// released state when `persist`.
    fn release_locked(&self, st: &mut State, id: &str, persist: bool) {
        let Some(mut nets) = st.containers.get(id).cloned() else {
            return;
        };
        let had_ports = !nets.ports.is_empty();
        let had_active = nets.attachments.iter().any(|a| a.active.is_some());
        let mut veths = Vec::new();
        for a in nets.attachments.iter_mut() {
            if let Some(ep) = a.active.take() {
                veths.push(ep.host_ifname);
            }
        }
        // Deleting a link waits for an RCU grace period (tens of ms): off the exit path, so
        // `run --rm` does not wait for it. Reusing the address at once is safe: the MAC is
        // derived from it, and the old namespace has no process left to answer.
        if !veths.is_empty() {
            std::thread::spawn(move || {
                for v in veths {
                    if let Err(e) = bridge::detach(&v) {
                        tracing::warn!("{e}");
                    }
                }
            });
        }
        nets.ports.clear();
        lock(&self.networks.reservations).remove(id);
        if had_active {
            self.networks.refresh_fast_path(&[]);
        }
        if (had_active || had_ports) && persist {
            if let Err(e) = self.networks.save_container(st, id, nets) {
                tracing::error!("{e}");
            }
        } else {
            st.containers.insert(id.to_string(), nets);
        }
        if had_ports {
            if let Err(e) = self.networks.apply_rules(st) {
                tracing::warn!("{e}");
            }
        }
    }

    /// The container is gone: forget its attachments.
    pub(crate) fn forget_networks(&self, id: &str) {
        let mut st = self.nets();
        self.release_locked(&mut st, id, true);
        st.containers.remove(id);
        if let Err(e) = self.networks.db.delete_container(id) {
            tracing::warn!("{e}");
        }
    }

    /// Which IPv4 addresses `name` has for container `container_id`: among running
    /// containers sharing a user-defined network with it, those whose name, alias or short
    /// ID is `name` (case-insensitive, as DNS is), by their address on the shared network.
    /// Empty when nothing matches (the resolver then asks the host's servers).
    pub fn resolve_on_networks(&self, container_id: &str, name: &str) -> Vec<Ipv4Addr> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let st = self.nets();
        let Some(mine) = st.containers.get(container_id) else {
            return Vec::new();
        };
        let my_nets: Vec<&String> = mine
            .attachments
            .iter()
            .filter(|a| a.active.is_some())
            .map(|a| &a.network_id)
            .filter(|n| st.networks.get(*n).is_some_and(|n| !n.predefined))
            .collect();
        let names: HashMap<String, String> = self
            .all_containers()
            .iter()
            .map(|c| c.snapshot())
            .map(|r| (r.id.clone(), r.name.clone()))
            .collect();
        let mut out = Vec::new();
        for (id, c) in &st.containers {
            for a in c
                .attachments
                .iter()
                .filter(|a| my_nets.contains(&&a.network_id))
            {
                let Some(ep) = &a.active else { continue };
                let matches = names
                    .get(id)
                    .is_some_and(|n| n.to_ascii_lowercase() == name)
                    || a.aliases.iter().any(|x| x.to_ascii_lowercase() == name)
                    || id.get(..12) == Some(name.as_str());
                if matches && !out.contains(&ep.ip) {
                    out.push(ep.ip);
                }
            }
        }
        out
    }

    /// A running container's addresses: (network name, address, prefix length, gateway), in
    /// interface order.
    pub fn container_addresses(&self, container_id: &str) -> Vec<(String, Ipv4Addr, u8, Ipv4Addr)> {
        let st = self.nets();
        st.containers
            .get(container_id)
            .map(|c| {
                c.attachments
                    .iter()
                    .filter_map(|a| {
                        let ep = a.active.as_ref()?;
                        let net = st.networks.get(&a.network_id)?;
                        Some((net.name.clone(), ep.ip, ep.prefix, ep.gateway))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Where the hosts, hostname and resolv.conf files that inspect names for `rec` live, as
    /// Docker records them at each start: nowhere before the first; under `--network
    /// container:<x>` x's (the files the two share, following a chain of such modes), else
    /// the container's own directory.
    pub fn etc_files_dir(&self, rec: &Record) -> Option<std::path::PathBuf> {
        use berth_net::mode::NetworkMode;
        if rec.state.started_at == crate::state::ZERO_TIME {
            return None;
        }
        let mut owner = rec.clone();
        for _ in 0..16 {
            let Ok(NetworkMode::Container(target)) =
                NetworkMode::parse(owner.host_config.network_mode.as_deref())
            else {
                break;
            };
            match self.container(&target) {
                Ok(c) if c.snapshot().id != rec.id => owner = c.snapshot(),
                // Removed since: Docker keeps naming the files the joiner last shared,
                // which lived in the joined container's directory (its full ID is what the
                // mode holds).
                Err(_) if is_full_id(&target) => return Some(self.paths.container_dir(&target)),
                _ => break,
            }
        }
        Some(self.paths.container_dir(&owner.id))
    }

    fn network_event(&self, network_id: &str, action: &str, container: Option<&str>) {
        let (name, driver) = {
            let st = self.nets();
            match st.networks.get(network_id) {
                Some(n) => (n.name.clone(), n.driver.clone()),
                None => return,
            }
        };
        self.network_event_for(network_id, &name, &driver, action, container);
    }

    fn network_event_for(
        &self,
        id: &str,
        name: &str,
        driver: &str,
        action: &str,
        container: Option<&str>,
    ) {
        let mut attributes = std::collections::BTreeMap::from([
            ("name".to_string(), name.to_string()),
            ("type".to_string(), driver.to_string()),
        ]);
        if let Some(c) = container {
            attributes.insert("container".into(), c.to_string());
        }
        self.events.publish("network", action, id, attributes);
    }
}

/// A container's running endpoints as fast-path members.
fn members_of(nets: &ContainerNetworks) -> Vec<fastpath::Member> {
    nets.attachments
        .iter()
        .filter_map(|a| a.active.as_ref())
        .map(|ep| fastpath::Member {
            mac: ep.mac.clone(),
            host_ifname: ep.host_ifname.clone(),
        })
        .collect()
}

/// An attachment from a create request's or a connect request's endpoint settings.
fn attachment_for(
    net: &NetworkRecord,
    settings: &berth_api::models::EndpointSettings,
) -> Result<Attachment> {
    let aliases: Vec<String> = settings
        .aliases
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| !a.is_empty())
        .collect();
    if net.predefined && !aliases.is_empty() {
        return Err(Error::InvalidParameter(
            "network-scoped alias is supported only for containers in user defined networks".into(),
        ));
    }
    let ipam = settings.ipam_config.as_ref();
    let ipv4 = ipam
        .and_then(|c| c.ipv4_address.as_deref())
        .filter(|s| !s.is_empty());
    let ipv6 = ipam
        .and_then(|c| c.ipv6_address.as_deref())
        .filter(|s| !s.is_empty());
    // Docker's order: an address on a predefined network, then an address of a family the
    // network has no user-configured subnet of (berth's networks have no IPv6 subnets).
    if net.predefined && (ipv4.is_some() || ipv6.is_some()) {
        return Err(Error::InvalidParameter(PREDEFINED_IP.into()));
    }
    if (ipv4.is_some() && !net.user_subnet) || ipv6.is_some() {
        return Err(Error::InvalidParameter(
            "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
        ));
    }
    let requested_ip = ipv4
        .map(|ip| {
            ip.parse::<Ipv4Addr>()
                .map_err(|_| Error::InvalidParameter(format!("invalid IPv4 address: {ip}")))
        })
        .transpose()?;
    Ok(Attachment {
        network_id: net.id.clone(),
        aliases,
        requested_ip,
        active: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, name: &str) -> NetworkRecord {
        NetworkRecord {
            id: id.into(),
            name: name.into(),
            created: String::new(),
            driver: "bridge".into(),
            subnet: Some("10.1.0.0/24".into()),
            gateway: Some("10.1.0.1".parse().unwrap()),
            bridge: "b".into(),
            internal: false,
            attachable: false,
            labels: HashMap::new(),
            options: HashMap::new(),
            ipam_options: HashMap::new(),
            predefined: false,
            user_subnet: true,
        }
    }

    #[test]
    fn finds_networks_as_docker_does() {
        let all = [rec("abc123", "web"), rec("abd456", "abc"), rec("fff", "x")];
        assert_eq!(find(all.iter(), "abc123").unwrap().name, "web");
        assert_eq!(
            find(all.iter(), "abc").unwrap().id,
            "abd456",
            "a name beats an ID prefix"
        );
        assert!(find(all.iter(), "ab").is_none(), "ambiguous prefix");
        assert_eq!(find(all.iter(), "ff").unwrap().name, "x");
        assert!(find(all.iter(), "").is_none());
    }

    #[test]
    fn used_addresses_include_gateway_and_active_endpoints() {
        let mut st = State::default();
        let net = rec("n1", "web");
        st.networks.insert("n1".into(), net.clone());
        let ep = ActiveEndpoint {
            endpoint_id: "e".into(),
            ip: "10.1.0.2".parse().unwrap(),
            prefix: 24,
            gateway: "10.1.0.1".parse().unwrap(),
            mac: String::new(),
            host_ifname: "veth1".into(),
            ifname: "eth0".into(),
        };
        let attached = |active| ContainerNetworks {
            attachments: vec![Attachment {
                network_id: "n1".into(),
                aliases: vec![],
                requested_ip: None,
                active,
            }],
            ports: vec![],
        };
        st.containers.insert("c1".into(), attached(Some(ep)));
        st.containers.insert("c2".into(), attached(None));
        let used = st.used(&net);
        assert_eq!(used.len(), 2);
        let subnet: Subnet = "10.1.0.0/24".parse().unwrap();
        assert_eq!(subnet.first_free(&used), Some("10.1.0.3".parse().unwrap()));
    }

    #[test]
    fn fast_path_groups_running_members_by_network() {
        let mut st = State::default();
        let mut other = rec("n2", "db");
        other.bridge = "b2".into();
        st.networks.insert("n1".into(), rec("n1", "web"));
        st.networks.insert("n2".into(), other);
        let endpoint = |ip: &str, veth: &str| ActiveEndpoint {
            endpoint_id: "e".into(),
            ip: ip.parse().unwrap(),
            prefix: 24,
            gateway: "10.1.0.1".parse().unwrap(),
            mac: format!("mac-{ip}"),
            host_ifname: veth.into(),
            ifname: "eth0".into(),
        };
        let on = |net: &str, active: Option<ActiveEndpoint>| Attachment {
            network_id: net.into(),
            aliases: vec![],
            requested_ip: None,
            active,
        };
        let attached = |attachments| ContainerNetworks {
            attachments,
            ports: vec![],
        };
        st.containers.insert(
            "c1".into(),
            attached(vec![
                on("n1", Some(endpoint("10.1.0.2", "va"))),
                on("n2", Some(endpoint("10.2.0.2", "vx"))),
            ]),
        );
        st.containers.insert(
            "c2".into(),
            attached(vec![on("n1", Some(endpoint("10.1.0.3", "vb")))]),
        );
        st.containers
            .insert("c3".into(), attached(vec![on("n2", None)]));
        let segments = st.fast_path();
        let veths: Vec<Vec<&str>> = segments
            .iter()
            .map(|s| s.members.iter().map(|m| m.host_ifname.as_str()).collect())
            .collect();
        // c3 is stopped: b2 has one member, and so no segment.
        assert_eq!(veths, [["va", "vb"]]);
        assert!(st.shared("n1"));
        assert!(!st.shared("n2"));
    }

    #[test]
    fn addresses_are_refused_where_docker_refuses_them() {
        use berth_api::models::{EndpointIpamConfig, EndpointSettings};
        let asking = |v4: Option<&str>, v6: Option<&str>| EndpointSettings {
            ipam_config: Some(EndpointIpamConfig {
                ipv4_address: v4.map(String::from),
                ipv6_address: v6.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        };
        let refusal = |net: &NetworkRecord, s: &EndpointSettings| match attachment_for(net, s) {
            Err(Error::InvalidParameter(m)) => m,
            other => panic!("{:?}", other.map(|a| a.requested_ip)),
        };
        let mut default = rec("d", "bridge");
        default.predefined = true;
        default.user_subnet = false;
        let mut pooled = rec("p", "pooled");
        pooled.user_subnet = false;
        let subnetted = rec("s", "subnetted");
        for s in [
            asking(Some("10.1.0.5"), None),
            asking(None, Some("fd00::5")),
        ] {
            assert_eq!(refusal(&default, &s), PREDEFINED_IP);
        }
        let no_subnet = "user specified IP address is supported only when connecting to networks with user configured subnets";
        assert_eq!(refusal(&pooled, &asking(Some("10.1.0.5"), None)), no_subnet);
        // No berth network has an IPv6 subnet.
        assert_eq!(
            refusal(&subnetted, &asking(None, Some("fd00::5"))),
            no_subnet
        );
        let a = attachment_for(&subnetted, &asking(Some("10.1.0.5"), Some(""))).unwrap();
        assert_eq!(a.requested_ip, Some("10.1.0.5".parse().unwrap()));
        assert!(attachment_for(&default, &asking(Some(""), None)).is_ok());
    }

    #[test]
    fn full_ids_are_64_lower_hex_digits() {
        assert!(is_full_id(&"ab12".repeat(16)));
        assert!(!is_full_id(&"AB12".repeat(16)));
        assert!(!is_full_id("ab12"));
        assert!(!is_full_id(&"xy12".repeat(16)));
    }

    #[test]
    fn instance_tags_differ_per_exec_root() {
        assert_eq!(instance_tag(Path::new("/run/berth")), "");
        let a = instance_tag(Path::new("/tmp/a/exec"));
        assert_eq!(a.len(), 6);
        assert_ne!(a, instance_tag(Path::new("/tmp/b/exec")));
    }
}
