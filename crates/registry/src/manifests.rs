//! `HEAD/GET/PUT/DELETE /v2/<name>/manifests/<tag|digest>`. A manifest's bytes are kept
//! exactly as pushed (its digest is of those bytes) as a blob in the content store; the
//! repository records its media type and the tags pointing at it.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::error::{Code, RegistryError};
use crate::http::{self, Reply};
use crate::names::{digest_hex, is_tag, looks_like_digest};
use crate::server::State;

/// The OCI spec asks registries to take manifests of at least 4 MiB; larger ones are refused.
const MAX_MANIFEST: usize = 4 << 20;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// What a manifest reference resolves to.
fn resolve(state: &State, name: &str, reference: &str) -> Result<String, RegistryError> {
    if looks_like_digest(reference) {
        if digest_hex(reference).is_none() {
            return Err(Code::DigestInvalid.detail(json!({ "Digest": reference })));
        }
        return Ok(reference.to_string());
    }
    if !is_tag(reference) {
        return Err(Code::TagInvalid.detail(json!({ "Tag": reference })));
    }
    // Distribution answers an unknown repository's tag as an unknown manifest, too.
    match state.repos.tag(name, reference)? {
        Some(d) => Ok(d),
        None => Err(Code::ManifestUnknown.detail(json!({ "Tag": reference }))),
    }
}

/// `HEAD/GET`
pub fn get(state: &State, name: &str, reference: &str, method: &Method) -> Reply {
    let digest = resolve(state, name, reference)?;
    let Some(media_type) = state.repos.manifest_type(name, &digest)? else {
        return Err(Code::ManifestUnknown.detail(json!({ "Revision": digest })));
    };
    let bytes = state.content.read(&digest)?;
    let len = bytes.len();
    let mut resp = if method == Method::HEAD {
        http::empty(StatusCode::OK)
    } else {
        http::full(StatusCode::OK, &media_type, bytes)
    };
    http::set(&mut resp, "content-type", &media_type);
    http::set(&mut resp, "content-length", &len.to_string());
    http::set(&mut resp, "docker-content-digest", &digest);
    http::set(&mut resp, "etag", &format!("\"{digest}\""));
    Ok(resp)
}

/// The media type a pushed manifest is stored under: the request's `Content-Type` (without
/// parameters), else the document's own `mediaType`.
fn media_type_of(content_type: Option<&str>, doc: &Value) -> Result<String, RegistryError> {
    let declared = doc.get("mediaType").and_then(Value::as_str);
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty() && *c != "application/json" && *c != "application/octet-stream");
    let media_type = match (header, declared) {
        (Some(h), Some(d)) if h != d => {
            return Err(Code::ManifestInvalid
                .detail(format!("mediaType {d} does not match Content-Type {h}")))
        }
        (Some(h), _) => h,
        (None, Some(d)) => d,
        (None, None) if doc.get("manifests").is_some() => OCI_INDEX,
        (None, None) => OCI_MANIFEST,
    };
    match media_type {
        DOCKER_MANIFEST | DOCKER_LIST | OCI_MANIFEST | OCI_INDEX => Ok(media_type.to_string()),
        other => {
            Err(Code::ManifestInvalid.detail(format!("unsupported manifest media type {other}")))
        }
    }
}

/// The digests a manifest needs in the repository: blobs (config, layers) for an image
/// manifest, manifests for a list or index. Layers with `urls` (non-distributable) are
/// fetched from elsewhere and need not be pushed.
fn references(media_type: &str, doc: &Value) -> Result<(Vec<String>, Vec<String>), RegistryError> {
    let invalid = |why: &str| Code::ManifestInvalid.detail(why.to_string());
    if doc.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let digest_of = |d: &Value| -> Result<String, RegistryError> {
        let digest = d
            .get("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("descriptor without digest"))?;
        digest_hex(digest)
            .ok_or_else(|| Code::DigestInvalid.detail(json!({ "Digest": digest })))?;
        Ok(digest.to_string())
    };
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    match media_type {
        DOCKER_LIST | OCI_INDEX => {
            let list = doc
                .get("manifests")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("no manifests"))?;
            for m in list {
                manifests.push(digest_of(m)?);
            }
        }
        _ => {
            let config = doc.get("config").ok_or_else(|| invalid("no config"))?;
            blobs.push(digest_of(config)?);
            let layers = doc
                .get("layers")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("no layers"))?;
            for l in layers {
                let foreign = l
                    .get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty());
                if !foreign {
                    blobs.push(digest_of(l)?);
                }
            }
        }
    }
    Ok((blobs, manifests))
}

/// `PUT`: stores the manifest if everything it references is in the repository.
pub async fn put(state: &State, name: &str, reference: &str, req: Request<Incoming>) -> Reply {
    let tag = if looks_like_digest(reference) {
        if digest_hex(reference).is_none() {
            return Err(Code::DigestInvalid.detail(json!({ "Digest": reference })));
        }
        None
    } else if is_tag(reference) {
        Some(reference)
    } else {
        return Err(Code::TagInvalid.detail(json!({ "Tag": reference })));
    };
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_MANIFEST).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return Err(Code::ManifestInvalid.detail(e.to_string())),
    };
    let doc: Value =
        serde_json::from_slice(&bytes).map_err(|e| Code::ManifestInvalid.detail(e.to_string()))?;
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let media_type = media_type_of(content_type, &doc)?;
    let (blobs, manifests) = references(&media_type, &doc)?;
    for b in &blobs {
        if !state.repos.has_blob(name, b) {
            return Err(Code::ManifestBlobUnknown.detail(b.as_str()));
        }
    }
    for m in &manifests {
        if state.repos.manifest_type(name, m)?.is_none() {
            return Err(Code::ManifestBlobUnknown.detail(m.as_str()));
        }
    }
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    let len = bytes.len();
    if tag.is_none() && digest != reference {
        return Err(Code::DigestInvalid.detail(json!({ "Digest": reference })));
    }
    let content = state.content.clone();
    let stored = tokio::task::spawn_blocking(move || content.write_all(&bytes))
        .await
        .map_err(std::io::Error::other)??;
    if stored != digest {
        return Err(Code::Unknown.detail("manifest stored under another digest"));
    }
    state.repos.put_manifest(name, &digest, &media_type)?;
    if let Some(tag) = tag {
        state.repos.set_tag(name, tag, &digest)?;
    }
    let subject = subject_of(&doc)?;
    if let Some(subject) = &subject {
        let descriptor = referrer_descriptor(&doc, &media_type, &digest, len);
        state
            .repos
            .add_referrer(name, subject, &digest, &descriptor)?;
    }
    let mut resp = http::empty(StatusCode::CREATED);
    if let Some(subject) = &subject {
        // OCI 1.1: tells the client the referrers API indexed it.
        http::set(&mut resp, "oci-subject", subject);
    }
    let base = http::base_url(&parts.headers, state.tls);
    http::set(
        &mut resp,
        "location",
        &format!("{base}/v2/{name}/manifests/{digest}"),
    );
    http::set(&mut resp, "docker-content-digest", &digest);
    Ok(resp)
}

/// The digest of the manifest's OCI 1.1 `subject`, if it has one.
fn subject_of(doc: &Value) -> Result<Option<String>, RegistryError> {
    let Some(subject) = doc.get("subject") else {
        return Ok(None);
    };
    match subject.get("digest").and_then(Value::as_str) {
        Some(d) if digest_hex(d).is_some() => Ok(Some(d.to_string())),
        _ => Err(Code::ManifestInvalid.detail("subject without a valid digest")),
    }
}

/// How the referrers API lists a manifest: its descriptor, with `artifactType` (or, for an
/// image manifest without one, its config's media type) and its annotations.
fn referrer_descriptor(doc: &Value, media_type: &str, digest: &str, size: usize) -> Value {
    let artifact_type = doc
        .get("artifactType")
        .or_else(|| doc.get("config").and_then(|c| c.get("mediaType")))
        .cloned();
    let mut d = json!({ "mediaType": media_type, "digest": digest, "size": size });
    if let Some(t) = artifact_type {
        d["artifactType"] = t;
    }
    if let Some(a) = doc.get("annotations") {
        d["annotations"] = a.clone();
    }
    d
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]` (OCI 1.1): an image index of the
/// manifests whose subject is `digest`; empty when there are none.
pub fn referrers(state: &State, name: &str, digest: &str, uri: &hyper::Uri) -> Reply {
    if digest_hex(digest).is_none() {
        return Err(Code::DigestInvalid.detail(json!({ "Digest": digest })));
    }
    let mut manifests = state.repos.referrers(name, digest)?;
    let filter = http::query(uri).remove("artifactType");
    if let Some(t) = &filter {
        manifests.retain(|m| m.get("artifactType").and_then(Value::as_str) == Some(t.as_str()));
    }
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut resp = http::full(StatusCode::OK, OCI_INDEX, index.to_string());
    if filter.is_some() {
        http::set(&mut resp, "oci-filters-applied", "artifactType");
    }
    Ok(resp)
}

/// `DELETE` by digest (Distribution refuses tags with DIGEST_INVALID): the revision and the
/// tags pointing at it go.
pub fn delete(state: &State, name: &str, reference: &str) -> Reply {
    if digest_hex(reference).is_none() {
        return Err(Code::DigestInvalid.into());
    }
    if !state.repos.delete_manifest(name, reference)? {
        return Err(Code::ManifestUnknown.detail(json!({ "Revision": reference })));
    }
    Ok(http::empty(StatusCode::ACCEPTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_comes_from_the_header_then_the_document() {
        let doc = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST});
        assert_eq!(media_type_of(None, &doc).unwrap(), OCI_MANIFEST);
        assert_eq!(
            media_type_of(Some(OCI_MANIFEST), &doc).unwrap(),
            OCI_MANIFEST
        );
        assert!(media_type_of(Some(DOCKER_MANIFEST), &doc).is_err());
        assert_eq!(
            media_type_of(None, &json!({"manifests": []})).unwrap(),
            OCI_INDEX
        );
        assert_eq!(
            media_type_of(Some(DOCKER_LIST), &json!({})).unwrap(),
            DOCKER_LIST
        );
        assert!(media_type_of(Some("text/plain"), &json!({})).is_err());
    }

    #[test]
    fn references_skip_foreign_layers() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let doc = json!({"schemaVersion": 2, "config": {"digest": d('a')},
            "layers": [{"digest": d('b')}, {"digest": d('c'), "urls": ["http://x"]}]});
        let (blobs, manifests) = references(OCI_MANIFEST, &doc).unwrap();
        assert_eq!(blobs, [d('a'), d('b')]);
        assert!(manifests.is_empty());
        let idx = json!({"schemaVersion": 2, "manifests": [{"digest": d('e')}]});
        assert_eq!(references(OCI_INDEX, &idx).unwrap().1, [d('e')]);
        assert!(references(OCI_MANIFEST, &json!({"schemaVersion": 1})).is_err());
    }
}
