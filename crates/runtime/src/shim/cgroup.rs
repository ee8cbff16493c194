//! Changing a running container's cgroup: freezing and thawing it (`docker pause` and
//! `unpause`) and applying new limits (`docker update`).
//!
//! Freezing goes through libcontainer's `pause`/`resume`, which drive the v1 freezer
//! (`freezer.state`) or the v2 `cgroup.freeze` and keep youki's own state file in step. Whether
//! the container is frozen is read back from the kernel, so a daemon that restarts learns the
//! truth even if it died between freezing and recording it.

use std::path::{Path, PathBuf};

use libcgroups::common::{create_cgroup_manager, CgroupConfig, CgroupManager, ControllerOpt};
use libcontainer::container::ContainerStatus;
use oci_spec::runtime::LinuxResources;

use super::create::error_chain;
use super::supervise::Shim;
use crate::protocol::{OkReply, Status};

/// Where cgroup file systems are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl Shim {
    /// `Pause`: freezes every process of the started, not yet exited container.
    pub(super) fn pause(&mut self) -> OkReply {
        if let Some(refusal) = self.refuse_unless_running() {
            return refusal;
        }
        if self.sync_frozen_status() {
            return OkReply::ok();
        }
        match self.container.pause() {
            Ok(()) => OkReply::ok(),
            Err(e) => OkReply::err(format!("cannot pause container: {}", error_chain(&e))),
        }
    }

    /// `Resume`: thaws a paused container.
    pub(super) fn resume(&mut self) -> OkReply {
        if let Some(refusal) = self.refuse_unless_running() {
            return refusal;
        }
        if !self.sync_frozen_status() {
            return OkReply::ok();
        }
        match self.container.resume() {
            Ok(()) => OkReply::ok(),
            Err(e) => OkReply::err(format!("cannot resume container: {}", error_chain(&e))),
        }
    }

    /// `Update`: writes the given limits into the container's cgroup, as `youki update` does.
    /// Values the request leaves out are not touched.
    pub(super) fn update(&mut self, resources: &LinuxResources) -> OkReply {
        if let Some(refusal) = self.refuse_unless_running() {
            return refusal;
        }
        let applied = self
            .container
            .spec()
            .map_err(|e| error_chain(&e))
            .and_then(|config| {
                create_cgroup_manager(CgroupConfig {
                    cgroup_path: config.cgroup_path,
                    systemd_cgroup: self.container.systemd(),
                    container_name: self.cfg.id.clone(),
                })
                .map_err(|e| error_chain(&e))
            })
            .and_then(|manager| {
                manager
                    .apply(&ControllerOpt {
                        resources,
                        disable_oom_killer: false,
                        oom_score_adj: None,
                        freezer_state: None,
                    })
                    .map_err(|e| error_chain(&e))
            });
        match applied {
            Ok(()) => OkReply::ok(),
            Err(e) => OkReply::err(e),
        }
    }

    /// Whether the container's cgroup is frozen right now.
    pub(super) fn frozen(&self) -> bool {
        self.cgroups_path
            .as_deref()
            .is_some_and(|p| is_frozen(Path::new(CGROUP_ROOT), p))
    }

    /// libcontainer refuses to pause what it believes paused and to resume what it believes
    /// running; the kernel is the authority (something outside libcontainer may have frozen
    /// or thawed the cgroup), so its belief is brought in line first. Returns whether the
    /// cgroup is frozen: pausing a frozen or resuming a thawed container has nothing to do.
    fn sync_frozen_status(&mut self) -> bool {
        let frozen = self.frozen();
        if frozen != (self.container.status() == ContainerStatus::Paused) {
            let status = if frozen {
                ContainerStatus::Paused
            } else {
                ContainerStatus::Running
            };
            if let Err(e) = self.container.set_status(status).save() {
                eprintln!("berth-shim: record container status {status:?}: {e}");
            }
        }
        frozen
    }

    fn refuse_unless_running(&self) -> Option<OkReply> {
        (self.state.exited.is_some() || self.state.status != Some(Status::Running))
            .then(|| OkReply::err(format!("container {} is not running", self.cfg.id)))
    }
}

/// The file telling whether the cgroup at `cgroups_path` is frozen, and the content that
/// means thawed: `cgroup.freeze` = `0` on a pure v2 host, else the v1 freezer's
/// `freezer.state` = `THAWED` (hybrid hosts keep the freezer on v1, as libcgroups does).
fn freezer_file(root: &Path, cgroups_path: &Path) -> (PathBuf, &'static str) {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    if root.join("cgroup.controllers").exists() {
        (root.join(rel).join("cgroup.freeze"), "0")
    } else {
        (
            root.join("freezer").join(rel).join("freezer.state"),
            "THAWED",
        )
    }
}

/// Whether the cgroup at `cgroups_path` under the cgroup mount `root` is frozen. One still
/// freezing counts as frozen: it wants thawing, and a process joining it would stop.
fn is_frozen(root: &Path, cgroups_path: &Path) -> bool {
    let (file, thawed) = freezer_file(root, cgroups_path);
    std::fs::read_to_string(file).is_ok_and(|s| s.trim() != thawed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Request;

    #[test]
    fn reads_the_v1_freezer() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("freezer/berth/c1");
        std::fs::create_dir_all(&dir).unwrap();
        let cg = Path::new("/berth/c1");
        std::fs::write(dir.join("freezer.state"), "THAWED\n").unwrap();
        assert!(!is_frozen(root.path(), cg));
        std::fs::write(dir.join("freezer.state"), "FREEZING\n").unwrap();
        assert!(is_frozen(root.path(), cg));
        std::fs::write(dir.join("freezer.state"), "FROZEN\n").unwrap();
        assert!(is_frozen(root.path(), cg));
        assert!(!is_frozen(root.path(), Path::new("/berth/gone")));
    }

    #[test]
    fn reads_the_v2_freeze_file() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let dir = root.path().join("berth/c2");
        std::fs::create_dir_all(&dir).unwrap();
        // A v1-looking freezer dir on a v2 host must not be consulted.
        std::fs::create_dir_all(root.path().join("freezer/berth/c2")).unwrap();
        std::fs::write(
            root.path().join("freezer/berth/c2/freezer.state"),
            "FROZEN\n",
        )
        .unwrap();
        let cg = Path::new("/berth/c2");
        std::fs::write(dir.join("cgroup.freeze"), "0\n").unwrap();
        assert!(!is_frozen(root.path(), cg));
        std::fs::write(dir.join("cgroup.freeze"), "1\n").unwrap();
        assert!(is_frozen(root.path(), cg));
    }

    #[test]
    fn update_carries_only_the_given_limits() {
        let resources: LinuxResources =
            serde_json::from_str(r#"{"pids":{"limit":10},"memory":{"limit":67108864}}"#).unwrap();
        let req = Request::Update { resources };
        let wire = serde_json::to_string(&req).unwrap();
        assert_eq!(serde_json::from_str::<Request>(&wire).unwrap(), req);
        let v: serde_json::Value = serde_json::from_str(&wire).unwrap();
        assert_eq!(v["op"], "update");
        assert_eq!(v["resources"]["pids"]["limit"], 10);
        assert!(v["resources"].get("cpu").is_none(), "{wire}");
        assert_eq!(
            serde_json::to_string(&Request::Pause).unwrap(),
            r#"{"op":"pause"}"#
        );
        assert_eq!(
            serde_json::to_string(&Request::Resume).unwrap(),
            r#"{"op":"resume"}"#
        );
    }
}
