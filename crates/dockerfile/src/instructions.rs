//! Typed Dockerfile instructions: what the executor dispatches on. Every word is raw (unexpanded);
//! the executor expands them with `words::process_word` against the scope of the step.

/// One instruction with where it came from and what `Step N/M : <text>` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based line of the instruction's keyword.
    pub line: usize,
    /// The logical line as Docker prints it: continuations joined, comment and empty
    /// continuation lines dropped, keyword case kept.
    pub text: String,
    pub instruction: Instruction,
}

/// Exec form (JSON array) or shell form.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Exec(Vec<String>),
    /// The text after the keyword (and flags) of the joined logical line, as Docker passes it
    /// to the shell: continuations removed, comment lines inside them dropped, trimmed.
    /// `Shell("")` (a bare `CMD` or `RUN`) means SHELL with no argument appended: Docker stores
    /// `CMD` as `["/bin/sh","-c"]` and runs a bare `RUN` as `/bin/sh -c` (which fails).
    Shell(String),
}

/// A here-document of RUN or COPY/ADD (`<<EOF`, `<<-EOF`, `<<'EOF'`).
#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    /// The delimiter word (`EOF`); COPY names the file after it.
    pub name: String,
    /// The body up to (not including) the delimiter line; ends with '\n' unless empty.
    pub body: String,
    /// false when the delimiter was quoted: the body is taken literally.
    pub expand: bool,
    /// true for `<<-`: leading tabs were already stripped from the body.
    pub strip_tabs_done: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CopyArgs {
    /// Path sources (not the heredocs), raw.
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub heredocs: Vec<Heredoc>,
}

/// Flag values are raw but already checked as Docker checks them at parse time (durations
/// of at least 1ms, retries an int32 >= 1); `gofmt::parse_go_duration` reads them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealthcheckArgs {
    /// `["NONE"]`, `["CMD", args..]` (exec form) or `["CMD-SHELL", text]`.
    pub test: Vec<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Instruction {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    /// With heredocs, `command` is `Shell(<command line> + ("\n" + body + name)...)`: the whole
    /// text BuildKit hands to the shell when the RUN is more than a single heredoc word;
    /// `run_heredoc_script` gives the one string to append to SHELL in both cases.
    Run {
        command: Command,
        heredocs: Vec<Heredoc>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Expose(Vec<String>),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    StopSignal(String),
    Maintainer(String),
    Copy(CopyArgs),
    Add(CopyArgs),
    /// `trigger` is the text after `ONBUILD ` as Docker stores it in `Config.OnBuild`
    /// (keyword case and trailing blanks kept: `ONBUILD run x  ` → `run x  `).
    Onbuild {
        trigger: String,
    },
    Healthcheck(HealthcheckArgs),
}

/// How BuildKit hands a RUN with heredocs to the shell (`dockerfile2llb` dispatchRun): a RUN
/// that is exactly one heredoc word (`RUN <<EOF`) runs the body itself as the script (SHELL +
/// [body]); otherwise the whole text (`command` of `Instruction::Run`) goes to the shell.
/// Returns the one argument to append to SHELL. (BuildKit runs a single body starting with
/// `#!` as an executable file instead.)
pub fn run_heredoc_script(command: &str, heredocs: &[Heredoc]) -> String {
    let first_line = command.lines().next().unwrap_or("");
    match heredocs {
        [only] if is_single_heredoc_word(first_line) => only.body.clone(),
        _ => command.to_string(),
    }
}

/// The command line of a RUN with its heredocs appended, as BuildKit reconstitutes it.
pub(crate) fn with_heredocs(command_line: &str, heredocs: &[Heredoc]) -> String {
    let mut s = command_line.to_string();
    for h in heredocs {
        s.push('\n');
        s.push_str(&h.body);
        s.push_str(&h.name);
    }
    s
}

fn is_single_heredoc_word(s: &str) -> bool {
    let s = s.trim();
    !s.contains(char::is_whitespace) && heredoc_token(s).is_some()
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF` → (name without quotes, chomp, expand).
pub(crate) fn heredoc_token(word: &str) -> Option<(String, bool, bool)> {
    let rest = word
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start();
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let quoted = rest.contains(['"', '\'', '\\']);
    let name: String = rest
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '\\'))
        .collect();
    (!name.is_empty()).then_some((name, chomp, !quoted))
}

/// BuildKit's `parseWords`: blank-separated words where quotes group (and are kept) and the
/// escape character keeps the next character in the word.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        if !in_word {
            if ch.is_whitespace() {
                i += 1;
                continue;
            }
            in_word = true;
        }
        match quote {
            None => {
                if ch.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    in_word = false;
                } else {
                    if ch == '\'' || ch == '"' {
                        quote = Some(ch);
                        blank_ok = true;
                    }
                    if ch == escape {
                        if i + 1 == chars.len() {
                            i += 1;
                            continue;
                        }
                        word.push(ch);
                        i += 1;
                    }
                    word.push(chars[i]);
                }
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                }
                if ch == escape && q != '\'' {
                    if i + 1 == chars.len() {
                        quote = None;
                        i += 1;
                        continue;
                    }
                    word.push(ch);
                    i += 1;
                }
                word.push(chars[i]);
            }
        }
        i += 1;
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV/LABEL arguments (BuildKit `parseNameVal` + `parseKvps`): `k=v ...` pairs, or the legacy
/// `KEY name value with spaces` single pair. Words stay raw (quotes kept) for expansion.
pub(crate) fn parse_name_val(
    rest: &str,
    key: &str,
    escape: char,
) -> Result<Vec<(String, String)>, crate::ParseError> {
    use crate::ParseError;
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(ParseError::at_line(format!(
            "{key} requires at least one argument"
        )));
    };
    let pairs = if !first.contains('=') {
        let rest = rest.trim_start_matches([' ', '\t', '\x0b', '\x0c', '\r']);
        let split = rest.find([' ', '\t', '\x0b', '\x0c', '\r']);
        let Some(at) = split else {
            return Err(ParseError::Other(format!(
                "failed to parse Dockerfile: {key} must have two arguments"
            )));
        };
        let value = rest[at..].trim_start_matches([' ', '\t', '\x0b', '\x0c', '\r']);
        vec![(rest[..at].to_string(), value.to_string())]
    } else {
        let mut pairs = Vec::new();
        for w in &words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(ParseError::Other(format!(
                    "failed to parse Dockerfile: Syntax error - can't find = in {}. Must be of the form: name=value",
                    crate::gofmt::go_quote(w)
                )));
            };
            pairs.push((k.to_string(), v.to_string()));
        }
        pairs
    };
    if pairs.iter().any(|(k, _)| k.is_empty()) {
        return Err(ParseError::at_line(format!("{key} names can not be blank")));
    }
    Ok(pairs)
}

/// ARG arguments: `name` or `name=default` words (BuildKit `parseNameOrNameVal` + `parseArg`).
pub(crate) fn parse_args(
    rest: &str,
    escape: char,
) -> Result<Vec<(String, Option<String>)>, crate::ParseError> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(crate::ParseError::at_line(
            "ARG requires at least one argument".into(),
        ));
    }
    let pairs: Vec<(String, Option<String>)> = words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (w, None),
        })
        .collect();
    if pairs.iter().any(|(k, _)| k.is_empty()) {
        return Err(crate::ParseError::at_line(
            "ARG names can not be blank".into(),
        ));
    }
    Ok(pairs)
}

/// What a flag takes.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum FlagKind {
    String,
    Bool,
}

/// Checks `--name[=value]` flags against an allow-list as BuildKit's `BFlags.Parse` does and
/// returns the values by name (bools as "true"/"false").
pub(crate) fn check_flags(
    flags: &[(String, Option<String>)],
    allowed: &[(&str, FlagKind)],
) -> Result<Vec<(String, String)>, crate::ParseError> {
    use crate::ParseError;
    let mut out: Vec<(String, String)> = Vec::new();
    for (name, value) in flags {
        let Some(&(_, kind)) = allowed.iter().find(|(n, _)| n == name) else {
            return Err(ParseError::at_line(format!("Unknown flag: {name}")));
        };
        if out.iter().any(|(n, _)| n == name) {
            return Err(ParseError::at_line(format!(
                "Duplicate flag specified: {name}"
            )));
        }
        let v = match (kind, value) {
            (FlagKind::Bool, None) => "true".to_string(),
            (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "true" => "true".into(),
                "false" => "false".into(),
                _ => {
                    return Err(ParseError::at_line(format!(
                        "expecting boolean value for flag {name}, not: {v}"
                    )))
                }
            },
            (FlagKind::String, None) => {
                return Err(ParseError::at_line(format!(
                    "Missing a value on flag: {name}"
                )))
            }
            (FlagKind::String, Some(v)) => v.clone(),
        };
        out.push((name.clone(), v));
    }
    Ok(out)
}

/// Docker's `extractBuilderFlags` for instructions the parser crate does not read flags of:
/// leading `--name[=value]` words (a lone `--` ends them); returns them and the rest.
pub(crate) fn split_leading_flags(rest: &str) -> (Vec<(String, Option<String>)>, &str) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start();
    while let Some(after) = s.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let word = &after[..end];
        s = after[end..].trim_start();
        if word.is_empty() {
            break;
        }
        match word.split_once('=') {
            Some((n, v)) => flags.push((n.to_string(), Some(v.to_string()))),
            None => flags.push((word.to_string(), None)),
        }
    }
    (flags, s)
}

/// The HEALTHCHECK checks BuildKit's `parseHealthcheck` makes at parse time, in its order.
pub(crate) fn check_healthcheck(h: &HealthcheckArgs) -> Result<(), crate::ParseError> {
    use crate::ParseError;
    for (name, value) in [
        ("interval", &h.interval),
        ("timeout", &h.timeout),
        ("start-period", &h.start_period),
    ] {
        let Some(v) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        let d = crate::gofmt::parse_go_duration(v).map_err(|e| {
            if e.starts_with("negative") {
                ParseError::at_line(format!(
                    "Interval {} cannot be less than 1ms",
                    crate::gofmt::go_quote(name)
                ))
            } else {
                ParseError::at_line(e)
            }
        })?;
        if d < std::time::Duration::from_millis(1) {
            return Err(ParseError::at_line(format!(
                "Interval {} cannot be less than 1ms",
                crate::gofmt::go_quote(name)
            )));
        }
    }
    if let Some(r) = h.retries.as_deref().filter(|v| !v.is_empty()) {
        let n: i64 = parse_go_int32(r)?;
        if n < 1 {
            return Err(ParseError::at_line(format!(
                "--retries must be at least 1 (not {n})"
            )));
        }
    }
    Ok(())
}

/// `strconv.ParseInt(s, 10, 32)` with Go's error texts.
fn parse_go_int32(s: &str) -> Result<i64, crate::ParseError> {
    let q = crate::gofmt::go_quote(s);
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(crate::ParseError::at_line(format!(
            "strconv.ParseInt: parsing {q}: invalid syntax"
        )));
    }
    match s.parse::<i64>() {
        Ok(n) if (i32::MIN as i64..=i32::MAX as i64).contains(&n) => Ok(n),
        _ => Err(crate::ParseError::at_line(format!(
            "strconv.ParseInt: parsing {q}: value out of range"
        ))),
    }
}

/// Docker's `parseMaybeJSON`: arguments that are valid JSON but an array of not only strings
/// (`CMD [1]`, `CMD ["a", ["b"]]`) are an error, where invalid JSON is simply shell form.
pub(crate) fn is_json_array_of_non_strings(args: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(args.trim()) {
        Ok(serde_json::Value::Array(items)) => !items.iter().all(serde_json::Value::is_string),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_json_array_of_non_strings as non_strings;

    /// Checked on dockerd 20.10: `CMD [1]` fails the build; `CMD [01]` and `CMD ["a\q", 1]`
    /// are not JSON to Go, so they are shell form and build.
    #[test]
    fn only_valid_json_arrays_of_non_strings_are_refused() {
        assert!(non_strings("[1]"));
        assert!(non_strings(r#" ["a", {"b": [1, 2.5e3, null]}] "#));
        for shell in ["[01]", r#"["a\q", 1]"#, "[1,]", r#"["a"]"#, "[]", "x"] {
            assert!(!non_strings(shell), "{shell}");
        }
    }
}
