//! sha256 digests in their OCI string form ("sha256:<64 lowercase hex>") and layer chain IDs.

use sha2::{Digest as _, Sha256};

/// The only algorithm the store writes; the prefix of every digest string it hands out.
pub(crate) const SHA256_PREFIX: &str = "sha256:";

/// Digest string of `bytes`.
pub(crate) fn sha256_of(bytes: &[u8]) -> String {
    format_digest(Sha256::digest(bytes).as_slice())
}

/// "sha256:<hex>" from a raw hash.
pub(crate) fn format_digest(raw: &[u8]) -> String {
    format!("{SHA256_PREFIX}{}", hex::encode(raw))
}

/// True for lowercase hex only: digests are compared as strings, so "ABC" must not alias "abc".
pub(crate) fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The hex part of a well-formed sha256 digest, or None. Everything that turns a digest into a
/// file name goes through here, so a hostile digest can never become a path.
pub(crate) fn hex_part(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix(SHA256_PREFIX)?;
    (hex.len() == 64 && is_lower_hex(hex)).then_some(hex)
}

/// OCI chain ID: the first layer's is its diff ID; each next one is sha256("<parent> <diffID>").
pub(crate) fn chain_id(parent: Option<&str>, diff_id: &str) -> String {
    match parent {
        None => diff_id.to_string(),
        Some(p) => sha256_of(format!("{p} {diff_id}").as_bytes()),
    }
}

/// Chain IDs of a whole layer stack, bottom first.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id(out.last().map(String::as_str), d);
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty() {
        assert_eq!(
            sha256_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hex_part_rejects_bad_digests() {
        let good = sha256_of(b"x");
        assert!(hex_part(&good).is_some());
        assert!(hex_part("sha256:../../etc").is_none());
        assert!(hex_part(&good.to_uppercase()).is_none());
        assert!(hex_part(&good[..70]).is_none());
        assert!(hex_part(&good.replace("sha256:", "sha512:")).is_none());
    }

    #[test]
    fn chain_ids_follow_oci() {
        let a = sha256_of(b"a");
        let b = sha256_of(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], sha256_of(format!("{a} {b}").as_bytes()));
    }
}
