//! Validation of everything a request names: repositories, tags, digests and upload IDs.
//! Every value that becomes part of a path passes through here first, and each accepted form
//! is made only of `[a-z0-9._-]` (plus `/` between name components that cannot be `.` or
//! `..`), so hostile input can never reach a path outside the registry root.

/// Distribution's limit on a repository name.
const MAX_NAME_LEN: usize = 255;

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*(?:/<same>)*`, at most 255 characters.
pub fn is_repo_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(is_name_component)
}

fn is_name_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    match bytes.first() {
        Some(&b) if word(b) => {}
        _ => return false,
    }
    bytes.len() <= 128 && bytes.iter().all(|&b| word(b) || b == b'.' || b == b'-')
}

/// The hex of a well-formed "sha256:<64 lowercase hex>", the only algorithm stored.
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let ok = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(hex)
}

/// True for something that looks like a digest of any algorithm ("alg:encoded"), which a
/// manifest reference is taken as, rather than a tag.
pub fn looks_like_digest(reference: &str) -> bool {
    reference.contains(':')
}

/// A new upload ID in UUID v4 form.
pub fn new_upload_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// True for an ID of the form `new_upload_id` makes.
pub fn is_upload_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_distribution() {
        for ok in ["a", "library/busybox", "a.b_c__d---e/f0", "x/y/z", "9"] {
            assert!(is_repo_name(ok), "{ok}");
        }
        for bad in [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "..",
            "a/../b",
            "a/.b",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "a b",
            "a%2fb",
            "_x",
            &"a".repeat(256),
        ] {
            assert!(!is_repo_name(bad), "{bad}");
        }
    }

    #[test]
    fn tags_digests_and_upload_ids() {
        assert!(is_tag("latest") && is_tag("v1.0-rc_1") && is_tag("_x"));
        assert!(
            !is_tag("")
                && !is_tag(".x")
                && !is_tag("-x")
                && !is_tag("a/b")
                && !is_tag(&"a".repeat(129))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(digest_hex(&d), Some("a".repeat(64).as_str()));
        assert!(digest_hex(&format!("sha256:{}", "A".repeat(64))).is_none());
        assert!(digest_hex("sha256:../../etc").is_none());
        assert!(digest_hex(&format!("sha512:{}", "a".repeat(64))).is_none());
        let id = new_upload_id();
        assert!(is_upload_id(&id), "{id}");
        assert!(!is_upload_id("../../../../../../etc/passwd-xxxxxxx"));
    }
}
