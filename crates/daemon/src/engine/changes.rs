//! `--change` instructions for `import` (and later `commit`): the Dockerfile instructions
//! that only touch the image config, applied to an OCI image `Config`.

use serde_json::{Map, Value};

/// Instructions `--change` accepts, as Docker's `import` does.
const ALLOWED: &[&str] =
    &["CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"];

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
                let env = config.entry("Env").or_insert_with(|| Value::Array(Vec::new()));
                for (k, v) in key_values(rest, "ENV")? {
                    if let Value::Array(list) = env {
                        list.retain(|e| e.as_str().and_then(|s| s.split('=').next()) != Some(k.as_str()));
                        list.push(Value::String(format!("{k}={v}")));
                    }
                }
            }
            "LABEL" => {
                let labels = config.entry("Labels").or_insert_with(|| Value::Object(Map::new()));
                for (k, v) in key_values(rest, "LABEL")? {
                    if let Value::Object(map) = labels {
                        map.insert(k, Value::String(v));
                    }
                }
            }
            "EXPOSE" => {
                let ports = config.entry("ExposedPorts").or_insert_with(|| Value::Object(Map::new()));
                for port in rest.split_whitespace() {
                    let port = if port.contains('/') { port.to_string() } else { format!("{port}/tcp") };
                    if let Value::Object(map) = ports {
                        map.insert(port, Value::Object(Map::new()));
                    }
                }
            }
            "VOLUME" => {
                let vols = config.entry("Volumes").or_insert_with(|| Value::Object(Map::new()));
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
            "STOPSIGNAL" => {
                config.insert("StopSignal".into(), Value::String(rest.into()));
            }
            _ => {} // ONBUILD: recorded by builds only; import keeps no trigger list.
        }
    }
    Ok(())
}

/// `["a","b"]` (exec form) or `a b` (shell form, run by /bin/sh -c).
fn command(rest: &str) -> Result<Value, String> {
    if rest.starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(rest) {
            return Ok(Value::from(list));
        }
    }
    Ok(Value::from(vec!["/bin/sh".to_string(), "-c".to_string(), rest.to_string()]))
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
    }
}
