//! What berthd persists about networks, in its redb database: one record per network, and
//! per container the networks it is attached to with the address, interface and published
//! ports it holds while running. An address is saved before it is put on an interface, so a
//! crash can leak nothing a restart does not see.

use berth_net::ports::Proto;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

/// When a write reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durable {
    /// Before the call returns.
    Now,
    /// With the next durable commit to the same database (redb keeps the order): for a write
    /// that one more, following immediately, completes, and that is harmless to lose alone.
    WithNextCommit,
}

const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");
const ATTACHMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("network_attachments");

/// One network: the predefined `bridge`, `host` and `none`, and user-defined bridges.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub created: String,
    /// `bridge`, `host` or `null`, as Docker names its drivers.
    pub driver: String,
    /// Bridge networks only.
    pub subnet: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    /// The Linux bridge's name; empty for `host` and `none`.
    pub bridge: String,
    pub internal: bool,
    /// `Attachable` as given at create: no meaning without swarm, but Compose sets it and
    /// inspect shows it back, as dockerd does.
    #[serde(default)]
    pub attachable: bool,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
    /// `IPAM.Options` as given at create.
    #[serde(default)]
    pub ipam_options: HashMap<String, String>,
    /// Created by berthd itself (`bridge`, `host`, `none`): cannot be removed.
    pub predefined: bool,
    /// The subnet came from the user (`--subnet`): only then may containers pick `--ip`.
    #[serde(default)]
    pub user_subnet: bool,
}

impl NetworkRecord {
    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }
}

/// A container's place on one network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub network_id: String,
    /// `--network-alias` names.
    pub aliases: Vec<String>,
    /// `--ip`: the address asked for.
    pub requested_ip: Option<Ipv4Addr>,
    /// Present while the container runs.
    pub active: Option<ActiveEndpoint>,
}

/// A running container's endpoint on a bridge network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActiveEndpoint {
    pub endpoint_id: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub mac: String,
    /// The host end of the veth pair (`veth…`).
    pub host_ifname: String,
    /// The name in the container: eth0, eth1…
    pub ifname: String,
}

/// A port published while the container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub proto: Proto,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
}

/// Everything network-related about one container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerNetworks {
    /// In connection order; the first bridge network gives the default route and the ports.
    pub attachments: Vec<Attachment>,
    pub ports: Vec<PublishedPort>,
}

/// Error from the network tables.
#[derive(Debug, thiserror::Error)]
#[error("network state database: {0}")]
pub struct DbError(String);

fn db_err(e: impl std::fmt::Display) -> DbError {
    DbError(e.to_string())
}

/// The two network tables.
pub struct NetworkDb {
    db: Arc<Database>,
}

impl NetworkDb {
    pub fn new(db: Arc<Database>) -> Result<NetworkDb, DbError> {
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(NETWORKS).map_err(db_err)?;
        tx.open_table(ATTACHMENTS).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(NetworkDb { db })
    }

    pub fn save_network(&self, n: &NetworkRecord) -> Result<(), DbError> {
        self.put(NETWORKS, &n.id, n, Durable::Now)
    }

    pub fn delete_network(&self, id: &str) -> Result<(), DbError> {
        self.delete(NETWORKS, id)
    }

    pub fn save_container(&self, id: &str, c: &ContainerNetworks, durable: Durable) -> Result<(), DbError> {
        self.put(ATTACHMENTS, id, c, durable)
    }

    pub fn delete_container(&self, id: &str) -> Result<(), DbError> {
        self.delete(ATTACHMENTS, id)
    }

    pub fn load(&self) -> Result<(Vec<NetworkRecord>, Vec<(String, ContainerNetworks)>), DbError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let mut networks = Vec::new();
        for entry in tx
            .open_table(NETWORKS)
            .map_err(db_err)?
            .iter()
            .map_err(db_err)?
        {
            let (k, v) = entry.map_err(db_err)?;
            match serde_json::from_slice(v.value()) {
                Ok(n) => networks.push(n),
                Err(e) => tracing::error!("skipping unreadable network {}: {e}", k.value()),
            }
        }
        let mut containers = Vec::new();
        for entry in tx
            .open_table(ATTACHMENTS)
            .map_err(db_err)?
            .iter()
            .map_err(db_err)?
        {
            let (k, v) = entry.map_err(db_err)?;
            match serde_json::from_slice(v.value()) {
                Ok(c) => containers.push((k.value().to_string(), c)),
                Err(e) => tracing::error!("skipping unreadable attachments of {}: {e}", k.value()),
            }
        }
        Ok((networks, containers))
    }

    fn put<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
        durable: Durable,
    ) -> Result<(), DbError> {
        let bytes = serde_json::to_vec(value).map_err(db_err)?;
        let mut tx = self.db.begin_write().map_err(db_err)?;
        if durable == Durable::WithNextCommit {
            tx.set_durability(redb::Durability::None).map_err(db_err)?;
        }
        tx.open_table(table)
            .map_err(db_err)?
            .insert(key, bytes.as_slice())
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }

    fn delete(&self, table: TableDefinition<&str, &[u8]>, key: &str) -> Result<(), DbError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        tx.open_table(table)
            .map_err(db_err)?
            .remove(key)
            .map_err(db_err)?;
        tx.commit().map_err(db_err)
    }
}
