//! Turns a request path into the endpoint it names. Repository names contain slashes, so the
//! endpoint is found from the right-hand end, as Distribution's router does.

/// An endpoint of the distribution API, with its (not yet validated) path parameters.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: &'a str },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: &'a str, reference: &'a str },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: &'a str, digest: &'a str },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: &'a str },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: &'a str, id: &'a str },
    /// `/v2/<name>/referrers/<digest>` (OCI 1.1)
    Referrers { name: &'a str, digest: &'a str },
}

/// The route for `path`, or None (answered with Distribution's plain 404).
pub fn parse(path: &str) -> Option<Route<'_>> {
    let rest = if path == "/v2" {
        ""
    } else {
        path.strip_prefix("/v2/")?
    };
    if rest.is_empty() {
        return Some(Route::Base);
    }
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags { name });
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::UploadStart { name });
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        if !id.contains('/') {
            return Some(Route::Upload { name, id });
        }
    }
    if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        if !digest.contains('/') {
            return Some(Route::Blob { name, digest });
        }
    }
    if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        if !digest.contains('/') {
            return Some(Route::Referrers { name, digest });
        }
    }
    if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        if !reference.contains('/') {
            return Some(Route::Manifest { name, reference });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_endpoints() {
        assert_eq!(parse("/v2/"), Some(Route::Base));
        assert_eq!(parse("/v2"), Some(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(
            parse("/v2/a/b/tags/list"),
            Some(Route::Tags { name: "a/b" })
        );
        assert_eq!(
            parse("/v2/a/manifests/v1"),
            Some(Route::Manifest {
                name: "a",
                reference: "v1"
            })
        );
        assert_eq!(
            parse("/v2/x/blobs/sha256:ab"),
            Some(Route::Blob {
                name: "x",
                digest: "sha256:ab"
            })
        );
        assert_eq!(
            parse("/v2/x/y/blobs/uploads/"),
            Some(Route::UploadStart { name: "x/y" })
        );
        assert_eq!(
            parse("/v2/x/blobs/uploads/u1"),
            Some(Route::Upload {
                name: "x",
                id: "u1"
            })
        );
        assert_eq!(
            parse("/v2/blobs/manifests/blobs"),
            Some(Route::Manifest {
                name: "blobs",
                reference: "blobs"
            })
        );
        assert_eq!(
            parse("/v2/x/referrers/sha256:ab"),
            Some(Route::Referrers {
                name: "x",
                digest: "sha256:ab"
            })
        );
        assert_eq!(parse("/v1/x"), None);
        assert_eq!(parse("/v2/x"), None);
    }
}
