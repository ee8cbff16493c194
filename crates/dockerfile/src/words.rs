//! Shell-word processing of Dockerfile arguments: a Rust port of BuildKit's
//! `frontend/dockerfile/shell/lex.go` (`ProcessWord` / `ProcessWords`), written anew.
//!
//! Quotes are removed, `$a` / `${a}` and the `${a<modifier>word}` forms are expanded against the
//! step's environment, and the escape character (`\` or the `# escape=` one) escapes the next
//! character outside single quotes. `process_words` also splits on blanks (EXPOSE only).
use std::collections::HashMap;

use crate::gofmt::go_quote;

/// The environment a word is expanded against.
pub trait Env {
    fn get(&self, name: &str) -> Option<String>;
}

impl Env for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// `K=V` entries as in a container config's Env; the last one wins as in BuildKit's
/// `BuildEnvs`, and an entry without `=` is set to "".
impl Env for [String] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().rev().find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            (k == name).then(|| v.to_string())
        })
    }
}

impl Env for Vec<String> {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(self.as_slice(), name)
    }
}

/// Display: BuildKit's text, e.g. `failed to process "${A:?}": A: is not allowed to be unset`.
impl Env for &[String] {
    fn get(&self, name: &str) -> Option<String> {
        Env::get(*self, name)
    }
}

/// Any lookup function as an environment (e.g. the config's Env plus the allowed build args).
pub struct FnEnv<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> Env for FnEnv<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WordError(pub String);

/// Expands and unquotes `word` (ADD, COPY, ENV, LABEL, USER, WORKDIR, ... arguments).
pub fn process_word(word: &str, env: &dyn Env, escape: char) -> Result<String, WordError> {
    Lexer::new(word, env, escape).run(word).map(|(w, _)| w)
}

/// Like `process_word`, then split into words on blanks outside quotes (EXPOSE).
pub fn process_words(word: &str, env: &dyn Env, escape: char) -> Result<Vec<String>, WordError> {
    Lexer::new(word, env, escape).run(word).map(|(_, ws)| ws)
}

/// Words being split on unquoted blanks: what a variable expands to is split too, a quoted
/// string is not.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }
    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    escape: char,
    /// Keep escape characters in the result (patterns of `#`, `%`, `/` need them).
    raw_escapes: bool,
}

type Res<T> = Result<T, String>;

impl<'a> Lexer<'a> {
    fn new(word: &str, env: &'a dyn Env, escape: char) -> Self {
        Lexer {
            chars: word.chars().collect(),
            pos: 0,
            env,
            escape,
            raw_escapes: false,
        }
    }

    fn run(mut self, source: &str) -> Result<(String, Vec<String>), WordError> {
        self.process_stop_on(None, false)
            .map_err(|e| WordError(format!("failed to process {}: {e}", go_quote(source))))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += c.is_some() as usize;
        c
    }

    /// Processes up to `stop` (consumed) or the end of the word; `stop` not found is an error.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let r = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn process_stop_on_inner(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                    words.add_string(&v);
                }
                '\'' | '"' => {
                    let v = if ch == '\'' {
                        self.process_single_quote()?
                    } else {
                        self.process_double_quote()?
                    };
                    result.push_str(&v);
                    words.add_raw_string(&v);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // A trailing lone escape is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Err(format!(
                "unexpected end of statement while looking for matching {c}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// `'…'`: everything literal up to the next single quote.
    fn process_single_quote(&mut self) -> Res<String> {
        self.next();
        let mut result = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => return Ok(result),
                Some(c) => result.push(c),
            }
        }
    }

    /// `"…"`: `$` expands; the escape character escapes only `"`, `$` and itself.
    fn process_double_quote(&mut self) -> Res<String> {
        self.next();
        let mut result = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    return Ok(result);
                }
                Some('$') => result.push_str(&self.process_dollar()?),
                Some(mut ch) => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.escape => {
                                ch = c;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Res<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.env.get(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut modifier = ch.to_string();
        match ch {
            '}' => Ok(self.env.get(&name).unwrap_or_default()),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = ch == ':';
                if null_is_unset {
                    let Some(c) = self.next() else {
                        return Err("syntax error: missing '}'".into());
                    };
                    ch = c;
                    modifier.push(c);
                }
                let (word, _) = self
                    .process_stop_on(Some('}'), ch == '#' || ch == '%')
                    .map_err(|e| {
                        if self.peek().is_none() {
                            "syntax error: missing '}'".to_string()
                        } else {
                            e
                        }
                    })?;
                let value = self.env.get(&name);
                let unset_or_null =
                    value.is_none() || (null_is_unset && value.as_deref() == Some(""));
                match ch {
                    '-' => Ok(if unset_or_null {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if unset_or_null { String::new() } else { word }),
                    '?' => match value {
                        None => Err(format!(
                            "{name}: {}",
                            or_default(word, "is not allowed to be unset")
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            or_default(word, "is not allowed to be empty")
                        )),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        // `#`/`%` remove the shortest matching prefix/suffix, `##`/`%%` the longest.
                        let (greedy, pattern) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let value = value.unwrap_or_default();
                        let tokens = parse_pattern(&pattern)?;
                        Ok(if ch == '#' {
                            trim_prefix(&tokens, &value, greedy)
                        } else {
                            trim_suffix(&tokens, &value, greedy)
                        })
                    }
                    _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let (pattern, _) = self.process_stop_on(Some('/'), true).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '/' in ${}".to_string()
                    } else {
                        e
                    }
                })?;
                let (replacement, _) = self.process_stop_on(Some('}'), true).map_err(|e| {
                    if self.peek().is_none() {
                        "syntax error: missing '}'".to_string()
                    } else {
                        e
                    }
                })?;
                let value = self.env.get(&name).unwrap_or_default();
                let tokens = parse_pattern(&pattern)?;
                Ok(replace(&tokens, &value, &replacement, replace_all))
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    /// A variable name: letters, digits and `_`; or all digits (positional parameters); or one
    /// special parameter character (`@*#?-$!0`). None of those is ever set in a Dockerfile.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(d) = self.peek().filter(|c| c.is_numeric()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphanumeric() && ch != '_' {
                break;
            }
            name.push(ch);
            self.next();
        }
        name
    }
}

fn or_default(word: String, default: &str) -> String {
    if word.is_empty() {
        default.to_string()
    } else {
        word
    }
}

/// A shell pattern of `${a#p}` & co: `*` any string, `?` any character, `\` escapes `*`, `?`,
/// `\` (and is dropped before `}` and `/`, which had to be escaped inside `${}`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

fn parse_pattern(pattern: &str) -> Res<Vec<Tok>> {
    let invalid = |c: Option<char>| {
        let shown = c.map(String::from).unwrap_or_default();
        format!("invalid pattern ({pattern}) in substitution: invalid escape '\\{shown}'")
    };
    let mut out = Vec::new();
    let mut it = pattern.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::Any),
            '\\' => match it.peek() {
                Some('}' | '/') => {}
                _ => match it.next() {
                    Some(e @ ('*' | '?' | '\\')) => out.push(Tok::Lit(e)),
                    other => return Err(invalid(other)),
                },
            },
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

/// Whether `toks` matches all of `s`.
fn matches_all(toks: &[Tok], s: &[char]) -> bool {
    match toks.split_first() {
        None => s.is_empty(),
        Some((Tok::Star, rest)) => (0..=s.len()).any(|i| matches_all(rest, &s[i..])),
        Some((Tok::Any, rest)) => !s.is_empty() && matches_all(rest, &s[1..]),
        Some((Tok::Lit(c), rest)) => s.first() == Some(c) && matches_all(rest, &s[1..]),
    }
}

/// Length of the shortest (or longest) prefix of `s` that `toks` matches.
fn prefix_match(toks: &[Tok], s: &[char], greedy: bool) -> Option<usize> {
    let mut lens = 0..=s.len();
    let found = |&n: &usize| matches_all(toks, &s[..n]);
    if greedy {
        lens.rev().find(found)
    } else {
        lens.find(found)
    }
}

fn trim_prefix(toks: &[Tok], value: &str, greedy: bool) -> String {
    let s: Vec<char> = value.chars().collect();
    match prefix_match(toks, &s, greedy) {
        Some(n) => s[n..].iter().collect(),
        None => value.to_string(),
    }
}

/// The suffix case is the prefix case on the reversed pattern and value.
fn trim_suffix(toks: &[Tok], value: &str, greedy: bool) -> String {
    let rtoks: Vec<Tok> = toks.iter().rev().copied().collect();
    let rs: Vec<char> = value.chars().rev().collect();
    match prefix_match(&rtoks, &rs, greedy) {
        Some(n) => rs[n..].iter().rev().collect(),
        None => value.to_string(),
    }
}

/// `${a/p/r}` (first match) and `${a//p/r}` (all): leftmost, longest matches as Go's regexp
/// with greedy wildcards finds them.
fn replace(toks: &[Tok], value: &str, replacement: &str, all: bool) -> String {
    let s: Vec<char> = value.chars().collect();
    if !all {
        return match (0..=s.len()).find_map(|i| prefix_match(toks, &s[i..], true).map(|n| (i, n))) {
            Some((i, n)) => s[..i]
                .iter()
                .chain(replacement.chars().collect::<Vec<_>>().iter())
                .chain(&s[i + n..])
                .collect(),
            None => value.to_string(),
        };
    }
    // Go's ReplaceAllString: non-overlapping; an empty match right after a match is skipped;
    // the replacement is a template where `$name` (no groups here) becomes "" and `$$` is `$`.
    let rep = go_expand_template(replacement);
    let mut out = String::new();
    let (mut i, mut last_end) = (0, None);
    while i <= s.len() {
        match prefix_match(toks, &s[i..], true) {
            Some(n) if !(n == 0 && last_end == Some(i)) => {
                out.push_str(&rep);
                if n == 0 {
                    if let Some(c) = s.get(i) {
                        out.push(*c);
                    }
                    i += 1;
                } else {
                    i += n;
                    last_end = Some(i);
                }
            }
            _ => {
                if let Some(c) = s.get(i) {
                    out.push(*c);
                }
                i += 1;
            }
        }
    }
    out
}

/// Go's `Regexp.Expand` on a pattern without capture groups.
fn go_expand_template(t: &str) -> String {
    let mut out = String::new();
    let mut it = t.chars().peekable();
    while let Some(c) = it.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match it.peek() {
            Some('$') => {
                it.next();
                out.push('$');
            }
            Some('{') => {
                let rest: Vec<char> = it.clone().skip(1).collect();
                let name_len = rest
                    .iter()
                    .take_while(|c| c.is_alphanumeric() || **c == '_')
                    .count();
                if name_len > 0 && rest.get(name_len) == Some(&'}') {
                    it.nth(name_len + 1);
                } else {
                    out.push('$');
                }
            }
            Some(c) if c.is_alphanumeric() || *c == '_' => {
                while it.peek().is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                    it.next();
                }
            }
            _ => out.push('$'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(kv: &[&str]) -> Vec<String> {
        kv.iter().map(|s| s.to_string()).collect()
    }

    /// BuildKit's `frontend/dockerfile/shell/envVarTest` (moby/buildkit, Apache-2.0), run as
    /// in its `TestShellParser4EnvVars`: `platform|source|expected`, `error` = must fail.
    #[test]
    fn buildkit_env_var_vectors() {
        let envs = env(&["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
        let mut n = 0;
        for (i, line) in include_str!("testdata/envVarTest").lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.trim().split('|').collect();
            assert_eq!(parts.len(), 3, "line {}", i + 1);
            let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
            if platform == "W" {
                continue;
            }
            n += 1;
            let got = process_word(source, &envs, '\\');
            if expected == "error" {
                assert!(got.is_err(), "line {}: {source:?} gave {got:?}", i + 1);
            } else {
                assert_eq!(got.as_deref(), Ok(expected), "line {}: {source:?}", i + 1);
            }
        }
        assert!(n > 200);
    }

    /// BuildKit's `frontend/dockerfile/shell/wordsTest` (moby/buildkit, Apache-2.0), run as in
    /// its `TestShellParser4Words`: `ENV k=v` lines extend the environment; `word | a,b`.
    #[test]
    fn buildkit_words_vectors() {
        let mut envs = Vec::new();
        let mut n = 0;
        for line in include_str!("testdata/wordsTest").lines() {
            if line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("ENV ") {
                envs.push(rest.trim_start_matches(' ').to_string());
                continue;
            }
            let (test, expected) = line.split_once('|').unwrap();
            let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
            let got =
                process_words(test.trim(), &envs, '\\').unwrap_or_else(|_| vec!["error".into()]);
            assert_eq!(got, expected, "{test:?}");
            n += 1;
        }
        assert!(n > 20);
    }

    /// From BuildKit's `TestShellParserMandatoryEnvVars` and `TestProcessWithMatches`.
    #[test]
    fn buildkit_modifier_cases() {
        let set = env(&["VAR=plain", "ARG=x"]);
        let empty = env(&["VAR=", "ARG=x"]);
        let unset = env(&["ARG=x"]);
        let no_empty = "${VAR:?message here$ARG}";
        let no_unset = "${VAR?message here$ARG}";
        assert_eq!(process_word(no_empty, &set, '\\').unwrap(), "plain");
        assert!(process_word(no_empty, &empty, '\\')
            .unwrap_err()
            .0
            .contains("message herex"));
        assert!(process_word(no_empty, &unset, '\\')
            .unwrap_err()
            .0
            .contains("message herex"));
        assert_eq!(process_word(no_unset, &set, '\\').unwrap(), "plain");
        assert_eq!(process_word(no_unset, &empty, '\\').unwrap(), "");
        assert!(process_word(no_unset, &unset, '\\')
            .unwrap_err()
            .0
            .contains("message herex"));

        let map = |kv: &[(&str, &str)]| -> HashMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let fb = map(&[("FOO", "xxx"), ("BAR", "")]);
        let cases: &[(&str, HashMap<String, String>, Option<&str>)] = &[
            ("x ${UNUSED}", map(&[]), Some("x ")),
            ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", fb.clone(), Some("xxx  ccc")),
            ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", fb.clone(), Some("xxx bbb ccc")),
            ("${FOO:-}", fb.clone(), Some("xxx")),
            ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", fb.clone(), Some("aaa bbb ")),
            ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", fb.clone(), Some("aaa  ")),
            ("${FOO?aaa}", fb.clone(), Some("xxx")),
            ("${BAR?bbb}", fb.clone(), Some("")),
            ("${BAZ?ccc}", fb.clone(), None),
            ("${BAR:?bbb}", fb.clone(), None),
            ("${BAZ:?}", fb.clone(), None),
            ("${FOO=aaa}", fb.clone(), None),
            ("${FOO=}", map(&[]), None),
            ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", map(&[("FOO", "()[]{}^$.*?|\\x")]), Some("x")),
            ("${FOO%%\\**}", map(&[("FOO", "xx**")]), Some("xx")),
            ("${FOO#*x*y}", map(&[("FOO", "xxyy")]), Some("y")),
            ("${FOO#*}", map(&[("FOO", "xxyy")]), Some("xxyy")),
            ("${FOO#$BAR}", map(&[("FOO", "xxyy"), ("BAR", "x")]), Some("xyy")),
            ("${FOO#$BAR}", map(&[("FOO", "xxyy"), ("BAR", "")]), Some("xxyy")),
            ("${FOO##*x}", map(&[("FOO", "xxyy")]), Some("yy")),
            ("${FOO##}", map(&[("FOO", "xxyy")]), Some("xxyy")),
            ("${FOO#?\\?}", map(&[("FOO", "???y")]), Some("?y")),
            ("${ABC:-.}${FOO%x}${ABC:-.}", map(&[("FOO", "xxyy")]), Some(".xxyy.")),
            ("${FOO%%\\**\\*}", map(&[("FOO", "a***yy*")]), Some("a")),
            ("${FOO%}", map(&[("FOO", "xxyy")]), Some("xxyy")),
            ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", map(&[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")]), Some("/foo.*/*.txt - /foo..*.txt")),
            ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", map(&[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")]), Some("/tmp/bar.txt - /bar.txt")),
            ("${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}", map(&[("FOO", "/a/foo/b/c.txt"), ("NEEDLE", "/?/"), ("REPLACEMENT", "/")]), Some("/foo/b/c.txt - /foo/c.txt")),
            ("${FOO/$NEEDLE/$REPLACEMENT}", map(&[("FOO", "http://google.de"), ("NEEDLE", "http://"), ("REPLACEMENT", "https://")]), Some("https://google.de")),
            ("${FOO//\\//\\/}", map(&[("FOO", "/tmp/foo.txt")]), Some("\\/tmp\\/foo.txt")),
            ("${FOO/$BAR/ww}", map(&[("FOO", "xxyy"), ("BAR", "")]), Some("wwxxyy")),
            ("${FOO//ww}", map(&[("FOO", "xxyy")]), None),
            ("${FOO//}", map(&[("FOO", "xxyy")]), None),
            ("${FOO///}", map(&[("FOO", "xxyy")]), Some("xxyy")),
            ("${FOO///}", map(&[]), Some("")),
            (
                "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
                map(&[("VERSION", "v1.2.3"), ("TARGETOS", "linux"), ("TARGETARCH", "arm"), ("TARGETVARIANT", "v7")]),
                Some("something-v1.2.3.linux-arm-v7.tar.gz"),
            ),
        ];
        for (input, envs, expected) in cases {
            let got = process_word(input, envs, '\\');
            match expected {
                Some(e) => assert_eq!(got.as_deref(), Ok(*e), "{input}"),
                None => assert!(got.is_err(), "{input}: {got:?}"),
            }
        }
    }

    #[test]
    fn environments() {
        let v = env(&["A=1", "B", "A=2"]);
        let slice: &[String] = &v;
        assert_eq!(process_word("$A-$B-${C:-c}", &slice, '\\').unwrap(), "2--c");
        let f = FnEnv(|n: &str| (n == "X").then(|| "x".to_string()));
        assert_eq!(process_word("${X}${Y:-y}", &f, '\\').unwrap(), "xy");
        assert_eq!(
            process_words("a $X 'b c'", &f, '\\').unwrap(),
            vec!["a", "x", "b c"]
        );
    }

    #[test]
    fn error_texts_and_backtick_escape() {
        let e = process_word("${A:?}", &env(&[]), '\\').unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"failed to process "${A:?}": A: is not allowed to be unset"#
        );
        let e = process_word("${A:?need A}", &env(&["A="]), '\\').unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"failed to process "${A:?need A}": A: need A"#
        );
        let e = process_word("'x", &env(&[]), '\\').unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"failed to process "'x": unexpected end of statement while looking for matching single-quote"#
        );
        // `# escape=`` makes the backslash an ordinary character (Windows paths).
        assert_eq!(
            process_word(r"c:\dir`$x", &env(&["x=1"]), '`').unwrap(),
            r"c:\dir$x"
        );
        assert_eq!(
            process_word(r"c:\$x", &env(&["x=1"]), '`').unwrap(),
            r"c:\1"
        );
    }

    #[test]
    fn replace_all_with_dollar_in_replacement_follows_go_templates() {
        let e = env(&["A=aXa", "R=$$", "S=${x}y$z"]);
        assert_eq!(process_word("${A//a/$R}", &e, '\\').unwrap(), "$X$");
        assert_eq!(process_word("${A/a/$R}", &e, '\\').unwrap(), "$$Xa");
        assert_eq!(process_word("${A//X/$S}", &e, '\\').unwrap(), "aya");
    }
}
