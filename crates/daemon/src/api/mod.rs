//! HTTP at the edge: routes parse requests into engine calls and engine results into
//! Docker's responses. No container logic lives here.

mod archive;
mod attach;
mod build;
mod build_context;
mod build_prune;
mod commit;
mod container_fs;
mod container_prune;
mod containers;
pub mod error;
mod events;
mod exec;
mod image_inspect;
mod images;
mod query;
mod save;
mod stats;
mod system;
mod unread_body;
mod update;
mod networks;
mod push;
mod volumes;

use crate::engine::Engine;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The advertised API version as a header value.
pub const API_VERSION_STR: &str = "1.41";

/// Every route berthd serves (paths without the `/v1.NN` prefix, which the server strips).
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/system/df", get(system::df))
        .route("/events", get(events::events))
        .route("/containers/json", get(containers::list))
        .route("/containers/create", post(containers::create))
        .route("/containers/prune", post(container_prune::prune))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(stats::stats))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::unpause))
        .route("/containers/{id}/update", post(update::update))
        .route("/containers/{id}/archive", get(archive::get).head(archive::head).put(archive::put))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/attach", post(attach::attach))
        .route("/containers/{id}/exec", post(exec::create))
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/changes", get(container_fs::changes))
        .route("/containers/{id}/export", get(container_fs::export))
        .route("/containers/{id}", axum::routing::delete(containers::remove))
        .route("/commit", post(commit::commit))
        .route("/build", post(build::build))
        .route("/build/prune", post(build_prune::prune))
        .route("/build/context", post(build_context::register))
        .route("/build/context/{id}/blobs", axum::routing::put(build_context::blobs))
        .route("/auth", post(push::auth))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/prune", post(images::prune))
        .route("/images/get", get(save::save_many))
        .route("/images/load", post(save::load))
        // Image names contain slashes, so the action is the last path segment.
        .route("/images/{*rest}", get(images::get_action).post(images::post_action).delete(images::remove))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route("/networks/prune", post(networks::prune))
        .route("/networks/{id}", get(networks::inspect).delete(networks::remove))
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route("/volumes/prune", post(volumes::prune))
        .route("/volumes/{name}", get(volumes::inspect).delete(volumes::remove))
        .fallback(error::not_found)
        .with_state(engine)
}
