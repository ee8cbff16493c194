//! HTTP basic authentication against an htpasswd file of bcrypt entries (`htpasswd -B`), the
//! only kind Distribution accepts. bcrypt is slow on purpose, and a docker push sends dozens
//! of requests with the same credentials, so verified credentials are remembered (as a hash,
//! never the password) for the life of the process.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// Distribution's challenge realm for htpasswd auth is configurable; ours is fixed.
pub const REALM: &str = "berth-registry";

/// Users and their bcrypt hashes.
pub struct Htpasswd {
    users: HashMap<String, String>,
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Htpasswd {
    /// Reads `user:hash` lines; blank lines and `#` comments are skipped. Entries that are
    /// not bcrypt are refused, as Distribution refuses them.
    pub fn load(path: &Path) -> anyhow::Result<Htpasswd> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read htpasswd file {}: {e}", path.display()))?;
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                anyhow::bail!("{}:{}: not a user:hash line", path.display(), n + 1);
            };
            if !hash.starts_with("$2") {
                anyhow::bail!(
                    "{}:{}: only bcrypt entries are supported (htpasswd -B)",
                    path.display(),
                    n + 1
                );
            }
            users.insert(user.to_string(), hash.to_string());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// True when the `Authorization` header carries a known user and its password.
    pub async fn check(&self, authorization: Option<&str>) -> bool {
        let Some((user, password)) = authorization.and_then(parse_basic) else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            return false;
        };
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .chain_update([0])
            .chain_update(hash.as_bytes())
            .finalize()
            .into();
        if self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&key)
        {
            return true;
        }
        let hash = hash.clone();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            self.verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
        }
        ok
    }
}

/// `Basic <base64 user:password>` → (user, password).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bcrypt_entries_check_basic_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        std::fs::write(&path, format!("# users\nalice:{hash}\n")).unwrap();
        let h = Htpasswd::load(&path).unwrap();
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert!(h.check(Some(&basic("alice:s3cret"))).await);
        assert!(h.check(Some(&basic("alice:s3cret"))).await, "cached");
        assert!(!h.check(Some(&basic("alice:wrong"))).await);
        assert!(!h.check(Some(&basic("bob:s3cret"))).await);
        assert!(!h.check(Some("Bearer x")).await);
        assert!(!h.check(None).await);
        std::fs::write(&path, "alice:{SHA}abc\n").unwrap();
        assert!(Htpasswd::load(&path).is_err());
    }
}
