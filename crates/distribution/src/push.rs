//! Pushing an image: its layers in parallel, then its config, then a Docker v2 schema 2
//! manifest under the tag — what `docker push` does, step for step:
//!
//! 1. per layer, the compressed digests the store knows for it (`Store::blob_sources`, from
//!    earlier pulls and pushes, and its cached gzip) are HEADed in the target repository:
//!    present means "Layer already exists";
//! 2. else a cross-repository mount from a repository of the same registry known to hold one
//!    ("Mounted from team/app");
//! 3. else an upload: the cached gzip when there is one (one PUT when small, PATCHes of 256 MB
//!    when big), or the layer gzipped now into the cache while the same bytes stream to the
//!    registry in one PATCH (see `push_compress`). A failed upload is retried from the cache,
//!    after Docker's countdown (`retry`); one whose token expired mid-stream, at once.
//!
//! Each layer pushed records where it now lives, for the next push's HEAD or mount.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_store::manifest::media;
use berth_store::{BlobSource, Compression, Image, Store};
use bytes::Bytes;
use hyper::Request;
use serde::Serialize;
use sha2::Digest as _;
use tokio::sync::{mpsc, Semaphore};

use crate::auth::{repository_scope, Credentials};
use crate::client::{check, empty, full, Client, Repository};
use crate::error::{Error, Result};
use crate::push_compress::compress_layer;
use crate::push_upload::{self as upload, ChannelBody, Started};
use crate::retry;

/// Layers uploaded at once. Docker's default is 5; more buys nothing on one link.
pub const MAX_CONCURRENT_UPLOADS: usize = 5;
/// Attempts per layer (Docker: 5), for network trouble and 5xx answers.
const ATTEMPTS: u32 = retry::MAX_ATTEMPTS;

/// What a push reports, per layer (`id`: the short diff ID Docker shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Preparing(String),
    Waiting(String),
    Pushing {
        id: String,
        current: u64,
        total: u64,
    },
    Pushed(String),
    Exists(String),
    MountedFrom {
        id: String,
        from: String,
    },
    /// The countdown before another attempt: "Retrying in 5 seconds".
    Retrying {
        id: String,
        text: String,
    },
}

/// Where to push: a registry domain ("127.0.0.1:5000", "docker.io"), a repository path in it
/// ("team/app", "library/busybox"), and the tag.
#[derive(Debug, Clone)]
pub struct Target {
    pub domain: String,
    pub path: String,
    pub tag: String,
}

impl Target {
    /// "127.0.0.1:5000/team/app": how sources are recorded in the store.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

/// The manifest pushed: its digest and size (Docker's `tag: digest: … size: …`).
#[derive(Debug, Clone)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
}

/// The short layer ID docker prints.
pub fn short_id(diff_id: &str) -> String {
    diff_id
        .trim_start_matches("sha256:")
        .chars()
        .take(12)
        .collect()
}

/// Docker's schema 2 manifest, fields in its order (mediaType, size, digest).
#[derive(Serialize)]
struct ManifestDescriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    size: u64,
    digest: String,
}

#[derive(Serialize)]
struct SchemaTwo {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: ManifestDescriptor,
    layers: Vec<ManifestDescriptor>,
}

/// Docker's manifest bytes: `json.MarshalIndent(m, "", "   ")`.
fn manifest_bytes(m: &SchemaTwo) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    m.serialize(&mut ser)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(out)
}

/// Opens a push session on `target`'s repository.
pub async fn session(
    client: &Client,
    target: &Target,
    creds: Option<Credentials>,
) -> Result<Repository> {
    client
        .repository(&target.domain, &target.path, creds, "pull,push")
        .await
}

/// Pushes `image` as `target`; progress goes to `progress`. The session `repo` comes from
/// [`session`] (one per repository, reused across the tags of `push -a`).
pub async fn push_image(
    repo: &mut Repository,
    store: Arc<Store>,
    image: &Image,
    target: &Target,
    progress: &mpsc::UnboundedSender<Progress>,
) -> Result<Pushed> {
    let diff_ids: Vec<String> = image.config.rootfs().diff_ids().to_vec();
    // Mount sources need a pull scope on their repository, granted up front with the token.
    let mut mount_from = HashSet::new();
    for d in &diff_ids {
        for s in store.blob_sources(d)? {
            if let Some(path) = same_registry_path(&s.repository, &target.domain) {
                if path != target.path {
                    mount_from.insert(path.to_string());
                }
            }
        }
    }
    for from in mount_from {
        repo.add_scope(repository_scope(&from, "pull"));
    }
    let repo: &Repository = repo;

    // Each distinct layer once, in manifest order; all shown as Preparing first, as docker does.
    let mut unique: Vec<String> = Vec::new();
    for d in &diff_ids {
        if !unique.contains(d) {
            unique.push(d.clone());
        }
    }
    for d in &unique {
        let _ = progress.send(Progress::Preparing(short_id(d)));
    }
    if unique.len() > MAX_CONCURRENT_UPLOADS {
        for d in &unique[MAX_CONCURRENT_UPLOADS..] {
            let _ = progress.send(Progress::Waiting(short_id(d)));
        }
    }
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_UPLOADS));
    let pushes = unique.iter().map(|d| {
        let slots = slots.clone();
        let store = store.clone();
        async move {
            let _slot = slots.acquire().await.map_err(|_| Error::Cancelled)?;
            push_layer(repo, store, d, target, progress).await
        }
    });
    let results = futures_join_all(pushes).await;
    let mut by_diff = std::collections::HashMap::new();
    for (d, r) in unique.iter().zip(results) {
        by_diff.insert(d.clone(), r?);
    }

    let config = Bytes::from(store.config_blob(image)?);
    if upload::exists(repo, &image.id).await?.is_none() {
        upload::upload_bytes(repo, &image.id, config.clone()).await?;
    }
    let manifest = SchemaTwo {
        schema_version: 2,
        media_type: media::DOCKER_MANIFEST,
        config: ManifestDescriptor {
            media_type: media::DOCKER_CONFIG.into(),
            size: config.len() as u64,
            digest: image.id.clone(),
        },
        layers: diff_ids
            .iter()
            .map(|d| {
                let s = &by_diff[d];
                ManifestDescriptor {
                    media_type: s.media_type.clone(),
                    size: s.size,
                    digest: s.digest.clone(),
                }
            })
            .collect(),
    };
    let bytes = Bytes::from(manifest_bytes(&manifest)?);
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
    let url = repo.url(&format!("manifests/{}", target.tag));
    let make = || {
        Request::put(&url)
            .header("Content-Type", media::DOCKER_MANIFEST)
            .body(full(bytes.clone()))
            .unwrap_or_else(|_| Request::new(empty()))
    };
    check(repo.send(&make).await?).await?;
    Ok(Pushed {
        digest,
        size: bytes.len(),
    })
}

/// Runs the futures concurrently on this task and returns their results in order.
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// "127.0.0.1:5000/team/app" → "team/app" when it is on `domain`.
fn same_registry_path<'a>(repository: &'a str, domain: &str) -> Option<&'a str> {
    repository.strip_prefix(domain)?.strip_prefix('/')
}

/// Pushes one layer; returns how the manifest names it.
async fn push_layer(
    repo: &Repository,
    store: Arc<Store>,
    diff_id: &str,
    target: &Target,
    progress: &mpsc::UnboundedSender<Progress>,
) -> Result<BlobSource> {
    let id = short_id(diff_id);
    let record = |digest: &str, size: u64| -> Result<BlobSource> {
        let s = BlobSource {
            digest: digest.to_string(),
            size,
            media_type: media::DOCKER_LAYER_GZIP.to_string(),
            repository: target.repository(),
        };
        store.add_blob_source(diff_id, s.clone())?;
        Ok(s)
    };

    // Known compressed forms: the cache first (it is what an upload would send), then sources.
    let mut known: Vec<BlobSource> = Vec::new();
    if let Some(c) = store.compressed(diff_id, Compression::Gzip)? {
        known.push(BlobSource {
            digest: c.digest,
            size: c.size,
            media_type: media::DOCKER_LAYER_GZIP.into(),
            repository: String::new(),
        });
    }
    known.extend(store.blob_sources(diff_id)?.into_iter().filter(|s| {
        s.media_type == media::DOCKER_LAYER_GZIP || s.media_type == media::OCI_LAYER_GZIP
    }));
    let mut checked = HashSet::new();
    for k in &known {
        if checked.insert(k.digest.clone()) && upload::exists(repo, &k.digest).await?.is_some() {
            let _ = progress.send(Progress::Exists(id));
            return record(&k.digest, k.size);
        }
    }
    for k in &known {
        let Some(from) = same_registry_path(&k.repository, &target.domain) else {
            continue;
        };
        if from == target.path {
            continue;
        }
        match upload::start(repo, Some((&k.digest, from))).await {
            Ok(Started::Mounted) => {
                let _ = progress.send(Progress::MountedFrom {
                    id,
                    from: from.to_string(),
                });
                return record(&k.digest, k.size);
            }
            // Not mountable: this session is abandoned (the registry expires it).
            Ok(Started::Upload(_)) | Err(_) => {}
        }
    }

    let mut attempt = 0;
    loop {
        attempt += 1;
        match upload_layer(repo, &store, diff_id, &id, progress).await {
            Ok((digest, size)) => {
                let _ = progress.send(Progress::Pushed(id));
                return record(&digest, size);
            }
            // An expired token refused mid-stream: at once, with a new token, from the cache
            // the compression filled meanwhile.
            Err(e @ Error::TokenRefused { .. }) if attempt < ATTEMPTS => {
                tracing::info!(layer = %id, attempt, error = %e, "token refused; uploading again");
            }
            Err(e) if e.is_retryable() && !is_missing_credentials(&e) && attempt < ATTEMPTS => {
                tracing::warn!(layer = %id, attempt, error = %e, "layer upload failed; retrying");
                retry::countdown(attempt, |text| {
                    let _ = progress.send(Progress::Retrying {
                        id: id.clone(),
                        text,
                    });
                    Ok(())
                })
                .await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The registry wants Basic credentials and the client sent none: no retry can help.
pub fn is_missing_credentials(e: &Error) -> bool {
    matches!(e, Error::Transport { reason, .. } if reason == "no basic auth credentials")
}

/// Uploads a layer's gzip: the cached one, or one made now while it streams.
async fn upload_layer(
    repo: &Repository,
    store: &Arc<Store>,
    diff_id: &str,
    id: &str,
    progress: &mpsc::UnboundedSender<Progress>,
) -> Result<(String, u64)> {
    let session = match upload::start(repo, None).await? {
        Started::Upload(s) => s,
        Started::Mounted => {
            return Err(Error::Invalid(
                "registry mounted a blob it was not asked to".into(),
            ))
        }
    };
    let counter = Arc::new(AtomicU64::new(0));
    let reporter = spawn_reporter(id.to_string(), counter.clone(), progress.clone());

    if let Some(c) = store.compressed(diff_id, Compression::Gzip)? {
        reporter.total.store(c.size, Ordering::Relaxed);
        let path = store.compressed_path(&c.digest)?;
        let r = upload::upload_file(repo, session, &path, &c.digest, c.size, counter).await;
        reporter.stop().await;
        return r.map(|_| (c.digest, c.size));
    }

    // Fresh: compress into the cache and stream the same bytes in one PATCH.
    let tar_size = store.layer_tar(diff_id).map(|t| t.size()).unwrap_or(0);
    reporter.total.store(tar_size, Ordering::Relaxed);
    let (tx, body) = ChannelBody::new(None);
    let compressor = {
        let store = store.clone();
        let diff_id = diff_id.to_string();
        let counter = counter.clone();
        tokio::task::spawn_blocking(move || compress_layer(&store, &diff_id, Some(tx), counter))
    };
    let patched = upload::patch_stream(repo, &session, body).await;
    // The cache is completed even when the upload failed, so a retry sends the file.
    let layer = compressor
        .await
        .map_err(|e| Error::Invalid(format!("compression failed: {e}")))??;
    reporter.stop().await;
    let session = patched?;
    upload::finish(repo, &session, &layer.digest).await?;
    Ok((layer.digest, layer.size))
}

/// Turns a byte counter into `Pushing` events (at most every 100 ms or 1% of the total).
struct Reporter {
    total: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

fn spawn_reporter(
    id: String,
    counter: Arc<AtomicU64>,
    progress: mpsc::UnboundedSender<Progress>,
) -> Reporter {
    let total = Arc::new(AtomicU64::new(0));
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
    let t = total.clone();
    let task = tokio::spawn(async move {
        let mut last = 0;
        loop {
            let stopped = tokio::select! {
                _ = &mut stop_rx => true,
                _ = tokio::time::sleep(Duration::from_millis(100)) => false,
            };
            let current = counter.load(Ordering::Relaxed);
            let total = t.load(Ordering::Relaxed);
            if current != last && (current - last >= total / 100 || stopped) {
                last = current;
                let _ = progress.send(Progress::Pushing {
                    id: id.clone(),
                    current,
                    total,
                });
            }
            if stopped {
                return;
            }
        }
    });
    Reporter {
        total,
        stop: Some(stop_tx),
        task,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_is_dockers_bytes() {
        let m = SchemaTwo {
            schema_version: 2,
            media_type: media::DOCKER_MANIFEST,
            config: ManifestDescriptor {
                media_type: media::DOCKER_CONFIG.into(),
                size: 1,
                digest: "sha256:a".into(),
            },
            layers: vec![ManifestDescriptor {
                media_type: media::DOCKER_LAYER_GZIP.into(),
                size: 2,
                digest: "sha256:b".into(),
            }],
        };
        let text = String::from_utf8(manifest_bytes(&m).unwrap()).unwrap();
        assert_eq!(
            text,
            "{\n   \"schemaVersion\": 2,\n   \"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\",\n   \"config\": {\n      \"mediaType\": \"application/vnd.docker.container.image.v1+json\",\n      \"size\": 1,\n      \"digest\": \"sha256:a\"\n   },\n   \"layers\": [\n      {\n         \"mediaType\": \"application/vnd.docker.image.rootfs.diff.tar.gzip\",\n         \"size\": 2,\n         \"digest\": \"sha256:b\"\n      }\n   ]\n}"
        );
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(same_registry_path("r:5000/a/b", "r:5000"), Some("a/b"));
        assert_eq!(same_registry_path("r:50001/a", "r:5000"), None);
    }
}
