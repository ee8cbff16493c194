//! The `run`/`create` flags about a container's namespaces, devices and sysctls (`--ipc`,
//! `--pid`, `--uts`, `--userns`, `--device`, `--device-cgroup-rule`, `--sysctl`), checked as
//! docker 20.10's CLI checks them before anything is sent.

use std::collections::HashMap;

use berth_api::models::{ContainerCreateBody, DeviceMapping};
use clap::Args;

use crate::commands::create::flag_error;
use crate::commands::Failure;

#[derive(Debug, Clone, Default, Args)]
pub struct NamespaceOpts {
    /// IPC mode to use
    #[arg(long = "ipc", value_name = "string")]
    pub ipc: Option<String>,
    /// PID namespace to use
    #[arg(long = "pid", value_name = "string")]
    pub pid: Option<String>,
    /// UTS namespace to use
    #[arg(long = "uts", value_name = "string")]
    pub uts: Option<String>,
    /// User namespace to use
    #[arg(long = "userns", value_name = "string")]
    pub userns: Option<String>,
    /// Add a host device to the container
    #[arg(long = "device", value_name = "list")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule", value_name = "list")]
    pub device_cgroup_rule: Vec<String>,
    /// Sysctl options (default map[])
    #[arg(long = "sysctl", value_name = "map")]
    pub sysctl: Vec<String>,
}

/// An error of docker 20.10's `parse` (not tied to one flag's syntax).
fn parse_error(cmd: &str, msg: &str) -> Failure {
    Failure::new(
        125,
        format!(
            "berth: {}.\nSee 'berth {cmd} --help'.",
            msg.trim_end_matches('.')
        ),
    )
}

impl NamespaceOpts {
    /// Checks these flags and writes them into `body`'s host config.
    pub fn apply(&self, cmd: &str, body: &mut ContainerCreateBody) -> Result<(), Failure> {
        for rule in &self.device_cgroup_rule {
            if !valid_cgroup_rule(rule) {
                let why = format!("invalid device cgroup format '{rule}'");
                return Err(flag_error(cmd, rule, "--device-cgroup-rule", &why));
            }
        }
        let mut sysctls = HashMap::new();
        for s in &self.sysctl {
            validate_sysctl(s).map_err(|why| flag_error(cmd, s, "--sysctl", &why))?;
            let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
            sysctls.insert(k.to_string(), v.to_string());
        }
        let checks = [
            (
                valid_ipc_mode(self.ipc.as_deref().unwrap_or_default()),
                "--ipc: invalid IPC mode",
            ),
            (
                valid_pid_mode(self.pid.as_deref().unwrap_or_default()),
                "--pid: invalid PID mode",
            ),
            (
                valid_host_or_empty(self.uts.as_deref().unwrap_or_default()),
                "--uts: invalid UTS mode",
            ),
            (
                valid_host_or_empty(self.userns.as_deref().unwrap_or_default()),
                "--userns: invalid USER mode",
            ),
        ];
        if let Some((_, msg)) = checks.iter().find(|(valid, _)| !valid) {
            return Err(parse_error(cmd, msg));
        }
        let mut devices = Vec::new();
        for d in &self.device {
            validate_device(d).map_err(|e| parse_error(cmd, &e))?;
            devices.push(parse_device(d));
        }
        let hc = body.host_config.get_or_insert_with(Default::default);
        hc.ipc_mode = self.ipc.clone();
        hc.pid_mode = self.pid.clone();
        hc.uts_mode = self.uts.clone();
        hc.userns_mode = self.userns.clone();
        // As docker sends them: the device list always, the rest when given.
        hc.devices = Some(devices);
        hc.device_cgroup_rules =
            (!self.device_cgroup_rule.is_empty()).then(|| self.device_cgroup_rule.clone());
        hc.sysctls = (!sysctls.is_empty()).then_some(sysctls);
        Ok(())
    }
}

fn valid_ipc_mode(mode: &str) -> bool {
    matches!(mode, "" | "none" | "private" | "host" | "shareable")
        || mode
            .split_once(':')
            .is_some_and(|(kind, _)| kind == "container")
}

fn valid_pid_mode(mode: &str) -> bool {
    let parts: Vec<&str> = mode.split(':').collect();
    match parts[0] {
        "" | "host" => true,
        "container" => parts.len() == 2 && !parts[1].is_empty(),
        _ => false,
    }
}

/// `--uts` and `--userns`: only `host` (or nothing); docker looks at the part before a colon.
fn valid_host_or_empty(mode: &str) -> bool {
    mode.is_empty() || mode.split(':').next() == Some("host")
}

/// `type major:minor access`, each number or `*` (docker's `deviceCgroupRuleRegexp`).
fn valid_cgroup_rule(rule: &str) -> bool {
    let number = |n: &str| n == "*" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    match rule.split(' ').collect::<Vec<_>>()[..] {
        [kind, numbers, access] => {
            matches!(kind, "a" | "b" | "c")
                && numbers
                    .split_once(':')
                    .is_some_and(|(a, b)| number(a) && number(b))
                && (1..=3).contains(&access.len())
                && access.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        }
        _ => false,
    }
}

/// The sysctls docker's CLI lets through: the IPC ones and `net.*`, `fs.mqueue.*`.
fn validate_sysctl(val: &str) -> Result<(), String> {
    const ALLOWED: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let refused = || format!("sysctl '{val}' is not whitelisted");
    let (key, _) = val.split_once('=').ok_or_else(refused)?;
    if ALLOWED.contains(&key) || key.starts_with("net.") || key.starts_with("fs.mqueue.") {
        Ok(())
    } else {
        Err(refused())
    }
}

/// `r`, `w` and `m`, each at most once.
fn valid_device_mode(mode: &str) -> bool {
    !mode.is_empty()
        && mode.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        && ['r', 'w', 'm']
            .iter()
            .all(|c| mode.matches(*c).count() <= 1)
}

/// docker's `validateLinuxPath` for `--device HOST[:CONTAINER][:PERMS]`.
fn validate_device(val: &str) -> Result<(), String> {
    if val.matches(':').count() > 2 {
        return Err(format!("bad format for path: {val}"));
    }
    let split: Vec<&str> = val.splitn(3, ':').collect();
    if split[0].is_empty() {
        return Err(format!("bad format for path: {val}"));
    }
    let container_path = match split[..] {
        [host] => host,
        [host, mode] if valid_device_mode(mode) => host,
        [_, container] => container,
        [_, container, mode] => {
            if !valid_device_mode(mode) {
                return Err(format!("bad mode specified: {mode}"));
            }
            container
        }
        _ => unreachable!("splitn(3) gives one to three parts"),
    };
    if !container_path.starts_with('/') {
        return Err(format!("{container_path} is not an absolute path"));
    }
    Ok(())
}

/// docker's `parseLinuxDevice`: the container path defaults to the host's, permissions to rwm.
fn parse_device(device: &str) -> DeviceMapping {
    let arr: Vec<&str> = device.split(':').collect();
    let mut permissions = "rwm";
    let mut dst = "";
    if arr.len() == 3 {
        permissions = arr[2];
    }
    if arr.len() >= 2 {
        if valid_device_mode(arr[1]) {
            permissions = arr[1];
        } else {
            dst = arr[1];
        }
    }
    let src = arr[0];
    DeviceMapping {
        path_on_host: Some(src.to_string()),
        path_in_container: Some(if dst.is_empty() { src } else { dst }.to_string()),
        cgroup_permissions: Some(permissions.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_checked_as_docker_does() {
        for ok in [
            "",
            "private",
            "shareable",
            "host",
            "none",
            "container:x",
            "container:",
        ] {
            assert!(valid_ipc_mode(ok), "{ok}");
        }
        assert!(!valid_ipc_mode("bogus"));
        assert!(valid_pid_mode("container:x") && valid_pid_mode("host") && valid_pid_mode(""));
        assert!(
            !valid_pid_mode("container:")
                && !valid_pid_mode("container:a:b")
                && !valid_pid_mode("private")
        );
        assert!(valid_host_or_empty("host") && !valid_host_or_empty("private"));
    }

    #[test]
    fn devices_parse_as_docker_does() {
        let d = parse_device("/dev/loop3");
        assert_eq!(
            (
                d.path_in_container.as_deref(),
                d.cgroup_permissions.as_deref()
            ),
            (Some("/dev/loop3"), Some("rwm"))
        );
        let d = parse_device("/dev/loop3:r");
        assert_eq!(
            (
                d.path_in_container.as_deref(),
                d.cgroup_permissions.as_deref()
            ),
            (Some("/dev/loop3"), Some("r"))
        );
        let d = parse_device("/dev/loop3:/dev/xl:rw");
        assert_eq!(
            (
                d.path_in_container.as_deref(),
                d.cgroup_permissions.as_deref()
            ),
            (Some("/dev/xl"), Some("rw"))
        );
        assert_eq!(
            validate_device("/dev/loop3:rel").unwrap_err(),
            "rel is not an absolute path"
        );
        assert_eq!(
            validate_device("/dev/loop3:/dev/x:rwq").unwrap_err(),
            "bad mode specified: rwq"
        );
        assert_eq!(
            validate_device(":/dev/x").unwrap_err(),
            "bad format for path: :/dev/x"
        );
        assert_eq!(
            validate_device("a:b:c:d").unwrap_err(),
            "bad format for path: a:b:c:d"
        );
    }

    #[test]
    fn sysctls_and_rules_are_checked_as_docker_does() {
        assert!(validate_sysctl("net.ipv4.ip_forward=1").is_ok());
        assert!(validate_sysctl("kernel.shmmax=1").is_ok());
        assert_eq!(
            validate_sysctl("kernel.shmmax").unwrap_err(),
            "sysctl 'kernel.shmmax' is not whitelisted"
        );
        assert_eq!(
            validate_sysctl("vm.swappiness=1").unwrap_err(),
            "sysctl 'vm.swappiness=1' is not whitelisted"
        );
        assert!(valid_cgroup_rule("c 1:3 rwm") && valid_cgroup_rule("b *:* m"));
        assert!(
            !valid_cgroup_rule("x 1:3 rwm")
                && !valid_cgroup_rule("c 1:3 rwmr")
                && !valid_cgroup_rule("c 1 r")
        );
    }
}
