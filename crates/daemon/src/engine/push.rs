//! `POST /images/{name}/push`: Docker's push, as a stream of JSON progress messages.
//!
//! Order of checks as in dockerd: the reference (a plain 400 before anything is streamed),
//! then "The push refers to repository [...]", then whether any local image has that name,
//! then the registry (ping, auth), then the tag, then the layers (`berth_distribution::push`).
//! Errors after the stream started are its last message (`errorDetail`), as Docker sends them.

use std::sync::Arc;

use berth_distribution::push::{self, Progress, Target};
use berth_distribution::Credentials;
use berth_store::{Image, Reference};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{Engine, Error, Result};

/// The JSON messages of a push, one per chunk, each ending in "\r\n".
pub type PushStream = mpsc::Receiver<Bytes>;

/// One JSON message line as Docker's stream formatter writes it: Go's encoder escapes `<`, `>`
/// and `&`, and every message ends with "\r\n".
pub(crate) fn message_line(v: &impl serde::Serialize) -> Bytes {
    let mut out = Vec::new();
    for b in serde_json::to_vec(v).unwrap_or_default() {
        match b {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            _ => out.push(b),
        }
    }
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

/// Go's `%.4g`, as Docker's `units.HumanSize` uses it.
fn four_significant(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let exp = x.abs().log10().floor() as i32;
    let decimals = (3 - exp).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Docker's `units.HumanSize`: decimal units, four significant digits ("1.984MB").
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", four_significant(size), UNITS[i])
}

/// Docker's progress text for a daemon-side stream (terminal width 200: the bar is shown).
pub(crate) fn progress_text(current: u64, total: u64) -> String {
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
    let bar = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    let numbers = if current > total {
        format!("{:>8}", human_size(current))
    } else {
        format!("{:>8}/{}", human_size(current), human_size(total))
    };
    bar + &numbers
}

/// Docker's `JSONMessage`, fields in its order, empty ones left out.
#[derive(serde::Serialize, Default)]
struct Message {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    progress_detail: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    error_detail: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aux: Option<PushResult>,
}

/// The `aux` of a pushed tag, in Docker's field order.
#[derive(serde::Serialize)]
struct PushResult {
    #[serde(rename = "Tag")]
    tag: String,
    #[serde(rename = "Digest")]
    digest: String,
    #[serde(rename = "Size")]
    size: usize,
}

fn status(text: &str) -> Message {
    Message {
        status: Some(text.into()),
        ..Default::default()
    }
}

fn layer_status(id: &str, text: &str) -> Message {
    Message {
        status: Some(text.into()),
        progress_detail: Some(json!({})),
        id: Some(id.into()),
        ..Default::default()
    }
}

fn error_message(message: &str) -> Message {
    Message {
        error_detail: Some(json!({ "message": message })),
        error: Some(message.into()),
        ..Default::default()
    }
}

fn aux_message(aux: PushResult) -> Message {
    Message {
        progress_detail: Some(json!({})),
        aux: Some(aux),
        ..Default::default()
    }
}

fn progress_message(p: &Progress) -> Message {
    match p {
        Progress::Preparing(id) => layer_status(id, "Preparing"),
        Progress::Waiting(id) => layer_status(id, "Waiting"),
        Progress::Pushing { id, current, total } => Message {
            status: Some("Pushing".into()),
            progress_detail: Some(json!({ "current": current, "total": total })),
            progress: Some(progress_text(*current, *total)),
            id: Some(id.clone()),
            ..Default::default()
        },
        Progress::Pushed(id) => layer_status(id, "Pushed"),
        Progress::Exists(id) => layer_status(id, "Layer already exists"),
        Progress::MountedFrom { id, from } => layer_status(id, &format!("Mounted from {from}")),
        Progress::Retrying { id, text } => layer_status(id, text),
    }
}

impl Engine {
    /// Starts pushing `name` (`tag`: one tag; `None`: every tag of the repository, or the
    /// tag written in `name`), authenticated by the client's `X-Registry-Auth` value.
    pub async fn push(
        self: &Arc<Self>,
        name: &str,
        tag: Option<&str>,
        registry_auth: Option<&str>,
    ) -> Result<PushStream> {
        let reference =
            Reference::parse(name).map_err(|e| Error::InvalidParameter(e.to_string()))?;
        if reference.digest().is_some() && tag.is_none() {
            return Err(Error::InvalidParameter(
                "cannot push a digest reference".into(),
            ));
        }
        // The path carries the tag when the client put it there ("x:v1"), else the query does.
        let written_tag = name
            .rsplit('/')
            .next()
            .is_some_and(|last| last.contains(':'))
            .then(|| reference.tag().map(String::from))
            .flatten();
        let tag = tag
            .filter(|t| !t.is_empty())
            .map(String::from)
            .or(written_tag);
        if let Some(t) = &tag {
            Reference::parse(&format!("{}:{t}", reference.name()))
                .map_err(|e| Error::InvalidParameter(e.to_string()))?;
        }
        let creds = match registry_auth {
            Some(h) => {
                Credentials::from_header(h).map_err(|e| Error::InvalidParameter(e.to_string()))?
            }
            None => None,
        };
        let (tx, rx) = mpsc::channel(64);
        let engine = self.clone();
        tokio::spawn(async move {
            let out = tx.clone();
            let work = engine.push_stream(reference, tag, creds, out);
            tokio::select! {
                r = work => {
                    if let Err(message) = r {
                        let _ = tx.send(message_line(&error_message(&message))).await;
                    }
                }
                // The client went away: stop (Docker cancels the push with the request).
                _ = tx.closed() => {}
            }
        });
        Ok(rx)
    }

    async fn push_stream(
        &self,
        reference: Reference,
        tag: Option<String>,
        creds: Option<Credentials>,
        out: mpsc::Sender<Bytes>,
    ) -> std::result::Result<(), String> {
        let send = |v: Message| {
            let out = out.clone();
            async move {
                let _ = out.send(message_line(&v)).await;
            }
        };
        let repo_name = reference.name();
        send(status(&format!(
            "The push refers to repository [{repo_name}]"
        )))
        .await;
        let tagged = self
            .images_named(&reference)
            .await
            .map_err(|e| e.to_string())?;
        if tagged.is_empty() {
            return Err(format!(
                "An image does not exist locally with the tag: {}",
                reference.familiar_name()
            ));
        }
        let domain = reference.domain().to_string();
        let path = reference.path().to_string();
        let anonymous = creds.is_none();
        let first = Target {
            domain: domain.clone(),
            path: path.clone(),
            tag: String::new(),
        };
        let mut session = push::session(self.registry(), &first, creds)
            .await
            .map_err(|e| e.to_string())?;
        let todo: Vec<(String, Image)> = match &tag {
            Some(t) => match tagged.into_iter().find(|(have, _)| have == t) {
                Some(found) => vec![found],
                None => {
                    let familiar = Reference::parse(&format!("{repo_name}:{t}"))
                        .map(|r| r.familiar())
                        .unwrap_or_default();
                    return Err(format!("tag does not exist: {familiar}"));
                }
            },
            None => tagged,
        };
        for (t, image) in todo {
            let target = Target {
                domain: domain.clone(),
                path: path.clone(),
                tag: t.clone(),
            };
            let (ptx, mut prx) = mpsc::unbounded_channel();
            let forward = {
                let out = out.clone();
                tokio::spawn(async move {
                    while let Some(p) = prx.recv().await {
                        let _ = out.send(message_line(&progress_message(&p))).await;
                    }
                })
            };
            // An `rmi` during the push must not take the config and layers it reads from under it.
            let leased = self.store.clone();
            let lease = leased
                .lease(&image)
                .map_err(|e| Error::from(e).to_string())?;
            let result =
                push::push_image(&mut session, self.store.clone(), &image, &target, &ptx).await;
            // The last lease of a layer an `rmi` deferred frees it: trees deleted here.
            tokio::task::block_in_place(|| drop(lease));
            drop(ptx);
            let _ = forward.await;
            let pushed = result.map_err(|e| push_error(e, anonymous))?;
            let store = self.store.clone();
            let digest_ref = format!("{repo_name}@{}", pushed.digest);
            let id = image.id.clone();
            // The image may have been deleted meanwhile; the push itself still succeeded.
            let _ = super::blocking(move || {
                store.add_repo_digest(&id, &digest_ref).map_err(Error::from)
            })
            .await;
            send(status(&format!(
                "{t}: digest: {} size: {}",
                pushed.digest, pushed.size
            )))
            .await;
            send(aux_message(PushResult {
                tag: t.clone(),
                digest: pushed.digest.clone(),
                size: pushed.size,
            }))
            .await;
        }
        Ok(())
    }

    /// Every local tag of the repository `reference` names, sorted: (tag, image).
    async fn images_named(&self, reference: &Reference) -> Result<Vec<(String, Image)>> {
        let store = self.store.clone();
        let name = reference.name();
        super::blocking(move || {
            let mut found = Vec::new();
            for image in store.list()? {
                for t in &image.repo_tags {
                    if let Ok(r) = Reference::parse(t) {
                        if r.name() == name {
                            if let Some(tag) = r.tag() {
                                found.push((tag.to_string(), image.clone()));
                            }
                        }
                    }
                }
            }
            found.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(found)
        })
        .await
    }
}

/// A push failure as Docker words it: a Basic-auth registry refusing a client that sent no
/// credentials is just "no basic auth credentials" (no URL, unlike a pull's).
fn push_error(e: berth_distribution::Error, anonymous: bool) -> String {
    match e {
        e if push::is_missing_credentials(&e) => "no basic auth credentials".into(),
        berth_distribution::Error::Unauthorized(m)
            if anonymous
                && (m == "unauthorized" || m == "unauthorized: authentication required") =>
        {
            "no basic auth credentials".into()
        }
        // Docker's layer uploads unwrap a failed token request from the request it was for.
        berth_distribution::Error::AuthFailed { reason, .. } => reason,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reads_like_dockers() {
        assert_eq!(human_size(1_984_241), "1.984MB");
        assert_eq!(human_size(43_520), "43.52kB");
        assert_eq!(human_size(2_140_160), "2.14MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(0), "0B");
        assert_eq!(
            progress_text(43_520, 1_984_241),
            "[=>                                                 ]  43.52kB/1.984MB"
        );
        assert_eq!(
            progress_text(2_140_160, 1_984_241),
            "[==================================================>]   2.14MB"
        );
        let line = message_line(&progress_message(&Progress::Pushing {
            id: "a6c1a2ff8063".into(),
            current: 43_520,
            total: 1_984_241,
        }));
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "{\"status\":\"Pushing\",\"progressDetail\":{\"current\":43520,\"total\":1984241},\"progress\":\"[=\\u003e                                                 ]  43.52kB/1.984MB\",\"id\":\"a6c1a2ff8063\"}\r\n"
        );
    }
}
