//! `.dockerignore` as Docker 20.10 reads and applies it (docker/cli `build/dockerignore.ReadAll`
//! and moby `pkg/fileutils.PatternMatcher`, the code later moved to moby/patternmatcher).
//!
//! Each pattern becomes a regular expression the way fileutils builds it: `**` spans any number
//! of path segments, `*` and `?` stay within one, `\` escapes the next character, `.` and `$`
//! are literal, and everything else (including `[...]` classes) is passed to the regex engine
//! as is. A path is excluded when the last pattern matching it, or matching one of its parent
//! directories (as many leading segments as the pattern has), is not a `!` exception.

use regex::Regex;

use crate::path::clean;

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned, without the leading '!'.
    text: String,
    exclusion: bool,
    /// How many '/'-separated segments `text` has (parent-dir matching uses that many).
    segments: usize,
    regex: Regex,
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

/// The pattern lines of a `.dockerignore` (docker/cli `ReadAll`): a UTF-8 BOM dropped, lines
/// starting with `#` skipped (only in column 1), blanks trimmed, paths cleaned, a leading `/`
/// dropped, `!` kept in front.
pub fn read_patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut p = String::new();
        if !pattern.is_empty() {
            p = clean(pattern);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
        }
        out.push(if invert { format!("!{p}") } else { p });
    }
    out
}

/// fileutils' pattern → regex translation.
fn to_regex(pattern: &str) -> String {
    let mut re = String::from("^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // "**/" is treated as "**".
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '.' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => {
                re.push('\\');
                if let Some(&next) = chars.get(i) {
                    re.push(next);
                    i += 1;
                }
            }
            _ => re.push(ch),
        }
    }
    re.push('$');
    re
}

impl Ignore {
    /// Compiles the text of a `.dockerignore`.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        Ignore::from_patterns(&read_patterns(text))
    }

    /// Compiles pattern lines (as `read_patterns` returns them), fileutils' `NewPatternMatcher`.
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Ignore, String> {
        let mut ignore = Ignore::default();
        for p in patterns {
            ignore.push(p.as_ref())?;
        }
        Ok(ignore)
    }

    /// Adds one pattern after the others (the CLI appends `!Dockerfile` this way).
    pub fn push(&mut self, pattern: &str) -> Result<(), String> {
        let p = pattern.trim();
        if p.is_empty() {
            return Ok(());
        }
        let mut p = clean(p);
        let exclusion = p.starts_with('!');
        if exclusion {
            if p.len() == 1 {
                return Err("illegal exclusion pattern: \"!\"".into());
            }
            p.remove(0);
        }
        let regex = Regex::new(&to_regex(&p)).map_err(|_| "syntax error in pattern".to_string())?;
        self.patterns.push(Pattern {
            segments: p.split('/').count(),
            text: p,
            exclusion,
            regex,
        });
        Ok(())
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether the context path `path` ('/'-separated, relative) is excluded.
    pub fn matches(&self, path: &str) -> bool {
        let parent = match path.rfind('/') {
            Some(i) => clean(&path[..i]),
            None => ".".to_string(),
        };
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            let mut hit = p.regex.is_match(path);
            if !hit && parent != "." && p.segments <= parent_dirs.len() {
                hit = p.regex.is_match(&parent_dirs[..p.segments].join("/"));
            }
            if hit {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// For an excluded directory: whether an exception could re-include something inside it,
    /// so the walk must still descend (the docker CLI's literal prefix test, kept as is).
    pub fn could_match_inside(&self, dir: &str) -> bool {
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.text).starts_with(&dir_slash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// moby pkg/fileutils TestMatches (20.10), the non-Windows table.
    #[test]
    fn moby_match_table() {
        let table: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a\\*b", "a*b", true),
            ("a\\", "a", false),
            ("a\\", "a\\", false),
        ];
        for (pattern, text, want) in table {
            let ig = Ignore::from_patterns(&[pattern]).unwrap();
            assert_eq!(ig.matches(text), *want, "pattern={pattern:?} text={text:?}");
        }
    }

    /// moby TestMatches* (single patterns, parent directories, exclusions).
    #[test]
    fn moby_matcher_cases() {
        let m = |pats: &[&str], file: &str| Ignore::from_patterns(pats).unwrap().matches(file);
        assert!(m(&["*.go"], "fileutils.go"));
        assert!(!m(&["*.md"], "fileutils.go"));
        assert!(!m(&[], "fileutils.go"));
        assert!(m(&["docs"], "docs/README.md"));
        assert!(!m(&["docs", "!docs/README.md"], "docs/README.md"));
        assert!(m(&["docs", "!docs/README.md"], "docs/other.md"));
        assert!(m(&["a/b"], "a/b/c/d"));
        assert!(!m(&["b"], "a/b"));
        assert!(m(&["*", "!keep", "keep/x"], "keep/x"));
        assert!(!m(&["*", "!keep"], "keep/x"));
        assert_eq!(
            Ignore::from_patterns(&["["]).unwrap_err(),
            "syntax error in pattern"
        );
        assert_eq!(
            Ignore::from_patterns(&["!"]).unwrap_err(),
            "illegal exclusion pattern: \"!\""
        );
    }

    /// docker/cli builder/dockerignore TestReadAll.
    #[test]
    fn read_all() {
        let text = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! \n";
        assert_eq!(
            read_patterns(text),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        assert_eq!(
            read_patterns("\u{feff}x\r\n  # not a comment\n./a/../b/\n/"),
            ["x", "# not a comment", "b", "/"]
        );
        assert!(Ignore::parse(text).is_err());
    }

    #[test]
    fn exceptions_inside_excluded_dirs() {
        let ig = Ignore::parse("dir\n!dir/keep/file\n").unwrap();
        assert!(ig.matches("dir"));
        assert!(ig.could_match_inside("dir"));
        assert!(ig.could_match_inside("dir/keep"));
        assert!(!ig.could_match_inside("dir/other"));
        assert!(!ig.matches("dir/keep/file"));
        assert!(ig.matches("dir/keep/other"));
        assert!(!Ignore::parse("dir\n").unwrap().could_match_inside("dir"));
    }
}
