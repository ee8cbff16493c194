//! The images a build reads (FROM and `--from` images, `--cache-from` images, every step's
//! result) stay readable until it ends: each gets a store lease ([`Store::lease`], as save and
//! push take), so an `rmi` meanwhile removes the image but leaves its config and layers in
//! place until the build is done; then what nothing else uses is freed, as the `rmi` would
//! have freed it.
//!
//! A lease borrows the store, so the leases live on a thread of their own that owns an
//! `Arc<Store>` for the whole build.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};

use berth_store::{Image, Store};
use tokio::sync::oneshot;

use super::BuildError;

type Request = (Image, oneshot::Sender<Result<(), berth_store::Error>>);

/// The leases of one build.
pub struct BuildLeases {
    requests: Mutex<Option<std_mpsc::Sender<Request>>>,
    holder: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl BuildLeases {
    pub fn new(store: Arc<Store>) -> BuildLeases {
        let (tx, rx) = std_mpsc::channel::<Request>();
        let holder = std::thread::Builder::new()
            .name("build-leases".into())
            .spawn(move || hold_until_closed(&store, rx))
            .map_err(|e| tracing::warn!("build leases thread: {e}"))
            .ok();
        BuildLeases {
            requests: Mutex::new(holder.as_ref().map(|_| tx)),
            holder: Mutex::new(holder),
        }
    }

    /// Holds `image` until [`BuildLeases::release`] (once per image: holding it again is a
    /// no-op). Fails when the image was removed before it could be held.
    pub async fn hold(&self, image: &Image) -> Result<(), BuildError> {
        let (reply, answer) = oneshot::channel();
        let sent = crate::engine::lock(&self.requests)
            .as_ref()
            .map(|tx| tx.send((image.clone(), reply)).is_ok())
            .unwrap_or(false);
        if !sent {
            return Err(BuildError::msg("the build's image leases are gone"));
        }
        match answer.await {
            Ok(r) => r.map_err(BuildError::from),
            Err(_) => Err(BuildError::msg("the build's image leases are gone")),
        }
    }

    /// Drops every lease and waits until what an `rmi` left to them is freed.
    pub async fn release(&self) {
        crate::engine::lock(&self.requests).take();
        let holder = crate::engine::lock(&self.holder).take();
        if let Some(h) = holder {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

impl Drop for BuildLeases {
    fn drop(&mut self) {
        // Without `release` (a build future dropped): the thread ends and frees on its own.
        crate::engine::lock(&self.requests).take();
    }
}

/// The holder thread: leases what it is asked to until the sender goes, then drops them all
/// (freeing the layers an `rmi` deferred).
fn hold_until_closed(store: &Store, requests: std_mpsc::Receiver<Request>) {
    let mut held = HashMap::new();
    for (image, reply) in requests {
        let result = if held.contains_key(&image.id) {
            Ok(())
        } else {
            store.lease(&image).map(|lease| {
                held.insert(image.id.clone(), lease);
            })
        };
        let _ = reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_file_layer() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "held", &b"held"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deleted_image_stays_readable_until_the_release() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "needs root under CI"
            );
            eprintln!("skipping: importing a layer needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(redb::Database::create(dir.path().join("db")).unwrap());
        let store = Arc::new(Store::open(&dir.path().join("root"), db).unwrap());
        let image = store
            .import(&mut &one_file_layer()[..], Default::default())
            .unwrap();
        let (_, layer) = store.layer_dirs(&image).unwrap().remove(0);
        let leases = BuildLeases::new(store.clone());
        leases.hold(&image).await.unwrap();
        leases.hold(&image).await.unwrap();
        store.delete(&image.id).unwrap();
        assert!(layer.join("held").is_file(), "kept while held");
        assert!(store.config_blob(&image).is_ok());
        leases.release().await;
        assert!(!layer.exists(), "freed at the release");
        assert!(store.config_blob(&image).is_err());
        assert!(
            leases.hold(&image).await.is_err(),
            "released: nothing more is held"
        );
    }
}
