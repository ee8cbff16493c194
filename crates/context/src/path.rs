//! Paths as Go and Docker treat them: Go's `path.Clean`, and paths inside a context (or an
//! image's files) with their symlinks followed without leaving the root, as Docker's
//! `FollowSymlinkInScope` (`..` and absolute link targets stop at the root instead of
//! escaping it).

use std::collections::VecDeque;

use crate::EntryKind;

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Why a path does not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveError {
    NotFound,
    /// A component with more path after it is not a directory.
    NotADirectory,
    /// More than 255 symlinks on the way (a loop, most likely).
    TooManyLinks,
}

/// `path` (relative or not, clean or not) with the symlinks on the way followed inside the
/// root, the last component's too when `follow_last`. `lookup` gives the kind and symlink
/// target of a clean relative path. Returns the clean relative path reached ("" is the root);
/// every path it returns other than the root was found by `lookup`.
pub fn resolve_in_scope(
    path: &str,
    follow_last: bool,
    mut lookup: impl FnMut(&str) -> Option<(EntryKind, String)>,
) -> Result<String, ResolveError> {
    let mut todo: VecDeque<String> = path.split('/').map(String::from).collect();
    let mut at: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                at.pop();
                continue;
            }
            _ => at.push(c),
        }
        let (kind, target) = lookup(&at.join("/")).ok_or(ResolveError::NotFound)?;
        let more = todo.iter().any(|t| !t.is_empty() && t != ".");
        match kind {
            EntryKind::Symlink if follow_last || more => {
                links += 1;
                if links > 255 {
                    return Err(ResolveError::TooManyLinks);
                }
                at.pop();
                if target.starts_with('/') {
                    at.clear();
                }
                for t in target.split('/').rev() {
                    todo.push_front(t.to_string());
                }
            }
            EntryKind::Dir => {}
            _ if more => return Err(ResolveError::NotADirectory),
            _ => {}
        }
    }
    Ok(at.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// d/ f l->d/f up->../../d abs->/d loop->loop
    fn lookup(p: &str) -> Option<(EntryKind, String)> {
        let (kind, target) = match p {
            "d" => (EntryKind::Dir, ""),
            "d/f" | "f" => (EntryKind::File, ""),
            "l" => (EntryKind::Symlink, "d/f"),
            "up" => (EntryKind::Symlink, "../../d"),
            "abs" => (EntryKind::Symlink, "/d"),
            "loop" => (EntryKind::Symlink, "loop"),
            _ => return None,
        };
        Some((kind, target.to_string()))
    }

    #[test]
    fn links_are_followed_inside_the_root() {
        let r = |p, last| resolve_in_scope(p, last, lookup);
        assert_eq!(r("l", true), Ok("d/f".into()));
        assert_eq!(r("l", false), Ok("l".into()));
        assert_eq!(r("./up/f", false), Ok("d/f".into()));
        assert_eq!(r("/abs/../abs/f", true), Ok("d/f".into()));
        assert_eq!(r("../..", true), Ok("".into()));
        assert_eq!(r("up/", false), Ok("up".into()));
    }

    #[test]
    fn misses_say_why() {
        let r = |p, last| resolve_in_scope(p, last, lookup);
        assert_eq!(r("d/nope", true), Err(ResolveError::NotFound));
        assert_eq!(r("f/x", true), Err(ResolveError::NotADirectory));
        assert_eq!(r("f/..", true), Err(ResolveError::NotADirectory));
        assert_eq!(r("f/.", true), Ok("f".into()));
        assert_eq!(r("loop", true), Err(ResolveError::TooManyLinks));
        assert_eq!(r("loop", false), Ok("loop".into()));
    }

    #[test]
    fn go_clean() {
        for (a, b) in [
            ("", "."),
            ("a/../..", ".."),
            ("/../a/", "/a"),
            ("./x//y/.", "x/y"),
            ("/", "/"),
        ] {
            assert_eq!(clean(a), b, "{a}");
        }
    }
}
