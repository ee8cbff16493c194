//! What a client still sends after its request failed. Answering and closing while it is
//! mid-upload makes it see a broken pipe instead of the answer, so the rest is read and
//! dropped first, as Go's server does (it reads on for up to 256 KiB).

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};

/// Go's `maxPostHandlerReadBytes`: how much of an unread body its server still reads.
pub const GO_SERVER_READS: usize = 256 * 1024;

/// Reads and drops up to `limit` more bytes of `body` (all of it with `usize::MAX`).
pub async fn discard<E>(mut body: impl Stream<Item = Result<Bytes, E>> + Unpin, limit: usize) {
    let mut dropped = 0usize;
    while let Some(Ok(chunk)) = body.next().await {
        dropped = dropped.saturating_add(chunk.len());
        if dropped > limit {
            break;
        }
    }
}
