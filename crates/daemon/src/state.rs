//! Container records, persisted in the daemon's redb database. One write transaction per
//! change, so a crash at any moment leaves either the old or the new record.

use berth_api::models::{ContainerConfig, HostConfig};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

/// Docker's "zero" timestamp, shown for a container that never started or finished.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Lifecycle status, spelled as Docker's API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
    Dead,
    Removing,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Dead => "dead",
            Status::Removing => "removing",
        }
    }
}

/// The part of a record that changes as the container runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    /// Frozen by `pause`; only while `status` is `Running`, which Docker keeps for a paused
    /// container (it shows "paused" from the two together).
    #[serde(default)]
    pub paused: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// Exited and waiting for its restart policy to start it again (Docker's `restarting`).
    #[serde(default)]
    pub restarting: bool,
    /// Stopped or killed by a user: `unless-stopped` then leaves it stopped.
    #[serde(default)]
    pub manually_stopped: bool,
    /// The health check's state, for containers that have one.
    #[serde(default)]
    pub health: Option<berth_api::models::Health>,
}

impl RunState {
    /// The status as Docker's API reports it, which has states berth keeps as flags.
    pub fn docker_status(&self) -> &'static str {
        if self.is_paused() {
            "paused"
        } else if self.restarting {
            "restarting"
        } else {
            self.status.as_str()
        }
    }

    /// Frozen by `pause` (the flag means nothing once the container no longer runs).
    pub fn is_paused(&self) -> bool {
        self.paused && self.status == Status::Running
    }

    /// Docker counts a restarting container as running (so `ps` lists it).
    pub fn counts_as_running(&self) -> bool {
        self.status == Status::Running || self.restarting
    }
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            status: Status::Created,
            paused: false,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            oom_killed: false,
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            restarting: false,
            manually_stopped: false,
            health: None,
        }
    }
}

/// Everything berthd knows about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    pub created: String,
    /// The image as the user named it (`busybox`), shown by `ps`.
    pub image: String,
    pub image_id: String,
    /// The effective config: the request merged with the image's defaults.
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: RunState,
    pub restart_count: i64,
    /// Volumes, binds and tmpfs mounts, resolved at create time (absent in older records).
    #[serde(default)]
    pub mounts: Vec<crate::engine::MountRecord>,
}

/// Error from the records table.
#[derive(Debug, thiserror::Error)]
#[error("container state database: {0}")]
pub struct DbError(String);

fn db_err(e: impl std::fmt::Display) -> DbError {
    DbError(e.to_string())
}

/// The containers table.
#[derive(Clone)]
pub struct Records {
    db: Arc<Database>,
}

impl Records {
    pub fn new(db: Arc<Database>) -> Result<Records, DbError> {
        let tx = db.begin_write().map_err(db_err)?;
        tx.open_table(CONTAINERS).map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(Records { db })
    }

    pub fn save(&self, rec: &Record) -> Result<(), DbError> {
        let bytes = serde_json::to_vec(rec).map_err(db_err)?;
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(CONTAINERS).map_err(db_err)?;
            table.insert(rec.id.as_str(), bytes.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    pub fn delete(&self, id: &str) -> Result<(), DbError> {
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = tx.open_table(CONTAINERS).map_err(db_err)?;
            table.remove(id).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Every record; unreadable ones are reported and skipped rather than blocking start-up.
    pub fn load_all(&self) -> Result<Vec<Record>, DbError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let table = tx.open_table(CONTAINERS).map_err(db_err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(db_err)? {
            let (key, value) = entry.map_err(db_err)?;
            match serde_json::from_slice(value.value()) {
                Ok(rec) => out.push(rec),
                Err(e) => tracing::error!("skipping unreadable record {}: {e}", key.value()),
            }
        }
        Ok(out)
    }
}
