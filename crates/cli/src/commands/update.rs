//! `berth update`: new resource limits and restart policy for containers, printing each
//! name, then the daemon's warnings, then the errors (exit 1), as docker does.

use berth_api::models::{ContainerUpdateBody, ContainerUpdateResponse};
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{self, Client, ClientError};
use crate::commands::create::flag_error;
use crate::commands::{CmdResult, Failure};
use crate::format;

/// `berth update`
#[derive(Debug, Clone, Default, Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(
        long = "blkio-weight",
        value_name = "uint16",
        allow_hyphen_values = true
    )]
    pub blkio_weight: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period", value_name = "int", allow_hyphen_values = true)]
    pub cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", value_name = "int", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPU shares (relative weight)
    #[arg(
        short = 'c',
        long = "cpu-shares",
        value_name = "int",
        allow_hyphen_values = true
    )]
    pub cpu_shares: Option<String>,
    /// Number of CPUs
    #[arg(long = "cpus", value_name = "decimal", allow_hyphen_values = true)]
    pub cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus", value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems", value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit
    #[arg(long = "kernel-memory", value_name = "bytes")]
    pub kernel_memory: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory", value_name = "bytes")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation", value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long = "restart", value_name = "string")]
    pub restart: Option<String>,
    /// The containers to update
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `berth update`
pub async fn run(client: &Client, args: UpdateArgs) -> CmdResult {
    let body = args.body()?;
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for name in &args.containers {
        let path = format!("/containers/{}/update", client::enc(name));
        let answer: Result<ContainerUpdateResponse, ClientError> = match client::json_body(&body) {
            Ok(b) => client.json(Method::POST, &path, b).await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(r) => {
                println!("{name}");
                warnings.extend(r.warnings.unwrap_or_default());
            }
            Err(e @ ClientError::Connect { .. }) => return Err(e.into()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !warnings.is_empty() {
        println!("{}", warnings.join("\n"));
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(Failure::new(1, errors.join("\n")))
    }
}

impl UpdateArgs {
    /// The request body, with docker's flag checks: a bad value is exit 125, no flag at all
    /// or a malformed `--restart` exit 1.
    fn body(&self) -> Result<Value, Failure> {
        let given = [
            &self.blkio_weight,
            &self.cpu_period,
            &self.cpu_quota,
            &self.cpu_shares,
            &self.cpus,
            &self.cpuset_cpus,
            &self.cpuset_mems,
            &self.kernel_memory,
            &self.memory,
            &self.memory_reservation,
            &self.memory_swap,
            &self.pids_limit,
            &self.restart,
        ];
        if given.iter().all(|f| f.is_none()) {
            return Err(Failure::new(
                1,
                "you must provide one or more flags when using this command",
            ));
        }
        let bytes = |v: &Option<String>, flag: &str| -> Result<Option<i64>, Failure> {
            v.as_deref()
                .map(|s| format::ram_in_bytes(s).map_err(|e| flag_error("update", s, flag, &e)))
                .transpose()
        };
        let int = |v: &Option<String>, flag: &str| -> Result<Option<i64>, Failure> {
            v.as_deref()
                .map(|s| go_int(s).map_err(|e| flag_error("update", s, flag, &e)))
                .transpose()
        };
        let memory_swap = match self.memory_swap.as_deref() {
            Some("-1") => Some(-1),
            _ => bytes(&self.memory_swap, "--memory-swap")?,
        };
        let blkio_weight = self
            .blkio_weight
            .as_deref()
            .map(|s| go_uint16(s).map_err(|e| flag_error("update", s, "--blkio-weight", &e)))
            .transpose()?;
        let nano_cpus = self
            .cpus
            .as_deref()
            .map(|s| nano_cpus(s).map_err(|e| flag_error("update", s, "--cpus", &e)))
            .transpose()?;
        let resources = ContainerUpdateBody {
            blkio_weight,
            cpu_period: int(&self.cpu_period, "--cpu-period")?,
            cpu_quota: int(&self.cpu_quota, "--cpu-quota")?,
            cpu_shares: int(&self.cpu_shares, "-c, --cpu-shares")?,
            nano_cpus,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            memory: bytes(&self.memory, "-m, --memory")?,
            memory_reservation: bytes(&self.memory_reservation, "--memory-reservation")?,
            memory_swap,
            pids_limit: int(&self.pids_limit, "--pids-limit")?,
            ..Default::default()
        };
        let kernel_memory = bytes(&self.kernel_memory, "--kernel-memory")?;
        let mut body =
            serde_json::to_value(resources).map_err(|e| Failure::new(1, e.to_string()))?;
        if let Some(k) = kernel_memory {
            body["KernelMemory"] = json!(k);
        }
        if let Some(policy) = self.restart.as_deref().filter(|p| !p.is_empty()) {
            // The name goes as given: the daemon judges it (docker's CLI does the same).
            let (name, count) = restart_policy(policy).map_err(|e| Failure::new(1, e))?;
            body["RestartPolicy"] = json!({"Name": name, "MaximumRetryCount": count});
        }
        Ok(body)
    }
}

/// docker's `ParseRestartPolicy`: `name[:count]`, the name not checked.
fn restart_policy(value: &str) -> Result<(&str, i64), String> {
    let parts: Vec<&str> = value.split(':').collect();
    match parts[..] {
        [name] => Ok((name, 0)),
        [name, count] => {
            let count = count
                .parse::<i64>()
                .map_err(|_| "maximum retry count must be an integer".to_string())?;
            Ok((name, count))
        }
        _ => Err("invalid restart policy format".into()),
    }
}

/// How Go's `strconv.ParseInt` rejects `s`.
fn go_int(s: &str) -> Result<i64, String> {
    s.parse::<i64>().map_err(|_| {
        let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
        let why = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        format!("strconv.ParseInt: parsing \"{s}\": {why}")
    })
}

/// How Go's `strconv.ParseUint` (16 bits) rejects `s`.
fn go_uint16(s: &str) -> Result<u16, String> {
    s.parse::<u16>().map_err(|_| {
        let digits = s.strip_prefix('+').unwrap_or(s);
        let why = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            "value out of range"
        } else {
            "invalid syntax"
        };
        format!("strconv.ParseUint: parsing \"{s}\": {why}")
    })
}

/// docker's `--cpus`: a decimal number of CPUs as nano-CPUs. Negative values are the
/// daemon's to refuse, as with docker.
fn nano_cpus(s: &str) -> Result<i64, String> {
    let v: f64 = s
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite())
        .ok_or_else(|| format!("failed to parse {s} as a rational number"))?;
    let nano = v * 1e9;
    if (nano - nano.round()).abs() > 1e-3 {
        return Err("value is too precise".into());
    }
    Ok(nano.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut UpdateArgs)) -> UpdateArgs {
        let mut a = UpdateArgs {
            containers: vec!["c".into()],
            ..Default::default()
        };
        f(&mut a);
        a
    }

    #[test]
    fn body_has_only_the_given_flags() {
        let b = args(|a| {
            a.memory = Some("64m".into());
            a.memory_swap = Some("-1".into());
            a.pids_limit = Some("-1".into());
            a.cpus = Some("1.5".into());
            a.kernel_memory = Some("10m".into());
            a.restart = Some("on-failure:3".into());
        })
        .body()
        .unwrap();
        assert_eq!(b["Memory"], 64 << 20);
        assert_eq!(b["MemorySwap"], -1);
        assert_eq!(b["PidsLimit"], -1);
        assert_eq!(b["NanoCpus"], 1_500_000_000i64);
        assert_eq!(b["KernelMemory"], 10 << 20);
        assert_eq!(
            b["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert!(b.get("CpuShares").is_none() && b.get("BlkioWeight").is_none());
        let b = args(|a| a.restart = Some("bogus".into())).body().unwrap();
        assert_eq!(
            b["RestartPolicy"]["Name"], "bogus",
            "the daemon judges the name"
        );
    }

    #[test]
    fn flag_errors_read_like_docker() {
        let err = |f: fn(&mut UpdateArgs)| args(f).body().unwrap_err();
        let e = err(|_| {});
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                1,
                "you must provide one or more flags when using this command"
            )
        );
        let e = err(|a| a.memory = Some("abc".into()));
        assert_eq!(e.code, 125);
        assert!(
            e.message.starts_with(
                "invalid argument \"abc\" for \"-m, --memory\" flag: invalid size: 'abc'"
            ),
            "{}",
            e.message
        );
        let e = err(|a| a.pids_limit = Some("x".into()));
        assert!(
            e.message
                .contains("strconv.ParseInt: parsing \"x\": invalid syntax"),
            "{}",
            e.message
        );
        let e = err(|a| a.blkio_weight = Some("70000".into()));
        assert!(
            e.message
                .contains("strconv.ParseUint: parsing \"70000\": value out of range"),
            "{}",
            e.message
        );
        let e = err(|a| a.cpus = Some("abc".into()));
        assert!(
            e.message
                .contains("failed to parse abc as a rational number"),
            "{}",
            e.message
        );
        let e = err(|a| a.restart = Some("a:b:c".into()));
        assert_eq!(
            (e.code, e.message.as_str()),
            (1, "invalid restart policy format")
        );
        let e = err(|a| a.restart = Some("on-failure:x".into()));
        assert_eq!(
            (e.code, e.message.as_str()),
            (1, "maximum retry count must be an integer")
        );
        assert_eq!(nano_cpus("-1"), Ok(-1_000_000_000));
    }
}
