//! The tarsum memo: Docker's per-file tarsum depends only on the tar header fields and the
//! content, so it is remembered under a hash of exactly those (the content by its digest).
//! A rebuild whose files did not change then reads no content at all.

use crate::engine::Error;
use berth_context::Entry;
use redb::{ReadableDatabase, TableDefinition};
use sha2::{Digest, Sha256};
use std::sync::Arc;

type Result<T> = std::result::Result<T, Error>;

/// sha256(header fields ‖ digest) → tarsum hex.
const TARSUMS: TableDefinition<&[u8], &str> = TableDefinition::new("build_tarsums");

pub(crate) type Key = [u8; 32];

/// The memo key of a file entry: every field tarsum hashes (not mtime), and the content's
/// digest in place of the content.
pub(crate) fn key(e: &Entry) -> Key {
    let fields = serde_json::json!([
        berth_context::tarsum::tar_name(e),
        e.mode,
        e.uid,
        e.gid,
        e.size,
        e.linkname,
        e.xattrs,
        e.digest,
    ]);
    Sha256::digest(fields.to_string().as_bytes()).into()
}

pub(crate) struct TarsumMemo {
    db: Arc<redb::Database>,
}

fn db_err(e: impl Into<redb::Error>) -> Error {
    Error::Internal(format!("build context tarsum memo: {}", e.into()))
}

impl TarsumMemo {
    pub(crate) fn new(db: Arc<redb::Database>) -> TarsumMemo {
        TarsumMemo { db }
    }

    /// The remembered tarsum of each entry, in order; only entries whose tarsum covers
    /// content are looked up (the others' come from their header alone).
    pub(crate) fn get_many<'a>(
        &self,
        entries: impl Iterator<Item = &'a Entry>,
    ) -> Result<Vec<Option<String>>> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = match txn.open_table(TARSUMS) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(db_err(e)),
        };
        entries
            .map(|e| {
                let Some(table) = &table else { return Ok(None) };
                if !berth_context::tarsum::hashes_content(e) {
                    return Ok(None);
                }
                let k = key(e);
                Ok(table
                    .get(&k[..])
                    .map_err(db_err)?
                    .map(|v| v.value().to_string()))
            })
            .collect()
    }

    /// Remembers `items` in one transaction.
    pub(crate) fn put_many(&self, items: &[(Key, String)]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(db_err)?;
        {
            let mut table = txn.open_table(TARSUMS).map_err(db_err)?;
            for (k, sum) in items {
                table.insert(&k[..], sum.as_str()).map_err(db_err)?;
            }
        }
        txn.commit().map_err(db_err)
    }
}
