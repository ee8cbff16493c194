//! Parse errors with Docker's wording (HTTP 400 texts of the classic builder), and the one table
//! that turns `parse-dockerfile`'s messages into them.

/// Display is exactly the message dockerd 20.10 answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// An instruction-level error: `dockerfile parse error line N: <message>`.
    #[error("dockerfile parse error line {line}: {message}")]
    Line { line: usize, message: String },
    /// Any other 400 text, printed as is (`no build stage in current context`,
    /// `failed to reach build target X in Dockerfile`, `failed to parse Dockerfile: ...`).
    #[error("{0}")]
    Other(String),
}

impl ParseError {
    /// An instruction-level error whose line the caller fills in with `with_line`.
    pub(crate) fn at_line(message: String) -> Self {
        ParseError::Line { line: 0, message }
    }

    pub(crate) fn with_line(self, line: usize) -> Self {
        match self {
            ParseError::Line { message, .. } => ParseError::Line { line, message },
            other => other,
        }
    }

    /// The 400 for a zero-byte Dockerfile (`name` as given in `dockerfile=`).
    pub fn empty(name: &str) -> Self {
        ParseError::Other(format!("the Dockerfile ({name}) cannot be empty"))
    }
}

/// What the table needs to know about the instruction an error of the crate points at.
pub(crate) struct ErrorContext<'a> {
    /// Line of the instruction's keyword (Docker reports that line, not the continuation's).
    pub line: usize,
    /// The instruction's logical line (continuations joined), trimmed.
    pub text: &'a str,
    /// Whether any instruction was seen at all (for the "no FROM" case).
    pub has_instructions: bool,
}

/// Maps one `parse_dockerfile::Error` message (its `{:#}` text) to Docker's.
pub(crate) fn map_crate_error(msg: &str, cx: &ErrorContext<'_>) -> ParseError {
    let line = |m: String| ParseError::Line {
        line: cx.line,
        message: m,
    };
    let keyword = cx
        .text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if let Some(word) = msg
        .strip_prefix("unknown instruction '")
        .and_then(|m| m.strip_suffix('\''))
    {
        // `ONBUILD` with nothing after it reaches the crate as an empty instruction word.
        if word.is_empty() {
            return line(format!("{keyword} requires at least one argument"));
        }
        return line(format!(
            "unknown instruction: {}",
            word.to_ascii_uppercase()
        ));
    }
    if let Some(word) = msg.strip_suffix(" instruction requires at least one argument") {
        if word.eq_ignore_ascii_case("HEALTHCHECK CMD") {
            return line("Missing command after HEALTHCHECK CMD".into());
        }
        if word.eq_ignore_ascii_case("FROM") {
            return line("FROM requires either one or three arguments".into());
        }
        return line(format!(
            "{} requires at least one argument",
            word.to_ascii_uppercase()
        ));
    }
    if let Some(word) = msg.strip_suffix(" instruction requires exactly one argument") {
        return line(format!(
            "{} requires exactly one argument",
            word.to_ascii_uppercase()
        ));
    }
    if let Some(word) = msg.strip_suffix(" instruction requires at least two arguments") {
        return line(format!(
            "{} requires at least two arguments, but only one was provided. Destination could not be determined",
            word.to_ascii_uppercase()
        ));
    }
    match msg {
        "expected FROM" => return ParseError::Other("no build stage in current context".into()),
        "expected at least one FROM instruction" => {
            return ParseError::Other(if cx.has_instructions {
                "no build stage in current context".into()
            } else {
                "failed to parse Dockerfile: file with no instructions".into()
            })
        }
        "expected AS" | "expected newline or eof" => {
            return line("FROM requires either one or three arguments".into())
        }
        "expected JSON array" | "invalid JSON" => {
            return line("SHELL requires the arguments to be in JSON form".into())
        }
        "HEALTHCHECK NONE does not accept arguments" => {
            return line("HEALTHCHECK NONE takes no arguments".into())
        }
        "ONBUILD ONBUILD is not allowed" => {
            return line("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
        }
        "expected instruction after ONBUILD" => {
            return line("ONBUILD requires at least one argument".into())
        }
        "expected CMD or NONE" => {
            // What follows HEALTHCHECK and its flags decides Docker's text.
            let rest = crate::instructions::split_leading_flags(after_keyword(cx.text)).1;
            return match rest.split_whitespace().next() {
                None => line("HEALTHCHECK requires at least one argument".into()),
                Some(t) => line(format!(
                    "Unknown type {} in HEALTHCHECK (try CMD)",
                    crate::gofmt::go_quote(&t.to_ascii_uppercase())
                )),
            };
        }
        _ => {}
    }
    if msg.starts_with("duplicate stage name") {
        return ParseError::Other(DUPLICATE_STAGE.into());
    }
    if let Some(token) = msg
        .strip_prefix("invalid escape '")
        .and_then(|m| m.strip_suffix('\''))
    {
        return ParseError::Other(format!(
            "failed to parse Dockerfile: invalid escape token '{token}' does not match ` or \\"
        ));
    }
    // Heredoc and quoting problems have no 20.10 counterpart: keep the crate's words.
    line(msg.to_string())
}

/// 20.10 reports a repeated `AS name` (names compare case-insensitively) with this text.
pub(crate) const DUPLICATE_STAGE: &str = "a stage name already used";

pub(crate) fn after_keyword(text: &str) -> &str {
    let t = text.trim_start();
    let end = t.find(char::is_whitespace).unwrap_or(t.len());
    t[end..].trim_start()
}

#[cfg(test)]
mod tests {
    use crate::parse;

    fn err(src: &str) -> String {
        parse(src)
            .map(|df| format!("parsed: {df:?}"))
            .unwrap_or_else(|e| e.to_string())
    }

    /// One row per mapping, each text as dockerd 20.10.24 answered (DOCKER_BUILDKIT=0) on this
    /// machine; a parse-dockerfile upgrade that rewords an error fails here.
    #[test]
    fn crate_errors_in_docker_words() {
        let rows: &[(&str, &str)] = &[
            ("FROM busybox\nfoo bar\n", "dockerfile parse error line 2: unknown instruction: FOO"),
            ("FROM busybox\n   foo bar\n", "dockerfile parse error line 2: unknown instruction: FOO"),
            ("FROM busybox\nRUN true \\\n  && true\nFOO\n", "dockerfile parse error line 4: unknown instruction: FOO"),
            ("FROM busybox\nRUN echo ok\nENV\n", "dockerfile parse error line 3: ENV requires at least one argument"),
            ("FROM busybox\nEXPOSE\n", "dockerfile parse error line 2: EXPOSE requires at least one argument"),
            ("FROM busybox\nLABEL\n", "dockerfile parse error line 2: LABEL requires at least one argument"),
            ("FROM busybox\nARG\n", "dockerfile parse error line 2: ARG requires at least one argument"),
            ("FROM busybox\nVOLUME\n", "dockerfile parse error line 2: VOLUME requires at least one argument"),
            ("FROM busybox\nSHELL []\n", "dockerfile parse error line 2: SHELL requires at least one argument"),
            ("FROM busybox\nWORKDIR\n", "dockerfile parse error line 2: WORKDIR requires exactly one argument"),
            ("FROM busybox\nUSER\n", "dockerfile parse error line 2: USER requires exactly one argument"),
            ("FROM busybox\nMAINTAINER\n", "dockerfile parse error line 2: MAINTAINER requires exactly one argument"),
            ("FROM busybox\nSTOPSIGNAL\n", "dockerfile parse error line 2: STOPSIGNAL requires exactly one argument"),
            (
                "FROM busybox\nCOPY a\n",
                "dockerfile parse error line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined",
            ),
            (
                "FROM busybox\nADD a\n",
                "dockerfile parse error line 2: ADD requires at least two arguments, but only one was provided. Destination could not be determined",
            ),
            ("FROM\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
            ("FROM busybox AS\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
            ("FROM busybox xx\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
            ("FROM busybox AS a b\n", "dockerfile parse error line 1: FROM requires either one or three arguments"),
            ("FROM busybox\nSHELL echo\n", "dockerfile parse error line 2: SHELL requires the arguments to be in JSON form"),
            ("FROM busybox\nHEALTHCHECK\n", "dockerfile parse error line 2: HEALTHCHECK requires at least one argument"),
            ("FROM busybox\nHEALTHCHECK FOO x\n", "dockerfile parse error line 2: Unknown type \"FOO\" in HEALTHCHECK (try CMD)"),
            ("FROM busybox\nHEALTHCHECK NONE x\n", "dockerfile parse error line 2: HEALTHCHECK NONE takes no arguments"),
            ("FROM busybox\nHEALTHCHECK CMD []\n", "dockerfile parse error line 2: Missing command after HEALTHCHECK CMD"),
            ("FROM busybox\nONBUILD ONBUILD RUN x\n", "dockerfile parse error line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
            ("FROM busybox\nONBUILD\n", "dockerfile parse error line 2: ONBUILD requires at least one argument"),
            ("RUN echo hi\n", "no build stage in current context"),
            ("RUN x\nFROM busybox\n", "no build stage in current context"),
            ("# hi\n\n", "failed to parse Dockerfile: file with no instructions"),
            ("# escape=x\nFROM busybox\n", "failed to parse Dockerfile: invalid escape token 'x' does not match ` or \\"),
            ("FROM busybox AS a\nFROM busybox AS a\n", "a stage name already used"),
        ];
        for (src, want) in rows {
            assert_eq!(err(src), *want, "{src:?}");
        }
    }

    /// Our own checks (BuildKit's instructions/parse.go), same source of truth.
    #[test]
    fn instruction_checks_in_docker_words() {
        let rows: &[(&str, &str)] = &[
            ("", "the Dockerfile (Dockerfile) cannot be empty"),
            ("FROM busybox AS a\nFROM busybox AS A\n", "a stage name already used"),
            ("FROM busybox\nCOPY --foo=1 f /f\n", "dockerfile parse error line 2: Unknown flag: foo"),
            ("FROM --foo=bar busybox\n", "dockerfile parse error line 1: Unknown flag: foo"),
            ("FROM --platform busybox\n", "dockerfile parse error line 1: Missing a value on flag: platform"),
            ("FROM busybox\nADD --from=x a /b\n", "dockerfile parse error line 2: Unknown flag: from"),
            ("FROM busybox\nRUN --network=host true\n", "dockerfile parse error line 2: Unknown flag: network"),
            ("FROM busybox\nRUN --foo true\n", "dockerfile parse error line 2: Unknown flag: foo"),
            ("FROM busybox\nEXPOSE --x 80\n", "dockerfile parse error line 2: Unknown flag: x"),
            ("FROM busybox\nHEALTHCHECK --foo=1 CMD x\n", "dockerfile parse error line 2: Unknown flag: foo"),
            ("FROM busybox\nCOPY --chown a /b\n", "dockerfile parse error line 2: Missing a value on flag: chown"),
            ("FROM busybox\nCOPY --from=a --from=b a /b\n", "dockerfile parse error line 2: Duplicate flag specified: from"),
            ("FROM busybox\nCOPY --link=maybe a /b\n", "dockerfile parse error line 2: expecting boolean value for flag link, not: maybe"),
            (
                "FROM busybox\nRUN --mount=type=cache,target=/x true\n",
                "the --mount option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled",
            ),
            ("FROM busybox\nHEALTHCHECK --interval=5 CMD true\n", "dockerfile parse error line 2: time: missing unit in duration \"5\""),
            ("FROM busybox\nHEALTHCHECK --retries=x CMD true\n", "dockerfile parse error line 2: strconv.ParseInt: parsing \"x\": invalid syntax"),
            ("FROM busybox\nHEALTHCHECK --retries=-1 CMD true\n", "dockerfile parse error line 2: --retries must be at least 1 (not -1)"),
            ("FROM busybox\nHEALTHCHECK --interval=1us CMD true\n", "dockerfile parse error line 2: Interval \"interval\" cannot be less than 1ms"),
            (
                "FROM busybox\nHEALTHCHECK --start-period=1s --timeout=2s --interval=0s CMD [\"a\",\"b\"]\n",
                "dockerfile parse error line 2: Interval \"interval\" cannot be less than 1ms",
            ),
            ("FROM busybox\nONBUILD FROM x\n", "dockerfile parse error line 2: FROM isn't allowed as an ONBUILD trigger"),
            ("FROM busybox\nONBUILD MAINTAINER x\n", "dockerfile parse error line 2: MAINTAINER isn't allowed as an ONBUILD trigger"),
            // A trigger without arguments is refused at once only for these (as dockerd 20.10).
            ("FROM busybox\nONBUILD FROM\n", "dockerfile parse error line 2: FROM isn't allowed as an ONBUILD trigger"),
            ("FROM busybox\nONBUILD MAINTAINER\n", "dockerfile parse error line 2: MAINTAINER isn't allowed as an ONBUILD trigger"),
            // What dockerd's line parser reads of a trigger fails the base build already.
            ("FROM busybox\nONBUILD ENV a\n", "failed to parse Dockerfile: ENV must have two arguments"),
            ("FROM busybox\nONBUILD LABEL --x a\n", "failed to parse Dockerfile: LABEL must have two arguments"),
            (
                "FROM busybox\nONBUILD ENV a=1 b\n",
                "failed to parse Dockerfile: Syntax error - can't find = in \"b\". Must be of the form: name=value",
            ),
            (
                "FROM busybox\nONBUILD HEALTHCHECK --x=1 CMD [1]\n",
                "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only",
            ),
            ("FROM busybox\nUSER --x a\nONBUILD ENV a\n", "failed to parse Dockerfile: ENV must have two arguments"),
            ("FROM busybox\nLABEL a\n", "failed to parse Dockerfile: LABEL must have two arguments"),
            ("FROM busybox\nENV a\n", "failed to parse Dockerfile: ENV must have two arguments"),
            ("FROM busybox\nLABEL =x\n", "dockerfile parse error line 2: LABEL names can not be blank"),
            ("FROM busybox\nENV =x\n", "dockerfile parse error line 2: ENV names can not be blank"),
            ("FROM busybox\nARG =x\n", "dockerfile parse error line 2: ARG names can not be blank"),
            (
                "FROM busybox\nENV a=b c\n",
                "failed to parse Dockerfile: Syntax error - can't find = in \"c\". Must be of the form: name=value",
            ),
            (
                "FROM busybox\nENV A=${B:?need B}\n",
                "failed to parse Dockerfile: Syntax error - can't find = in \"B}\". Must be of the form: name=value",
            ),
            (
                "FROM busybox\nCMD [1]\n",
                "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only",
            ),
            (
                "FROM busybox\nCOPY [\"a\", {\"b\": [1, 2.5e3, null]}]\n",
                "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only",
            ),
            // The whole-file error wins over an earlier instruction-level one, as in Docker.
            ("FROM busybox\nUSER --x a\nENV a\n", "failed to parse Dockerfile: ENV must have two arguments"),
            (
                "FROM busybox AS 1bad\n",
                "dockerfile parse error line 1: invalid name for build stage: \"1bad\", name can't start with a number or contain symbols",
            ),
            ("FROM busybox\nVOLUME [\"\"]\n", "dockerfile parse error line 2: VOLUME specified can not be an empty string"),
        ];
        for (src, want) in rows {
            assert_eq!(err(src), *want, "{src:?}");
        }
    }
}
