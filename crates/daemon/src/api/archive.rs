//! `/containers/{id}/archive`: `docker cp`'s GET (tar of a path), HEAD (its stat) and PUT
//! (extract a tar into a directory).

use super::error::{bad_request, ApiResult};
use super::query::Query;
use super::unread_body;
use crate::engine::archive::{self, ChannelReader, ChannelWriter, PathStat};
use crate::engine::Engine;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use futures_util::StreamExt;
use hyper::StatusCode;
use std::sync::Arc;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_param(q: &Query) -> ApiResult<String> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(bad_request("path cannot be empty")),
    }
}

/// Go's base64.StdEncoding, which the docker CLI decodes the stat header with.
fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn stat_header(stat: &PathStat) -> String {
    base64(&serde_json::to_vec(stat).unwrap_or_default())
}

pub async fn head(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let path = path_param(&Query::parse(q.as_deref()))?;
    let name = id.clone();
    let stat = engine
        .with_container_fs(&id, move |_, fs| {
            archive::path_stat(&fs.resolve_parent(&path)?, &name)
        })
        .await?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(STAT_HEADER, stat_header(&stat))
        .body(Body::empty())
        .unwrap_or_default())
}

pub async fn get(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let path = path_param(&Query::parse(q.as_deref()))?;
    let (tx_stat, rx_stat) = tokio::sync::oneshot::channel::<PathStat>();
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    // The tar is written while the client reads it; the filesystem stays open until then.
    let task = tokio::spawn(async move {
        let name = id.clone();
        engine
            .with_container_fs(&id, move |_, fs| {
                let r = fs.resolve_parent(&path)?;
                let stat = archive::path_stat(&r, &name)?;
                // The top entry is named after the path's last component; `dir/.` means its
                // contents, and the root's entries are "/", "/a", … as Docker names them.
                let top = if path.ends_with("/.") {
                    ".".to_string()
                } else if stat.name == "/" {
                    String::new()
                } else {
                    stat.name.clone()
                };
                if tx_stat.send(stat).is_err() {
                    return Ok(());
                }
                let out = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(tx.clone()));
                if let Err(e) = archive::write_tar(&r, &top, out) {
                    let _ = tx.blocking_send(Err(e));
                }
                Ok(())
            })
            .await
    });
    let stat = match rx_stat.await {
        Ok(stat) => stat,
        // No stat means the task ended early: its error is the answer.
        Err(_) => {
            task.await.map_err(crate::engine::Error::from)??;
            return Err(crate::engine::Error::Internal("archive task ended early".into()).into());
        }
    };
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(STAT_HEADER, stat_header(&stat))
        .header("Content-Type", "application/x-tar")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

pub async fn put(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    body: Body,
) -> ApiResult<Response> {
    let q = Query::parse(q.as_deref());
    let path = path_param(&q)?;
    let no_overwrite = q.flag("noOverwriteDirNonDir");
    let copy_uid_gid = q.flag("copyUIDGID");
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let forward = tokio::spawn(async move {
        let mut data = body.into_data_stream();
        while let Some(chunk) = data.next().await {
            if tx.send(chunk.map_err(std::io::Error::other)).await.is_err() {
                // The extraction failed and answers with its error.
                unread_body::discard(data, unread_body::GO_SERVER_READS).await;
                break;
            }
        }
    });
    let spool = engine.paths.data_root.clone();
    let id2 = id.clone();
    let result = engine
        .with_container_fs(&id, move |engine, fs| {
            let owner = if copy_uid_gid {
                engine.copy_owner(&id2)?
            } else {
                None
            };
            let mut reader = ChannelReader {
                rx,
                cur: bytes::Bytes::new(),
            };
            archive::extract(fs, &path, &mut reader, &spool, no_overwrite, owner)
        })
        .await;
    let mut forward = forward;
    if result.is_err() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut forward).await;
    }
    forward.abort();
    result?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .body(Body::empty())
        .unwrap_or_default())
}
