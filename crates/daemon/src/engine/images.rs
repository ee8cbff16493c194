//! Image operations that need the engine (containers matter for removal) on top of the store.

use super::{blocking, changes, lock, Engine, Error, Result};
use berth_store::{Image, ImportOptions, Reference};
use serde_json::{Map, Value};

/// `POST /images/create?fromSrc=-`: what to import and how to name it.
#[derive(Debug, Default)]
pub struct ImportRequest {
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub changes: Vec<String>,
    pub message: Option<String>,
}

/// One line of `DELETE /images/{name}`'s answer.
#[derive(Debug, serde::Serialize)]
pub enum Deleted {
    Untagged(String),
    Deleted(String),
}

impl Engine {
    /// Imports a rootfs tarball read from `tar` (a blocking reader) as a one-layer image.
    pub async fn import(&self, req: ImportRequest, tar: Box<dyn std::io::Read + Send>) -> Result<Image> {
        let tag = match req.repo.as_deref().filter(|r| !r.is_empty()) {
            Some(repo) => {
                let name = match req.tag.as_deref().filter(|t| !t.is_empty()) {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.to_string(),
                };
                Some(Reference::parse(&name)?)
            }
            None => None,
        };
        let mut config = Map::new();
        changes::apply(&req.changes, &mut config).map_err(Error::InvalidParameter)?;
        let config = serde_json::from_value(Value::Object(config))
            .map_err(|e| Error::InvalidParameter(format!("invalid change: {e}")))?;
        let tag_name = tag.as_ref().map(|t| t.familiar());
        let opts = ImportOptions { config, message: req.message.filter(|m| !m.is_empty()), tag };
        let store = self.store.clone();
        let image = blocking(move || {
            let mut tar = tar;
            store.import(&mut tar, opts).map_err(Error::from)
        })
        .await?;
        self.image_event(&image.id, &image.id, "import");
        if let Some(name) = tag_name {
            self.image_event(&image.id, &name, "tag");
        }
        Ok(image)
    }

    pub async fn image(&self, name: &str) -> Result<Image> {
        let (store, name) = (self.store.clone(), name.to_string());
        blocking(move || store.resolve(&name).map_err(Error::from)).await
    }

    pub async fn images(&self) -> Result<Vec<Image>> {
        let store = self.store.clone();
        blocking(move || store.list().map_err(Error::from)).await
    }

    pub async fn tag(&self, name: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let image = self.image(name).await?;
        let target = match tag.filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_string(),
        };
        let reference = Reference::parse(&target)?;
        let (store, name) = (self.store.clone(), reference.familiar());
        let id = image.id.clone();
        blocking(move || store.tag(&id, &reference).map_err(Error::from)).await?;
        self.image_event(&image.id, &name, "tag");
        Ok(())
    }

    /// `rmi`: untags a reference, and deletes the image once nothing names or uses it.
    /// Conflicts follow Docker: images used by containers need force, running ones always win.
    pub async fn remove_image(&self, name: &str, force: bool) -> Result<Vec<Deleted>> {
        let image = self.image(name).await?;
        let short = short_id(&image.id);
        let users: Vec<(String, bool)> = self
            .all_containers()
            .iter()
            .map(|c| lock(&c.rec).clone())
            .filter(|r| r.image_id == image.id)
            .map(|r| (r.id.chars().take(12).collect(), r.state.status == crate::state::Status::Running))
            .collect();
        let by_reference = Reference::parse(name).ok().filter(|r| {
            let full = r.to_string();
            image.repo_tags.iter().any(|t| *t == full)
        });
        let mut out = Vec::new();
        let store = self.store.clone();
        if let Some(reference) = by_reference {
            let last_tag = image.repo_tags.len() <= 1;
            if last_tag && !force {
                if let Some((cid, _)) = users.first() {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {cid} is using its referenced image {short}"
                    )));
                }
            }
            let (untag, store) = (reference.clone(), store.clone());
            blocking(move || store.untag(&untag).map(drop).map_err(Error::from)).await?;
            self.image_event(&image.id, &image.id, "untag");
            out.push(Deleted::Untagged(reference.to_string()));
            if !last_tag || !users.is_empty() {
                return Ok(out);
            }
        } else {
            if let Some((cid, _)) = users.iter().find(|(_, running)| *running) {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {cid}"
                )));
            }
            if !force {
                if image.repo_tags.len() > 1 {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                    )));
                }
                if let Some((cid, _)) = users.first() {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {cid}"
                    )));
                }
            }
            for tag in &image.repo_tags {
                let reference = Reference::parse(tag)?;
                let store = store.clone();
                blocking(move || store.untag(&reference).map(drop).map_err(Error::from)).await?;
                self.image_event(&image.id, &image.id, "untag");
                out.push(Deleted::Untagged(tag.clone()));
            }
            if !users.is_empty() {
                return Ok(out);
            }
        }
        let id = image.id.clone();
        blocking(move || store.delete(&id).map_err(Error::from)).await?;
        self.image_event(&image.id, &image.id, "delete");
        out.push(Deleted::Deleted(image.id));
        Ok(out)
    }
}

/// The 12-hex-digit form Docker prints.
pub fn short_id(id: &str) -> String {
    id.trim_start_matches("sha256:").chars().take(12).collect()
}
