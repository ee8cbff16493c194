//! Image references with Docker's normalisation: "busybox" is "docker.io/library/busybox:latest".
//!
//! The grammar follows distribution/reference: `[domain/]path[:tag][@digest]`, where the first
//! component is a domain only if it looks like one (has '.' or ':', is "localhost", or has an
//! uppercase letter), because "user/app" on Docker Hub must keep meaning docker.io/user/app.

use std::fmt;

use crate::error::Error;

/// Docker Hub's canonical domain; "index.docker.io" is normalised to it.
const DEFAULT_DOMAIN: &str = "docker.io";
/// Official images live under this namespace on Docker Hub.
const OFFICIAL_NAMESPACE: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

const INVALID_FORMAT: &str = "invalid reference format";

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn invalid() -> Error {
    Error::InvalidReference(INVALID_FORMAT.to_string())
}

impl Reference {
    /// Parses and normalises a reference. A reference with neither tag nor digest gets ":latest".
    pub fn parse(s: &str) -> Result<Reference, Error> {
        if s.is_empty() {
            return Err(invalid());
        }
        if s.len() == 64 && crate::digest::is_lower_hex(s) {
            return Err(Error::InvalidReference(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                if !valid_digest(d) {
                    return Err(invalid());
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A ':' after the last '/' separates the tag; one before it is a registry port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => {
                let tag = &rest[i + 1..];
                if !valid_tag(tag) {
                    return Err(invalid());
                }
                (&rest[..i], Some(tag.to_string()))
            }
            _ => (rest, None),
        };
        if name.is_empty() {
            return Err(invalid());
        }
        if name.len() > NAME_MAX {
            return Err(Error::InvalidReference(format!(
                "{INVALID_FORMAT}: repository name must not be more than {NAME_MAX} characters"
            )));
        }
        let (mut domain, path) = split_domain(name);
        if !valid_domain(domain) {
            return Err(invalid());
        }
        if domain == "index.docker.io" {
            domain = DEFAULT_DOMAIN;
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::InvalidReference(format!(
                "{INVALID_FORMAT}: repository name must be lowercase"
            )));
        }
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(invalid());
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_NAMESPACE}{path}")
        } else {
            path.to_string()
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            _ => tag,
        };
        Ok(Reference {
            domain: domain.to_string(),
            path,
            tag,
            digest,
        })
    }

    /// Registry domain, e.g. "docker.io" or "localhost:5000".
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path within the registry, e.g. "library/busybox".
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any ("latest" is filled in when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest ("sha256:…"), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Full repository name without tag or digest: "docker.io/library/busybox".
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Repository name as Docker shows it: "busybox", "user/app", "localhost:5000/a/b".
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_NAMESPACE) {
                Some(short) if !short.contains('/') => short.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// Docker's short form, "busybox:latest"; this is also `Display`.
    pub fn familiar(&self) -> String {
        self.with_suffix(self.familiar_name())
    }

    /// Fully qualified form, "docker.io/library/busybox:latest".
    pub fn full(&self) -> String {
        self.with_suffix(self.name())
    }

    fn with_suffix(&self, mut s: String) -> String {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Reference::parse(s)
    }
}

/// Docker's rule for telling "registry/repo" from "user/repo".
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DEFAULT_DOMAIN, name),
    }
}

/// host[:port], host = dot-separated labels of [A-Za-z0-9-] not starting or ending with '-'.
fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// [a-z0-9]+ joined by one '.', one or two '_', or any number of '-'.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// [\w][\w.-]{0,127}
fn valid_tag(t: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= TAG_MAX
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// algorithm:encoded, with the lengths the registries actually use.
fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let want = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == want && crate::digest::is_lower_hex(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_like_docker() {
        // input, full, familiar
        let d_full = format!("docker.io/library/x@{D}");
        let d_fam = format!("x@{D}");
        let dt_full = format!("docker.io/library/x:v1@{D}");
        let dt_fam = format!("x:v1@{D}");
        let dref = format!("x@{D}");
        let dtref = format!("x:v1@{D}");
        let cases: Vec<(&str, &str, &str)> = vec![
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:latest",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "library/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "index.docker.io/busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
            (
                "docker.io/user/app",
                "docker.io/user/app:latest",
                "user/app:latest",
            ),
            ("a/b/c", "docker.io/a/b/c:latest", "a/b/c:latest"),
            (
                "localhost/foo",
                "localhost/foo:latest",
                "localhost/foo:latest",
            ),
            (
                "localhost:5000/a/b:v1",
                "localhost:5000/a/b:v1",
                "localhost:5000/a/b:v1",
            ),
            (
                "myreg:5000/x/y:v1",
                "myreg:5000/x/y:v1",
                "myreg:5000/x/y:v1",
            ),
            ("foo.com/bar", "foo.com/bar:latest", "foo.com/bar:latest"),
            ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
            (
                "localhost:5000",
                "docker.io/library/localhost:5000",
                "localhost:5000",
            ),
            (
                "a__b.c-----d_e",
                "docker.io/library/a__b.c-----d_e:latest",
                "a__b.c-----d_e:latest",
            ),
            ("x:V1_.-", "docker.io/library/x:V1_.-", "x:V1_.-"),
            (&dref, &d_full, &d_fam),
            (&dtref, &dt_full, &dt_fam),
        ];
        for (input, full, familiar) in cases {
            let r = Reference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.full(), full, "full of {input}");
            assert_eq!(r.familiar(), familiar, "familiar of {input}");
            assert_eq!(r.to_string(), familiar);
        }
    }

    #[test]
    fn accessors() {
        let r = Reference::parse("localhost:5000/a/b:v1").unwrap();
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "a/b");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.digest(), None);
        let r = Reference::parse(&format!("x@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(D));
    }

    #[test]
    fn rejects_like_docker() {
        let long_tag = format!("x:{}", "a".repeat(129));
        let long_name = "a".repeat(256);
        let cases: Vec<(&str, &str)> = vec![
            ("", INVALID_FORMAT),
            ("Busybox", "invalid reference format: repository name must be lowercase"),
            ("docker.io/Library/busybox", "invalid reference format: repository name must be lowercase"),
            ("busybox:", INVALID_FORMAT),
            (":tag", INVALID_FORMAT),
            ("a//b", INVALID_FORMAT),
            ("/a", INVALID_FORMAT),
            ("a/", INVALID_FORMAT),
            ("-abc", INVALID_FORMAT),
            ("abc-", INVALID_FORMAT),
            ("a...b", INVALID_FORMAT),
            ("a___b", INVALID_FORMAT),
            ("busybox:la@st", INVALID_FORMAT),
            ("busybox@sha256:abc", INVALID_FORMAT),
            ("busybox@md5:abc", INVALID_FORMAT),
            ("x:.tag", INVALID_FORMAT),
            ("a b", INVALID_FORMAT),
            ("-reg.com/x", INVALID_FORMAT),
            ("reg.com:/x", INVALID_FORMAT),
            (&long_tag, INVALID_FORMAT),
            (&long_name, "invalid reference format: repository name must not be more than 255 characters"),
            (
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "invalid repository name (e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855), cannot specify 64-byte hexadecimal strings",
            ),
        ];
        for (input, msg) in cases {
            match Reference::parse(input) {
                Err(Error::InvalidReference(m)) => assert_eq!(m, msg, "message for {input:?}"),
                other => panic!("{input:?} gave {other:?}"),
            }
        }
    }
}
