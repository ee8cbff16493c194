//! What an image keeps on disk besides its snapshots, for `system df`: the daemon measures
//! snapshots with `Store::layer_dirs` and the rest with this, so its totals cover every byte
//! the store holds for an image.

use std::path::PathBuf;

use crate::error::Error;
use crate::{Image, Store};

impl Store {
    /// The files `image` keeps besides its snapshots, as (digest, path): its config blob,
    /// then what keeps each layer's uncompressed tar (so `save` can hand out the exact bytes
    /// its diff IDs name): the layer's index, or its whole tar for a layer without one. Two
    /// images share a layer's file exactly when they share its diff ID.
    pub fn image_blobs(&self, image: &Image) -> Result<Vec<(String, PathBuf)>, Error> {
        let config = (image.id.clone(), self.content.path(&image.id)?);
        std::iter::once(Ok(config))
            .chain(image.config.rootfs().diff_ids().iter().map(|d| self.layer_tar_file(d).map(|p| (d.clone(), p))))
            .collect()
    }
}
