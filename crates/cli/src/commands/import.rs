//! `berth import`: sends a tarball (file or stdin) to make a filesystem image, streaming
//! it so images of any size fit, and prints the new image's ID.

use berth_api::models::CreateImageInfo;
use bytes::Bytes;
use clap::Args;
use http_body_util::{channel::Channel, BodyExt};
use hyper::Method;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::client::{self, Client};
use crate::commands::create::{split_image, LineSplitter};
use crate::commands::{CmdResult, Failure};

/// `berth import`
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long = "message", value_name = "string")]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform", value_name = "string")]
    pub platform: Option<String>,
    /// The tarball: a file, or `-` for stdin
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    /// The name to give the image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Copies `reader` into the request body in chunks; a read error aborts the request.
pub fn stream_body(mut reader: impl AsyncRead + Unpin + Send + 'static) -> client::Body {
    let (mut tx, body) = Channel::<Bytes, std::io::Error>::new(4);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .send_data(Bytes::copy_from_slice(&buf[..n]))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    tx.abort(e);
                    return;
                }
            }
        }
    });
    body.boxed()
}

/// `berth import`
pub async fn run(client: &Client, args: ImportArgs) -> CmdResult {
    let body = if args.source == "-" {
        stream_body(tokio::io::stdin())
    } else {
        let file = tokio::fs::File::open(&args.source).await.map_err(|e| {
            Failure::new(
                1,
                format!(
                    "open {}: {}",
                    args.source,
                    crate::commands::create::io_reason(&e)
                ),
            )
        })?;
        stream_body(file)
    };
    let mut q = vec![("fromSrc", "-".to_string())];
    if let Some(r) = &args.reference {
        let (repo, tag) = split_image(r);
        q.push(("repo", repo));
        q.push(("tag", tag));
    }
    if let Some(m) = &args.message {
        q.push(("message", m.clone()));
    }
    if let Some(p) = &args.platform {
        q.push(("platform", p.clone()));
    }
    for c in &args.change {
        q.push(("changes", c.clone()));
    }
    let path = format!("/images/create{}", client::query(&q));
    let resp = client.send(Method::POST, &path, body).await?;
    let mut stream = resp.into_body();
    let mut lines = LineSplitter::default();
    let mut all = Vec::new();
    while let Some(chunk) = client::next_chunk(&mut stream).await? {
        all.extend(lines.push(&chunk));
    }
    all.extend(lines.finish());
    for line in all {
        let Ok(info) = serde_json::from_str::<CreateImageInfo>(&line) else {
            continue;
        };
        if let Some(detail) = info.error_detail {
            return Err(Failure::new(1, detail.message.unwrap_or_default()));
        }
        if let Some(status) = info.status {
            println!("{status}");
        }
    }
    Ok(0)
}
