//! Pulling an image from a registry into the store.
//!
//! Order of work, as Docker's puller: resolve the reference to a manifest (mirrors first, then
//! the registry; an index narrowed to the requested or host platform), fetch the config (its
//! diff IDs give every layer's chain ID up front, so layers the store has are "Already
//! exists"), then fetch the missing layers, `CONCURRENT_LAYERS` at a time.
//!
//! Each layer streams straight into the store: the HTTP body's chunks go over a small channel
//! to a blocking thread that hashes the compressed bytes (checked against the manifest's
//! digest) while decompressing, storing and hashing the tar
//! (checked against the diff ID) and unpacking it into a temp snapshot — one pass, no whole-
//! layer temp file first. A layer is published once both digests match.
//!
//! The compressed bytes are hashed, not kept. Keeping them (for a push to send as they are)
//! writes every layer a third time and made the 1 GB `bench/pull` 3.7 s instead of 3.2 s
//! (Docker: 9–13 s here), past the third of Docker's time. What is kept is where each
//! layer came from (`Store::add_blob_source`): a push to that registry HEADs or mounts the
//! blob instead of uploading it, and push compresses other layers once and caches them.
//!
//! A broken download (connection cut, timeout, 5xx) is retried up to `MAX_ATTEMPTS` times,
//! after Docker's countdown (`retry`), resuming at the byte reached with a `Range` request so the thread unpacking it never
//! notices. A registry that ignores ranges answers 200 with the whole blob; the bytes already
//! consumed are then read and dropped, which costs the transfer again but still never restarts
//! the unpacking nor the hashes (dropping is cheaper than undoing a half-unpacked layer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_store::manifest::{self, media, Descriptor, Document, Manifest};
use berth_store::platform::{Matcher, Platform};
use berth_store::{Compression, Reference, Store};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;
use tokio::sync::mpsc;

use crate::auth::Credentials;
use crate::client::{check, empty, Client, Repository};
use crate::error::{Error, Result};
use crate::progress::Message;
use crate::retry::{self, MAX_ATTEMPTS};

/// Layers downloaded at once (dockerd's `max-concurrent-downloads` default).
pub const CONCURRENT_LAYERS: usize = 3;
/// A body that sends nothing for this long is a broken connection.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Progress updates per layer at most this often (Docker's progress reader: 100 ms).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Chunks in flight between a download and its unpacking thread.
const CHANNEL_DEPTH: usize = 64;

/// Every manifest form we read, for `Accept`.
const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// What to pull.
#[derive(Debug, Clone)]
pub struct PullRequest {
    /// The image: a tag or a digest reference (normalised).
    pub reference: Reference,
    /// `--all-tags`: every tag of the repository (the reference's tag is ignored).
    pub all_tags: bool,
    /// `--platform`; `None` is the host's.
    pub platform: Option<Platform>,
    /// From `X-Registry-Auth`; `None` is anonymous.
    pub credentials: Option<Credentials>,
}

/// Parses `--platform` ("linux/arm64/v8", "linux/amd64", "arm64") as containerd does.
pub fn parse_platform(s: &str) -> Result<Platform> {
    let bad = || {
        Error::InvalidArgument(format!(
            "\"{s}\": unknown operating system or architecture: invalid argument"
        ))
    };
    let parts: Vec<&str> = s.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) || parts.len() > 3 {
        return Err(bad());
    }
    let known_os = ["linux", "windows", "darwin", "freebsd"];
    let p = match parts.as_slice() {
        [one] if known_os.contains(one) => Platform::new(
            one,
            &berth_store::platform::host_platform().architecture,
            "",
        ),
        [one] => Platform::new("linux", one, ""),
        [os, arch] => Platform::new(os, arch, ""),
        [os, arch, variant] => Platform::new(os, arch, variant),
        _ => return Err(bad()),
    };
    if !known_os.contains(&p.os.as_str()) {
        return Err(bad());
    }
    Ok(p.normalize())
}

/// Sends progress messages; a gone receiver (the client went away) cancels the pull.
#[derive(Clone)]
pub struct Progress(mpsc::UnboundedSender<Message>);

impl Progress {
    pub fn new(tx: mpsc::UnboundedSender<Message>) -> Progress {
        Progress(tx)
    }

    fn send(&self, m: Message) -> Result<()> {
        self.0.send(m).map_err(|_| Error::Cancelled)
    }
}

/// Pulls `req` into `store`, reporting on `progress`. Errors before the first message mean
/// nothing was started; the API turns those into an error status rather than a stream.
pub async fn pull(
    client: &Client,
    store: Arc<Store>,
    req: PullRequest,
    progress: Progress,
) -> Result<()> {
    let matcher = match &req.platform {
        Some(p) => Matcher::only(p),
        None => Matcher::host(),
    };
    let reference = &req.reference;
    let sessions = Sessions::open(client, reference, req.credentials.clone()).await?;
    let targets: Vec<Target> = if req.all_tags {
        let tags = sessions.tags().await?;
        tags.into_iter().map(Target::Tag).collect()
    } else if let Some(d) = reference.digest() {
        vec![Target::Digest(d.to_string())]
    } else {
        vec![Target::Tag(reference.tag().unwrap_or("latest").to_string())]
    };
    let mut any_new = false;
    let familiar_repo = reference.familiar_name();
    for target in &targets {
        let (repo, resolved) = sessions.resolve(target, &familiar_repo).await?;
        let image = select(repo, &resolved, &matcher, req.platform.as_ref(), reference).await?;
        progress.send(Message::titled(
            target.id(),
            format!("Pulling from {}", reference.path()),
        ))?;
        // An image whose config the store has is complete: Docker says nothing about its layers.
        let config_digest = image.manifest.config.digest.clone();
        let st = store.clone();
        let have = tokio::task::spawn_blocking(move || st.resolve(&config_digest).is_ok())
            .await
            .unwrap_or(false);
        if !have {
            fetch_layers(repo, &store, &image, &progress).await?;
        }
        let tag = match target {
            Target::Tag(t) => {
                Some(Reference::parse(&format!("{}:{t}", reference.name())).map_err(Error::Store)?)
            }
            Target::Digest(_) => None,
        };
        let repo_digest = format!("{}@{}", reference.name(), resolved.digest);
        let config = image.config_bytes.clone();
        let tag_for_store = tag.clone();
        let st = store.clone();
        let pulled = tokio::task::spawn_blocking(move || {
            st.record_pulled(&config, tag_for_store.as_ref(), Some(&repo_digest))
        })
        .await
        .map_err(|e| Error::Invalid(format!("recording the image: {e}")))??;
        any_new |= !pulled.up_to_date;
        progress.send(Message::status(format!("Digest: {}", resolved.digest)))?;
        if !req.all_tags {
            let shown = match target {
                Target::Tag(t) => format!("{familiar_repo}:{t}"),
                Target::Digest(d) => format!("{familiar_repo}@{d}"),
            };
            progress.send(Message::status(if pulled.up_to_date {
                format!("Status: Image is up to date for {shown}")
            } else {
                format!("Status: Downloaded newer image for {shown}")
            }))?;
        }
    }
    if req.all_tags {
        progress.send(Message::status(if any_new {
            format!("Status: Downloaded newer image for {familiar_repo}")
        } else {
            format!("Status: Image is up to date for {familiar_repo}")
        }))?;
    }
    Ok(())
}

/// A tag or a digest to pull.
enum Target {
    Tag(String),
    Digest(String),
}

impl Target {
    fn as_ref_str(&self) -> &str {
        match self {
            Target::Tag(t) | Target::Digest(t) => t,
        }
    }

    /// The line "Pulling from" goes on: the tag, or the digest.
    fn id(&self) -> String {
        self.as_ref_str().to_string()
    }
}

/// The root manifest a reference resolved to.
struct Resolved {
    digest: String,
    media_type: String,
    bytes: Vec<u8>,
}

/// The image to fetch: its manifest and verified config.
struct ChosenImage {
    manifest: Manifest,
    config_bytes: Vec<u8>,
    diff_ids: Vec<String>,
}

/// Sessions with every endpoint that may serve the repository: mirrors first, then the
/// registry (HTTPS, or HTTP for an insecure one that does not speak TLS).
struct Sessions {
    repos: Vec<Repository>,
    /// Why the endpoints that could not be reached failed; reported if none is left.
    first_error: Option<Error>,
    reference: Reference,
}

impl Sessions {
    async fn open(
        client: &Client,
        reference: &Reference,
        creds: Option<Credentials>,
    ) -> Result<Sessions> {
        let mut repos = Vec::new();
        let mut first_error = None;
        let mut own_reached = false;
        for ep in client.config().pull_endpoints(reference.domain()).await {
            if !ep.mirror && own_reached {
                break;
            }
            match client
                .connect(&ep, reference.path(), creds.clone(), "pull")
                .await
            {
                Ok(r) => {
                    own_reached |= !ep.mirror;
                    repos.push(r);
                }
                Err(e) => {
                    tracing::debug!(endpoint = %ep.base, error = %e, "registry endpoint unreachable");
                    if !ep.mirror {
                        // Docker reports the last of the registry's own endpoints to fail
                        // (plain HTTP, for an insecure registry).
                        first_error = Some(e);
                    }
                }
            }
        }
        if !own_reached {
            if let Some(e) = first_error.take() {
                return Err(e);
            }
        }
        Ok(Sessions {
            repos,
            first_error,
            reference: reference.clone(),
        })
    }

    /// The manifest `target` names, from the first endpoint that has it.
    async fn resolve(
        &self,
        target: &Target,
        familiar_repo: &str,
    ) -> Result<(&Repository, Resolved)> {
        let mut last = self
            .first_error
            .as_ref()
            .map(|e| Error::Invalid(e.to_string()));
        for (i, repo) in self.repos.iter().enumerate() {
            let is_last = i + 1 == self.repos.len();
            match fetch_manifest(repo, target).await {
                Ok(r) => return Ok((repo, r)),
                Err(e) if !is_last && repo.endpoint().mirror => {
                    tracing::info!(mirror = %repo.endpoint().base, error = %e, "mirror failed; trying the next endpoint");
                    last = Some(e);
                }
                Err(e) => return Err(explain(e, &self.reference, target, familiar_repo)),
            }
        }
        Err(last.unwrap_or_else(|| Error::Invalid("no registry endpoint".into())))
    }

    /// Every tag of the repository (`--all-tags`), following `Link` pagination.
    async fn tags(&self) -> Result<Vec<String>> {
        let repo = self
            .repos
            .last()
            .ok_or_else(|| Error::Invalid("no registry endpoint".into()))?;
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut path = "tags/list".to_string();
        loop {
            let resp = repo.get(&path, &[]).await.map_err(|e| {
                explain(
                    e,
                    &self.reference,
                    &Target::Tag(String::new()),
                    &self.reference.familiar_name(),
                )
            })?;
            let next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.split(';').next())
                .map(|l| {
                    l.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                });
            let body = read_limited(resp.into_body(), manifest::MAX_MANIFEST_SIZE).await?;
            let list: TagList = serde_json::from_slice(&body)
                .map_err(|e| Error::Invalid(format!("tag list: {e}")))?;
            out.extend(list.tags.unwrap_or_default());
            match next {
                // "/v2/<name>/tags/list?last=x&n=y": relative to the repository's base.
                Some(n) if n.contains("/tags/list") => {
                    path = n
                        .split("/tags/list")
                        .nth(1)
                        .map(|q| format!("tags/list{q}"))
                        .unwrap_or_default();
                }
                _ => break,
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Docker's wording for a pull that failed at the registry.
fn explain(e: Error, reference: &Reference, target: &Target, _familiar: &str) -> Error {
    let shown = match target {
        Target::Tag(t) => format!("{}:{t}", reference.familiar_name()),
        Target::Digest(d) => format!("{}@{d}", reference.familiar_name()),
    };
    match e {
        Error::Registry { status: 404, message } => Error::Registry {
            status: 404,
            message: format!("manifest for {shown} not found: {message}"),
        },
        Error::Unauthorized(message) => Error::Unauthorized(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': {message}",
            reference.familiar_name()
        )),
        other => other,
    }
}

async fn fetch_manifest(repo: &Repository, target: &Target) -> Result<Resolved> {
    // As Docker: a tag is first resolved to its digest with HEAD, then fetched by digest.
    let by_digest;
    let target = match target {
        Target::Tag(tag) => match head_digest(repo, tag).await? {
            Some(d) => {
                by_digest = Target::Digest(d);
                &by_digest
            }
            None => target,
        },
        Target::Digest(_) => target,
    };
    let resp = repo
        .get(
            &format!("manifests/{}", target.as_ref_str()),
            &[("Accept", ACCEPT)],
        )
        .await?;
    let header_digest = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    let bytes = read_limited(resp.into_body(), manifest::MAX_MANIFEST_SIZE).await?;
    let digest = berth_store_digest(&bytes);
    let expected = match target {
        Target::Digest(d) => Some(d.clone()),
        Target::Tag(_) => header_digest,
    };
    if let Some(want) = expected {
        if want.starts_with("sha256:") && want != digest {
            return Err(Error::Invalid(format!(
                "manifest verification failed for digest {want}: got {digest} from {}",
                repo.url(&format!("manifests/{}", target.as_ref_str()))
            )));
        }
    }
    // A registry that labels manifests loosely (text/plain, application/json) leaves the
    // document to say what it is.
    let media_type = if manifest::is_manifest_or_index(&content_type) {
        content_type
    } else {
        String::new()
    };
    Ok(Resolved {
        digest,
        media_type,
        bytes: bytes.to_vec(),
    })
}

/// The digest a tag points at, from HEAD's `Docker-Content-Digest`; `None` when the registry
/// does not say (the GET then tells, or fails with the registry's error text).
async fn head_digest(repo: &Repository, tag: &str) -> Result<Option<String>> {
    let url = repo.url(&format!("manifests/{tag}"));
    let make = || {
        Request::head(&url)
            .header("Accept", ACCEPT)
            .body(empty())
            .unwrap_or_else(|_| Request::new(empty()))
    };
    let resp = repo.send(&make).await?;
    if !resp.status().is_success() {
        return Ok(None);
    }
    Ok(resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .filter(|d| d.starts_with("sha256:") && d.len() == 71)
        .map(String::from))
}

fn berth_store_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Reads a whole small body (manifest, config, tag list), refusing one bigger than `limit`.
async fn read_limited(mut body: Incoming, limit: u64) -> Result<Bytes> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Transport {
            method: "Get".into(),
            url: String::new(),
            reason: e.to_string(),
        })?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() as u64 > limit {
                return Err(Error::Invalid(format!(
                    "manifest or config bigger than {limit} bytes"
                )));
            }
        }
    }
    Ok(Bytes::from(buf))
}

/// Fetches a small blob (a config, a nested manifest) and checks it against its descriptor.
async fn fetch_small(repo: &Repository, desc: &Descriptor) -> Result<Vec<u8>> {
    if desc.size > manifest::MAX_MANIFEST_SIZE * 8 {
        return Err(Error::Invalid(format!(
            "{}: {} bytes is too big for a manifest or config",
            desc.digest, desc.size
        )));
    }
    let path = if manifest::is_manifest_or_index(&desc.media_type)
        && desc.media_type != media::OCI_CONFIG
    {
        format!("manifests/{}", desc.digest)
    } else {
        format!("blobs/{}", desc.digest)
    };
    let accept = if path.starts_with("manifests/") {
        ACCEPT
    } else {
        "*/*"
    };
    let resp = repo.get(&path, &[("Accept", accept)]).await?;
    let bytes = read_limited(resp.into_body(), manifest::MAX_MANIFEST_SIZE * 8).await?;
    Ok(bytes.to_vec())
}

/// The manifest for the platform and its verified config.
async fn select(
    repo: &Repository,
    resolved: &Resolved,
    matcher: &Matcher,
    wanted: Option<&Platform>,
    reference: &Reference,
) -> Result<ChosenImage> {
    let root_media = if resolved.media_type.is_empty() {
        match manifest::parse(&resolved.bytes, "")? {
            Document::Index(_) => media::OCI_INDEX.to_string(),
            Document::Manifest(_) => media::OCI_MANIFEST.to_string(),
        }
    } else {
        resolved.media_type.clone()
    };
    let root = Descriptor {
        media_type: root_media,
        digest: resolved.digest.clone(),
        size: resolved.bytes.len() as u64,
        platform: None,
        annotations: Default::default(),
        urls: Vec::new(),
    };
    // The store's selection (nested indexes, platform-less entries judged by their config) is
    // synchronous: it runs on a thread of its own that fetches through the runtime.
    let handle = tokio::runtime::Handle::current();
    let root_bytes = resolved.bytes.clone();
    let matcher2 = matcher.clone();
    // block_in_place hands this worker's queued tasks (such as the connection the fetches
    // need) to another worker while it waits.
    let selected = tokio::task::block_in_place(|| {
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut fetch =
                    |d: &Descriptor| -> std::result::Result<Vec<u8>, berth_store::Error> {
                        if d.digest == root.digest {
                            return Ok(root_bytes.clone());
                        }
                        handle
                            .block_on(fetch_small(repo, d))
                            .map_err(|e| berth_store::Error::NotFound(e.to_string()))
                    };
                manifest::select_manifest(&mut fetch, &root, &matcher2)
            })
            .join()
        })
    });
    let (_, m) = match selected {
        Ok(Ok(found)) => found,
        Ok(Err(berth_store::Error::NotFound(msg))) if msg.starts_with("no match for platform") => {
            return Err(Error::Registry {
                status: 404,
                message: format!(
                    "no matching manifest for {} in the manifest list entries",
                    matcher.preferred().display()
                ),
            })
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => return Err(Error::Invalid("manifest selection failed".into())),
    };
    for l in &m.layers {
        Compression::check_layer_media_type(&l.media_type)?;
    }
    let config_bytes = fetch_small(repo, &m.config).await?;
    if config_bytes.len() as u64 != m.config.size
        || berth_store_digest(&config_bytes) != m.config.digest
    {
        return Err(Error::Invalid(format!(
            "image config verification failed for digest {} from {}",
            m.config.digest,
            reference.familiar()
        )));
    }
    let config: berth_store::ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::Invalid(format!("image config: {e}")))?;
    if let Some(want) = wanted {
        let actual = Platform::new(
            &config.os().to_string(),
            &config.architecture().to_string(),
            config.variant().as_deref().unwrap_or(""),
        );
        if !matcher.matches(&actual) {
            return Err(Error::Registry {
                status: 404,
                message: format!(
                    "image with reference {} was found but does not match the specified platform: wanted {}, actual: {}",
                    reference.familiar(),
                    want.display(),
                    actual.display()
                ),
            });
        }
    }
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != m.layers.len() {
        return Err(Error::Invalid(format!(
            "invalid manifest, layers length mismatch: expected {}, got {}",
            diff_ids.len(),
            m.layers.len()
        )));
    }
    Ok(ChosenImage {
        manifest: m,
        config_bytes,
        diff_ids,
    })
}

/// Docker's short layer ID: the first 12 hex digits of the blob digest.
fn short_id(digest: &str) -> String {
    let hex = digest.split(':').nth(1).unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// Fetches and unpacks every layer the store lacks, `CONCURRENT_LAYERS` at a time.
async fn fetch_layers(
    repo: &Repository,
    store: &Arc<Store>,
    image: &ChosenImage,
    progress: &Progress,
) -> Result<()> {
    let chains = Store::chain_ids(&image.diff_ids);
    let mut todo = Vec::new();
    for (i, layer) in image.manifest.layers.iter().enumerate() {
        let id = short_id(&layer.digest);
        let st = store.clone();
        let chain = chains[i].clone();
        let present = tokio::task::spawn_blocking(move || st.has_layer(&chain))
            .await
            .map_err(|e| Error::Invalid(e.to_string()))??;
        if present {
            progress.send(Message::layer(&id, "Already exists"))?;
        } else if !todo
            .iter()
            .any(|(j, _): &(usize, String)| chains[*j] == chains[i])
        {
            progress.send(Message::layer(&id, "Pulling fs layer"))?;
            todo.push((i, id));
        }
    }
    for (_, id) in todo.iter().skip(CONCURRENT_LAYERS) {
        progress.send(Message::layer(id, "Waiting"))?;
    }
    let _flusher = (!todo.is_empty()).then(|| Flusher::start(store.root()));
    let limit = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_LAYERS));
    let mut tasks = Vec::new();
    for (i, id) in todo {
        let limit = limit.clone();
        let job = LayerJob {
            id,
            desc: image.manifest.layers[i].clone(),
            diff_id: image.diff_ids[i].clone(),
            parent: (i > 0).then(|| chains[i - 1].clone()),
            repository: format!("{}/{}", domain_of(repo), repo.name()),
        };
        let store = store.clone();
        let progress = progress.clone();
        tasks.push(async move {
            let _permit = limit.acquire().await.map_err(|_| Error::Cancelled)?;
            fetch_layer(repo, &store, &job, &progress).await
        });
    }
    // All layers run concurrently within this future (the semaphore bounds the downloads); the
    // first failure wins and dropping the rest cancels them.
    let results = futures_join_all(tasks).await;
    results.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(())
}

/// Writes the store's dirty pages back while layers stream in. The store makes every layer
/// durable before publishing it (`syncfs`); without this, the kernel keeps gigabytes dirty
/// (writeback starts at 10% of RAM) and that one `syncfs` at the end writes them all while
/// nothing else happens. Flushing as we go overlaps the disk with the download and unpacking.
struct Flusher {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// How often the flusher writes back what accumulated.
const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

impl Flusher {
    fn start(root: &std::path::Path) -> Option<Flusher> {
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(root).ok()?;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::Builder::new()
            .name("pull-flush".into())
            .spawn(move || {
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(FLUSH_INTERVAL);
                    // SAFETY: syncfs only reads the descriptor, which `dir` keeps open.
                    unsafe { libc::syncfs(dir.as_raw_fd()) };
                }
            })
            .ok()?;
        Some(Flusher { stop })
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs futures together, returning when all are done or one fails (the others are dropped).
async fn futures_join_all<F: std::future::Future<Output = Result<()>>>(
    tasks: Vec<F>,
) -> Vec<Result<()>> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = tasks.into_iter().map(Box::pin).collect();
    let mut out = Vec::new();
    std::future::poll_fn(|cx| {
        let mut i = 0;
        while i < set.len() {
            match set[i].as_mut().poll(cx) {
                std::task::Poll::Ready(r) => {
                    drop(set.remove(i));
                    let failed = r.is_err();
                    out.push(r);
                    if failed {
                        set.clear();
                        return std::task::Poll::Ready(());
                    }
                }
                std::task::Poll::Pending => i += 1,
            }
        }
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out
}

/// The registry domain of a session, as `BlobSource.repository` names it.
fn domain_of(repo: &Repository) -> String {
    repo.endpoint()
        .base
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .replace("registry-1.docker.io", "docker.io")
}

struct LayerJob {
    id: String,
    desc: Descriptor,
    diff_id: String,
    parent: Option<String>,
    repository: String,
}

/// What the download side hands the unpacking thread.
enum Chunk {
    Data(Bytes),
    /// Every byte was sent; a channel closed without this was cancelled.
    End,
}

/// The compressed bytes' hash and count: what the manifest's digest and size are checked
/// against. The bytes themselves are not kept (see the module comment).
#[derive(Default)]
struct CompressedHash {
    hasher: sha2::Sha256,
    size: u64,
}

/// The compressed blob as downloaded: its digest and size.
struct Downloaded {
    digest: String,
    size: u64,
}

impl CompressedHash {
    fn write(&mut self, b: &[u8]) {
        use sha2::Digest as _;
        self.hasher.update(b);
        self.size += b.len() as u64;
    }

    fn finish(self) -> Downloaded {
        use sha2::Digest as _;
        Downloaded {
            digest: format!("sha256:{}", hex::encode(self.hasher.finalize())),
            size: self.size,
        }
    }
}

/// The unpacking thread's view of the download: a `Read` that also writes (and so hashes)
/// hashes every compressed byte on the way.
struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    current: Bytes,
    done: bool,
    compressed: CompressedHash,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Chunk::Data(b)) => {
                    self.compressed.write(&b);
                    self.current = b;
                }
                Some(Chunk::End) => self.done = true,
                // Not `Interrupted`: readers retry that kind forever.
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "download cancelled",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

async fn fetch_layer(
    repo: &Repository,
    store: &Arc<Store>,
    job: &LayerJob,
    progress: &Progress,
) -> Result<()> {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let st = store.clone();
    let diff_id = job.diff_id.clone();
    let parent = job.parent.clone();
    let unpacking = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader {
            rx,
            current: Bytes::new(),
            done: false,
            compressed: CompressedHash::default(),
        };
        let layer = st.unpack_layer(&mut reader, &diff_id, parent.as_deref());
        if layer.is_err() {
            // Keep hashing what still comes: bytes corrupted on the way are reported as such
            // (the blob's digest), as Docker verifies the download before extracting it.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
        (layer, reader.compressed)
    });
    let downloaded = download(repo, job, progress, &tx).await;
    if downloaded.is_ok() {
        let _ = tx.send(Chunk::End).await;
    }
    drop(tx);
    let (layer, compressed) = unpacking
        .await
        .map_err(|e| Error::Invalid(format!("unpacking: {e}")))?;
    match (downloaded, layer) {
        // The unpacking failed (a bad tar, a wrong diff ID): the blob's digest first, then
        // the unpacker's own error says why.
        (Err(Error::UnpackStopped), Err(e)) | (Ok(()), Err(e)) => {
            verify_blob(repo, job, &compressed.finish())?;
            Err(Error::Invalid(format!("failed to register layer: {e}")))
        }
        (Err(e), _) => Err(e),
        (Ok(()), Ok(layer)) => finish_layer(repo, store, job, progress, layer, compressed).await,
    }
}

async fn finish_layer(
    repo: &Repository,
    store: &Arc<Store>,
    job: &LayerJob,
    progress: &Progress,
    layer: berth_store::PulledLayer,
    compressed: CompressedHash,
) -> Result<()> {
    progress.send(Message::layer(&job.id, "Verifying Checksum"))?;
    let downloaded = compressed.finish();
    verify_blob(repo, job, &downloaded)?;
    progress.send(Message::layer(&job.id, "Download complete"))?;
    let size = layer.size();
    progress.send(Message::bytes(&job.id, "Extracting", size, size))?;
    let st = store.clone();
    let diff_id = job.diff_id.clone();
    let source = berth_store::BlobSource {
        digest: job.desc.digest.clone(),
        size: job.desc.size,
        media_type: job.desc.media_type.clone(),
        repository: job.repository.clone(),
    };
    tokio::task::spawn_blocking(move || -> std::result::Result<(), berth_store::Error> {
        st.publish_layer(layer)?;
        st.add_blob_source(&diff_id, source)?;
        Ok(())
    })
    .await
    .map_err(|e| Error::Invalid(e.to_string()))??;
    progress.send(Message::layer(&job.id, "Pull complete"))?;
    Ok(())
}

/// Checks a downloaded blob against its descriptor; the error names the blob's URL.
fn verify_blob(repo: &Repository, job: &LayerJob, pending: &Downloaded) -> Result<()> {
    if pending.digest != job.desc.digest || pending.size != job.desc.size {
        return Err(Error::Invalid(format!(
            "filesystem layer verification failed for digest {} (got {}, {} bytes) from {}",
            job.desc.digest,
            pending.digest,
            pending.size,
            repo.url(&format!("blobs/{}", job.desc.digest))
        )));
    }
    Ok(())
}

/// Streams the layer's blob into `tx`, retrying a broken transfer from the byte reached.
async fn download(
    repo: &Repository,
    job: &LayerJob,
    progress: &Progress,
    tx: &mpsc::Sender<Chunk>,
) -> Result<()> {
    let total = job.desc.size;
    let url = repo.url(&format!("blobs/{}", job.desc.digest));
    let mut offset: u64 = 0;
    let mut attempt = 0;
    let mut last_report: Option<Instant> = None;
    loop {
        let result =
            download_from(repo, &url, job, progress, tx, &mut offset, &mut last_report).await;
        match result {
            Ok(()) => {
                progress.send(Message::bytes(&job.id, "Downloading", total, total))?;
                return Ok(());
            }
            Err(e) if e.is_retryable() && attempt + 1 < MAX_ATTEMPTS => {
                attempt += 1;
                tracing::warn!(layer = %job.desc.digest, error = %e, attempt, offset, "layer download failed; retrying");
                retry::countdown(attempt, |text| progress.send(Message::layer(&job.id, text)))
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One attempt: GET (with `Range` past what was already passed on), then the body.
async fn download_from(
    repo: &Repository,
    url: &str,
    job: &LayerJob,
    progress: &Progress,
    tx: &mpsc::Sender<Chunk>,
    offset: &mut u64,
    last_report: &mut Option<Instant>,
) -> Result<()> {
    let total = job.desc.size;
    let range = (*offset > 0).then(|| format!("bytes={offset}-"));
    let make = || {
        let mut b = Request::get(url);
        if let Some(r) = &range {
            b = b.header("Range", r);
        }
        b.body(empty()).unwrap_or_else(|_| Request::new(empty()))
    };
    let resp = check(repo.send(&make).await?).await?;
    // 206: the rest. 200 to a range request: the whole blob again, whose start we drop.
    let mut skip = if resp.status().as_u16() == 206 {
        0
    } else {
        *offset
    };
    let broken = |reason: String| Error::Transport {
        method: "Get".into(),
        url: url.to_string(),
        reason,
    };
    let mut body = resp.into_body();
    loop {
        let frame = tokio::time::timeout(STALL_TIMEOUT, body.frame())
            .await
            .map_err(|_| broken("net/http: request canceled (Client.Timeout or context cancellation while reading body)".into()))?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| broken(body_reason(&e)))?;
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        if skip > 0 {
            let n = skip.min(data.len() as u64);
            let _ = data.split_to(n as usize);
            skip -= n;
            if data.is_empty() {
                continue;
            }
        }
        *offset += data.len() as u64;
        if *offset > total {
            return Err(Error::Invalid(format!(
                "filesystem layer verification failed for digest {}: more than its {total} bytes from {url}",
                job.desc.digest
            )));
        }
        tx.send(Chunk::Data(data))
            .await
            .map_err(|_| Error::UnpackStopped)?;
        let now = Instant::now();
        if last_report.is_none_or(|t| now.duration_since(t) >= PROGRESS_INTERVAL) {
            *last_report = Some(now);
            progress.send(Message::bytes(&job.id, "Downloading", *offset, total))?;
        }
    }
    if skip > 0 || *offset < total {
        return Err(broken("unexpected EOF".into()));
    }
    Ok(())
}

/// Go's words for a body that broke off.
fn body_reason(e: &hyper::Error) -> String {
    let text = e.to_string();
    if e.is_incomplete_message() || text.contains("end of file") {
        "unexpected EOF".into()
    } else {
        text
    }
}
