//! The `run`/`create` flags about a container's life after it starts: restart policy,
//! init process, stop signal and timeout, and health checks.

use berth_api::models::{ContainerCreateBody, HealthConfig, RestartPolicy, RestartPolicyNameEnum};
use clap::Args;

use crate::commands::create::flag_error;
use crate::commands::Failure;

#[derive(Debug, Clone, Default, Args)]
pub struct LifecycleOpts {
    /// Restart policy to apply when a container exits
    #[arg(long = "restart", value_name = "string")]
    pub restart: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long = "init")]
    pub init: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal", value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", value_name = "int", allow_hyphen_values = true)]
    pub stop_timeout: Option<String>,
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "string")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", value_name = "duration", allow_hyphen_values = true)]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", value_name = "int", allow_hyphen_values = true)]
    pub health_retries: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", value_name = "duration", allow_hyphen_values = true)]
    pub health_start_period: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", value_name = "duration", allow_hyphen_values = true)]
    pub health_timeout: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
}

impl LifecycleOpts {
    /// Writes these settings into `body`, checking them as docker's CLI does.
    pub fn apply(&self, cmd: &str, auto_remove: bool, body: &mut ContainerCreateBody) -> Result<(), Failure> {
        let host_config = body.host_config.get_or_insert_with(Default::default);
        if let Some(policy) = self.restart.as_deref().filter(|p| !p.is_empty()) {
            let policy = restart_policy(policy).map_err(|e| flag_error(cmd, policy, "--restart", &e))?;
            let none = matches!(policy.name, None | Some(RestartPolicyNameEnum::NO | RestartPolicyNameEnum::EMPTY));
            if auto_remove && !none {
                return Err(Failure::new(125, "Conflicting options: --restart and --rm"));
            }
            host_config.restart_policy = Some(policy);
        }
        if self.init {
            host_config.init = Some(true);
        }
        body.stop_signal = self.stop_signal.clone();
        if let Some(t) = &self.stop_timeout {
            let secs = t.parse::<i64>().map_err(|_| {
                flag_error(cmd, t, "--stop-timeout", &format!("strconv.ParseInt: parsing \"{t}\": invalid syntax"))
            })?;
            body.stop_timeout = Some(secs);
        }
        body.healthcheck = self.healthcheck(cmd)?;
        Ok(())
    }

    fn healthcheck(&self, cmd: &str) -> Result<Option<HealthConfig>, Failure> {
        let duration = |value: &Option<String>, flag: &str| -> Result<Option<i64>, Failure> {
            let Some(v) = value else { return Ok(None) };
            let nanos = berth_api::duration::parse_go(v)
                .ok_or_else(|| flag_error(cmd, v, flag, &format!("time: invalid duration \"{v}\"")))?;
            if nanos < 0 {
                return Err(Failure::new(125, format!("{flag} cannot be negative")));
            }
            Ok(Some(nanos))
        };
        let interval = duration(&self.health_interval, "--health-interval")?;
        let timeout = duration(&self.health_timeout, "--health-timeout")?;
        let start_period = duration(&self.health_start_period, "--health-start-period")?;
        let retries = match &self.health_retries {
            Some(r) => Some(r.parse::<i64>().map_err(|_| {
                flag_error(cmd, r, "--health-retries", &format!("strconv.ParseInt: parsing \"{r}\": invalid syntax"))
            })?),
            None => None,
        };
        if retries.is_some_and(|r| r < 0) {
            return Err(Failure::new(125, "--health-retries cannot be negative"));
        }
        let any_option = self.health_cmd.is_some() || interval.is_some() || timeout.is_some()
            || start_period.is_some() || retries.is_some();
        if self.no_healthcheck {
            if any_option {
                return Err(Failure::new(125, "--no-healthcheck conflicts with --health-* options"));
            }
            return Ok(Some(HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() }));
        }
        if !any_option {
            return Ok(None);
        }
        let test = self.health_cmd.as_ref().filter(|c| !c.is_empty()).map(|c| vec!["CMD-SHELL".to_string(), c.clone()]);
        Ok(Some(HealthConfig { test, interval, timeout, start_period, retries, ..Default::default() }))
    }
}

/// `always`, `on-failure:3`: docker's `--restart` syntax. Names are checked by the daemon,
/// but the API model only holds known names, so unknown ones fail here with its message.
pub fn restart_policy(value: &str) -> Result<RestartPolicy, String> {
    let (name, count) = match value.split_once(':') {
        Some((n, c)) => {
            if c.contains(':') {
                return Err("invalid restart policy format".into());
            }
            (n, Some(c.parse::<i64>().map_err(|_| "maximum retry count must be an integer".to_string())?))
        }
        None => (value, None),
    };
    let name = match name {
        "" => RestartPolicyNameEnum::EMPTY,
        "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => return Err(format!("invalid restart policy '{other}'")),
    };
    Ok(RestartPolicy { name: Some(name), maximum_retry_count: count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_restart_policies_like_docker() {
        let p = restart_policy("on-failure:3").unwrap();
        assert_eq!((p.name, p.maximum_retry_count), (Some(RestartPolicyNameEnum::ON_FAILURE), Some(3)));
        assert_eq!(restart_policy("always").unwrap().name, Some(RestartPolicyNameEnum::ALWAYS));
        assert_eq!(restart_policy("on-failure:x").unwrap_err(), "maximum retry count must be an integer");
        assert_eq!(restart_policy("sometimes").unwrap_err(), "invalid restart policy 'sometimes'");
    }

    #[test]
    fn builds_health_configs() {
        let opts = LifecycleOpts {
            health_cmd: Some("true".into()),
            health_interval: Some("1s".into()),
            health_retries: Some("2".into()),
            ..Default::default()
        };
        let h = opts.healthcheck("run").unwrap().unwrap();
        assert_eq!(h.test, Some(vec!["CMD-SHELL".to_string(), "true".to_string()]));
        assert_eq!((h.interval, h.retries, h.timeout), (Some(1_000_000_000), Some(2), None));
        let conflict = LifecycleOpts { no_healthcheck: true, health_retries: Some("1".into()), ..Default::default() };
        assert!(conflict.healthcheck("run").is_err());
        let off = LifecycleOpts { no_healthcheck: true, ..Default::default() };
        assert_eq!(off.healthcheck("run").unwrap().unwrap().test, Some(vec!["NONE".to_string()]));
    }
}
