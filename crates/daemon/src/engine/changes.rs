//! `--change` instructions for `import` and `commit`: the Dockerfile instructions that only
//! touch the image config, applied to a Docker image config (`Cmd`, `Healthcheck`, …) as JSON.

use serde_json::{Map, Value};

/// Instructions `--change` accepts, as moby's `validCommitCommands` (no STOPSIGNAL, no SHELL).
const ALLOWED: &[&str] =
    &["CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "USER", "VOLUME", "WORKDIR"];

/// Applies each change line to a config (an OCI image `Config` as JSON, PascalCase keys).
pub fn apply(changes: &[String], config: &mut Map<String, Value>) -> Result<(), String> {
    for line in changes.iter().flat_map(|c| c.lines()).map(str::trim).filter(|l| !l.is_empty()) {
        let (instr, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let instr_upper = instr.to_ascii_uppercase();
        if !ALLOWED.contains(&instr_upper.as_str()) {
            return Err(format!("{} is not a valid change command", instr.to_ascii_lowercase()));
        }
        let rest = rest.trim();
        match instr_upper.as_str() {
            "CMD" => {
                config.insert("Cmd".into(), command(rest)?);
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), command(rest)?);
            }
            "ENV" => {
                let env = collection(config, "Env", Value::Array(Vec::new()));
                for (k, v) in key_values(rest, "ENV")? {
                    if let Value::Array(list) = env {
                        list.retain(|e| e.as_str().and_then(|s| s.split('=').next()) != Some(k.as_str()));
                        list.push(Value::String(format!("{k}={v}")));
                    }
                }
            }
            "LABEL" => {
                let labels = collection(config, "Labels", Value::Object(Map::new()));
                for (k, v) in key_values(rest, "LABEL")? {
                    if let Value::Object(map) = labels {
                        map.insert(k, Value::String(v));
                    }
                }
            }
            "EXPOSE" => {
                let ports = collection(config, "ExposedPorts", Value::Object(Map::new()));
                for port in rest.split_whitespace() {
                    let port = if port.contains('/') { port.to_string() } else { format!("{port}/tcp") };
                    if let Value::Object(map) = ports {
                        map.insert(port, Value::Object(Map::new()));
                    }
                }
            }
            "VOLUME" => {
                let vols = collection(config, "Volumes", Value::Object(Map::new()));
                let paths = match serde_json::from_str::<Vec<String>>(rest) {
                    Ok(list) => list,
                    Err(_) => rest.split_whitespace().map(String::from).collect(),
                };
                for p in paths {
                    if let Value::Object(map) = vols {
                        map.insert(p, Value::Object(Map::new()));
                    }
                }
            }
            "USER" => {
                config.insert("User".into(), Value::String(rest.into()));
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), Value::String(rest.into()));
            }
            "HEALTHCHECK" => {
                config.insert("Healthcheck".into(), healthcheck(rest)?);
            }
            "ONBUILD" => {
                let trigger = onbuild_trigger(rest)?;
                let list = collection(config, "OnBuild", Value::Array(Vec::new()));
                if let Value::Array(list) = list {
                    list.push(Value::String(trigger));
                }
            }
            _ => unreachable!("every ALLOWED instruction has an arm"),
        }
    }
    Ok(())
}

/// The array or object under `key`, made `empty` first when missing or null (a container's
/// config carries `"Labels": null` and the like).
fn collection<'a>(config: &'a mut Map<String, Value>, key: &str, empty: Value) -> &'a mut Value {
    let slot = config.entry(key).or_insert(Value::Null);
    if slot.is_null() {
        *slot = empty;
    }
    slot
}

/// `["a","b"]` (exec form) or `a b` (shell form, run by /bin/sh -c; a bare `CMD` is
/// `["/bin/sh","-c"]`, as Docker stores it).
fn command(rest: &str) -> Result<Value, String> {
    if rest.starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(rest) {
            return Ok(Value::from(list));
        }
    }
    let mut argv = vec!["/bin/sh".to_string(), "-c".to_string()];
    if !rest.is_empty() {
        argv.push(rest.to_string());
    }
    Ok(Value::from(argv))
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=…] [--timeout=…] [--start-period=…]
/// [--retries=N] CMD …`, as the Docker config's `Healthcheck` object (durations in ns,
/// zero values left out).
fn healthcheck(rest: &str) -> Result<Value, String> {
    let mut words = rest;
    let mut check = Map::new();
    while let Some(flag) = words.strip_prefix("--") {
        let (word, tail) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        words = tail.trim_start();
        let (name, value) = word.split_once('=').unwrap_or((word, ""));
        let key = match name {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "retries" => "Retries",
            _ => return Err(format!("Unknown flag: {name}")),
        };
        let parsed = if key == "Retries" {
            value.parse::<i64>().map_err(|_| format!("invalid value for --{name}: {value}"))?
        } else {
            berth_api::duration::parse_go(value)
                .ok_or_else(|| format!("time: invalid duration \"{value}\""))?
        };
        if parsed != 0 {
            check.insert(key.into(), Value::from(parsed));
        }
    }
    let (kind, cmd) = words.split_once(char::is_whitespace).unwrap_or((words, ""));
    let cmd = cmd.trim();
    let test = match kind.to_ascii_uppercase().as_str() {
        "NONE" if cmd.is_empty() && check.is_empty() => vec!["NONE".to_string()],
        "NONE" => return Err("HEALTHCHECK NONE takes no arguments".into()),
        "CMD" if cmd.is_empty() => return Err("Missing command after HEALTHCHECK CMD".into()),
        "CMD" => match serde_json::from_str::<Vec<String>>(cmd) {
            Ok(argv) if cmd.starts_with('[') => std::iter::once("CMD".to_string()).chain(argv).collect(),
            _ => vec!["CMD-SHELL".to_string(), cmd.to_string()],
        },
        other => return Err(format!("Unknown type \"{other}\" in HEALTHCHECK (try CMD)")),
    };
    check.insert("Test".into(), Value::from(test));
    Ok(Value::Object(check))
}

/// The trigger text of `ONBUILD <instruction>`, kept as written, with Docker's refusals.
fn onbuild_trigger(rest: &str) -> Result<String, String> {
    let instruction = rest.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
    match instruction.as_str() {
        "" => Err("ONBUILD requires at least one argument".into()),
        "ONBUILD" => Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "FROM" | "MAINTAINER" => Err(format!("{instruction} isn't allowed as an ONBUILD trigger")),
        _ => Ok(rest.to_string()),
    }
}

/// `k=v k2="v 2"` or the legacy `k v` form.
fn key_values(rest: &str, instr: &str) -> Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{instr} requires at least one argument"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    for word in shell_words(rest) {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("{instr} names can not be blank"))?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Splits on whitespace, honouring double and single quotes and backslash escapes.
fn shell_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(changes: &[&str]) -> Result<Value, String> {
        let mut map = Map::new();
        apply(&changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &mut map)?;
        Ok(Value::Object(map))
    }

    #[test]
    fn applies_config_instructions() {
        let v = run(&[
            r#"CMD ["sh"]"#,
            "ENV PATH=/usr/bin:/bin A=\"x y\"",
            "ENV B 2",
            "WORKDIR /srv",
            "EXPOSE 80 53/udp",
            "LABEL a=b",
            "ENTRYPOINT echo hi",
        ])
        .unwrap();
        assert_eq!(v["Cmd"], json!(["sh"]));
        assert_eq!(v["Env"], json!(["PATH=/usr/bin:/bin", "A=x y", "B=2"]));
        assert_eq!(v["WorkingDir"], "/srv");
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(v["Labels"], json!({"a": "b"}));
        assert_eq!(v["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
    }

    #[test]
    fn refuses_build_instructions() {
        assert_eq!(run(&["RUN rm -rf /"]).unwrap_err(), "run is not a valid change command");
        assert_eq!(run(&["STOPSIGNAL 9"]).unwrap_err(), "stopsignal is not a valid change command");
    }

    #[test]
    fn null_collections_are_filled() {
        let mut map = Map::new();
        for k in ["Env", "Labels", "OnBuild", "ExposedPorts", "Volumes"] {
            map.insert(k.into(), Value::Null);
        }
        let lines = ["ENV a=1", "LABEL l=v", "ONBUILD RUN x", "EXPOSE 80", "VOLUME /v"].map(String::from);
        apply(&lines, &mut map).unwrap();
        assert_eq!(map["Env"], json!(["a=1"]));
        assert_eq!(map["Labels"], json!({"l": "v"}));
        assert_eq!(map["OnBuild"], json!(["RUN x"]));
        assert_eq!(map["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(map["Volumes"], json!({"/v": {}}));
    }

    #[test]
    fn bare_cmd_is_an_empty_shell_command() {
        assert_eq!(run(&["CMD"]).unwrap()["Cmd"], json!(["/bin/sh", "-c"]));
    }

    #[test]
    fn healthcheck_as_docker_stores_it() {
        let v = run(&[r#"HEALTHCHECK --interval=5s --retries=3 --start-period=1m CMD ["true","x"]"#]).unwrap();
        assert_eq!(
            v["Healthcheck"],
            json!({"Test": ["CMD", "true", "x"], "Interval": 5_000_000_000i64, "StartPeriod": 60_000_000_000i64, "Retries": 3})
        );
        assert_eq!(run(&["HEALTHCHECK NONE"]).unwrap()["Healthcheck"], json!({"Test": ["NONE"]}));
        assert_eq!(run(&["HEALTHCHECK CMD true"]).unwrap()["Healthcheck"], json!({"Test": ["CMD-SHELL", "true"]}));
        assert_eq!(run(&["HEALTHCHECK --bogus=1 CMD true"]).unwrap_err(), "Unknown flag: bogus");
        assert_eq!(run(&["HEALTHCHECK CMD"]).unwrap_err(), "Missing command after HEALTHCHECK CMD");
    }

    #[test]
    fn onbuild_keeps_the_trigger_text() {
        assert_eq!(run(&["onbuild run  a   b"]).unwrap()["OnBuild"], json!(["run  a   b"]));
        assert!(run(&["ONBUILD ONBUILD RUN x"]).unwrap_err().starts_with("Chaining ONBUILD"));
        assert_eq!(run(&["ONBUILD FROM x"]).unwrap_err(), "FROM isn't allowed as an ONBUILD trigger");
    }
}
