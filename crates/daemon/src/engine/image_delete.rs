//! `rmi` and `image prune`, with Docker's conflict rules (moby's `ImageDelete`).
//!
//! Hard conflicts (a child image, a running container) can never be forced; soft ones (tags,
//! a stopped container) yield to `force`. Deleting an image also deletes its untagged parent
//! chain, quietly stopping at the first parent something still needs (`noprune` turns that
//! off). Removing a repository reference deletes the image only when that was its last one,
//! and then quietly too.

use std::collections::{HashMap, HashSet};

use super::images::{bool_filter, created_nanos, labels_match, parse_until, short_id, PruneReport};
use super::{blocking, lock, Deleted, Engine, Error, Result};
use berth_store::{Image, Reference};

/// Why an image cannot go, in moby's words.
struct Conflict {
    hard: bool,
    /// A container uses the image: a quiet delete stays quiet about it.
    used: bool,
    message: String,
}

impl Conflict {
    fn into_error(self, id: &str) -> Error {
        let force = if self.hard {
            "cannot be forced"
        } else {
            "must be forced"
        };
        Error::Conflict(format!(
            "conflict: unable to delete {} ({force}) - {}",
            short_id(id),
            self.message
        ))
    }
}

/// Which soft conflicts count (the hard ones always do).
struct Check {
    references: bool,
    stopped: bool,
}

impl Engine {
    /// `DELETE /images/{name}`: untags a reference, or deletes an image given by id, then
    /// (with `prune`) its untagged parents.
    pub async fn remove_image(&self, name: &str, force: bool, prune: bool) -> Result<Vec<Deleted>> {
        let image = self.image(name).await?;
        let mut out = Vec::new();
        let by_reference = !is_id_prefix(&image.id, name)
            && Reference::parse(name)
                .is_ok_and(|r| image.repo_tags.iter().any(|t| *t == r.to_string()));
        if by_reference {
            let reference = Reference::parse(name)?;
            let single = image.repo_tags.len() <= 1;
            if single && !force {
                if let Some((cid, _)) = self.image_users(&image.id).first() {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        short_cid(cid),
                        short_id(&image.id)
                    )));
                }
            }
            self.untag_one(&image.id, reference, &mut out).await?;
            if !single {
                return Ok(out);
            }
            // The last tag went: the image goes too unless something holds it (quietly).
            self.delete_chain(&image.id, force, prune, true, &mut out)
                .await?;
            return Ok(out);
        }
        if image.repo_tags.len() == 1 {
            // An id naming an image with one tag removes the tag as well, once it may go.
            let check = Check {
                references: false,
                stopped: !force,
            };
            if let Some(c) = self.delete_conflict(&image, &check).await? {
                return Err(c.into_error(&image.id));
            }
            for tag in &image.repo_tags {
                self.untag_one(&image.id, Reference::parse(tag)?, &mut out)
                    .await?;
            }
        }
        self.delete_chain(&image.id, force, prune, false, &mut out)
            .await?;
        Ok(out)
    }

    /// Deletes `id` (its tags too), then with `prune` each parent in turn, quietly, until
    /// one is still needed. A `quiet` first step skips the image instead of failing when it
    /// is tagged, has children, or a container uses it.
    async fn delete_chain(
        &self,
        id: &str,
        force: bool,
        prune: bool,
        quiet: bool,
        out: &mut Vec<Deleted>,
    ) -> Result<()> {
        let (mut id, mut force, mut quiet) = (id.to_string(), force, quiet);
        loop {
            let image = match self.image(&id).await {
                Ok(image) => image,
                // Gone meanwhile (another rmi): nothing left to do quietly.
                Err(Error::NotFound(_)) if quiet => return Ok(()),
                Err(e) => return Err(e),
            };
            let check = Check {
                references: !force,
                stopped: !force,
            };
            if let Some(c) = self.delete_conflict(&image, &check).await? {
                let dangling = image.repo_tags.is_empty() && !self.has_children(&image.id).await?;
                if quiet && (!dangling || c.used) {
                    return Ok(());
                }
                return Err(c.into_error(&image.id));
            }
            for tag in &image.repo_tags {
                self.untag_one(&image.id, Reference::parse(tag)?, out)
                    .await?;
            }
            // A forced delete of an image stopped containers were made from removes it as
            // Docker does, but its layers stay for those containers until the last goes.
            let holders: Vec<String> = self
                .image_users(&image.id)
                .into_iter()
                .map(|(cid, _)| cid)
                .collect();
            let (store, del) = (self.store.clone(), image.id.clone());
            let freed = blocking(move || {
                if holders.is_empty() {
                    store.delete(&del).map_err(Error::from)
                } else {
                    store.delete_for_containers(&del, &holders)?;
                    Ok(Vec::new())
                }
            })
            .await?;
            self.image_event(&image.id, &image.id, "delete");
            out.push(Deleted::Deleted(image.id.clone()));
            out.extend(freed.into_iter().map(Deleted::Deleted));
            match image.parent {
                Some(parent) if prune => (id, force, quiet) = (parent, false, true),
                _ => return Ok(()),
            }
        }
    }

    async fn untag_one(
        &self,
        id: &str,
        reference: Reference,
        out: &mut Vec<Deleted>,
    ) -> Result<()> {
        let (store, untag) = (self.store.clone(), reference.clone());
        blocking(move || store.untag(&untag).map(drop).map_err(Error::from)).await?;
        self.image_event(id, id, "untag");
        out.push(Deleted::Untagged(reference.to_string()));
        Ok(())
    }

    /// moby's `checkImageDeleteConflict`: children, running containers, then (as `check`
    /// asks) tags and stopped containers.
    async fn delete_conflict(&self, image: &Image, check: &Check) -> Result<Option<Conflict>> {
        if self.has_children(&image.id).await? {
            let message = "image has dependent child images".to_string();
            return Ok(Some(Conflict {
                hard: true,
                used: false,
                message,
            }));
        }
        let users = self.image_users(&image.id);
        if let Some((cid, _)) = users.iter().find(|(_, running)| *running) {
            let message = format!(
                "image is being used by running container {}",
                short_cid(cid)
            );
            return Ok(Some(Conflict {
                hard: true,
                used: true,
                message,
            }));
        }
        if check.references && !image.repo_tags.is_empty() {
            let message = "image is referenced in multiple repositories".to_string();
            return Ok(Some(Conflict {
                hard: false,
                used: false,
                message,
            }));
        }
        if let Some((cid, _)) = users.first().filter(|_| check.stopped) {
            let message = format!(
                "image is being used by stopped container {}",
                short_cid(cid)
            );
            return Ok(Some(Conflict {
                hard: false,
                used: true,
                message,
            }));
        }
        Ok(None)
    }

    /// Containers made from the image: (full id, which is also its rootfs key; running).
    fn image_users(&self, id: &str) -> Vec<(String, bool)> {
        self.all_containers()
            .iter()
            .map(|c| lock(&c.rec).clone())
            .filter(|r| r.image_id == id)
            .map(|r| (r.id, r.state.status == crate::state::Status::Running))
            .collect()
    }

    async fn has_children(&self, id: &str) -> Result<bool> {
        Ok(self
            .images()
            .await?
            .iter()
            .any(|i| i.parent.as_deref() == Some(id)))
    }

    /// `POST /images/prune`: removes dangling images (with `dangling=false`, all images) that
    /// nothing holds, as moby does: untagged images with children are left to their
    /// children's deletion, which prunes them as parents.
    pub async fn prune_images(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<PruneReport> {
        let mut dangling_only = true;
        let mut until = None;
        let (mut labels, mut not_labels) = (Vec::new(), Vec::new());
        let now = chrono::Utc::now().timestamp();
        for (key, values) in filters {
            match key.as_str() {
                "dangling" => dangling_only = bool_filter(key, values)?.unwrap_or(true),
                "until" => {
                    for v in values {
                        until = Some(parse_until(v, now)?);
                    }
                }
                "label" => labels = values.clone(),
                "label!" => not_labels = values.clone(),
                _ => return Err(Error::InvalidParameter(format!("Invalid filter '{key}'"))),
            }
        }
        let all = self.images().await?;
        let parents: HashSet<&str> = all.iter().filter_map(|i| i.parent.as_deref()).collect();
        // Sizes are read before anything goes: a freed layer's row goes with it.
        let store = self.store.clone();
        let images = all.clone();
        let layer_sizes: HashMap<String, u64> = blocking(move || {
            let mut sizes = HashMap::new();
            for i in &images {
                sizes.extend(store.layer_sizes(i)?);
            }
            Ok(sizes)
        })
        .await?;
        // Newest first, so children go before the parents they were committed from.
        let doomed: Vec<&Image> = all
            .iter()
            .filter(|i| !(dangling_only && parents.contains(i.id.as_str())))
            .filter(|i| !(i.repo_tags.is_empty() && parents.contains(i.id.as_str())))
            .filter(|i| !(dangling_only && !i.repo_tags.is_empty()))
            .filter(|i| until.is_none_or(|u| created_nanos(i) < i128::from(u) * 1_000_000_000))
            .filter(|i| labels_match(i, &labels, false) && labels_match(i, &not_labels, true))
            .collect();
        let mut report = PruneReport::default();
        for image in doomed {
            // Conflicts and images an earlier chain already took are skipped, as moby does.
            if image.repo_tags.is_empty() {
                let hex = image.id.trim_start_matches("sha256:");
                if let Ok(d) = self.remove_image(hex, false, true).await {
                    report.deleted.extend(d);
                }
            } else {
                for tag in &image.repo_tags {
                    if let Ok(d) = self.remove_image(tag, false, true).await {
                        report.deleted.extend(d);
                    }
                }
            }
        }
        report.reclaimed = report
            .deleted
            .iter()
            .filter_map(|d| match d {
                Deleted::Deleted(chain) => layer_sizes.get(chain),
                Deleted::Untagged(_) => None,
            })
            .sum();
        Ok(report)
    }
}

/// A container's id as conflict messages name it.
fn short_cid(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// moby's `isImageIDPrefix`: whether `name` is how the id starts, with or without `sha256:`.
fn is_id_prefix(id: &str, name: &str) -> bool {
    id.starts_with(name) || id.trim_start_matches("sha256:").starts_with(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_prefixes_are_told_from_references() {
        let id = "sha256:4eabe0c0b004b69946abd6aa30c12acb2c36664f8d06624dc489e196081eae95";
        assert!(is_id_prefix(id, "4eabe0c0b004"));
        assert!(is_id_prefix(id, "sha256:4eab"));
        assert!(!is_id_prefix(id, "busybox"));
    }

    #[test]
    fn conflicts_read_as_dockers() {
        let id = "sha256:4eabe0c0b004b69946abd6aa30c12acb2c36664f8d06624dc489e196081eae95";
        let hard = Conflict {
            hard: true,
            used: false,
            message: "image has dependent child images".into(),
        };
        assert_eq!(
            hard.into_error(id).to_string(),
            "conflict: unable to delete 4eabe0c0b004 (cannot be forced) - image has dependent child images"
        );
        let soft = Conflict {
            hard: false,
            used: true,
            message: "image is being used by stopped container abc".into(),
        };
        assert!(soft.into_error(id).to_string().contains("(must be forced)"));
    }
}
