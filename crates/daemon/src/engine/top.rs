//! `top`: the host's `ps`, filtered to the processes in the container's cgroup, as Docker
//! does it.

use super::{lock, Engine, Error, Result};
use crate::state::Status;

/// `ps` output split into titles and the rows of the container's processes.
#[derive(Debug, PartialEq, Eq)]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

impl Engine {
    /// Runs `ps ps_args` (default `-ef`) and keeps the container's processes.
    pub async fn top(&self, name: &str, ps_args: &str) -> Result<Top> {
        let c = self.container(name)?;
        let id = c.id();
        let cgroups_path = {
            let rec = lock(&c.rec);
            if rec.state.status != Status::Running {
                return Err(Error::Conflict(format!("Container {id} is not running")));
            }
            crate::cgroup_path::container_cgroup(&id, rec.host_config.cgroup_parent.as_deref())
        };
        let pids = container_pids(&id, &cgroups_path)?;
        let args: Vec<&str> = match ps_args.split_whitespace().collect::<Vec<_>>() {
            a if a.is_empty() => vec!["-ef"],
            a => a,
        };
        // No shell: each word is one argument to ps, which only reads.
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| Error::Internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(Error::Internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

/// The PIDs (host view) in the container's cgroup, on v1 or v2.
pub(super) fn container_pids(id: &str, cgroups_path: &str) -> Result<Vec<u32>> {
    let candidates = [
        format!("/sys/fs/cgroup{cgroups_path}/cgroup.procs"),
        format!("/sys/fs/cgroup/pids{cgroups_path}/cgroup.procs"),
        format!("/sys/fs/cgroup/memory{cgroups_path}/cgroup.procs"),
        format!("/sys/fs/cgroup/cpu{cgroups_path}/cgroup.procs"),
    ];
    for path in &candidates {
        if let Ok(text) = std::fs::read_to_string(path) {
            return Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect());
        }
    }
    Err(Error::Internal(format!("cannot find the cgroup of container {id}")))
}

/// Keeps the rows whose PID is in `pids`. The last column (the command) may hold spaces,
/// so each row is split into as many fields as there are titles.
fn parse_ps(output: &str, pids: &[u32]) -> Result<Top> {
    let mut lines = output.lines();
    let titles: Vec<String> = lines.next().unwrap_or_default().split_whitespace().map(String::from).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::InvalidParameter("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<u32>() else { continue };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields[..titles.len() - 1].iter().map(|f| f.to_string()).collect();
        row.push(fields[titles.len() - 1..].join(" "));
        processes.push(row);
    }
    Ok(Top { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_containers_rows_and_whole_commands() {
        let ps = "UID PID PPID C STIME TTY TIME CMD\n\
                  root 1 0 0 06:00 ? 00:00:01 /sbin/init\n\
                  root 4242 4200 0 06:01 ? 00:00:00 sleep 300\n\
                  root 4243 4242 0 06:01 ? 00:00:00 sh -c echo hi\n";
        let top = parse_ps(ps, &[4242, 4243]).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(top.processes.len(), 2);
        assert_eq!(top.processes[0][1], "4242");
        assert_eq!(top.processes[1][7], "sh -c echo hi");
        assert!(parse_ps("USER COMMAND\nroot x\n", &[1]).is_err(), "no PID column");
    }
}
