//! Metadata steps (ENV LABEL ARG MAINTAINER EXPOSE VOLUME USER STOPSIGNAL SHELL ONBUILD CMD
//! ENTRYPOINT HEALTHCHECK WORKDIR): each changes the run config and commits an empty layer
//! whose history reads `/bin/sh -c #(nop)  <text>` (design §3, dockerd's `dispatchers.go`).

use std::collections::BTreeMap;
use std::time::Duration;

use berth_dockerfile::{
    format_go_duration, go_quote, go_rune_literal, parse_go_duration, Command, HealthcheckArgs,
    Instruction,
};
use serde_json::{json, Map, Value};

use berth_store::{ConfigBuilder, NewEntry, NewEntryKind};

use super::{
    commit_container, commit_nop, create_container, finish_container_step, probe_cache,
    remove_container, BuildCtx, StageState,
};
use crate::build::child_image::ChildImage;
use crate::build::config::RunConfig;
use crate::build::expand::Scope;
use crate::build::output::short_id;
use crate::build::output::StageOut;
use crate::build::BuildError;

/// Runs one metadata instruction.
pub async fn dispatch(
    ctx: &BuildCtx,
    st: &mut StageState,
    inst: &Instruction,
    scope: &Scope,
    out: &StageOut,
) -> Result<(), BuildError> {
    let (comment, one_word) = match inst {
        Instruction::Env(pairs) => {
            let pairs = scope.pairs(pairs)?;
            for (k, v) in &pairs {
                st.config.set_env(k, v);
            }
            (format!("ENV{}", kv_text(&pairs)), false)
        }
        Instruction::Label(pairs) => {
            let pairs = scope.pairs(pairs)?;
            label(st, &pairs);
            (format!("LABEL{}", kv_text(&pairs)), false)
        }
        Instruction::Maintainer(m) => {
            st.maintainer = m.clone();
            (format!("MAINTAINER {m}"), false)
        }
        Instruction::Arg(args) => {
            let args = scope.args(args)?;
            let mut text = String::from("ARG ");
            for (i, (k, v)) in args.iter().enumerate() {
                if i > 0 {
                    text.push(' ');
                }
                text.push_str(k);
                if let Some(v) = v {
                    text.push('=');
                    text.push_str(v);
                }
                st.args.add(k, v.clone());
            }
            (text, false)
        }
        Instruction::Expose(raw) => {
            // BuildKit sorts the words as written, then each may expand to several.
            let mut sorted = raw.clone();
            sorted.sort();
            let mut ports = Vec::new();
            for p in &sorted {
                ports.extend(scope.words(p)?);
            }
            let exposed = st.config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for p in &ports {
                for port in port_specs(p).map_err(BuildError::msg)? {
                    exposed.insert(port, json!({}));
                }
            }
            (format!("EXPOSE {}", ports.join(" ")), false)
        }
        Instruction::Volume(raw) => {
            let mut volumes = Vec::new();
            for v in raw {
                let v = scope.word(v)?;
                if v.is_empty() {
                    return Err(BuildError::msg(
                        "VOLUME specified can not be an empty string",
                    ));
                }
                volumes.push(v);
            }
            let set = st.config.volumes.get_or_insert_with(BTreeMap::new);
            for v in &volumes {
                set.insert(v.clone(), json!({}));
            }
            (format!("VOLUME [{}]", volumes.join(" ")), false)
        }
        Instruction::User(u) => {
            let u = scope.word(u)?;
            st.config.user = u.clone();
            (format!("USER {u}"), false)
        }
        Instruction::StopSignal(s) => {
            let s = scope.word(s)?;
            check_signal(&s).map_err(BuildError::msg)?;
            st.config.stop_signal = s.clone();
            (format!("STOPSIGNAL {s}"), false)
        }
        Instruction::Shell(shell) => {
            st.config.shell = Some(shell.clone());
            (format!("SHELL [{}]", shell.join(" ")), false)
        }
        Instruction::Onbuild { trigger } => {
            st.config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(trigger.clone());
            (format!("ONBUILD {trigger}"), false)
        }
        Instruction::Cmd(command) => {
            let cmd = command_line(&st.config, command);
            st.config.args_escaped = false;
            let text = format!("CMD {}", go_quote_slice(&cmd));
            st.config.cmd = Some(cmd);
            if !matches!(command, Command::Exec(v) if v.is_empty()) {
                st.cmd_set = true;
            }
            (text, false)
        }
        Instruction::Entrypoint(command) => {
            let entrypoint = command_line(&st.config, command);
            st.config.args_escaped = false;
            let text = format!("ENTRYPOINT {}", go_quote_slice(&entrypoint));
            st.config.entrypoint = Some(entrypoint);
            if !st.cmd_set {
                st.config.cmd = None;
            }
            (text, false)
        }
        Instruction::Healthcheck(h) => {
            let health = Healthcheck::parse(h).map_err(BuildError::msg)?;
            if let Some(old) = st
                .config
                .healthcheck
                .as_ref()
                .and_then(|h| h.get("Test"))
                .and_then(Value::as_array)
            {
                let old: Vec<&str> = old.iter().filter_map(Value::as_str).collect();
                if old.first().is_some_and(|t| *t != "NONE") {
                    out.text(&format!(
                        "Note: overriding previous HEALTHCHECK: [{}]\n",
                        old.join(" ")
                    ));
                }
            }
            st.config.healthcheck = Some(health.to_json());
            (format!("HEALTHCHECK {}", health.go_text()), false)
        }
        Instruction::Workdir(w) => {
            let w = scope.word(w)?;
            st.config.working_dir = workdir(&st.config.working_dir, &w);
            (format!("WORKDIR {}", st.config.working_dir), true)
        }
        Instruction::From { .. }
        | Instruction::Run { .. }
        | Instruction::Copy(_)
        | Instruction::Add(_) => {
            return Err(BuildError::msg("not a metadata instruction"));
        }
    };
    if matches!(inst, Instruction::Workdir(_)) {
        let probe = st.config.with_nop_comment_word(&comment);
        return commit_workdir(ctx, st, probe, out).await;
    }
    let probe = if one_word {
        st.config.with_nop_comment_word(&comment)
    } else {
        st.config.with_nop_comment(&comment)
    };
    commit_nop(ctx, st, probe, out).await
}

/// WORKDIR's commit. dockerd's container create makes the working directory (0755, root)
/// when the image lacks it, so the step's image then has a layer with it (and later RUNs
/// start in it).
async fn commit_workdir(
    ctx: &BuildCtx,
    st: &mut StageState,
    probe: RunConfig,
    out: &StageOut,
) -> Result<(), BuildError> {
    if probe_cache(ctx, st, &probe, out).await? {
        return Ok(());
    }
    let c = create_container(ctx, st, &probe, out).await?;
    let missing = {
        let (store, parent, dir) = (
            ctx.engine.store.clone(),
            st.image.clone(),
            st.config.working_dir.clone(),
        );
        tokio::task::spawn_blocking(move || missing_dirs(&store, parent.as_ref(), &dir)).await?
    };
    let missing = match missing {
        Ok(m) if m.is_empty() => return commit_container(ctx, st, c, &probe, out).await,
        Ok(m) => m,
        Err(e) => {
            remove_container(ctx, c, out, false).await;
            return Err(e);
        }
    };
    let mut container_config = probe.clone();
    container_config.hostname = short_id(&c.id);
    let made = async {
        let child = ChildImage::new(ctx, st, &container_config, &c.id).await?;
        let (store, parent) = (ctx.engine.store.clone(), st.image.clone());
        let now = (chrono::Utc::now().timestamp(), 0);
        let entries: Vec<NewEntry> = missing
            .into_iter()
            .map(|path| NewEntry {
                path,
                kind: NewEntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: now,
                xattrs: Vec::new(),
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            let build: Box<ConfigBuilder<'static>> = Box::new(move |diff: Option<&str>| {
                serde_json::to_vec(&child.blob(diff))
                    .map_err(|e| berth_store::Error::Corrupt(e.to_string()))
            });
            store.commit_entries(parent.as_ref(), entries, build, None)
        })
        .await?
        .map_err(BuildError::from)
    }
    .await;
    finish_container_step(ctx, st, c, &probe, made, out).await
}

/// The directories of `dir` (symlinks followed inside the image) that `parent` lacks,
/// outermost first; an error when a part of it is not a directory.
fn missing_dirs(
    store: &berth_store::Store,
    parent: Option<&berth_store::Image>,
    dir: &str,
) -> Result<Vec<String>, BuildError> {
    let fs = store.image_fs(parent)?;
    let resolved = fs.resolve(dir, true)?;
    let mut missing = Vec::new();
    let mut prefix = String::new();
    for part in resolved.split('/').filter(|p| !p.is_empty()) {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if !missing.is_empty() {
            missing.push(prefix.clone());
            continue;
        }
        match fs.lstat(&prefix) {
            Some(node) if node.metadata.is_dir() => {}
            Some(_) => {
                return Err(BuildError::msg(format!(
                    "Cannot mkdir: {dir} is not a directory"
                )))
            }
            None => missing.push(prefix.clone()),
        }
    }
    Ok(missing)
}

/// `--label`'s step (keys sorted, one step per key, no expansion) and LABEL's effect.
pub fn label(st: &mut StageState, pairs: &[(String, String)]) {
    let labels = st.config.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in pairs {
        labels.insert(k.clone(), v.clone());
    }
}

/// The `--label` step: `LABEL k=v`, committed as LABEL is.
pub async fn option_label(
    ctx: &BuildCtx,
    st: &mut StageState,
    key: &str,
    value: &str,
    out: &StageOut,
) -> Result<(), BuildError> {
    let pairs = [(key.to_string(), value.to_string())];
    label(st, &pairs);
    let probe = st
        .config
        .with_nop_comment(&format!("LABEL{}", kv_text(&pairs)));
    commit_nop(ctx, st, probe, out).await
}

/// ` k=v k2=v2` (KeyValuePair.String: no quoting).
fn kv_text(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!(" {k}={v}")).collect()
}

/// RUN/CMD/ENTRYPOINT's command: the exec-form array, or the SHELL plus the text.
pub fn command_line(config: &RunConfig, command: &Command) -> Vec<String> {
    match command {
        Command::Exec(v) => v.clone(),
        Command::Shell(text) => {
            let mut cmd = config.shell();
            cmd.push(text.clone());
            cmd
        }
    }
}

/// Go's `%q` of a `[]string`: `["a" "b"]`.
fn go_quote_slice(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" ")
    )
}

/// WORKDIR: relative to the current one, cleaned, absolute.
pub fn workdir(current: &str, requested: &str) -> String {
    let joined = if requested.starts_with('/') {
        requested.to_string()
    } else {
        format!("/{current}/{requested}")
    };
    berth_context::path::clean(&joined)
}

/// The ports one EXPOSE word exposes, as `nat.ParsePortSpec` reads it:
/// `[[ip:]host:]port[-end][/proto]`, with go-connections' error texts.
pub fn port_specs(spec: &str) -> Result<Vec<String>, String> {
    let container = spec.rsplit(':').next().unwrap_or(spec);
    let (container, proto) = match container.split_once('/') {
        None => (container, "tcp".to_string()),
        Some((p, "")) => (p, "tcp".to_string()),
        Some((p, proto)) => (
            p,
            proto
                .split('/')
                .next()
                .unwrap_or(proto)
                .to_ascii_lowercase(),
        ),
    };
    if container.is_empty() {
        return Err(format!("No port specified: {spec}<empty>"));
    }
    let bad = || format!("Invalid containerPort: {container}");
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = container.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if end < start {
        return Err(bad());
    }
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("Invalid proto: {proto}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `signal.ParseSignal`: a number, or a name with or without `SIG`.
fn check_signal(s: &str) -> Result<(), String> {
    if let Ok(n) = s.parse::<i32>() {
        return if n > 0 {
            Ok(())
        } else {
            Err(format!("Invalid signal: {s}"))
        };
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_ascii_uppercase();
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
        "XFSZ",
    ];
    let rt = name
        .strip_prefix("RTMIN")
        .or_else(|| name.strip_prefix("RTMAX"));
    if NAMES.contains(&name.as_str())
        || rt
            .is_some_and(|r| r.is_empty() || r.trim_start_matches(['+', '-']).parse::<u8>().is_ok())
    {
        Ok(())
    } else {
        Err(format!("Invalid signal: {s}"))
    }
}

/// HEALTHCHECK's config (`container.HealthConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct Healthcheck {
    pub test: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub retries: i64,
}

impl Healthcheck {
    /// Checks the flags as BuildKit's `parseHealthcheck` (dockerd answers 400 with these).
    pub fn parse(h: &HealthcheckArgs) -> Result<Healthcheck, String> {
        let interval = |flag: &str, v: &Option<String>| -> Result<Duration, String> {
            let Some(v) = v.as_deref().filter(|v| !v.is_empty()) else {
                return Ok(Duration::ZERO);
            };
            let d = parse_go_duration(v)?;
            if d < Duration::from_millis(1) {
                return Err(format!("Interval \"{flag}\" cannot be less than 1ms"));
            }
            Ok(d)
        };
        let retries = match h.retries.as_deref().filter(|v| !v.is_empty()) {
            None => 0,
            Some(v) => {
                let n: i64 = v.parse::<i32>().map(i64::from).map_err(|_| {
                    format!("strconv.ParseInt: parsing {}: invalid syntax", go_quote(v))
                })?;
                if n < 1 {
                    return Err(format!("--retries must be at least 1 (not {n})"));
                }
                n
            }
        };
        let none = h.test.first().is_some_and(|t| t == "NONE");
        Ok(Healthcheck {
            test: h.test.clone(),
            interval: if none {
                Duration::ZERO
            } else {
                interval("interval", &h.interval)?
            },
            timeout: if none {
                Duration::ZERO
            } else {
                interval("timeout", &h.timeout)?
            },
            start_period: if none {
                Duration::ZERO
            } else {
                interval("start-period", &h.start_period)?
            },
            retries: if none { 0 } else { retries },
        })
    }

    /// The config JSON (`omitempty` durations and retries).
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("Test".into(), json!(self.test));
        for (k, d) in [
            ("Interval", self.interval),
            ("Timeout", self.timeout),
            ("StartPeriod", self.start_period),
        ] {
            if !d.is_zero() {
                m.insert(k.into(), json!(d.as_nanos() as u64));
            }
        }
        if self.retries != 0 {
            m.insert("Retries".into(), json!(self.retries));
        }
        Value::Object(m)
    }

    /// Go's `%q` of the `*HealthConfig`: `&{["CMD-SHELL" "true"] "5s" "0s" "0s" '\x00'}`.
    pub fn go_text(&self) -> String {
        format!(
            "&{{{} {} {} {} {}}}",
            go_quote_slice(&self.test),
            go_quote(&format_go_duration(self.interval)),
            go_quote(&format_go_duration(self.timeout)),
            go_quote(&format_go_duration(self.start_period)),
            go_rune_literal(self.retries as u32),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workdirs_resolve_like_dockerd() {
        assert_eq!(workdir("", "app"), "/app");
        assert_eq!(workdir("/app", "sub"), "/app/sub");
        assert_eq!(workdir("/app", "/x/../y/"), "/y");
        assert_eq!(workdir("/", ".."), "/");
    }

    #[test]
    fn exposed_ports() {
        assert_eq!(port_specs("80").unwrap(), ["80/tcp"]);
        assert_eq!(port_specs("22/udp").unwrap(), ["22/udp"]);
        assert_eq!(port_specs("1000-1001").unwrap(), ["1000/tcp", "1001/tcp"]);
        assert_eq!(port_specs("127.0.0.1:80:8080/tcp").unwrap(), ["8080/tcp"]);
        assert!(port_specs("abc").is_err());
        assert!(port_specs("80/xyz").is_err());
    }

    #[test]
    fn signals() {
        for ok in ["SIGTERM", "TERM", "9", "SIGRTMIN+3", "kill"] {
            assert!(check_signal(ok).is_ok(), "{ok}");
        }
        assert_eq!(check_signal("NOPE").unwrap_err(), "Invalid signal: NOPE");
    }

    #[test]
    fn healthcheck_flags() {
        let h = |test: &[&str], interval: Option<&str>, retries: Option<&str>| HealthcheckArgs {
            test: test.iter().map(|s| s.to_string()).collect(),
            interval: interval.map(String::from),
            retries: retries.map(String::from),
            ..Default::default()
        };
        let ok = Healthcheck::parse(&h(&["CMD-SHELL", "true"], None, Some("3"))).unwrap();
        assert_eq!(
            ok.to_json(),
            json!({"Test": ["CMD-SHELL", "true"], "Retries": 3})
        );
        assert_eq!(
            Healthcheck::parse(&h(&["CMD"], None, Some("0"))).unwrap_err(),
            "--retries must be at least 1 (not 0)"
        );
        assert_eq!(
            Healthcheck::parse(&h(&["CMD"], Some("0s"), None)).unwrap_err(),
            "Interval \"interval\" cannot be less than 1ms"
        );
    }

    #[test]
    fn quoted_lists() {
        assert_eq!(go_quote_slice(&[]), "[]");
    }
}
