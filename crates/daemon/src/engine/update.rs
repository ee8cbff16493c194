//! `update`: new resource limits (and restart policy) for an existing container.
//!
//! As in Docker, the request's values are checked against the host, merged into the record
//! (a zero means "keep"), and, while the container runs, written into its cgroup by the shim;
//! a stopped container gets them at its next start, from the record.

use super::resources::{verify, HostResources};
use super::{lock, shim, Container, Engine, Error, Result};
use crate::state::Status;
use berth_api::models::{HostConfig, RestartPolicyNameEnum};
use berth_runtime::protocol::Request;
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};
use std::path::Path;

/// An update request: the resource fields of a `HostConfig` (the update body has the same
/// names) and `RestartPolicy`, plus `KernelMemory`, which the API models no longer carry.
#[derive(Debug, Default)]
pub struct UpdateRequest {
    pub resources: HostConfig,
    pub kernel_memory: i64,
}

impl Engine {
    /// `POST /containers/{id}/update`; returns Docker's warnings.
    pub async fn update(&self, name: &str, mut req: UpdateRequest) -> Result<Vec<String>> {
        let c = self.container(name)?;
        let host = HostResources::probe(Path::new("/sys/fs/cgroup"));
        let warnings = verify(&mut req.resources, req.kernel_memory, &host)
            .map_err(Error::InvalidParameter)?;
        // restart policy validated by super::restart::validate (names and retry counts, as at
        // create); AutoRemove is checked against the container's own setting in `merge`.
        super::restart::validate(req.resources.restart_policy.as_ref(), false)?;

        let _op = c.op.lock().await;
        let rec = c.snapshot();
        let cannot = |why: &str| format!("Cannot update container {}: {why}", rec.id);
        if matches!(rec.state.status, Status::Removing | Status::Dead) {
            return Err(Error::Internal(cannot(
                "container is marked for removal and cannot be \"update\"",
            )));
        }
        let merged =
            merge(&rec.host_config, &req.resources).map_err(|why| Error::Conflict(cannot(&why)))?;
        // A paused container runs too: its cgroup takes the limits while frozen.
        if rec.state.status == Status::Running && !rec.state.restarting {
            let resources = live_resources(&req.resources, host.swap_limit)
                .map_err(|e| Error::Internal(cannot(&e)))?;
            shim::call(&self.paths.run_dir(&rec.id), &Request::Update { resources })
                .await
                .map_err(|e| Error::Internal(cannot(&e.to_string())))?;
        }
        self.set_host_config(&c, merged)?;
        self.container_event(&rec, "update", &[]);
        Ok(warnings)
    }

    /// Stores the merged host config on the current record, under its lock, so a concurrent
    /// exit's state is kept.
    fn set_host_config(&self, c: &Container, hc: HostConfig) -> Result<()> {
        let mut current = lock(&c.rec);
        let mut rec = current.clone();
        rec.host_config = hc;
        self.records.save(&rec)?;
        *current = rec;
        Ok(())
    }
}

/// The container's settings after the update: Docker's `UpdateContainer`. A zero (or absent)
/// value keeps the current one; an error is a conflict with what is set already.
pub fn merge(current: &HostConfig, req: &HostConfig) -> std::result::Result<HostConfig, String> {
    let n = |v: Option<i64>| v.unwrap_or(0);
    let mut hc = current.clone();
    // Docker stores the swap limit a memory limit implies (twice the memory) at create; berth
    // derives it when the spec is built. It is written down before the memory can change.
    if n(hc.memory) > 0 && n(hc.memory_swap) == 0 {
        hc.memory_swap = Some(n(hc.memory) * 2);
    }
    let nano = n(req.nano_cpus);
    if nano > 0 && n(hc.cpu_period) > 0 {
        return Err(
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"
                .into(),
        );
    }
    if nano > 0 && n(hc.cpu_quota) > 0 {
        return Err(
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"
                .into(),
        );
    }
    if n(req.cpu_period) > 0 && n(hc.nano_cpus) > 0 {
        return Err(
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"
                .into(),
        );
    }
    if n(req.cpu_quota) > 0 && n(hc.nano_cpus) > 0 {
        return Err(
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
                .into(),
        );
    }
    let keep_or = |new: Option<i64>, old: Option<i64>| if n(new) != 0 { new } else { old };
    hc.blkio_weight = if req.blkio_weight.unwrap_or(0) != 0 {
        req.blkio_weight
    } else {
        hc.blkio_weight
    };
    hc.cpu_shares = keep_or(req.cpu_shares, hc.cpu_shares);
    hc.nano_cpus = keep_or(req.nano_cpus, hc.nano_cpus);
    hc.cpu_period = keep_or(req.cpu_period, hc.cpu_period);
    hc.cpu_quota = keep_or(req.cpu_quota, hc.cpu_quota);
    for (new, old) in [
        (&req.cpuset_cpus, &mut hc.cpuset_cpus),
        (&req.cpuset_mems, &mut hc.cpuset_mems),
    ] {
        if new.as_deref().is_some_and(|s| !s.is_empty()) {
            old.clone_from(new);
        }
    }
    if n(req.memory) != 0 {
        // Docker's wording, though the check is that the memory exceeds the swap limit.
        if n(req.memory) > n(hc.memory_swap) && n(req.memory_swap) == 0 {
            return Err("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into());
        }
        hc.memory = req.memory;
    }
    hc.memory_swap = keep_or(req.memory_swap, hc.memory_swap);
    hc.memory_reservation = keep_or(req.memory_reservation, hc.memory_reservation);
    if req.pids_limit.is_some() {
        hc.pids_limit = req.pids_limit;
    }
    if let Some(policy) = req
        .restart_policy
        .as_ref()
        .filter(|p| p.name.is_some_and(|n| n != RestartPolicyNameEnum::EMPTY))
    {
        let none = policy.name == Some(RestartPolicyNameEnum::NO);
        if current.auto_remove == Some(true) && !none {
            return Err(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            );
        }
        hc.restart_policy = Some(policy.clone());
    }
    Ok(hc)
}

/// The limits to write into a running container's cgroup: only what the request changes
/// (Docker's `toContainerdResources`, where a zero leaves a value alone).
fn live_resources(r: &HostConfig, swap_limit: bool) -> std::result::Result<LinuxResources, String> {
    let n = |v: Option<i64>| v.unwrap_or(0);
    let mut out = Map::new();
    let mut memory = Map::new();
    if n(r.memory) != 0 {
        memory.insert("limit".into(), json!(n(r.memory)));
    }
    if n(r.memory_reservation) != 0 {
        memory.insert("reservation".into(), json!(n(r.memory_reservation)));
    }
    if n(r.memory_swap) != 0 && swap_limit {
        memory.insert("swap".into(), json!(n(r.memory_swap)));
    }
    let mut cpu = Map::new();
    if n(r.cpu_shares) != 0 {
        cpu.insert("shares".into(), json!(n(r.cpu_shares)));
    }
    const PERIOD: i64 = 100_000;
    if n(r.nano_cpus) != 0 {
        cpu.insert("period".into(), json!(PERIOD));
        cpu.insert(
            "quota".into(),
            json!(n(r.nano_cpus) * PERIOD / 1_000_000_000),
        );
    } else {
        if n(r.cpu_period) != 0 {
            cpu.insert("period".into(), json!(n(r.cpu_period)));
        }
        if n(r.cpu_quota) != 0 {
            cpu.insert("quota".into(), json!(n(r.cpu_quota)));
        }
    }
    for (key, list) in [("cpus", &r.cpuset_cpus), ("mems", &r.cpuset_mems)] {
        if let Some(list) = list.as_deref().filter(|l| !l.is_empty()) {
            cpu.insert(key.into(), json!(list));
        }
    }
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(limit) = r.pids_limit {
        // Zero and negative values both mean "no limit" in Docker's API.
        out.insert(
            "pids".into(),
            json!({"limit": if limit > 0 { limit } else { -1 }}),
        );
    }
    if let Some(weight) = r.blkio_weight.filter(|w| *w != 0) {
        out.insert("blockIO".into(), json!({"weight": weight}));
    }
    serde_json::from_value(Value::Object(out)).map_err(|e| format!("invalid resources: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::RestartPolicy;

    const MB: i64 = 1 << 20;

    #[test]
    fn merge_follows_docker() {
        let running = HostConfig {
            memory: Some(64 * MB),
            nano_cpus: Some(500_000_000),
            ..Default::default()
        };
        // The implied swap (2x) is written down; memory within it may change alone.
        let hc = merge(
            &running,
            &HostConfig {
                memory: Some(100 * MB),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (hc.memory, hc.memory_swap),
            (Some(100 * MB), Some(128 * MB))
        );
        assert_eq!(
            hc.nano_cpus,
            Some(500_000_000),
            "zero keeps the current value"
        );
        assert_eq!(
            merge(&running, &HostConfig { memory: Some(300 * MB), ..Default::default() }).unwrap_err(),
            "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
        );
        let hc = merge(
            &running,
            &HostConfig {
                memory: Some(300 * MB),
                memory_swap: Some(-1),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((hc.memory, hc.memory_swap), (Some(300 * MB), Some(-1)));
        // Without a memory limit there is no swap limit to stay under: Docker refuses too.
        assert!(merge(
            &HostConfig::default(),
            &HostConfig {
                memory: Some(64 * MB),
                ..Default::default()
            }
        )
        .is_err());
        assert_eq!(
            merge(
                &running,
                &HostConfig {
                    cpu_quota: Some(50_000),
                    ..Default::default()
                }
            )
            .unwrap_err(),
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
        );
        let quota = HostConfig {
            cpu_period: Some(100_000),
            ..Default::default()
        };
        assert_eq!(
            merge(
                &quota,
                &HostConfig {
                    nano_cpus: Some(1),
                    ..Default::default()
                }
            )
            .unwrap_err(),
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"
        );
        let hc = merge(
            &running,
            &HostConfig {
                pids_limit: Some(-1),
                cpuset_cpus: Some("0".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (hc.pids_limit, hc.cpuset_cpus.as_deref()),
            (Some(-1), Some("0"))
        );
    }

    #[test]
    fn restart_policy_is_stored_unless_auto_remove() {
        let always = RestartPolicy {
            name: Some(RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        };
        let req = HostConfig {
            restart_policy: Some(always.clone()),
            ..Default::default()
        };
        assert_eq!(
            merge(&HostConfig::default(), &req).unwrap().restart_policy,
            Some(always)
        );
        let rm = HostConfig {
            auto_remove: Some(true),
            ..Default::default()
        };
        assert_eq!(
            merge(&rm, &req).unwrap_err(),
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        );
        let empty = RestartPolicy {
            name: Some(RestartPolicyNameEnum::EMPTY),
            maximum_retry_count: Some(0),
        };
        let kept = HostConfig {
            restart_policy: req.restart_policy.clone(),
            ..Default::default()
        };
        let hc = merge(
            &kept,
            &HostConfig {
                restart_policy: Some(empty),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            hc.restart_policy, req.restart_policy,
            "an empty name keeps the policy"
        );
    }

    #[test]
    fn live_resources_carry_only_changes() {
        let r = HostConfig {
            memory: Some(64 * MB),
            pids_limit: Some(0),
            nano_cpus: Some(1_500_000_000),
            ..Default::default()
        };
        let v = serde_json::to_value(live_resources(&r, true).unwrap()).unwrap();
        assert_eq!(v["memory"]["limit"], 64 * MB);
        assert!(v["memory"].get("swap").is_none());
        assert_eq!(v["pids"]["limit"], -1);
        assert_eq!(
            (v["cpu"]["period"].as_i64(), v["cpu"]["quota"].as_i64()),
            (Some(100_000), Some(150_000))
        );
        assert!(v.get("blockIO").is_none() && v["cpu"].get("shares").is_none());
        let r = HostConfig {
            memory_swap: Some(-1),
            cpuset_cpus: Some("1".into()),
            ..Default::default()
        };
        let v = serde_json::to_value(live_resources(&r, true).unwrap()).unwrap();
        assert_eq!(
            (v["memory"]["swap"].as_i64(), v["cpu"]["cpus"].as_str()),
            (Some(-1), Some("1"))
        );
        let v = serde_json::to_value(live_resources(&r, false).unwrap()).unwrap();
        assert!(
            v["memory"].get("swap").is_none(),
            "no swap accounting, no swap limit"
        );
    }
}
