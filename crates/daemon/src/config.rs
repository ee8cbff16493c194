//! berthd's configuration file, dockerd's `daemon.json`: each directive may come from the
//! file or from the command line, not both. The file's directives become flags in front of
//! the real ones, so clap parses and checks both alike.

use anyhow::anyhow;
use berth_api::models::HostConfigLogConfig;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;

/// Read when `--config-file` is not given; it need not exist.
pub const DEFAULT_PATH: &str = "/etc/berth/daemon.json";

/// The directives berth knows: the file's key, the long flag that sets the same thing, and
/// the Go type dockerd declares for it (for its messages).
const DIRECTIVES: &[(&str, &str, &str)] = &[
    ("hosts", "host", "[]string"),
    ("data-root", "data-root", "string"),
    ("exec-root", "exec-root", "string"),
    ("group", "group", "string"),
    ("log-level", "log-level", "string"),
    ("log-driver", "log-driver", "string"),
    ("log-opts", "log-opt", "map[string]string"),
    ("storage-driver", "storage-driver", "string"),
    ("bip", "bip", "string"),
    ("insecure-registries", "insecure-registry", "[]string"),
    ("registry-mirrors", "registry-mirror", "[]string"),
    ("shutdown-timeout", "shutdown-timeout", "int"),
    ("tls", "tls", "bool"),
    ("tlsverify", "tlsverify", "bool"),
    ("tlscacert", "tlscacert", "string"),
    ("tlscert", "tlscert", "string"),
    ("tlskey", "tlskey", "string"),
    // berth's own: the size the build context store is kept under.
    ("build-context-max-size", "build-context-max-size", "string"),
];

/// The command line to parse: the program name, the config file's directives as flags,
/// then the arguments given. Fails as dockerd does on a named file that is missing, on
/// invalid JSON, on unknown directives and on directives also given as flags.
pub fn command_line<C: CommandFactory>() -> anyhow::Result<Vec<OsString>> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cmd = C::command();
    let matches = cmd.clone().get_matches_from(&argv);
    let id_of = |long: &str| {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .map(|a| a.get_id().to_string())
            .unwrap_or_else(|| long.to_string())
    };
    let file_id = id_of("config-file");
    let explicit = matches.value_source(&file_id) == Some(ValueSource::CommandLine);
    let path = matches
        .get_one::<PathBuf>(&file_id)
        .cloned()
        .unwrap_or_else(|| DEFAULT_PATH.into());
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(argv),
        Err(e) => {
            // Go's wording: `open /etc/x.json: no such file or directory`.
            let reason = e
                .to_string()
                .split(" (os error")
                .next()
                .unwrap_or_default()
                .to_lowercase();
            return Err(file_error(
                &path,
                format!("open {}: {reason}", path.display()),
            ));
        }
    };
    let flags = directives_as_flags(&text, &|long| {
        let id = id_of(long);
        (matches.value_source(&id) == Some(ValueSource::CommandLine))
            .then(|| flag_value(&matches, &id, long))
    })
    .map_err(|why| file_error(&path, why))?;
    let mut out = vec![argv.first().cloned().unwrap_or_else(|| "berthd".into())];
    out.extend(flags.into_iter().map(OsString::from));
    out.extend(argv.into_iter().skip(1));
    Ok(out)
}

fn file_error(path: &std::path::Path, why: String) -> anyhow::Error {
    anyhow!(
        "unable to configure the berth daemon with file {}: {why}",
        path.display()
    )
}

/// The file's directives as `--flag=value` arguments. `given(long)` is the value of a flag
/// given on the command line, printed as dockerd prints it, or `None`.
fn directives_as_flags(
    text: &str,
    given: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Value::Object(file) = value else {
        return Err(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            kind(&value)
        ));
    };
    let mut unknown: Vec<&str> = file
        .keys()
        .map(String::as_str)
        .filter(|k| !DIRECTIVES.iter().any(|(key, ..)| key == k))
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(format!(
            "the following directives don't match any configuration option: {}",
            unknown.join(", ")
        ));
    }
    let mut conflicts = Vec::new();
    let mut flags = Vec::new();
    for (key, long, go_type) in DIRECTIVES {
        let Some(v) = file.get(*key) else { continue };
        if let Some(flag) = given(long) {
            conflicts.push(format!(
                "{key}: (from flag: {flag}, from file: {})",
                go_format(v)
            ));
            continue;
        }
        let type_error = || {
            format!(
                "json: cannot unmarshal {} into Go struct field Config.{key} of type {go_type}",
                kind(v)
            )
        };
        match (*go_type, v) {
            ("string", Value::String(s)) => flags.push(format!("--{long}={s}")),
            ("int", Value::Number(n)) if n.is_i64() => flags.push(format!("--{long}={n}")),
            ("bool", Value::Bool(b)) => flags.push(format!("--{long}={b}")),
            ("[]string", Value::Array(items)) => {
                let items: Vec<&str> = items
                    .iter()
                    .map(|i| i.as_str().ok_or_else(type_error))
                    .collect::<Result<_, _>>()?;
                flags.extend(items.iter().map(|i| format!("--{long}={i}")));
            }
            ("map[string]string", Value::Object(map)) => {
                for (k, v) in map {
                    let s = v.as_str().ok_or_else(|| {
                        format!("json: cannot unmarshal {} into Go struct field Config.{key} of type string", kind(v))
                    })?;
                    flags.push(format!("--{long}={k}={s}"));
                }
            }
            _ => return Err(type_error()),
        }
    }
    if !conflicts.is_empty() {
        // dockerd visits flags in name order.
        conflicts.sort();
        return Err(format!(
            "the following directives are specified both as a flag and in the configuration file: {}",
            conflicts.join(", ")
        ));
    }
    Ok(flags)
}

/// A flag's value as dockerd prints it in a conflict: lists as `[a b]`, maps as `map[k:v]`.
fn flag_value(matches: &ArgMatches, id: &str, long: &str) -> String {
    let values: Vec<String> = matches
        .get_raw(id)
        .into_iter()
        .flatten()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    match long {
        "host" | "insecure-registry" | "registry-mirror" => format!("[{}]", values.join(" ")),
        "log-opt" => {
            let map: BTreeMap<&str, &str> = values
                .iter()
                .map(|v| v.split_once('=').unwrap_or((v, "")))
                .collect();
            let pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("map[{}]", pairs.join(" "))
        }
        _ => values.join(" "),
    }
}

/// Go's `%v` of a decoded JSON value.
fn go_format(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_format).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            pairs.sort();
            format!("map[{}]", pairs.join(" "))
        }
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

/// The JSON kind, as Go's decoder names it.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The log driver for containers that name none (`--log-driver`, `--log-opt`), checked as a
/// container's would be.
pub fn log_defaults(driver: &str, opts: &[String]) -> anyhow::Result<HostConfigLogConfig> {
    let config: HashMap<String, String> = opts
        .iter()
        .map(|o| {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let cfg = HostConfigLogConfig {
        typ: Some(driver.to_string()),
        config: Some(config),
    };
    crate::io::logs::driver::validate(&cfg).map_err(|e| anyhow!("failed to set log opts: {e}"))?;
    Ok(cfg)
}

/// `build-context-max-size`: a size in go-units' binary multiples, as Docker's builder GC
/// reads `defaultKeepStorage` (`10GB`, `512m`, `1073741824`).
pub fn build_context_max_size(s: &str) -> Result<u64, String> {
    crate::io::logs::driver::parse_size(s, 1024).map(|n| n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(text: &str) -> Result<Vec<String>, String> {
        directives_as_flags(text, &|_| None)
    }

    #[test]
    fn directives_become_flags() {
        let f = flags(r#"{"log-driver":"json-file","log-opts":{"max-size":"1k"},"hosts":["unix:///x.sock"],"data-root":"/d"}"#)
            .unwrap();
        assert_eq!(
            f,
            [
                "--host=unix:///x.sock",
                "--data-root=/d",
                "--log-driver=json-file",
                "--log-opt=max-size=1k"
            ]
        );
        assert_eq!(flags("{}").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn errors_as_dockerd() {
        assert_eq!(
            flags(r#"{"log-driverz":"x","b":1}"#).unwrap_err(),
            "the following directives don't match any configuration option: b, log-driverz"
        );
        assert_eq!(
            flags(r#"{"log-opts":{"max-file":3}}"#).unwrap_err(),
            "json: cannot unmarshal number into Go struct field Config.log-opts of type string"
        );
        assert_eq!(
            flags(r#"{"log-opts":"x"}"#).unwrap_err(),
            "json: cannot unmarshal string into Go struct field Config.log-opts of type map[string]string"
        );
        assert_eq!(
            flags(r#"{"log-driver":5}"#).unwrap_err(),
            "json: cannot unmarshal number into Go struct field Config.log-driver of type string"
        );
        assert!(flags(r#"{"log-driver":"#).is_err());
        assert!(flags("[]").unwrap_err().contains("cannot unmarshal array"));
        let given = |long: &str| match long {
            "log-driver" => Some("none".to_string()),
            "log-opt" => Some("map[max-file:3]".to_string()),
            _ => None,
        };
        assert_eq!(
            directives_as_flags(r#"{"log-driver":"json-file","log-opts":{"max-size":"1k"},"group":"g"}"#, &given).unwrap_err(),
            "the following directives are specified both as a flag and in the configuration file: \
             log-driver: (from flag: none, from file: json-file), log-opts: (from flag: map[max-file:3], from file: map[max-size:1k])"
        );
    }

    #[test]
    fn storage_driver_comes_from_the_file_or_the_flag_not_both() {
        assert_eq!(flags(r#"{"storage-driver":"vfs"}"#).unwrap(), ["--storage-driver=vfs"]);
        let given = |long: &str| (long == "storage-driver").then(|| "overlay2".to_string());
        assert_eq!(
            directives_as_flags(r#"{"storage-driver":"vfs"}"#, &given).unwrap_err(),
            "the following directives are specified both as a flag and in the configuration file: \
             storage-driver: (from flag: overlay2, from file: vfs)"
        );
    }

    #[test]
    fn hosts_and_tls_directives_become_flags() {
        assert_eq!(
            flags(r#"{"hosts":["unix:///a.sock","tcp://:2376"],"tls":true,"tlsverify":false,"tlscert":"/c.pem"}"#).unwrap(),
            ["--host=unix:///a.sock", "--host=tcp://:2376", "--tls=true", "--tlsverify=false", "--tlscert=/c.pem"]
        );
        assert!(flags(r#"{"tls":"yes"}"#).unwrap_err().contains("Config.tls of type bool"));
    }

    #[test]
    fn log_defaults_are_checked() {
        assert!(log_defaults("json-file", &["max-size=1m".into()]).is_ok());
        let e = log_defaults("json-file", &["bogus=1".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to set log opts: unknown log opt 'bogus' for json-file log driver"
        );
    }

    #[test]
    fn build_context_max_size_is_a_size() {
        assert_eq!(
            flags(r#"{"build-context-max-size":"20GB"}"#).unwrap(),
            ["--build-context-max-size=20GB"]
        );
        assert_eq!(build_context_max_size("20GB"), Ok(20 << 30));
        assert_eq!(build_context_max_size("512m"), Ok(512 << 20));
        assert_eq!(build_context_max_size("1000"), Ok(1000));
        assert_eq!(
            build_context_max_size("-1").unwrap_err(),
            "invalid size: '-1'"
        );
        assert!(flags(r#"{"build-context-max-size":10}"#)
            .unwrap_err()
            .contains("of type string"));
    }
}
