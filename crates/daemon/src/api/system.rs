//! `/_ping`, `/version`, `/info`.

use super::API_VERSION_STR;
use crate::engine::Engine;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use super::error::ApiResult;
use berth_api::models::{
    BuildCache, ContainerSummary, ImageSummary, Volume,
    SystemInfo, SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum, SystemVersion, SystemVersionComponents,
    SystemVersionPlatform,
};
use berth_api::version::{ENGINE_VERSION, MIN_API_VERSION};
use std::sync::Arc;

pub async fn ping() -> Response {
    (
        [
            ("Cache-Control", "no-cache, no-store, must-revalidate"),
            ("Pragma", "no-cache"),
            ("Builder-Version", "1"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ],
        "OK",
    )
        .into_response()
}

fn uname() -> nix::sys::utsname::UtsName {
    // uname(2) cannot fail on Linux with a valid buffer, which nix provides.
    nix::sys::utsname::uname().unwrap_or_else(|_| unreachable!("uname cannot fail"))
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn version() -> Json<SystemVersion> {
    let kernel = uname().release().to_string_lossy().to_string();
    Json(SystemVersion {
        platform: Some(SystemVersionPlatform { name: "berth".into() }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: ENGINE_VERSION.into(),
            details: Some(
                [
                    ("ApiVersion".to_string(), API_VERSION_STR.to_string()),
                    ("MinAPIVersion".to_string(), MIN_API_VERSION.to_string()),
                    ("Os".to_string(), "linux".to_string()),
                    ("Arch".to_string(), arch().to_string()),
                    ("GoVersion".to_string(), "rust".to_string()),
                    ("GitCommit".to_string(), option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown").to_string()),
                    ("KernelVersion".to_string(), kernel.clone()),
                    ("Experimental".to_string(), "false".to_string()),
                ]
                .into(),
            ),
        }]),
        version: Some(ENGINE_VERSION.into()),
        api_version: Some(API_VERSION_STR.into()),
        min_api_version: Some(MIN_API_VERSION.to_string()),
        git_commit: Some(option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown").into()),
        go_version: Some("rust".into()),
        os: Some("linux".into()),
        arch: Some(arch().into()),
        kernel_version: Some(kernel),
        experimental: Some(false),
        build_time: None,
    })
}

/// `PRETTY_NAME` from /etc/os-release.
fn operating_system() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        })
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")?.trim().trim_end_matches("kB").trim().parse::<i64>().ok()
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The data root's filesystem, named as Docker names it.
fn backing_filesystem(path: &std::path::Path) -> String {
    use nix::sys::statfs::{statfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC};
    match statfs(path).map(|s| s.filesystem_type()) {
        Ok(t) if t == EXT4_SUPER_MAGIC => "extfs".into(),
        Ok(t) if t == XFS_SUPER_MAGIC => "xfs".into(),
        Ok(t) if t == BTRFS_SUPER_MAGIC => "btrfs".into(),
        Ok(t) if t == TMPFS_MAGIC => "tmpfs".into(),
        Ok(t) => format!("{:#x}", t.0),
        Err(_) => "unknown".into(),
    }
}

pub async fn info(State(engine): State<Arc<Engine>>) -> Json<SystemInfo> {
    let counts = engine.container_counts();
    let images = engine.images().await.map(|i| i.len() as i64).unwrap_or(0);
    let u = uname();
    let v2 = crate::engine::cgroup_version() == "2";
    Json(SystemInfo {
        id: Some(engine.daemon_id.clone()),
        containers: Some(counts.total as i64),
        containers_running: Some(counts.running as i64),
        containers_paused: Some(counts.paused as i64),
        containers_stopped: Some(counts.stopped as i64),
        images: Some(images),
        driver: Some(engine.store.driver().name().into()),
        // vfs reports no status in Docker.
        driver_status: (engine.store.driver() == berth_store::Driver::Overlay2)
            .then(|| vec![vec!["Backing Filesystem".into(), backing_filesystem(&engine.paths.data_root)]]),
        docker_root_dir: Some(engine.paths.data_root.display().to_string()),
        memory_limit: Some(true),
        swap_limit: Some(true),
        cpu_cfs_period: Some(true),
        cpu_cfs_quota: Some(true),
        cpu_shares: Some(true),
        cpu_set: Some(true),
        pids_limit: Some(true),
        ipv4_forwarding: Some(false),
        debug: Some(false),
        logging_driver: Some("json-file".into()),
        cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
        cgroup_version: Some(if v2 { SystemInfoCgroupVersionEnum::_2 } else { SystemInfoCgroupVersionEnum::_1 }),
        kernel_version: Some(u.release().to_string_lossy().to_string()),
        operating_system: Some(operating_system()),
        os_type: Some("linux".into()),
        architecture: Some(std::env::consts::ARCH.into()),
        ncpu: Some(std::thread::available_parallelism().map(|n| n.get() as i64).unwrap_or(1)),
        mem_total: Some(mem_total()),
        name: Some(u.nodename().to_string_lossy().to_string()),
        server_version: Some(ENGINE_VERSION.into()),
        default_runtime: Some("berth-shim".into()),
        live_restore_enabled: Some(true),
        // As dockerd on a host with seccomp and without AppArmor or SELinux.
        security_options: Some(vec!["name=seccomp,profile=default".into()]),
        labels: Some(Vec::new()),
        experimental_build: Some(false),
        system_time: Some(crate::engine::now_rfc3339()),
        ..Default::default()
    })
}

/// One image in `/system/df`: the list's summary plus `VirtualSize`, which API 1.41 still sends.
#[derive(serde::Serialize)]
pub struct DiskUsageImage {
    #[serde(flatten)]
    summary: ImageSummary,
    #[serde(rename = "VirtualSize")]
    virtual_size: i64,
}

/// `/system/df`'s answer in API 1.41's shape (bollard-stubs only has the 1.52 one).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiskUsageResponse {
    layers_size: i64,
    images: Vec<DiskUsageImage>,
    containers: Vec<ContainerSummary>,
    volumes: Vec<Volume>,
    build_cache: Vec<BuildCache>,
    /// Deprecated in the API, still sent by Docker 20.10: the build cache's total size.
    builder_size: i64,
}

/// `GET /system/df`: measured on disk, so the walk runs off the async workers.
pub async fn df(State(engine): State<Arc<Engine>>) -> ApiResult<Json<DiskUsageResponse>> {
    let e = engine.clone();
    let usage = tokio::task::spawn_blocking(move || e.disk_usage())
        .await
        .map_err(crate::engine::Error::from)??;
    let images = usage
        .images
        .iter()
        .map(|u| {
            let mut summary = super::images::summary_view(&u.image);
            summary.shared_size = u.shared_size as i64;
            summary.containers = u.containers as i64;
            DiskUsageImage { virtual_size: summary.size, summary }
        })
        .collect();
    let containers = usage
        .containers
        .iter()
        .map(|u| {
            let mut c = super::containers::summary_view(&engine, &u.rec);
            c.size_rw = Some(u.size_rw as i64);
            c.size_root_fs = Some(u.size_root_fs as i64);
            c
        })
        .collect();
    Ok(Json(DiskUsageResponse {
        layers_size: usage.layers_size as i64,
        images,
        containers,
        volumes: usage.volumes,
        builder_size: usage.build_cache.iter().map(|u| u.size as i64).sum(),
        build_cache: usage.build_cache.iter().map(super::build_context::build_cache_view).collect(),
    }))
}
