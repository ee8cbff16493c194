//! The container flags that mount things: `-v`, `--mount`, `--tmpfs`, parsed as docker's
//! CLI parses them before sending `Binds`, `Mounts`, `Tmpfs` and `Volumes`.

use std::collections::HashMap;

use berth_api::models::{
    Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountTmpfsOptions, MountType,
    MountVolumeOptions, MountVolumeOptionsDriverConfig,
};

use crate::format;

/// `-v` values split into binds (`src:dst[:mode]`) and anonymous volume paths (`/dst`).
/// A relative source (`./data`) becomes absolute against our working directory, as the
/// docker CLI does.
pub fn split_volumes(specs: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut binds, mut volumes) = (Vec::new(), Vec::new());
    for spec in specs {
        match spec.split_once(':') {
            Some((src, rest)) if !src.is_empty() => {
                let relative = src == "." || src == ".." || src.starts_with("./") || src.starts_with("../");
                match std::env::current_dir() {
                    Ok(cwd) if relative => binds.push(format!("{}:{rest}", clean(&cwd.join(src)))),
                    _ => binds.push(spec.clone()),
                }
            }
            _ => volumes.push(spec.clone()),
        }
    }
    (binds, volumes)
}

/// `/a/./b/../c` → `/a/c` without touching the filesystem.
fn clean(p: &std::path::Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// `--tmpfs /path[:options]` values as `HostConfig.Tmpfs`.
pub fn tmpfs_map(specs: &[String]) -> HashMap<String, String> {
    specs
        .iter()
        .map(|s| match s.split_once(':') {
            Some((p, o)) => (p.to_string(), o.to_string()),
            None => (s.clone(), String::new()),
        })
        .collect()
}

fn parse_bool(key: &str, v: Option<&str>) -> Result<bool, String> {
    match v {
        None => Ok(true),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "t" => Ok(true),
            "0" | "false" | "f" => Ok(false),
            _ => Err(format!("invalid value for {key}: {v}")),
        },
    }
}

/// One `--mount` value (docker's CSV of `key=value` fields). The error is the reason
/// docker gives after `invalid argument "…" for "--mount" flag: `.
pub fn parse_mount(spec: &str) -> Result<Mount, String> {
    let mut m = Mount::default();
    let mut typ = MountType::VOLUME;
    let mut bind = MountBindOptions::default();
    let mut vol = MountVolumeOptions::default();
    let mut tmpfs = MountTmpfsOptions::default();
    let (mut driver, mut driver_opts, mut labels) = (None, HashMap::new(), HashMap::new());
    let (mut used_bind, mut used_vol, mut used_tmpfs) = (false, false, false);
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || value.ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"));
        match key.as_str() {
            "type" => {
                typ = match need()? {
                    "bind" => MountType::BIND,
                    "volume" => MountType::VOLUME,
                    "tmpfs" => MountType::TMPFS,
                    other => return Err(format!("invalid mount config for type \"{other}\": mount type unknown")),
                }
            }
            "source" | "src" => m.source = Some(need()?.to_string()),
            "target" | "dst" | "destination" => m.target = Some(need()?.to_string()),
            "readonly" | "ro" => m.read_only = Some(parse_bool(&key, value)?),
            "consistency" => m.consistency = Some(need()?.to_string()),
            "bind-propagation" => {
                used_bind = true;
                let p = need()?;
                bind.propagation = Some(p.parse::<MountBindOptionsPropagationEnum>().map_err(|_| format!("invalid bind propagation: {p}"))?);
            }
            "bind-nonrecursive" => {
                used_bind = true;
                bind.non_recursive = Some(parse_bool(&key, value)?);
            }
            "bind-create-mountpoint" => {
                used_bind = true;
                bind.create_mountpoint = Some(parse_bool(&key, value)?);
            }
            "volume-nocopy" => {
                used_vol = true;
                vol.no_copy = Some(parse_bool(&key, value)?);
            }
            "volume-driver" => {
                used_vol = true;
                driver = Some(need()?.to_string());
            }
            "volume-label" | "volume-opt" => {
                used_vol = true;
                let v = need()?;
                let (k, val) = v.split_once('=').unwrap_or((v, ""));
                if key == "volume-label" {
                    labels.insert(k.to_string(), val.to_string());
                } else {
                    driver_opts.insert(k.to_string(), val.to_string());
                }
            }
            "volume-subpath" => {
                used_vol = true;
                vol.subpath = Some(need()?.to_string());
            }
            "tmpfs-size" => {
                used_tmpfs = true;
                let v = need()?;
                tmpfs.size_bytes = Some(format::ram_in_bytes(v).map_err(|_| format!("invalid value for {key}: {v}"))?);
            }
            "tmpfs-mode" => {
                used_tmpfs = true;
                let v = need()?;
                tmpfs.mode = Some(i64::from_str_radix(v, 8).map_err(|_| format!("invalid value for {key}: {v}"))?);
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if m.target.as_deref().unwrap_or("").is_empty() {
        return Err("target is required".into());
    }
    if used_bind && typ != MountType::BIND {
        return Err(format!("cannot mix 'bind-*' options with mount type '{typ}'"));
    }
    if used_vol && typ != MountType::VOLUME {
        return Err(format!("cannot mix 'volume-*' options with mount type '{typ}'"));
    }
    if used_tmpfs && typ != MountType::TMPFS {
        return Err(format!("cannot mix 'tmpfs-*' options with mount type '{typ}'"));
    }
    if used_bind {
        m.bind_options = Some(bind);
    }
    if driver.is_some() || !driver_opts.is_empty() {
        vol.driver_config = Some(MountVolumeOptionsDriverConfig {
            name: driver,
            options: (!driver_opts.is_empty()).then_some(driver_opts),
        });
    }
    if !labels.is_empty() {
        vol.labels = Some(labels);
    }
    if used_vol {
        m.volume_options = Some(vol);
    }
    if used_tmpfs {
        m.tmpfs_options = Some(tmpfs);
    }
    m.typ = Some(typ);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_like_docker() {
        let m = parse_mount("type=bind,source=/src,target=/dst,readonly,bind-propagation=rshared").unwrap();
        assert_eq!(m.typ, Some(MountType::BIND));
        assert_eq!((m.source.as_deref(), m.target.as_deref(), m.read_only), (Some("/src"), Some("/dst"), Some(true)));
        assert_eq!(m.bind_options.unwrap().propagation, Some(MountBindOptionsPropagationEnum::RSHARED));
        let v = parse_mount("src=data,dst=/d,volume-opt=type=tmpfs,volume-nocopy").unwrap();
        assert_eq!(v.typ, Some(MountType::VOLUME));
        let vo = v.volume_options.unwrap();
        assert_eq!(vo.no_copy, Some(true));
        assert_eq!(vo.driver_config.unwrap().options.unwrap()["type"], "tmpfs");
        let t = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770").unwrap();
        let to = t.tmpfs_options.unwrap();
        assert_eq!((to.size_bytes, to.mode), (Some(1 << 20), Some(0o1770)));
        assert_eq!(parse_mount("type=volume").unwrap_err(), "target is required");
        assert_eq!(parse_mount("foo=bar,target=/x").unwrap_err(), "unexpected key 'foo' in 'foo=bar'");
        assert_eq!(parse_mount("type=tmpfs,target=/t,tmpfs-size=abc").unwrap_err(), "invalid value for tmpfs-size: abc");
    }

    #[test]
    fn volumes_split_into_binds_and_anonymous() {
        let (b, v) = split_volumes(&["/x".into(), "data:/d:ro".into(), "/h:/c".into()]);
        assert_eq!(b, ["data:/d:ro", "/h:/c"]);
        assert_eq!(v, ["/x"]);
        let (b, _) = split_volumes(&["./rel:/r".into()]);
        assert!(b[0].starts_with('/') && b[0].ends_with("/rel:/r"), "{b:?}");
        assert_eq!(tmpfs_map(&["/t:size=1m".into(), "/u".into()])["/t"], "size=1m");
    }
}
