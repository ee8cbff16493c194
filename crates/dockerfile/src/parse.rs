//! From Dockerfile text to typed steps, on top of `parse-dockerfile`.
//!
//! The crate finds the instructions, their spans, flags, JSON arrays and COPY heredocs. What it
//! leaves to us is done here the way Docker's own parser does it: joining an instruction's
//! physical lines (the `Step` text and every shell-form argument come from that joined line),
//! RUN heredocs anywhere on the line (the crate only knows `RUN <<EOF` first), Docker's error
//! wording and the per-instruction checks of BuildKit's `instructions/parse.go`.
use std::collections::HashMap;

use parse_dockerfile as pd;

use crate::errors::{after_keyword, map_crate_error, ErrorContext, DUPLICATE_STAGE};
use crate::instructions::{
    check_flags, check_healthcheck, heredoc_token, is_json_array_of_non_strings, parse_args,
    parse_name_val, parse_words, split_leading_flags, with_heredocs,
    FlagKind::{Bool, String as Str},
};
use crate::{
    Command, CopyArgs, Dockerfile, HealthcheckArgs, Heredoc, Instruction, ParseError, Stage, Step,
};

pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    if src.is_empty() {
        return Err(ParseError::empty("Dockerfile"));
    }
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines = physical_lines(src);
    let escape = escape_directive(&lines)?;
    let scan = prescan(&lines, escape)?;
    let df = pd::parse(&scan.text).map_err(|e| {
        let start = scan.starts.iter().rev().find(|&&s| s < e.line()).copied();
        let text = start
            .map(|s| logical_line(&lines, s, escape).text)
            .unwrap_or_default();
        let cx = ErrorContext {
            line: start.map_or(e.line(), |s| s + 1),
            text: text.trim(),
            has_instructions: !scan.starts.is_empty(),
        };
        map_crate_error(&format!("{e:#}"), &cx)
    })?;

    let cx = Cx {
        lines: &lines,
        text: &scan.text,
        escape,
        scan: &scan,
    };
    let (mut line_err, mut file_err) = (None, None);
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        let step = match cx.step(ins) {
            Ok(s) => s,
            // Errors of the whole-file parse ("failed to parse Dockerfile: ...") win over the
            // instruction-level ones wherever they are, as in Docker's two passes.
            Err(e @ ParseError::Line { .. }) => {
                line_err.get_or_insert(e);
                continue;
            }
            Err(e) => {
                file_err.get_or_insert(e);
                continue;
            }
        };
        match (&step.instruction, stages.last_mut()) {
            (Instruction::From { name, .. }, _) => {
                if name.is_some() && stages.iter().any(|s| s.name == *name) {
                    line_err.get_or_insert(ParseError::Other(DUPLICATE_STAGE.into()));
                }
                stages.push(Stage {
                    index: stages.len(),
                    name: name.clone(),
                    from: step,
                    steps: Vec::new(),
                });
            }
            (_, Some(stage)) => stage.steps.push(step),
            (_, None) => meta_args.push(step),
        }
    }
    if let Some(e) = file_err.or(line_err) {
        return Err(e);
    }
    Ok(Dockerfile {
        escape,
        meta_args,
        stages,
    })
}

/// Docker's warning for blank lines inside a continuation (printed on the build's stderr
/// before Step 1), or None when there are none.
pub fn empty_continuation_warning(src: &str) -> Option<String> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines = physical_lines(src);
    let escape = escape_directive(&lines).ok()?;
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if is_comment(lines[i]) || lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        let lg = logical_line(&lines, i, escape);
        if lg.empty_continuation {
            out.push_str("[WARNING]: Empty continuation line found in:\n    ");
            out.push_str(&lg.text);
            out.push('\n');
        }
        i = lg.next.max(i + 1);
    }
    (!out.is_empty()).then(|| {
        out + "[WARNING]: Empty continuation lines will become errors in a future release.\n"
    })
}

fn physical_lines(src: &str) -> Vec<&str> {
    src.split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect()
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The `# escape=` parser directive among the leading `# key=value` lines.
fn escape_directive(lines: &[&str]) -> Result<char, ParseError> {
    for line in lines {
        let Some(d) = line.strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = d.split_once('=') else {
            break;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
            break;
        }
        if key.eq_ignore_ascii_case("escape") {
            return match value.trim() {
                "\\" => Ok('\\'),
                "`" => Ok('`'),
                v => Err(ParseError::Other(format!(
                    "failed to parse Dockerfile: invalid escape token '{v}' does not match ` or \\"
                ))),
            };
        }
    }
    Ok('\\')
}

/// An instruction's physical lines joined as Docker's parser joins them.
struct Logical {
    /// Untrimmed at the end; the first line's leading blanks removed.
    text: String,
    /// Index of the first physical line after the instruction.
    next: usize,
    empty_continuation: bool,
}

/// Docker's line joining: a line ending in the escape character (blanks may follow it)
/// continues; comment lines and blank lines inside the continuation are dropped; the escape
/// is removed, everything else (inner blanks, continuation lines' indentation) is kept.
fn logical_line(lines: &[&str], start: usize, escape: char) -> Logical {
    let trim_continuation = |l: &str| -> (String, bool) {
        match continuation_body(l, escape) {
            Some(kept) => (kept.to_string(), false),
            None => (l.to_string(), true),
        }
    };
    let (mut text, mut done) = trim_continuation(lines[start].trim_start());
    let mut next = start + 1;
    let mut empty_continuation = false;
    while !done && next < lines.len() {
        let raw = lines[next];
        next += 1;
        if is_comment(raw) {
            continue;
        }
        if raw.trim_start().is_empty() {
            empty_continuation = true;
            continue;
        }
        let (part, end) = trim_continuation(raw);
        text.push_str(&part);
        done = end;
    }
    Logical {
        text,
        next,
        empty_continuation,
    }
}

/// The line without its continuation escape, or None when it does not continue. As Docker's
/// `lineContinuationRegex`: the escape (blanks may follow) either is the whole line or follows
/// a character that is not the escape (`path\\` at the end of a line is a literal backslash).
fn continuation_body(line: &str, escape: char) -> Option<&str> {
    let kept = line.trim_end_matches([' ', '\t']).strip_suffix(escape)?;
    (kept.is_empty() || !kept.ends_with(escape)).then_some(kept)
}

/// What the pre-pass learned: where instructions start, the heredocs of RUN (taken out of the
/// text the crate sees) and the delimiter tokens of COPY/ADD heredocs.
struct Scan {
    text: String,
    starts: Vec<usize>,
    run_heredocs: HashMap<usize, Vec<Heredoc>>,
    copy_heredocs: HashMap<usize, Vec<Heredoc>>,
}

fn prescan(lines: &[&str], escape: char) -> Result<Scan, ParseError> {
    let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    let mut scan = Scan {
        text: String::new(),
        starts: Vec::new(),
        run_heredocs: HashMap::new(),
        copy_heredocs: HashMap::new(),
    };
    let mut i = 0;
    while i < lines.len() {
        if is_comment(lines[i]) || lines[i].trim().is_empty() {
            i += 1;
            continue;
        }
        scan.starts.push(i);
        let lg = logical_line(lines, i, escape);
        // The crate would continue a line ending in a doubled escape; Docker does not. Hide the
        // last escape from the crate (its value for such a word is not used: ours come from
        // the joined text) so both agree on where the instruction ends.
        for l in &mut out[i..lg.next] {
            let t = l.trim_end_matches([' ', '\t']);
            if t.ends_with(escape) && continuation_body(t, escape).is_none() {
                let at = t.len() - escape.len_utf8();
                l.replace_range(at..at + escape.len_utf8(), "_");
            }
        }
        let keyword = lg
            .text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let mut next = lg.next;
        // Docker checks an ONBUILD trigger only when a build uses it; the crate would reject
        // an unknown one, or a known one without its arguments (`ONBUILD ENV`), here. Show
        // the crate a harmless trigger (ours comes from the text); what dockerd's line parser
        // does check at once is checked in `instruction`.
        if keyword == "ONBUILD" {
            let trigger = lg
                .text
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_ascii_uppercase();
            if matches!(trigger.as_str(), "FROM" | "MAINTAINER") {
                // Refused whatever follows (`instruction` says so), as by dockerd.
                out[i] = format!("ONBUILD {trigger} x");
                out[i + 1..lg.next].iter_mut().for_each(String::clear);
            } else if !trigger.is_empty() && trigger != "ONBUILD" {
                out[i] = "ONBUILD RUN true".into();
                out[i + 1..lg.next].iter_mut().for_each(String::clear);
            }
        }
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
            let args = split_leading_flags(after_keyword(&lg.text)).1;
            let tokens: Vec<_> = if args.starts_with('[') {
                Vec::new()
            } else {
                parse_words(args, escape)
                    .iter()
                    .filter_map(|w| heredoc_token(w))
                    .collect()
            };
            let mut docs = Vec::new();
            for (name, chomp, expand) in tokens {
                let mut body = String::new();
                loop {
                    let Some(raw) = lines.get(next) else {
                        return Err(ParseError::Line {
                            line: i + 1,
                            message: format!(
                                "expected end of here-document ({name}), but reached eof"
                            ),
                        });
                    };
                    next += 1;
                    let raw = if chomp {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if raw == name {
                        break;
                    }
                    body.push_str(raw);
                    body.push('\n');
                }
                docs.push(Heredoc {
                    name,
                    body,
                    expand,
                    strip_tabs_done: chomp,
                });
            }
            if !docs.is_empty() {
                if keyword == "RUN" {
                    // The crate sees a plain RUN: bodies blanked (line numbers kept), `<<` gone.
                    out[lg.next..next].iter_mut().for_each(String::clear);
                    out[i..lg.next]
                        .iter_mut()
                        .for_each(|l| *l = l.replace("<<", "  "));
                    scan.run_heredocs.insert(i, docs);
                } else {
                    scan.copy_heredocs.insert(i, docs);
                }
            }
        }
        i = next;
    }
    scan.text = out.join("\n");
    Ok(scan)
}

struct Cx<'a> {
    lines: &'a [&'a str],
    /// The text the crate parsed (spans point into it).
    text: &'a str,
    escape: char,
    scan: &'a Scan,
}

const NO_FLAGS: &[(&str, crate::instructions::FlagKind)] = &[];

impl Cx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        1 + self.text.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    fn step(&self, ins: &pd::Instruction<'_>) -> Result<Step, ParseError> {
        let line = self.line_of(keyword_start(ins));
        let lg = logical_line(self.lines, line - 1, self.escape);
        let text = lg.text.trim().to_string();
        let instruction = self
            .instruction(ins, line - 1, &lg, &text)
            .map_err(|e| e.with_line(line))?;
        Ok(Step {
            line,
            text,
            instruction,
        })
    }

    fn instruction(
        &self,
        ins: &pd::Instruction<'_>,
        idx: usize,
        lg: &Logical,
        text: &str,
    ) -> Result<Instruction, ParseError> {
        // Arguments as Docker's splitCommand leaves them: after the keyword, trimmed.
        let rest = after_keyword(text);
        // For the instructions whose flags the crate does not read: none are allowed.
        let plain = || -> Result<&str, ParseError> {
            let (flags, args) = split_leading_flags(rest);
            check_flags(&flags, NO_FLAGS)?;
            Ok(args)
        };
        let keyword = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let json_args = match keyword.as_str() {
            "HEALTHCHECK" => after_keyword(split_leading_flags(rest).1),
            "CMD" | "ENTRYPOINT" | "RUN" | "VOLUME" | "COPY" | "ADD" => split_leading_flags(rest).1,
            _ => "",
        };
        if is_json_array_of_non_strings(json_args) {
            return Err(ParseError::Other(
                "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only".into(),
            ));
        }
        let command = |c: &pd::Command<'_>, args: &str| match c {
            pd::Command::Exec(v) => {
                Command::Exec(v.value.iter().map(|s| s.value.to_string()).collect())
            }
            _ => Command::Shell(args.to_string()),
        };
        Ok(match ins {
            pd::Instruction::From(f) => {
                let flags = check_flags(&flags_of(&f.options), &[("platform", Str)])?;
                let name = f.as_.as_ref().map(|(_, n)| n.value.to_string());
                if let Some(n) = &name {
                    check_stage_name(n)?;
                }
                Instruction::From {
                    image: f.image.value.to_string(),
                    name: name.map(|n| n.to_ascii_lowercase()),
                    platform: flag(&flags, "platform"),
                }
            }
            pd::Instruction::Arg(_) => Instruction::Arg(parse_args(plain()?, self.escape)?),
            pd::Instruction::Env(_) => {
                Instruction::Env(parse_name_val(plain()?, "ENV", self.escape)?)
            }
            pd::Instruction::Label(_) => {
                Instruction::Label(parse_name_val(plain()?, "LABEL", self.escape)?)
            }
            pd::Instruction::Cmd(c) => Instruction::Cmd(command(&c.arguments, plain()?)),
            pd::Instruction::Entrypoint(c) => {
                Instruction::Entrypoint(command(&c.arguments, plain()?))
            }
            pd::Instruction::Run(r) => {
                let flags = flags_of(&r.options);
                if flags.iter().any(|(n, _)| n == "mount") {
                    return Err(ParseError::Other(
                        "the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled".into(),
                    ));
                }
                check_flags(&flags, NO_FLAGS)?;
                let args = split_leading_flags(rest).1;
                match self.scan.run_heredocs.get(&idx) {
                    Some(docs) => Instruction::Run {
                        command: Command::Shell(with_heredocs(args, docs)),
                        heredocs: docs.clone(),
                    },
                    None => Instruction::Run {
                        command: command(&r.arguments, args),
                        heredocs: Vec::new(),
                    },
                }
            }
            pd::Instruction::Shell(s) => {
                plain()?;
                Instruction::Shell(s.arguments.iter().map(|a| a.value.to_string()).collect())
            }
            pd::Instruction::Expose(_) => {
                Instruction::Expose(plain()?.split_whitespace().map(String::from).collect())
            }
            pd::Instruction::Volume(v) => {
                plain()?;
                let vols: Vec<String> = match &v.arguments {
                    pd::JsonOrStringArray::Json(a) => {
                        a.value.iter().map(|s| s.value.to_string()).collect()
                    }
                    pd::JsonOrStringArray::String(a) => {
                        a.iter().map(|s| s.value.to_string()).collect()
                    }
                };
                if vols.iter().any(|v| v.trim().is_empty()) {
                    return Err(ParseError::at_line(
                        "VOLUME specified can not be an empty string".into(),
                    ));
                }
                Instruction::Volume(vols)
            }
            pd::Instruction::User(_) => Instruction::User(plain()?.to_string()),
            pd::Instruction::Workdir(_) => Instruction::Workdir(plain()?.to_string()),
            pd::Instruction::Stopsignal(_) => Instruction::StopSignal(plain()?.to_string()),
            pd::Instruction::Maintainer(_) => Instruction::Maintainer(plain()?.to_string()),
            pd::Instruction::Copy(c) => Instruction::Copy(self.copy_args(
                &c.options,
                &c.src,
                &c.dest,
                idx,
                &[
                    ("from", Str),
                    ("chown", Str),
                    ("chmod", Str),
                    ("link", Bool),
                ],
            )?),
            pd::Instruction::Add(a) => Instruction::Add(self.copy_args(
                &a.options,
                &a.src,
                &a.dest,
                idx,
                &[("chown", Str), ("chmod", Str), ("link", Bool)],
            )?),
            pd::Instruction::Onbuild(o) => {
                match *o.instruction {
                    pd::Instruction::From(_) => {
                        return Err(ParseError::at_line(
                            "FROM isn't allowed as an ONBUILD trigger".into(),
                        ))
                    }
                    pd::Instruction::Maintainer(_) => {
                        return Err(ParseError::at_line(
                            "MAINTAINER isn't allowed as an ONBUILD trigger".into(),
                        ))
                    }
                    _ => {}
                }
                // Docker keeps the trigger as written after `ONBUILD`, trailing blanks included.
                let t = lg.text.trim_start();
                let trigger = t.get(7..).unwrap_or("").trim_start();
                // dockerd's line parser reads a trigger's arguments as it reads an
                // instruction's, failing only on ENV/LABEL pairs and JSON arrays of
                // non-strings; the rest fails when a child build runs the trigger.
                let word = trigger.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                let args = split_leading_flags(after_keyword(trigger)).1;
                let json = match word.as_str() {
                    "HEALTHCHECK" => after_keyword(args),
                    "CMD" | "ENTRYPOINT" | "RUN" | "VOLUME" | "COPY" | "ADD" => args,
                    _ => "",
                };
                if is_json_array_of_non_strings(json) {
                    return Err(ParseError::Other(
                        "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only".into(),
                    ));
                }
                if matches!(word.as_str(), "ENV" | "LABEL") && !args.is_empty() {
                    parse_name_val(args, &word, self.escape)?;
                }
                Instruction::Onbuild {
                    trigger: trigger.to_string(),
                }
            }
            pd::Instruction::Healthcheck(h) => {
                // Docker reads no flags at all for `HEALTHCHECK NONE` (not even unknown ones).
                if !matches!(h.arguments, pd::HealthcheckArguments::Cmd { .. }) {
                    return Ok(Instruction::Healthcheck(HealthcheckArgs {
                        test: vec!["NONE".to_string()],
                        ..HealthcheckArgs::default()
                    }));
                }
                let flags = check_flags(
                    &flags_of(&h.options),
                    &[
                        ("interval", Str),
                        ("timeout", Str),
                        ("start-period", Str),
                        ("retries", Str),
                    ],
                )?;
                let test = match &h.arguments {
                    pd::HealthcheckArguments::Cmd {
                        arguments: pd::Command::Exec(v),
                        ..
                    } => std::iter::once("CMD".to_string())
                        .chain(v.value.iter().map(|s| s.value.to_string()))
                        .collect(),
                    pd::HealthcheckArguments::Cmd { .. } => {
                        let cmd = after_keyword(split_leading_flags(rest).1);
                        if cmd.is_empty() {
                            return Err(ParseError::at_line(
                                "Missing command after HEALTHCHECK CMD".into(),
                            ));
                        }
                        vec!["CMD-SHELL".to_string(), cmd.to_string()]
                    }
                    _ => vec!["NONE".to_string()],
                };
                let hc = HealthcheckArgs {
                    test,
                    interval: flag(&flags, "interval"),
                    timeout: flag(&flags, "timeout"),
                    start_period: flag(&flags, "start-period"),
                    retries: flag(&flags, "retries"),
                };
                check_healthcheck(&hc)?;
                Instruction::Healthcheck(hc)
            }
            _ => {
                return Err(ParseError::at_line(format!(
                    "unknown instruction: {}",
                    text.split_whitespace().next().unwrap_or("")
                )))
            }
        })
    }

    fn copy_args(
        &self,
        options: &[pd::Flag<'_>],
        src: &[pd::Source<'_>],
        dest: &pd::UnescapedString<'_>,
        idx: usize,
        allowed: &[(&str, crate::instructions::FlagKind)],
    ) -> Result<CopyArgs, ParseError> {
        let flags = check_flags(&flags_of(options), allowed)?;
        let tokens = self.scan.copy_heredocs.get(&idx);
        let mut args = CopyArgs {
            dest: dest.value.to_string(),
            from: flag(&flags, "from"),
            chown: flag(&flags, "chown"),
            chmod: flag(&flags, "chmod"),
            link: flag(&flags, "link").as_deref() == Some("true"),
            ..CopyArgs::default()
        };
        for s in src {
            match s {
                pd::Source::Path(p) => args.sources.push(p.value.to_string()),
                pd::Source::HereDoc(h) => {
                    // The delimiter is the line right after the body.
                    let name = self.text[h.span.end..]
                        .split('\n')
                        .next()
                        .unwrap_or("")
                        .trim_end_matches('\r')
                        .to_string();
                    let chomp = tokens
                        .and_then(|t| t.iter().find(|d| d.name == name))
                        .is_some_and(|d| d.strip_tabs_done);
                    args.heredocs.push(Heredoc {
                        name,
                        body: h.value.to_string(),
                        expand: h.expand,
                        strip_tabs_done: chomp,
                    });
                }
                _ => {}
            }
        }
        Ok(args)
    }
}

fn flags_of(options: &[pd::Flag<'_>]) -> Vec<(String, Option<String>)> {
    options
        .iter()
        .map(|f| {
            (
                f.name.value.to_string(),
                f.value.as_ref().map(|v| v.value.to_string()),
            )
        })
        .collect()
}

fn flag(flags: &[(String, String)], name: &str) -> Option<String> {
    flags
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// Stage names as BuildKit allows them: `^[a-z][a-z0-9-_\.]*$` after lower-casing.
fn check_stage_name(name: &str) -> Result<(), ParseError> {
    let lower = name.to_ascii_lowercase();
    let mut chars = lower.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        return Ok(());
    }
    Err(ParseError::at_line(format!(
        "invalid name for build stage: {}, name can't start with a number or contain symbols",
        crate::gofmt::go_quote(name)
    )))
}

fn keyword_start(ins: &pd::Instruction<'_>) -> usize {
    match ins {
        pd::Instruction::Add(i) => i.add.span.start,
        pd::Instruction::Arg(i) => i.arg.span.start,
        pd::Instruction::Cmd(i) => i.cmd.span.start,
        pd::Instruction::Copy(i) => i.copy.span.start,
        pd::Instruction::Entrypoint(i) => i.entrypoint.span.start,
        pd::Instruction::Env(i) => i.env.span.start,
        pd::Instruction::Expose(i) => i.expose.span.start,
        pd::Instruction::From(i) => i.from.span.start,
        pd::Instruction::Healthcheck(i) => i.healthcheck.span.start,
        pd::Instruction::Label(i) => i.label.span.start,
        pd::Instruction::Maintainer(i) => i.maintainer.span.start,
        pd::Instruction::Onbuild(i) => i.onbuild.span.start,
        pd::Instruction::Run(i) => i.run.span.start,
        pd::Instruction::Shell(i) => i.shell.span.start,
        pd::Instruction::Stopsignal(i) => i.stopsignal.span.start,
        pd::Instruction::User(i) => i.user.span.start,
        pd::Instruction::Volume(i) => i.volume.span.start,
        pd::Instruction::Workdir(i) => i.workdir.span.start,
        _ => 0,
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "buildkit_testfiles.rs"]
mod buildkit_testfiles;
