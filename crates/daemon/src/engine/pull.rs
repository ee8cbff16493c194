//! `POST /images/create?fromImage=…`: Docker's pull, as a stream of JSON progress messages.
//!
//! Bad input (the reference, the platform, the auth header) and failures before anything is
//! under way (registry unreachable, unknown manifest, access denied) are returned as errors,
//! which the API sends as a plain error status as dockerd does; once a progress message went
//! out, a failure is the stream's last message. The pull runs in its own task and stops when
//! the client goes away (its layers already complete stay in the store for the next pull).

use std::sync::Arc;

use berth_distribution::progress::{error_json, Message};
use berth_distribution::pull::{self, parse_platform, Progress, PullRequest};
use berth_distribution::Credentials;
use berth_store::Reference;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::push::message_line;
use super::{Engine, Error, Result};

/// What `/images/create` asks for.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `fromImage`: a name, possibly with a tag or digest.
    pub from_image: String,
    /// `tag`: a tag or a digest; empty with a bare name pulls every tag (Docker's API).
    pub tag: String,
    /// `platform`: "os/arch[/variant]".
    pub platform: Option<String>,
    /// `X-Registry-Auth`.
    pub auth: Option<String>,
}

/// A pull under way: its JSON lines, each ending in "\r\n".
pub type PullStream = mpsc::Receiver<Bytes>;

impl Engine {
    /// Starts a pull; returns once its first message is out (or with the error that came
    /// first), then streams the rest.
    pub async fn pull(self: &Arc<Self>, opts: PullOptions) -> Result<PullStream> {
        let req = pull_request(&opts)?;
        let (msg_tx, mut msg_rx) = mpsc::unbounded_channel::<Message>();
        let closed = msg_tx.clone();
        let engine = self.clone();
        let store = self.store.clone();
        let shown = req.reference.familiar();
        let mut task = tokio::spawn(async move {
            let progress = Progress::new(msg_tx);
            tokio::select! {
                r = pull::pull(&engine.registry, store, req, progress) => r,
                // The client went away: dropping the pull cancels its downloads.
                _ = closed.closed() => Err(berth_distribution::Error::Cancelled),
            }
        });
        let first = tokio::select! {
            biased;
            m = msg_rx.recv() => m,
            r = &mut task => return finished_silently(r),
        };
        // No message and a closed channel: the pull ended without saying anything.
        let Some(first) = first else {
            return finished_silently(task.await);
        };
        let first = Some(first);
        let (out_tx, out_rx) = mpsc::channel::<Bytes>(64);
        let events = self.clone();
        tokio::spawn(async move {
            let mut next = first;
            while let Some(m) = next {
                if out_tx.send(message_line(&m.to_json())).await.is_err() {
                    // Dropping msg_rx closes the channel: the pull task sees it and stops.
                    return;
                }
                next = msg_rx.recv().await;
            }
            match task.await {
                Ok(Ok(())) => events.image_event(&shown, &shown, "pull"),
                Ok(Err(e)) => {
                    let _ = out_tx.send(message_line(&error_json(&e.to_string()))).await;
                }
                Err(e) => {
                    let _ = out_tx.send(message_line(&error_json(&e.to_string()))).await;
                }
            }
        });
        Ok(out_rx)
    }
}

/// The answer for a pull that ended before its first message: an error status, or nothing.
fn finished_silently(
    r: std::result::Result<berth_distribution::Result<()>, tokio::task::JoinError>,
) -> Result<PullStream> {
    match r {
        Ok(Ok(())) => Ok(mpsc::channel(1).1),
        Ok(Err(e)) => Err(to_engine(e)),
        Err(e) => Err(Error::Internal(e.to_string())),
    }
}

/// Reads the query as dockerd does: `tag` completes `fromImage` (a digest when it looks like
/// one); an empty tag with a name that has none means every tag.
fn pull_request(opts: &PullOptions) -> Result<PullRequest> {
    let image = opts.from_image.trim();
    if image.is_empty() {
        return Err(Error::InvalidParameter("invalid reference format".into()));
    }
    let tag = opts.tag.trim();
    let joined = if tag.is_empty() {
        image.to_string()
    } else if tag.contains(':') {
        format!("{image}@{tag}")
    } else {
        format!("{image}:{tag}")
    };
    let reference =
        Reference::parse(&joined).map_err(|e| Error::InvalidParameter(e.to_string()))?;
    let bare = Reference::parse(image).map_err(|e| Error::InvalidParameter(e.to_string()))?;
    // "busybox" alone parses as busybox:latest; all tags only when no tag was written anywhere.
    let written_tag = image
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
        || image.contains('@');
    let all_tags = tag.is_empty() && !written_tag && bare.digest().is_none();
    let platform = match opts
        .platform
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(p) => Some(parse_platform(p).map_err(|e| Error::InvalidParameter(e.to_string()))?),
        None => None,
    };
    let credentials = match opts.auth.as_deref() {
        Some(h) => {
            Credentials::from_header(h).map_err(|e| Error::InvalidParameter(e.to_string()))?
        }
        None => None,
    };
    Ok(PullRequest {
        reference,
        all_tags,
        platform,
        credentials,
    })
}

/// The engine's error kind (and so the HTTP status) for a registry failure.
fn to_engine(e: berth_distribution::Error) -> Error {
    use berth_distribution::Error as D;
    match e {
        D::Registry { status: 404, .. } => Error::NotFound(e.to_string()),
        D::Unauthorized(_) => Error::NotFound(e.to_string()),
        D::InvalidArgument(_) => Error::InvalidParameter(e.to_string()),
        D::Store(s) => s.into(),
        other => Error::Internal(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(image: &str, tag: &str) -> PullRequest {
        pull_request(&PullOptions {
            from_image: image.into(),
            tag: tag.into(),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn query_like_dockerd() {
        let r = req("busybox", "latest");
        assert_eq!(r.reference.full(), "docker.io/library/busybox:latest");
        assert!(!r.all_tags);
        assert!(req("busybox", "").all_tags);
        assert!(!req("busybox:1", "").all_tags);
        assert!(!req("127.0.0.1:5000/a", "v1").all_tags);
        assert!(req("127.0.0.1:5000/a", "").all_tags);
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r = req("busybox", d);
        assert_eq!(r.reference.digest(), Some(d));
        assert!(!req(&format!("busybox@{d}"), "").all_tags);
        assert!(pull_request(&PullOptions {
            from_image: "Bad".into(),
            tag: "x".into(),
            ..Default::default()
        })
        .is_err());
        let bad_platform = PullOptions {
            from_image: "a".into(),
            tag: "x".into(),
            platform: Some("nope/x/y/z".into()),
            auth: None,
        };
        assert!(pull_request(&bad_platform).is_err());
    }
}
