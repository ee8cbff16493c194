//! Word expansion of one instruction (design §1): each word is expanded with the environment
//! from before the instruction (the config's Env plus the build args in scope that Env does not
//! shadow), so `ENV abc=bye def=$abc` uses the old `abc`. RUN, CMD, ENTRYPOINT, SHELL,
//! HEALTHCHECK and MAINTAINER are not expanded: the shell does it.

use berth_dockerfile::{process_word, process_words, CopyArgs};

use super::args::BuildArgs;
use super::config::RunConfig;
use super::sources::ExpandedCopy;
use super::BuildError;

/// The variables one instruction is expanded with.
pub struct Scope {
    env: Vec<String>,
    escape: char,
}

impl Scope {
    /// A step's scope: the config's Env, then the allowed args it does not shadow.
    pub fn for_step(config: &RunConfig, args: &BuildArgs, escape: char) -> Scope {
        let mut env = config.env().to_vec();
        env.extend(args.filter_allowed(config.env()));
        Scope { env, escape }
    }

    /// A meta ARG's scope: the meta args before it (and proxies).
    pub fn for_meta_args(args: &BuildArgs, escape: char) -> Scope {
        Scope {
            env: args
                .all_allowed()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            escape,
        }
    }

    /// FROM's scope: the meta args only.
    pub fn for_from(args: &BuildArgs, escape: char) -> Scope {
        Scope {
            env: args
                .all_meta()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            escape,
        }
    }

    /// One word, quotes removed. An expansion error is a 400 in dockerd (it happens before
    /// the step runs), but the stream has started by then, so it ends the stream.
    pub fn word(&self, word: &str) -> Result<String, BuildError> {
        process_word(word, &self.env, self.escape).map_err(|e| BuildError::msg(e.to_string()))
    }

    /// One word that may expand to several (EXPOSE only).
    pub fn words(&self, word: &str) -> Result<Vec<String>, BuildError> {
        process_words(word, &self.env, self.escape).map_err(|e| BuildError::msg(e.to_string()))
    }

    /// `name=value` pairs (ENV, LABEL): both sides expanded.
    pub fn pairs(&self, pairs: &[(String, String)]) -> Result<Vec<(String, String)>, BuildError> {
        pairs
            .iter()
            .map(|(k, v)| Ok((self.word(k)?, self.word(v)?)))
            .collect()
    }

    /// ARG's `name[=default]`.
    pub fn args(
        &self,
        args: &[(String, Option<String>)],
    ) -> Result<Vec<(String, Option<String>)>, BuildError> {
        args.iter()
            .map(|(k, v)| {
                Ok((
                    self.word(k)?,
                    v.as_deref().map(|v| self.word(v)).transpose()?,
                ))
            })
            .collect()
    }

    /// COPY/ADD: sources, dest, `--chown` (empty: none), `--chmod` (parsed), and `--from`'s
    /// value beside them; heredoc bodies unless their delimiter was quoted.
    pub fn copy(&self, c: &CopyArgs) -> Result<(ExpandedCopy, Option<String>), BuildError> {
        let opt = |v: &Option<String>| v.as_deref().map(|v| self.word(v)).transpose();
        let mut heredocs = Vec::new();
        for h in &c.heredocs {
            let body = if h.expand {
                self.heredoc(&h.body)?
            } else {
                h.body.clone()
            };
            heredocs.push((h.name.clone(), body.into_bytes()));
        }
        let sources = c
            .sources
            .iter()
            .map(|s| self.word(s))
            .collect::<Result<_, _>>()?;
        let dest = self.word(&c.dest)?;
        let from = opt(&c.from)?;
        let chown = opt(&c.chown)?;
        // Every word expands before the mode is read, so an expansion error comes first.
        let chmod = opt(&c.chmod)?.map(|m| parse_chmod(&m)).transpose()?;
        let expanded = ExpandedCopy {
            sources,
            dest,
            chown: chown.filter(|c| !c.is_empty()),
            chmod,
            link: c.link,
            heredocs,
        };
        Ok((expanded, from))
    }

    /// A heredoc body: variables expand, but quotes and backslashes stay as written (BuildKit
    /// expands heredocs with raw quotes and escapes), so `$` is the only special character.
    fn heredoc(&self, body: &str) -> Result<String, BuildError> {
        let mut out = String::with_capacity(body.len());
        let mut rest = body;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let len = variable_len(tail);
            if len == 0 {
                out.push('$');
                rest = &tail[1..];
                continue;
            }
            // The reference alone goes through the word expander: no quotes in it to remove.
            out.push_str(&self.word(&tail[..len])?);
            rest = &tail[len..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Length of the variable reference at the start of `s` (`$name` or `${…}`), 0 if none.
fn variable_len(s: &str) -> usize {
    let b = s.as_bytes();
    if b.len() < 2 {
        return 0;
    }
    if b[1] == b'{' {
        let mut depth = 0;
        for (i, &c) in b.iter().enumerate().skip(1) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        return 0;
    }
    let name_len = b[1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    if name_len > 0 {
        name_len + 1
    } else if b[1].is_ascii_digit()
        || matches!(b[1], b'@' | b'*' | b'#' | b'?' | b'$' | b'!' | b'-')
    {
        2
    } else {
        0
    }
}

/// `--chmod` as BuildKit takes it: octal permission bits.
pub fn parse_chmod(s: &str) -> Result<u32, BuildError> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            BuildError::msg(format!(
                "invalid chmod parameter {s}: must be an octal number"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn scope() -> Scope {
        let mut config = RunConfig::default();
        config.set_env("abc", "hi");
        let mut args =
            BuildArgs::new(BTreeMap::from([("V".to_string(), Some("7".to_string()))])).for_stage();
        args.add("V", Some("1".into()));
        args.add("abc", Some("shadowed".into()));
        Scope::for_step(&config, &args, '\\')
    }

    #[test]
    fn env_wins_over_args() {
        let s = scope();
        assert_eq!(s.env, ["abc=hi", "V=7"]);
    }

    #[test]
    fn heredocs_keep_quotes_and_backslashes() {
        let s = scope();
        assert_eq!(
            s.heredoc("a $V \"q\" 'r' \\n ${V:-z} $ ${abc}\n").unwrap(),
            "a 7 \"q\" 'r' \\n 7 $ hi\n"
        );
        let c = CopyArgs {
            sources: vec!["$abc".into()],
            dest: "/d/${V}".into(),
            chown: Some("${V}:1".into()),
            heredocs: vec![
                berth_dockerfile::Heredoc {
                    name: "A".into(),
                    body: "$V\n".into(),
                    expand: true,
                    strip_tabs_done: false,
                },
                berth_dockerfile::Heredoc {
                    name: "B".into(),
                    body: "$V\n".into(),
                    expand: false,
                    strip_tabs_done: false,
                },
            ],
            ..Default::default()
        };
        let (e, from) = s.copy(&c).unwrap();
        assert_eq!(from, None);
        assert_eq!(
            (e.sources, e.dest, e.chown),
            (
                vec!["hi".to_string()],
                "/d/7".to_string(),
                Some("7:1".to_string())
            )
        );
        assert_eq!(
            e.heredocs,
            [
                ("A".to_string(), b"7\n".to_vec()),
                ("B".to_string(), b"$V\n".to_vec())
            ]
        );
    }

    #[test]
    fn copy_flags_are_read() {
        let s = scope();
        let c = CopyArgs {
            sources: vec!["a".into()],
            dest: "/d".into(),
            from: Some("$abc".into()),
            chown: Some("".into()),
            chmod: Some("0${V}55".into()),
            ..Default::default()
        };
        let (e, from) = s.copy(&c).unwrap();
        assert_eq!(
            (e.chown, e.chmod, from.as_deref()),
            (None, Some(0o755), Some("hi"))
        );
        assert_eq!(parse_chmod("0644").unwrap(), 0o644);
        assert!(parse_chmod("9").is_err());
        assert!(parse_chmod("17777").is_err());
    }

    #[test]
    fn variable_references() {
        assert_eq!(variable_len("$abc def"), 4);
        assert_eq!(variable_len("${a:-x}y"), 7);
        assert_eq!(variable_len("${a:-${b}}z"), 10);
        assert_eq!(variable_len("$ x"), 0);
        assert_eq!(variable_len("$"), 0);
        assert_eq!(variable_len("$1"), 2);
    }
}
