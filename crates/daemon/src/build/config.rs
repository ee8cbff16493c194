//! The run config a stage carries from step to step: Docker's `container.Config`, serialized
//! in Go's field order with Go's `omitempty` rules, because it is stored as the image's
//! `config` and `container_config` and compared by the cache.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The shell of shell-form RUN/CMD/ENTRYPOINT when no SHELL was given.
pub const DEFAULT_SHELL: [&str; 2] = ["/bin/sh", "-c"];

/// Added to a base image's Env that has no PATH (`system.DefaultPathEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn is_false(b: &bool) -> bool {
    !*b
}

fn empty_map<T>(m: &Option<BTreeMap<String, T>>) -> bool {
    m.as_ref().is_none_or(BTreeMap::is_empty)
}

fn empty_list(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

/// `strslice.StrSlice`: an array, or a single string meaning one element; null stays nil.
fn str_slice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(vec![s]),
        Some(Value::Array(a)) => Some(
            a.into_iter()
                .map(|v| v.as_str().map(String::from).unwrap_or_default())
                .collect(),
        ),
        Some(_) => None,
    })
}

/// Maps whose values Docker ignores (`ExposedPorts`, `Volumes`: `{}` each).
fn key_set<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, Value>>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::Object(m)) => Some(
            m.into_iter()
                .map(|(k, _)| (k, Value::Object(Map::new())))
                .collect(),
        ),
        _ => None,
    })
}

fn null_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// Docker's `container.Config`, the fields in Go's order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, deserialize_with = "null_string")]
    pub hostname: String,
    #[serde(default, deserialize_with = "null_string")]
    pub domainname: String,
    #[serde(default, deserialize_with = "null_string")]
    pub user: String,
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    #[serde(
        default,
        deserialize_with = "key_set",
        skip_serializing_if = "empty_map"
    )]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default, deserialize_with = "str_slice")]
    pub env: Option<Vec<String>>,
    #[serde(default, deserialize_with = "str_slice")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub args_escaped: bool,
    #[serde(default, deserialize_with = "null_string")]
    pub image: String,
    #[serde(default, deserialize_with = "key_set")]
    pub volumes: Option<BTreeMap<String, Value>>,
    #[serde(default, deserialize_with = "null_string")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "str_slice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub network_disabled: bool,
    #[serde(
        default,
        deserialize_with = "null_string",
        skip_serializing_if = "String::is_empty"
    )]
    pub mac_address: String,
    #[serde(default, rename = "OnBuild", deserialize_with = "str_slice")]
    pub on_build: Option<Vec<String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(
        default,
        deserialize_with = "null_string",
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(
        default,
        deserialize_with = "str_slice",
        skip_serializing_if = "empty_list"
    )]
    pub shell: Option<Vec<String>>,
}

impl RunConfig {
    /// The config a stage starts from: its base image's (`None`: scratch), with the default
    /// PATH added when the base has none, and stdin cleared (dockerd's `beginStage`).
    pub fn for_stage(base: Option<&Value>) -> RunConfig {
        let mut c: RunConfig = base
            .filter(|v| v.is_object())
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let env = c.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.split('=').next() == Some("PATH")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        c.open_stdin = false;
        c.stdin_once = false;
        c
    }

    /// As the JSON object the engine and the store take.
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// The current SHELL (default `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        match &self.shell {
            Some(s) if !s.is_empty() => s.clone(),
            _ => DEFAULT_SHELL.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn env(&self) -> &[String] {
        self.env.as_deref().unwrap_or_default()
    }

    /// Sets `name=value` in Env, replacing an entry of the same name in place.
    pub fn set_env(&mut self, name: &str, value: &str) {
        let entry = format!("{name}={value}");
        let env = self.env.get_or_insert_with(Vec::new);
        match env.iter_mut().find(|e| e.split('=').next() == Some(name)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
    }

    /// `Cmd` joined by spaces: what history's `created_by` shows.
    pub fn cmd_line(&self) -> String {
        self.cmd.as_deref().unwrap_or_default().join(" ")
    }

    /// The probe config of a metadata step: `Cmd = SHELL ++ ["#(nop) ", text]`.
    pub fn with_nop_comment(&self, text: &str) -> RunConfig {
        let mut c = self.clone();
        let mut cmd = self.shell();
        cmd.push("#(nop) ".into());
        cmd.push(text.into());
        c.cmd = Some(cmd);
        c
    }

    /// The probe config of WORKDIR, COPY and ADD: `Cmd = SHELL ++ ["#(nop) " + text]`.
    pub fn with_nop_comment_word(&self, text: &str) -> RunConfig {
        let mut c = self.clone();
        let mut cmd = self.shell();
        cmd.push(format!("#(nop) {text}"));
        c.cmd = Some(cmd);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serializes_in_go_order_with_go_omitempty() {
        let c = RunConfig::for_stage(Some(
            &json!({"Cmd": ["sh"], "Env": null, "OpenStdin": true, "Labels": {}}),
        ));
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{}}"#
        );
    }

    #[test]
    fn reads_docker_and_oci_configs() {
        let c = RunConfig::for_stage(Some(&json!({
            "Env": ["PATH=/x", "A=1"], "Cmd": "echo", "ExposedPorts": {"80/tcp": {}}, "Shell": ["/bin/bash", "-c"],
            "Healthcheck": {"Test": ["NONE"]}, "StopSignal": "SIGKILL", "OnBuild": ["RUN x"]
        })));
        assert_eq!(c.env(), ["PATH=/x", "A=1"]);
        assert_eq!(c.cmd.as_deref(), Some(&["echo".to_string()][..]));
        assert_eq!(c.shell(), ["/bin/bash", "-c"]);
        assert_eq!(c.on_build.as_deref(), Some(&["RUN x".to_string()][..]));
        let m = c.to_map();
        assert_eq!(m["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(m["StopSignal"], json!("SIGKILL"));
        assert_eq!(RunConfig::for_stage(None).shell(), DEFAULT_SHELL);
    }

    #[test]
    fn nop_comments() {
        let mut c = RunConfig::default();
        assert_eq!(
            c.with_nop_comment("ARG V=1").cmd_line(),
            "/bin/sh -c #(nop)  ARG V=1"
        );
        assert_eq!(
            c.with_nop_comment_word("WORKDIR /app").cmd_line(),
            "/bin/sh -c #(nop) WORKDIR /app"
        );
        c.shell = Some(vec!["/bin/sh".into(), "-xc".into()]);
        assert_eq!(
            c.with_nop_comment("ENV P=1").cmd_line(),
            "/bin/sh -xc #(nop)  ENV P=1"
        );
        c.set_env("A", "1");
        c.set_env("B", "2");
        c.set_env("A", "3");
        assert_eq!(c.env(), ["A=3", "B=2"]);
    }
}
