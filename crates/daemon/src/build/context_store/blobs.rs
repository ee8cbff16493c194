//! The berth CLI's upload of the files a registered manifest lacks (design §4 step 2): a tar
//! whose entries are named by the content's hex digest. Each is hashed while written (its
//! digest, and the tarsums of the manifest entries using it: one read); a file whose content
//! does not match its name fails the request and is discarded.

use super::lease::Lease;
use super::publish::{copy_hashing, set_metadata, temp_file, Publisher};
use super::{digest_hex, memo, ContextStore, Result};
use crate::engine::Error;
use berth_context::Entry;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;

fn bad(msg: String) -> Error {
    Error::InvalidParameter(msg)
}

impl ContextStore {
    /// Stores the files of manifest `id` found in the tar `body`.
    pub fn ingest_blobs(&self, id: &str, body: &mut dyn Read) -> Result<()> {
        let hex = digest_hex(id)
            .ok_or_else(|| bad(format!("invalid build context ID {id:?}")))?
            .to_string();
        let lease = Lease::new(self.pins.clone());
        self.pins.pin(&lease, &[format!("m:{hex}")]);
        let manifest = self
            .load_manifest(&hex)?
            .ok_or_else(|| Error::NotFound(format!("no such build context: sha256:{hex}")))?;
        // Content hex → the entries made of it.
        let mut users: HashMap<&str, Vec<&Entry>> = HashMap::new();
        for e in &manifest.entries {
            if let Some(d) = e.digest.as_deref().and_then(digest_hex) {
                users.entry(d).or_default().push(e);
            }
        }
        let publisher = Publisher::new(&self.blobs_dir());
        let mut learned: Vec<(memo::Key, String)> = Vec::new();
        let mut archive = tar::Archive::new(berth_store::CappedTar::new(body));
        let read_err = |e: std::io::Error| bad(format!("reading build context files: {e}"));
        for item in archive.entries().map_err(read_err)? {
            let mut item = item.map_err(read_err)?;
            let name = String::from_utf8_lossy(&item.path_bytes()).into_owned();
            if !matches!(
                item.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) {
                return Err(bad(format!(
                    "build context file {name:?} is not a regular file"
                )));
            }
            let wanted = digest_hex(&name).and_then(|h| users.get_key_value(h));
            let Some((&blob, entries)) = wanted else {
                return Err(bad(format!(
                    "{name} is not a file of build context sha256:{hex}"
                )));
            };
            if item.size() != entries[0].size {
                return Err(bad(format!(
                    "sha256:{blob} has {} bytes, the manifest says {}",
                    item.size(),
                    entries[0].size
                )));
            }
            self.pins.pin(&lease, &[blob.to_string()]);
            let dest = self.blob_path(blob);
            if dest.exists() {
                continue; // sent twice, or another upload was faster: the tar skips the rest
            }
            let (mut file, temp) = temp_file(&self.dir.join("tmp"))?;
            let mut content = Sha256::new();
            // Hard links' tarsums have no content: `open_manifest` makes them from the header.
            let summed: Vec<&Entry> = entries
                .iter()
                .copied()
                .filter(|e| berth_context::tarsum::hashes_content(e))
                .collect();
            let mut sums: Vec<Sha256> = summed
                .iter()
                .map(|e| berth_context::tarsum::tarsum_header(e))
                .collect();
            let mut hashers: Vec<&mut Sha256> = std::iter::once(&mut content)
                .chain(sums.iter_mut())
                .collect();
            let copied = copy_hashing(&mut item, &mut file, &mut hashers);
            let got = hex::encode(content.finalize());
            let copied = copied.and_then(|n| match n == entries[0].size {
                true => Ok(n),
                false => Err(std::io::ErrorKind::UnexpectedEof.into()),
            });
            if copied.is_err() || got != blob {
                let _ = std::fs::remove_file(&temp);
                return Err(match copied {
                    Err(e) => read_err(e),
                    Ok(_) => bad(format!(
                        "build context file sha256:{blob} does not match its content (sha256:{got})"
                    )),
                });
            }
            let e = entries[0];
            if let Err(err) = set_metadata(&file, e.mode, e.uid, e.gid, e.mtime_ns) {
                let _ = std::fs::remove_file(&temp);
                return Err(err.into());
            }
            publisher.submit(file, temp, dest);
            for (e, sum) in summed.iter().zip(sums) {
                learned.push((memo::key(e), hex::encode(sum.finalize())));
            }
        }
        publisher.finish()?;
        self.memo.put_many(&learned)
    }
}
