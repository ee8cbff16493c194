//! Blob upload sessions, kept on disk under `<root>/uploads/<id>/` (`repo`: the repository it
//! belongs to; `data`: the bytes so far) so a restarted server carries on where it stopped.
//! While the server runs, each session's `BlobWriter` stays open with its running hash, so
//! finishing an upload does not re-read it; after a restart the first request re-hashes the
//! data file once. One request at a time works on a session (a per-session lock), and
//! finishing moves the data file into the content store by rename, after the digest check.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_store::{BlobWriter, ContentStore};
use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::sync::OwnedMutexGuard;

use crate::error::{Code, RegistryError};
use crate::names::{is_upload_id, new_upload_id};

/// A session's writer; None until a request needs it after a restart.
#[derive(Default)]
struct Slot {
    writer: Option<BlobWriter>,
}

impl Drop for Slot {
    /// A session outlives the process: keep its data file for a later `resume`.
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            w.suspend();
        }
    }
}

type SlotRef = Arc<tokio::sync::Mutex<Slot>>;

/// All upload sessions.
pub struct Uploads {
    dir: PathBuf,
    content: Arc<ContentStore>,
    open: Mutex<HashMap<String, SlotRef>>,
}

/// One session, locked for the current request.
pub struct Upload {
    pub id: String,
    slot: OwnedMutexGuard<Slot>,
}

fn unknown(id: &str) -> RegistryError {
    Code::BlobUploadUnknown.detail(serde_json::json!({ "uuid": id }))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)
}

impl Uploads {
    /// Uses (creating) `<root>/uploads`; `content` must live under the same root, because a
    /// finished upload is renamed into it.
    pub fn open(root: &Path, content: Arc<ContentStore>) -> io::Result<Uploads> {
        let dir = root.join("uploads");
        std::fs::create_dir_all(&dir)?;
        Ok(Uploads {
            dir,
            content,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, SlotRef>> {
        // The map holds no invariant a panic could break half-way.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for repository `repo`.
    pub async fn start(&self, repo: &str) -> Result<Upload, RegistryError> {
        let id = new_upload_id();
        let dir = self.dir.join(&id);
        std::fs::create_dir(&dir)?;
        std::fs::write(dir.join("repo"), repo)?;
        let writer = self.content.resume(&dir.join("data"))?;
        let slot: SlotRef = Arc::new(tokio::sync::Mutex::new(Slot {
            writer: Some(writer),
        }));
        let guard = slot.clone().lock_owned().await;
        self.sessions().insert(id.clone(), slot);
        Ok(Upload { id, slot: guard })
    }

    /// Opens session `id` of repository `repo`, waiting for any other request on it.
    pub async fn get(&self, repo: &str, id: &str) -> Result<Upload, RegistryError> {
        if !is_upload_id(id) {
            return Err(unknown(id));
        }
        let dir = self.dir.join(id);
        match std::fs::read_to_string(dir.join("repo")) {
            Ok(r) if r == repo => {}
            Ok(_) => return Err(unknown(id)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown(id)),
            Err(e) => return Err(e.into()),
        }
        let slot = self.sessions().entry(id.to_string()).or_default().clone();
        let mut guard = slot.lock_owned().await;
        // Finished or cancelled while this request waited.
        if !dir.join("data").exists() {
            return Err(unknown(id));
        }
        if guard.writer.is_none() {
            let content = self.content.clone();
            let data = dir.join("data");
            guard.writer = Some(blocking(move || content.resume(&data)).await??);
        }
        Ok(Upload {
            id: id.to_string(),
            slot: guard,
        })
    }

    /// Publishes the session's bytes as a blob if they hash to `expected`; on a mismatch
    /// nothing is published and the session stays, as Distribution keeps it.
    pub async fn finish(&self, mut upload: Upload, expected: &str) -> Result<(), RegistryError> {
        let writer = upload.writer()?;
        if writer.digest() != expected {
            return Err(Code::DigestInvalid.detail(serde_json::json!({ "Digest": expected })));
        }
        let Some(writer) = upload.slot.writer.take() else {
            return Err(unknown(&upload.id));
        };
        blocking(move || writer.finish()?.commit()).await??;
        self.forget(&upload.id);
        Ok(())
    }

    /// Ends a session and deletes its data.
    pub fn cancel(&self, mut upload: Upload) -> io::Result<()> {
        // Dropping the writer (rather than suspending it) deletes the data file.
        drop(upload.slot.writer.take());
        self.forget(&upload.id);
        Ok(())
    }

    fn forget(&self, id: &str) {
        self.sessions().remove(id);
        let _ = std::fs::remove_dir_all(self.dir.join(id));
    }

    /// Removes sessions untouched for `max_age` (and anything in the directory that is not a
    /// session); sessions in use are left alone. Returns how many went.
    pub fn purge(&self, max_age: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let id = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if is_upload_id(&id) {
                let touched = std::fs::metadata(path.join("data"))
                    .or_else(|_| std::fs::metadata(&path))
                    .and_then(|m| m.modified())?;
                let age = now.duration_since(touched).unwrap_or_default();
                if age < max_age {
                    continue;
                }
                let mut sessions = self.sessions();
                if let Some(slot) = sessions.get(&id) {
                    let Ok(mut guard) = slot.try_lock() else {
                        continue;
                    };
                    drop(guard.writer.take());
                    drop(guard);
                    sessions.remove(&id);
                }
            }
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            removed += 1;
        }
        Ok(removed)
    }
}

impl Upload {
    fn writer(&mut self) -> Result<&mut BlobWriter, RegistryError> {
        let id = self.id.clone();
        self.slot.writer.as_mut().ok_or_else(|| unknown(&id))
    }

    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.slot.writer.as_ref().map(|w| w.size()).unwrap_or(0)
    }

    /// Appends a request body. The file is written on a blocking thread while the body
    /// streams in; what arrived before a broken connection stays, as in Distribution.
    pub async fn append<B>(&mut self, mut body: B) -> Result<(), RegistryError>
    where
        B: hyper::body::Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let Some(mut writer) = self.slot.writer.take() else {
            return Err(unknown(&self.id));
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
        let task = tokio::task::spawn_blocking(move || {
            let mut result = Ok(());
            while let Some(chunk) = rx.blocking_recv() {
                if result.is_ok() {
                    result = writer.write_all(&chunk);
                }
            }
            (writer, result)
        });
        let mut body_error = None;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if tx.send(data).await.is_err() {
                            break;
                        }
                    }
                }
                Err(e) => {
                    body_error = Some(e.to_string());
                    break;
                }
            }
        }
        drop(tx);
        let (writer, result) = task.await.map_err(io::Error::other)?;
        self.slot.writer = Some(writer);
        result?;
        match body_error {
            Some(e) => Err(Code::BlobUploadInvalid.detail(e)),
            None => Ok(()),
        }
    }
}
