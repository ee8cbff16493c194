//! What an image keeps on disk besides its snapshots, for `system df`: the daemon measures
//! snapshots with `Store::layer_dirs` and blobs with this, so its totals cover every byte the
//! store holds for an image.

use std::path::PathBuf;

use crate::error::Error;
use crate::{Image, Store};

impl Store {
    /// The blobs `image` keeps, as (digest, path): its config, then each layer's uncompressed
    /// tar (kept so `save` can hand out the exact bytes its diff IDs name). Two images share a
    /// layer blob exactly when they share its diff ID.
    pub fn image_blobs(&self, image: &Image) -> Result<Vec<(String, PathBuf)>, Error> {
        std::iter::once(&image.id)
            .chain(image.config.rootfs().diff_ids())
            .map(|d| self.content.path(d).map(|p| (d.clone(), p)))
            .collect()
    }
}
