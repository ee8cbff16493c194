//! `GET /images/{name}/json` in API 1.41's shape: Docker's field order, and the nulls and
//! empty strings it sends for what an imported image lacks (bollard's current type has
//! dropped `Parent`, `Container`, `ContainerConfig`, `DockerVersion` and `VirtualSize`).

use crate::engine::ImageDetail;
use berth_store::Driver;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    parent: String,
    comment: String,
    created: String,
    container: String,
    container_config: RunConfig,
    docker_version: String,
    author: String,
    config: RunConfig,
    architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    os_version: Option<String>,
    size: i64,
    virtual_size: i64,
    graph_driver: GraphDriver,
    #[serde(rename = "RootFS")]
    root_fs: RootFs,
    metadata: BTreeMap<String, String>,
}

/// `GraphDriver` in image and container inspect: the driver's directories, or for vfs, which
/// keeps no metadata, `"Data": null` as Docker shows it.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    data: Option<BTreeMap<String, String>>,
    name: String,
}

impl GraphDriver {
    pub fn new(driver: Driver, data: BTreeMap<String, String>) -> GraphDriver {
        GraphDriver {
            data: (driver != Driver::Vfs).then_some(data),
            name: driver.name().into(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RootFs {
    #[serde(rename = "Type")]
    typ: String,
    layers: Vec<String>,
}

/// Docker's `container.Config`, in its field order; `omitempty` fields are skipped when unset.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    hostname: Value,
    domainname: Value,
    user: Value,
    attach_stdin: Value,
    attach_stdout: Value,
    attach_stderr: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    exposed_ports: Value,
    tty: Value,
    open_stdin: Value,
    stdin_once: Value,
    env: Value,
    cmd: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    healthcheck: Option<Healthcheck>,
    #[serde(skip_serializing_if = "Value::is_null")]
    args_escaped: Value,
    image: Value,
    volumes: Value,
    working_dir: Value,
    entrypoint: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    network_disabled: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    mac_address: Value,
    on_build: Value,
    labels: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    stop_signal: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    stop_timeout: Value,
    #[serde(skip_serializing_if = "Value::is_null")]
    shell: Value,
}

/// A health check in the field order of Go's `container.HealthConfig` (bollard's differs).
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Healthcheck {
    #[serde(skip_serializing_if = "Option::is_none")]
    test: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_period: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_interval: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retries: Option<i64>,
}

impl RunConfig {
    /// Fills Docker's defaults around what the config blob holds (`raw` may be null).
    pub fn from_raw(raw: Option<&Value>) -> RunConfig {
        let get = |k: &str| raw.and_then(|r| r.get(k)).cloned().unwrap_or(Value::Null);
        let or = |k: &str, default: Value| match get(k) {
            Value::Null => default,
            v => v,
        };
        // omitempty in Go: empty strings, false and empty collections are left out.
        let omit_empty = |k: &str| match get(k) {
            Value::String(s) if s.is_empty() => Value::Null,
            Value::Bool(false) => Value::Null,
            Value::Object(m) if m.is_empty() => Value::Null,
            Value::Array(a) if a.is_empty() => Value::Null,
            Value::Number(n) if n.as_i64() == Some(0) => Value::Null,
            v => v,
        };
        let s = || Value::String(String::new());
        RunConfig {
            hostname: or("Hostname", s()),
            domainname: or("Domainname", s()),
            user: or("User", s()),
            attach_stdin: or("AttachStdin", Value::Bool(false)),
            attach_stdout: or("AttachStdout", Value::Bool(false)),
            attach_stderr: or("AttachStderr", Value::Bool(false)),
            exposed_ports: omit_empty("ExposedPorts"),
            tty: or("Tty", Value::Bool(false)),
            open_stdin: or("OpenStdin", Value::Bool(false)),
            stdin_once: or("StdinOnce", Value::Bool(false)),
            env: get("Env"),
            cmd: get("Cmd"),
            healthcheck: serde_json::from_value(get("Healthcheck")).ok().flatten(),
            args_escaped: omit_empty("ArgsEscaped"),
            image: or("Image", s()),
            volumes: get("Volumes"),
            working_dir: or("WorkingDir", s()),
            entrypoint: get("Entrypoint"),
            network_disabled: omit_empty("NetworkDisabled"),
            mac_address: omit_empty("MacAddress"),
            on_build: get("OnBuild"),
            labels: get("Labels"),
            stop_signal: omit_empty("StopSignal"),
            stop_timeout: get("StopTimeout"),
            shell: omit_empty("Shell"),
        }
    }
}

pub fn inspect_view(d: &ImageDetail) -> ImageInspect {
    let image = &d.image;
    let text = |k: &str| d.blob.get(k).and_then(Value::as_str).map(String::from);
    // Docker's import writes the message as the image comment; older berth configs only have
    // it in the history, so fall back to that.
    let history_comment = image
        .config
        .history()
        .as_ref()
        .and_then(|h| h.last())
        .and_then(|h| h.comment().clone());
    let mut data = BTreeMap::new();
    if let Some((top, lower)) = d.layer_dirs.split_last() {
        data.insert("UpperDir".to_string(), top.display().to_string());
        // Docker names the top layer's `merged` and `work` too, which exist only while
        // something mounts the image; berth never mounts an image's layers on their own, so
        // these name where they would be, beside the layer, and do not exist either.
        let beside = |suffix: &str| format!("{}-{suffix}", top.display());
        data.insert("MergedDir".to_string(), beside("merged"));
        data.insert("WorkDir".to_string(), beside("work"));
        if !lower.is_empty() {
            let lower: Vec<String> = lower
                .iter()
                .rev()
                .map(|p| p.display().to_string())
                .collect();
            data.insert("LowerDir".to_string(), lower.join(":"));
        }
    }
    ImageInspect {
        id: image.id.clone(),
        repo_tags: image.repo_tags.clone(),
        repo_digests: image.repo_digests.clone(),
        parent: image.parent.clone().unwrap_or_default(),
        comment: text("comment").or(history_comment).unwrap_or_default(),
        created: text("created").unwrap_or_default(),
        container: text("container").unwrap_or_default(),
        container_config: RunConfig::from_raw(d.blob.get("container_config")),
        docker_version: text("docker_version").unwrap_or_default(),
        author: text("author").unwrap_or_default(),
        config: RunConfig::from_raw(image.docker_config.as_ref().or(d.blob.get("config"))),
        architecture: image.config.architecture().to_string(),
        variant: text("variant"),
        os: image.config.os().to_string(),
        os_version: text("os.version"),
        size: image.size as i64,
        virtual_size: image.size as i64,
        graph_driver: GraphDriver::new(d.driver, data),
        root_fs: RootFs {
            typ: "layers".into(),
            layers: image.config.rootfs().diff_ids().clone(),
        },
        metadata: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_dockers_empty_config() {
        let got = serde_json::to_string(&RunConfig::from_raw(None)).unwrap();
        assert_eq!(
            got,
            r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#
        );
    }

    #[test]
    fn docker_only_fields_are_kept_and_empty_ones_left_out() {
        let raw = serde_json::json!({
            "Cmd": ["sh"], "Shell": ["/bin/ash", "-c"], "Healthcheck": {"Test": ["CMD", "true"]},
            "OnBuild": ["RUN x"], "ArgsEscaped": false, "StopSignal": "", "ExposedPorts": {"80/tcp": {}}
        });
        let c = serde_json::to_value(RunConfig::from_raw(Some(&raw))).unwrap();
        assert_eq!(c["Shell"], serde_json::json!(["/bin/ash", "-c"]));
        assert_eq!(c["Healthcheck"]["Test"], serde_json::json!(["CMD", "true"]));
        assert_eq!(c["OnBuild"], serde_json::json!(["RUN x"]));
        assert_eq!(c["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
        assert!(c.get("ArgsEscaped").is_none());
        assert!(c.get("StopSignal").is_none());
    }
}
