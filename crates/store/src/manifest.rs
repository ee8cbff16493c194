//! Image manifests and indexes, OCI's and Docker's (v2 schema 2 and manifest lists), and the
//! choice of one image for this host out of an index: what `docker load` of an OCI layout and
//! a registry pull both need. The caller supplies the blobs (from an archive directory or a
//! registry); every blob read here is checked against the digest and size that named it.
//!
//! These are our own small serde types rather than oci-spec's: Docker's media types share the
//! OCI shapes, and archives in the wild omit fields oci-spec insists on (`mediaType`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{hex_part, sha256_of};
use crate::error::Error;
use crate::platform::{Matcher, Platform};

/// Media types we read.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_NONDIST: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_NONDIST_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
}

/// Annotations naming an image in an OCI layout's index.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Manifests and indexes are small; a bigger one is hostile (containerd caps them too).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Nested indexes deeper than this are a loop or an attack.
const MAX_DEPTH: usize = 8;

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// An image manifest (OCI or Docker v2 schema 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest-or-index document.
// Parsed once per manifest and taken apart at once: boxing the bigger variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

fn invalid(msg: String) -> Error {
    Error::InvalidArchive(msg)
}

/// Parses a manifest or an index. The descriptor's media type decides when it names one; else
/// the document's own `mediaType`; else its shape (OCI allows both to be absent). A document
/// whose own media type contradicts its descriptor's is refused, as the OCI spec requires.
pub fn parse(bytes: &[u8], descriptor_media_type: &str) -> Result<Document, Error> {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion", default)]
        schema_version: Option<u32>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("manifest: {e}")))?;
    let own = probe.media_type.as_deref().unwrap_or("");
    if !own.is_empty() && !descriptor_media_type.is_empty() && own != descriptor_media_type {
        return Err(invalid(format!(
            "manifest media type {own} does not match its descriptor's {descriptor_media_type}"
        )));
    }
    let kind = if !descriptor_media_type.is_empty() {
        descriptor_media_type
    } else {
        own
    };
    let is_index = match kind {
        media::OCI_INDEX | media::DOCKER_MANIFEST_LIST => true,
        media::OCI_MANIFEST | media::DOCKER_MANIFEST => false,
        media::DOCKER_SCHEMA1 | media::DOCKER_SCHEMA1_SIGNED => {
            return Err(invalid(format!(
                "unsupported manifest format: {kind} (Docker image manifest v2, schema 1)"
            )))
        }
        "" => match (probe.manifests.is_some(), probe.config.is_some()) {
            (true, false) => true,
            (false, true) => false,
            _ => {
                return Err(invalid(
                    "manifest is neither an image manifest nor an index".into(),
                ))
            }
        },
        other => return Err(invalid(format!("unsupported manifest media type {other}"))),
    };
    if probe.schema_version != Some(2) {
        return Err(invalid(format!(
            "unsupported manifest schema version {:?}",
            probe.schema_version
        )));
    }
    let bad = |e: serde_json::Error| invalid(format!("manifest: {e}"));
    Ok(if is_index {
        Document::Index(serde_json::from_slice(bytes).map_err(bad)?)
    } else {
        Document::Manifest(serde_json::from_slice(bytes).map_err(bad)?)
    })
}

/// Whether a descriptor points at a manifest or index (rather than, say, an attestation blob).
pub fn is_manifest_or_index(media_type: &str) -> bool {
    matches!(
        media_type,
        media::OCI_MANIFEST
            | media::OCI_INDEX
            | media::DOCKER_MANIFEST
            | media::DOCKER_MANIFEST_LIST
            | ""
    )
}

/// Reads the blob `desc` names through `fetch` and checks it against the descriptor's digest
/// and size. Only sha256 digests are accepted.
pub fn fetch_verified(
    fetch: &mut dyn FnMut(&Descriptor) -> Result<Vec<u8>, Error>,
    desc: &Descriptor,
) -> Result<Vec<u8>, Error> {
    if hex_part(&desc.digest).is_none() {
        return Err(invalid(format!(
            "unsupported or malformed digest {:?}",
            desc.digest
        )));
    }
    let bytes = fetch(desc)?;
    if bytes.len() as u64 != desc.size {
        return Err(invalid(format!(
            "{}: size {} does not match its descriptor's {}",
            desc.digest,
            bytes.len(),
            desc.size
        )));
    }
    let got = sha256_of(&bytes);
    if got != desc.digest {
        return Err(invalid(format!("blob {} has digest {got}", desc.digest)));
    }
    Ok(bytes)
}

/// The image manifest `root` stands for on this host: `root` itself if it is a manifest, else
/// the best match for `matcher` in the index (nested indexes followed). A platform-less entry
/// is judged by its config's os and architecture, and ranks after every entry that has one.
/// No match is containerd's error: "no match for platform in manifest <digest>: not found".
///
/// A manifest given directly is returned whatever its platform: Docker loads a foreign image
/// and only warns when it runs.
pub fn select_manifest(
    fetch: &mut dyn FnMut(&Descriptor) -> Result<Vec<u8>, Error>,
    root: &Descriptor,
    matcher: &Matcher,
) -> Result<(Descriptor, Manifest), Error> {
    let bytes = fetch_verified(fetch, root)?;
    match parse(&bytes, &root.media_type)? {
        Document::Manifest(m) => Ok((root.clone(), m)),
        Document::Index(index) => best_in_index(fetch, &index, matcher, 0)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no match for platform in manifest {}: not found",
                root.digest
            ))
        }),
    }
}

fn best_in_index(
    fetch: &mut dyn FnMut(&Descriptor) -> Result<Vec<u8>, Error>,
    index: &Index,
    matcher: &Matcher,
    depth: usize,
) -> Result<Option<(Descriptor, Manifest)>, Error> {
    if depth >= MAX_DEPTH {
        return Err(invalid("image index nested too deeply".into()));
    }
    // Candidates in preference order: by platform rank, platform-less ones last, index order
    // breaking ties (a stable sort), as containerd's `images.Manifest` orders them.
    let mut candidates: Vec<(usize, &Descriptor)> = index
        .manifests
        .iter()
        .filter(|d| is_manifest_or_index(&d.media_type))
        .filter_map(|d| match &d.platform {
            Some(p) => matcher.rank(p).map(|r| (r, d)),
            None => Some((usize::MAX, d)),
        })
        .collect();
    candidates.sort_by_key(|(rank, _)| *rank);
    for (rank, desc) in candidates {
        let bytes = fetch_verified(fetch, desc)?;
        match parse(&bytes, &desc.media_type)? {
            Document::Index(nested) => {
                if let Some(found) = best_in_index(fetch, &nested, matcher, depth + 1)? {
                    return Ok(Some(found));
                }
            }
            Document::Manifest(m) => {
                if rank != usize::MAX || config_matches(fetch, &m, matcher)? {
                    return Ok(Some((desc.clone(), m)));
                }
            }
        }
    }
    Ok(None)
}

/// Whether the platform a manifest's config declares is one the host runs.
fn config_matches(
    fetch: &mut dyn FnMut(&Descriptor) -> Result<Vec<u8>, Error>,
    m: &Manifest,
    matcher: &Matcher,
) -> Result<bool, Error> {
    let config = fetch_verified(fetch, &m.config)?;
    let p: Platform =
        serde_json::from_slice(&config).map_err(|e| invalid(format!("image config: {e}")))?;
    Ok(matcher.matches(&p))
}

/// The reference an OCI layout's index entry names, as Docker's loader (containerd's importer)
/// reads it: `io.containerd.image.name` when set; else `org.opencontainers.image.ref.name`,
/// but only when it is a whole reference ("busybox:1", "example.com/app") and not just a tag
/// ("latest", which Docker itself writes there), since a bare tag names no repository.
pub fn image_name(annotations: &BTreeMap<String, String>) -> Option<&str> {
    if let Some(name) = annotations
        .get(ANNOTATION_IMAGE_NAME)
        .filter(|n| !n.is_empty())
    {
        return Some(name);
    }
    annotations
        .get(ANNOTATION_REF_NAME)
        .map(String::as_str)
        .filter(|n| n.contains(['/', ':', '@']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    /// A blob source: the JSON documents of a test, by digest.
    #[derive(Default)]
    struct Blobs(HashMap<String, Vec<u8>>);

    impl Blobs {
        fn add(
            &mut self,
            media_type: &str,
            v: serde_json::Value,
            platform: Option<(&str, &str, &str)>,
        ) -> Descriptor {
            let bytes = serde_json::to_vec(&v).unwrap();
            let d = Descriptor {
                media_type: media_type.into(),
                digest: sha256_of(&bytes),
                size: bytes.len() as u64,
                platform: platform.map(|(o, a, v)| Platform::new(o, a, v)),
                annotations: BTreeMap::new(),
                urls: vec![],
            };
            self.0.insert(d.digest.clone(), bytes);
            d
        }
        fn fetch(&self) -> impl FnMut(&Descriptor) -> Result<Vec<u8>, Error> + '_ {
            |d| {
                self.0
                    .get(&d.digest)
                    .cloned()
                    .ok_or_else(|| Error::NotFound(d.digest.clone()))
            }
        }
        fn image(&mut self, arch: &str) -> Descriptor {
            let config = self.add(
                media::OCI_CONFIG,
                json!({"architecture": arch, "os": "linux"}),
                None,
            );
            self.add(
                media::OCI_MANIFEST,
                json!({"schemaVersion": 2, "config": config, "layers": []}),
                None,
            )
        }
        fn index(&mut self, media_type: &str, entries: Vec<Descriptor>) -> Descriptor {
            self.add(
                media_type,
                json!({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}),
                None,
            )
        }
    }

    fn with_platform(mut d: Descriptor, os: &str, arch: &str, variant: &str) -> Descriptor {
        d.platform = Some(Platform::new(os, arch, variant));
        d
    }

    fn amd64() -> Matcher {
        Matcher::only(&Platform::new("linux", "amd64", ""))
    }

    #[test]
    fn picks_the_host_platform_from_an_index() {
        let mut b = Blobs::default();
        let arm = b.image("arm64");
        let x86 = b.image("amd64");
        let old = b.image("386");
        let idx = b.index(
            media::OCI_INDEX,
            vec![
                with_platform(arm.clone(), "linux", "arm64", "v8"),
                with_platform(old.clone(), "linux", "386", ""),
                with_platform(x86.clone(), "linux", "amd64", ""),
            ],
        );
        let (d, _) = select_manifest(&mut b.fetch(), &idx, &amd64()).unwrap();
        assert_eq!(
            d.digest, x86.digest,
            "amd64 is preferred over 386 whatever the order"
        );
        let (d, _) = select_manifest(
            &mut b.fetch(),
            &idx,
            &Matcher::only(&Platform::new("linux", "arm64", "")),
        )
        .unwrap();
        assert_eq!(d.digest, arm.digest);
        // A plain manifest is taken as it is.
        let (d, _) = select_manifest(&mut b.fetch(), &arm, &amd64()).unwrap();
        assert_eq!(d.digest, arm.digest);
    }

    #[test]
    fn nested_indexes_docker_lists_and_platformless_entries() {
        let mut b = Blobs::default();
        let arm = b.image("arm64");
        let x86 = b.image("amd64");
        let inner = b.index(
            media::DOCKER_MANIFEST_LIST,
            vec![with_platform(x86.clone(), "linux", "amd64", "")],
        );
        let outer = b.index(
            media::OCI_INDEX,
            vec![with_platform(arm.clone(), "linux", "arm64", ""), inner],
        );
        let (d, _) = select_manifest(&mut b.fetch(), &outer, &amd64()).unwrap();
        assert_eq!(d.digest, x86.digest);
        // No platform on the entries: the configs decide.
        let bare = b.index(media::OCI_INDEX, vec![arm.clone(), x86.clone()]);
        let (d, _) = select_manifest(&mut b.fetch(), &bare, &amd64()).unwrap();
        assert_eq!(d.digest, x86.digest);
    }

    #[test]
    fn no_match_is_containerds_error() {
        let mut b = Blobs::default();
        let arm = b.image("arm64");
        let win = b.image("amd64");
        let idx = b.index(
            media::OCI_INDEX,
            vec![
                with_platform(arm, "linux", "arm64", ""),
                with_platform(win, "windows", "amd64", ""),
            ],
        );
        let err = select_manifest(&mut b.fetch(), &idx, &amd64()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no match for platform in manifest {}: not found",
                idx.digest
            )
        );
    }

    #[test]
    fn blobs_are_checked_against_their_descriptor() {
        let mut b = Blobs::default();
        let x86 = b.image("amd64");
        let mut wrong = x86.clone();
        wrong.size += 1;
        assert!(select_manifest(&mut b.fetch(), &wrong, &amd64()).is_err());
        let mut fetch = |_: &Descriptor| Ok(b"{\"schemaVersion\":2}".to_vec());
        let mut lying = x86.clone();
        lying.size = 19;
        let err = select_manifest(&mut fetch, &lying, &amd64()).unwrap_err();
        assert!(err.to_string().contains("has digest"), "{err}");
        let mut bad = x86;
        bad.digest = "sha512:abc".into();
        assert!(select_manifest(&mut b.fetch(), &bad, &amd64()).is_err());
    }

    #[test]
    fn parse_judges_kind_and_refuses_contradictions() {
        let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:x","size":1},"layers":[]}"#;
        assert!(matches!(parse(m, "").unwrap(), Document::Manifest(_)));
        assert!(matches!(
            parse(br#"{"schemaVersion":2,"manifests":[]}"#, "").unwrap(),
            Document::Index(_)
        ));
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"sha256:x","size":1}}"#;
        assert!(matches!(
            parse(docker, media::DOCKER_MANIFEST).unwrap(),
            Document::Manifest(_)
        ));
        assert!(parse(docker, media::OCI_MANIFEST).is_err());
        assert!(parse(
            br#"{"schemaVersion":1,"fsLayers":[]}"#,
            media::DOCKER_SCHEMA1
        )
        .is_err());
    }

    #[test]
    fn names_follow_dockers_annotation_rules() {
        let a = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let full = a(&[
            (ANNOTATION_IMAGE_NAME, "docker.io/library/busybox:1"),
            (ANNOTATION_REF_NAME, "1"),
        ]);
        assert_eq!(image_name(&full), Some("docker.io/library/busybox:1"));
        assert_eq!(image_name(&a(&[(ANNOTATION_REF_NAME, "latest")])), None);
        assert_eq!(
            image_name(&a(&[(ANNOTATION_REF_NAME, "example.com/app:v2")])),
            Some("example.com/app:v2")
        );
        assert_eq!(image_name(&a(&[])), None);
    }
}
