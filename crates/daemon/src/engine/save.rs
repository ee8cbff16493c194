//! `docker save` and `docker load`: images streamed out as one archive (see
//! `berth_store::SaveItem` for the format), and archives from any `docker save` read back.

use super::{blocking, Engine, Error, Result};
use berth_store::{LoadedImage, Reference, SaveItem};
use bytes::Bytes;
use tokio::sync::mpsc;

/// Chunks of the archive as it is written; an `Err` ends the stream abruptly, so the
/// client sees a failure rather than a short archive that looks whole.
pub type ArchiveStream = mpsc::Receiver<std::io::Result<Bytes>>;

impl Engine {
    /// Resolves every name first (an unknown one fails the request before anything is
    /// sent), then writes the archive in the background.
    pub async fn save(&self, names: &[String]) -> Result<ArchiveStream> {
        let store = self.store.clone();
        let names = names.to_vec();
        let items = blocking(move || {
            let mut items: Vec<SaveItem> = Vec::new();
            for name in &names {
                let (image, tags) = save_target(&store, name)?;
                match items.iter_mut().find(|i| i.image.id == image.id) {
                    Some(item) => item.tags.extend(tags),
                    None => items.push(SaveItem { image, tags }),
                }
            }
            Ok(items)
        })
        .await?;
        let (tx, rx) = mpsc::channel(8);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            // Large writes: the tar writer hands over 8 KiB at a time.
            let mut out = std::io::BufWriter::with_capacity(1 << 18, ChannelWriter { tx: tx.clone() });
            if let Err(e) = store.save(&items, &mut out) {
                tracing::warn!("save: {e}");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        });
        Ok(rx)
    }
}

impl Engine {
    /// Stores every image of a save archive read from `archive` (a blocking reader).
    pub async fn load(&self, archive: Box<dyn std::io::Read + Send>) -> Result<Vec<LoadedImage>> {
        let store = self.store.clone();
        let loaded = blocking(move || {
            let mut archive = archive;
            store.load_archive(&mut archive).map_err(Error::from)
        })
        .await?;
        for image in &loaded {
            self.image_event(&image.id, &image.id, "load");
        }
        Ok(loaded)
    }
}

/// What `name` saves: an image by ID or digest goes untagged; `repo:tag` under that tag; a bare
/// repository name (`busybox`) under every tag it has, as Docker does.
fn save_target(store: &berth_store::Store, name: &str) -> Result<(berth_store::Image, Vec<Reference>)> {
    let missing = || Error::NotFound(format!("No such image: {name}"));
    let image = store.resolve(name).map_err(|_| missing())?;
    let Ok(reference) = Reference::parse(name) else { return Ok((image, Vec::new())) };
    let by_id = image.id.trim_start_matches("sha256:").starts_with(name.trim_start_matches("sha256:"));
    if by_id || reference.digest().is_some() {
        return Ok((image, Vec::new()));
    }
    let names_tag = name.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/'));
    if names_tag {
        return Ok((image, vec![reference]));
    }
    let repo = reference.familiar_name();
    let tags = image
        .repo_tags
        .iter()
        .filter_map(|t| Reference::parse(t).ok())
        .filter(|r| r.familiar_name() == repo)
        .collect();
    Ok((image, tags))
}

/// A blocking writer feeding the response body.
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
