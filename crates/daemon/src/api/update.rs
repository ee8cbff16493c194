//! `POST /containers/{id}/update`: new resource limits and restart policy.

use super::error::{bad_request, ApiResult};
use crate::engine::{Engine, UpdateRequest};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::Json;
use berth_api::models::{ContainerUpdateBody, ContainerUpdateResponse, HostConfig};
use std::sync::Arc;

/// `KernelMemory`: still sent by docker 20.10's `update` but gone from the API models.
#[derive(serde::Deserialize)]
struct Legacy {
    #[serde(rename = "KernelMemory", default)]
    kernel_memory: Option<i64>,
}

pub async fn update(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<ContainerUpdateResponse>> {
    crate::engine::check_restart_policy_name(&body)?;
    let parsed: ContainerUpdateBody =
        serde_json::from_slice(&body).map_err(|e| bad_request(e.to_string()))?;
    let legacy: Legacy = serde_json::from_slice(&body).map_err(|e| bad_request(e.to_string()))?;
    // The update body is the resource half of a HostConfig, field for field.
    let resources: HostConfig = serde_json::to_value(parsed)
        .and_then(serde_json::from_value)
        .map_err(|e| bad_request(e.to_string()))?;
    let req = UpdateRequest {
        resources,
        kernel_memory: legacy.kernel_memory.unwrap_or(0),
    };
    let warnings = engine.update(&id, req).await?;
    Ok(Json(ContainerUpdateResponse {
        warnings: Some(warnings),
    }))
}
