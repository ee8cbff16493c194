//! Image operations that need the engine (containers matter for removal) on top of the store.

use super::{blocking, changes, Engine, Error, Result};
use crate::build::sources::go_match;
use berth_store::{Image, ImportOptions, Reference};
use std::collections::HashSet;
use serde_json::{Map, Value};

/// `POST /images/create?fromSrc=-`: what to import and how to name it.
#[derive(Debug, Default)]
pub struct ImportRequest {
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub changes: Vec<String>,
    pub message: Option<String>,
}

/// One line of `DELETE /images/{name}`'s answer.
#[derive(Debug, serde::Serialize)]
pub enum Deleted {
    Untagged(String),
    Deleted(String),
}

impl Engine {
    /// Imports a rootfs tarball read from `tar` (a blocking reader) as a one-layer image.
    pub async fn import(&self, req: ImportRequest, tar: Box<dyn std::io::Read + Send>) -> Result<Image> {
        let tag = match req.repo.as_deref().filter(|r| !r.is_empty()) {
            Some(repo) => {
                let name = match req.tag.as_deref().filter(|t| !t.is_empty()) {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.to_string(),
                };
                Some(Reference::parse(&name)?)
            }
            None => None,
        };
        let mut config = Map::new();
        changes::apply(&req.changes, &mut config).map_err(Error::InvalidParameter)?;
        let docker_fields = ["Healthcheck", "OnBuild"]
            .into_iter()
            .filter_map(|k| config.remove(k).map(|v| (k.to_string(), v)))
            .collect();
        let config = serde_json::from_value(Value::Object(config))
            .map_err(|e| Error::InvalidParameter(format!("invalid change: {e}")))?;
        let tag_name = tag.as_ref().map(|t| t.familiar());
        let message = req.message.filter(|m| !m.is_empty());
        let opts = ImportOptions { config, docker_fields, message, tag };
        let store = self.store.clone();
        let image = blocking(move || {
            let mut tar = tar;
            store.import(&mut tar, opts).map_err(Error::from)
        })
        .await?;
        self.image_event(&image.id, &image.id, "import");
        if let Some(name) = tag_name {
            self.image_event(&image.id, &name, "tag");
        }
        Ok(image)
    }

    /// The image `name` (a reference or an id) names. A name that is neither is refused as
    /// Docker refuses it (400, "invalid reference format…"), not reported missing.
    pub async fn image(&self, name: &str) -> Result<Image> {
        let id_like = |h: &str| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
        if !id_like(name.strip_prefix("sha256:").unwrap_or(name)) {
            Reference::parse(name)?;
        }
        let (store, name) = (self.store.clone(), name.to_string());
        blocking(move || {
            store.resolve(&name).map_err(|e| match e {
                // Docker names a missing reference with its default tag.
                berth_store::Error::ImageNotFound(_) => Error::NotFound(format!("No such image: {}", with_default_tag(&name))),
                e => Error::from(e),
            })
        })
        .await
    }

    pub async fn images(&self) -> Result<Vec<Image>> {
        let store = self.store.clone();
        blocking(move || store.list().map_err(Error::from)).await
    }

    pub async fn tag(&self, name: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let image = self.image(name).await?;
        let target = match tag.filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_string(),
        };
        let reference = Reference::parse(&target)?;
        let (store, name) = (self.store.clone(), reference.familiar());
        let id = image.id.clone();
        blocking(move || store.tag(&id, &reference).map_err(Error::from)).await?;
        self.image_event(&image.id, &name, "tag");
        Ok(())
    }
}

/// The 12-hex-digit form Docker prints.
pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}

/// One row of `GET /images/{name}/history`, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    /// The image id on the top row, `<missing>` below it (Docker keeps no ids for those).
    pub id: String,
    pub created: i64,
    pub created_by: String,
    /// The image's tags on the top row only.
    pub tags: Vec<String>,
    pub size: i64,
    pub comment: String,
}

/// What `GET /images/{name}/json` shows beyond the `Image` record.
#[derive(Debug)]
pub struct ImageDetail {
    pub image: Image,
    /// The config blob as stored, for Docker's fields the OCI type drops.
    pub blob: Value,
    /// Unpacked layer directories, bottom first.
    pub layer_dirs: Vec<std::path::PathBuf>,
    /// The storage driver, which `GraphDriver` names.
    pub driver: berth_store::Driver,
}

/// Removed by a prune: what the API reports, and the bytes freed.
#[derive(Debug, Default)]
pub struct PruneReport {
    pub deleted: Vec<Deleted>,
    pub reclaimed: u64,
}

/// `GET /images/json`'s filters, checked and resolved.
#[derive(Debug, Default)]
pub struct ImageFilter {
    dangling: Option<bool>,
    references: Vec<String>,
    labels: Vec<String>,
    /// Created strictly before / after these times, unix nanoseconds (`before=`/`since=`).
    before: Option<i128>,
    since: Option<i128>,
    /// `all=1`: intermediate images (untagged parents of other images) too.
    pub all: bool,
}

pub(super) fn bool_filter(key: &str, values: &[String]) -> Result<Option<bool>> {
    let mut out = None;
    for v in values {
        out = Some(match v.to_ascii_lowercase().as_str() {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(Error::InvalidParameter(format!("Invalid filter '{key}=[{v}]'"))),
        });
    }
    Ok(out)
}

/// Whether a familiar `repo:tag` matches a `reference=` pattern: as Docker, against the whole
/// reference and against the repository name alone.
pub fn reference_matches(pattern: &str, tag: &str) -> bool {
    let repo = match tag.rfind(':') {
        Some(i) if !tag[i..].contains('/') => &tag[..i],
        _ => tag,
    };
    // Docker's `path.Match`; a malformed pattern matches nothing.
    let matches = |name: &str| go_match(pattern, name).unwrap_or(false);
    matches(tag) || matches(repo)
}

/// The config's creation time in unix nanoseconds (Docker compares images to the
/// nanosecond), else the record's seconds.
pub(super) fn created_nanos(image: &Image) -> i128 {
    image
        .config
        .created()
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .map_or(i128::from(image.created) * 1_000_000_000, i128::from)
}

fn image_labels(image: &Image) -> std::collections::HashMap<String, String> {
    image.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default()
}

/// `label=k`, `label=k=v` (and for prune `label!=…`): whether `image` matches all of `wants`.
pub(super) fn labels_match(image: &Image, wants: &[String], negate: bool) -> bool {
    let labels = image_labels(image);
    wants.iter().all(|w| {
        let has = match w.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(w.as_str()),
        };
        has != negate
    })
}

/// A prune's `until`: a Go duration before now ("24h", "90m"), unix seconds, or an RFC 3339
/// time or date, as Docker's `GetTimestamp` reads it. Returns unix seconds.
pub fn parse_until(v: &str, now: i64) -> Result<i64> {
    let bad = || Error::InvalidParameter(format!("failed to parse value as time or duration: \"{v}\""));
    // A bare `0` is Unix time 0, as Docker reads it.
    if let Some(nanos) = berth_api::duration::parse_go(v).filter(|_| v != "0") {
        return Ok(now - nanos / 1_000_000_000);
    }
    if let Ok(secs) = v.split('.').next().unwrap_or(v).parse::<i64>() {
        if v.split('.').nth(1).is_none_or(|f| f.chars().all(|c| c.is_ascii_digit())) {
            return Ok(secs);
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, fmt) {
            return Ok(t.and_utc().timestamp());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).ok_or_else(bad);
    }
    Err(bad())
}

impl ImageFilter {
    /// `parents`: the images some image was committed from.
    fn matches(&self, image: &Image, parents: &HashSet<&str>) -> bool {
        let dangling = image.repo_tags.is_empty() && image.repo_digests.is_empty();
        // An untagged parent is an intermediate image: only `-a` shows it, and never as
        // dangling (Docker lists dangling images from the heads of the image tree).
        let intermediate = dangling && parents.contains(image.id.as_str());
        !(intermediate && (!self.all || self.dangling == Some(true)))
            && self.dangling.is_none_or(|d| d == dangling)
            && labels_match(image, &self.labels, false)
            && self.before.is_none_or(|t| created_nanos(image) < t)
            && self.since.is_none_or(|t| created_nanos(image) > t)
            && (self.references.is_empty() || !self.visible_tags(image).is_empty())
    }

    /// The tags to show: with `reference=` filters, only the matching ones (as Docker).
    pub fn visible_tags(&self, image: &Image) -> Vec<String> {
        if self.references.is_empty() {
            return image.repo_tags.clone();
        }
        image.repo_tags.iter().filter(|t| self.references.iter().any(|p| reference_matches(p, t))).cloned().collect()
    }
}

impl Engine {
    /// A container's image as lists show it (moby's `refreshImage`): the name it was created
    /// with while that still names the container's image, else the image's id (the name was
    /// retagged or the image removed). One small store read per container whose name is not
    /// its image id (the list handlers call it on the async workers).
    pub fn list_image_name(&self, rec: &crate::state::Record) -> String {
        if rec.image == rec.image_id {
            return rec.image.clone();
        }
        match self.store.resolve(&rec.image) {
            Ok(image) if image.id == rec.image_id => rec.image.clone(),
            _ => rec.image_id.clone(),
        }
    }
}

impl Engine {
    /// Checks `GET /images/json`'s filters, resolving `before`/`since` to their images.
    pub async fn image_filter(&self, filters: &std::collections::HashMap<String, Vec<String>>) -> Result<ImageFilter> {
        let mut f = ImageFilter::default();
        for (key, values) in filters {
            match key.as_str() {
                "dangling" => f.dangling = bool_filter(key, values)?,
                "reference" => f.references = values.clone(),
                "label" => f.labels = values.clone(),
                "before" | "since" => {
                    for v in values {
                        let image = self.image(v).await.map_err(|_| Error::NotFound(format!("No such image: {}", with_default_tag(v))))?;
                        if key == "before" {
                            f.before = Some(created_nanos(&image));
                        } else {
                            f.since = Some(created_nanos(&image));
                        }
                    }
                }
                _ => return Err(Error::InvalidParameter(format!("Invalid filter '{key}'"))),
            }
        }
        Ok(f)
    }

    /// Images matching `filter`, newest first.
    pub async fn images_filtered(&self, filter: &ImageFilter) -> Result<Vec<Image>> {
        let mut images = self.images().await?;
        let parents: HashSet<String> = images.iter().filter_map(|i| i.parent.clone()).collect();
        let parents: HashSet<&str> = parents.iter().map(String::as_str).collect();
        images.retain(|i| filter.matches(i, &parents));
        // Newest first to the nanosecond, as Docker orders them; the record keeps seconds.
        images.sort_by_key(|i| std::cmp::Reverse(created_nanos(i)));
        for i in &mut images {
            i.repo_tags = filter.visible_tags(i);
        }
        Ok(images)
    }

    /// `GET /images/{name}/history`: one row per history entry, newest first; the layer
    /// sizes go to the entries that made a layer.
    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        let image = self.image(name).await?;
        let store = self.store.clone();
        let img = image.clone();
        let sizes = blocking(move || store.layer_sizes(&img).map_err(Error::from)).await?;
        // Docker names the rows from the top down by walking the parent chain, one image
        // per row, as far as the chain goes; the rows below stay `<missing>`.
        let rows = image.config.history().as_ref().map_or(0, Vec::len);
        let mut ancestors = vec![(image.id.clone(), image.repo_tags.clone())];
        let mut parent = image.parent.clone();
        while let Some(id) = parent.filter(|_| ancestors.len() < rows) {
            let Ok(p) = self.image(&id).await else { break };
            ancestors.push((p.id.clone(), p.repo_tags.clone()));
            parent = p.parent;
        }
        Ok(history_rows(&image, &sizes, &ancestors))
    }

    /// Everything `GET /images/{name}/json` shows.
    pub async fn image_detail(&self, name: &str) -> Result<ImageDetail> {
        let image = self.image(name).await?;
        let store = self.store.clone();
        blocking(move || {
            let bytes = store.config_blob(&image)?;
            let blob = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let layer_dirs = store.layer_dirs(&image)?.into_iter().map(|(_, p)| p).collect();
            let driver = store.driver();
            Ok(ImageDetail { image, blob, layer_dirs, driver })
        })
        .await
    }
}

/// `busybox` → `busybox:latest`, as Docker names a missing image in errors.
fn with_default_tag(name: &str) -> String {
    match Reference::parse(name) {
        Ok(r) if r.digest().is_none() && !name.rsplit('/').next().unwrap_or(name).contains(':') => format!("{name}:latest"),
        _ => name.to_string(),
    }
}

/// Pairs history entries with layer sizes (entries marked `empty_layer` made none), and
/// names the top rows after `ancestors` (the image, its parent, …: id and tags).
fn history_rows(image: &Image, sizes: &[(String, u64)], ancestors: &[(String, Vec<String>)]) -> Vec<HistoryEntry> {
    let history = image.config.history().clone().unwrap_or_default();
    let mut layers = sizes.iter();
    let mut rows: Vec<HistoryEntry> = history
        .iter()
        .map(|h| {
            let size = if h.empty_layer().unwrap_or(false) { 0 } else { layers.next().map_or(0, |(_, s)| *s as i64) };
            let created = h
                .created()
                .as_deref()
                .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
                .map_or(0, |t| t.timestamp());
            HistoryEntry {
                id: "<missing>".into(),
                created,
                created_by: h.created_by().clone().unwrap_or_default(),
                tags: Vec::new(),
                size,
                comment: h.comment().clone().unwrap_or_default(),
            }
        })
        .collect();
    rows.reverse();
    for (row, (id, tags)) in rows.iter_mut().zip(ancestors) {
        row.id = id.clone();
        row.tags = tags.clone();
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_patterns_match_like_docker() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busybox:latest", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:v1"));
        assert!(!reference_matches("busybox:v2", "busybox:v1"));
        assert!(!reference_matches("*", "a/b:latest"));
        assert!(reference_matches("*/*", "a/b:latest"));
        assert!(reference_matches("localhost:5000/x", "localhost:5000/x:1"));
        assert!(reference_matches("b[a-u]sy?ox", "busybox:latest"));
        assert!(!reference_matches("b[^u]sybox", "busybox:latest"));
    }

    #[test]
    fn until_takes_durations_timestamps_and_dates() {
        assert_eq!(parse_until("24h", 100_000).unwrap(), 100_000 - 86_400);
        assert_eq!(parse_until("1h30m", 10_000).unwrap(), 10_000 - 5_400);
        assert_eq!(parse_until("1500000000", 0).unwrap(), 1_500_000_000);
        assert_eq!(parse_until("1500000000.5", 0).unwrap(), 1_500_000_000);
        assert_eq!(parse_until("2020-01-02", 0).unwrap(), 1_577_923_200);
        assert_eq!(parse_until("2020-01-02T00:00:00Z", 0).unwrap(), 1_577_923_200);
        let e = parse_until("xyz", 0).unwrap_err().to_string();
        assert!(e.contains("failed to parse value as time or duration: \"xyz\""), "{e}");
    }

    #[test]
    fn bad_dangling_value_is_refused_as_docker_does() {
        let e = bool_filter("dangling", &["xyz".into()]).unwrap_err().to_string();
        assert!(e.contains("Invalid filter 'dangling=[xyz]'"), "{e}");
        assert_eq!(bool_filter("dangling", &["true".into()]).unwrap(), Some(true));
    }

    #[test]
    fn missing_images_are_named_with_their_default_tag() {
        assert_eq!(with_default_tag("nonexist"), "nonexist:latest");
        assert_eq!(with_default_tag("a:b"), "a:b");
        assert_eq!(with_default_tag("localhost:5000/a"), "localhost:5000/a:latest");
    }
}
