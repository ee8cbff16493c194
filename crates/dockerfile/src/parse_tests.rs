//! Unit tests of parse.rs: Docker 20.10's behaviour recorded on this machine.
use super::*;

fn steps(src: &str) -> Vec<Step> {
    let df = parse(src).unwrap();
    df.meta_args
        .into_iter()
        .chain(
            df.stages
                .into_iter()
                .flat_map(|s| std::iter::once(s.from).chain(s.steps)),
        )
        .collect()
}

fn one(src: &str) -> Instruction {
    steps(&format!("FROM busybox\n{src}")).remove(1).instruction
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Step texts as dockerd 20.10 printed them (`Step N/M : <text>`), checked on this machine.
#[test]
fn step_texts_like_docker() {
    let src = "FROM busybox\nRUN echo a \\\n  # comment\n\n  && echo b   \nenv A=1 \\\n    B=2\t\nlabel x=1\\\n";
    let texts: Vec<String> = steps(src).into_iter().map(|s| s.text).collect();
    assert_eq!(
        texts,
        s(&[
            "FROM busybox",
            "RUN echo a   && echo b",
            "env A=1     B=2",
            "label x=1"
        ])
    );
    let lines: Vec<usize> = steps(src).iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![1, 2, 6, 8]);

    let texts: Vec<String> = steps("from busybox as Foo\nFROM foo   \nUSER   root  \nONBUILD   run   echo   x  \n\tRUN\techo tab\nCMD [\"a\", \\\n  \"b\"]\n")
        .into_iter()
        .map(|s| s.text)
        .collect();
    assert_eq!(
        texts,
        s(&[
            "from busybox as Foo",
            "FROM foo",
            "USER   root",
            "ONBUILD   run   echo   x",
            "RUN\techo tab",
            "CMD [\"a\",   \"b\"]"
        ])
    );

    let texts: Vec<String> = steps("# escape=`\nFROM busybox\nRUN echo a `\n  b\n")
        .into_iter()
        .map(|s| s.text)
        .collect();
    assert_eq!(texts, s(&["FROM busybox", "RUN echo a   b"]));
}

#[test]
fn empty_continuation_warning_like_docker() {
    let w = empty_continuation_warning("FROM busybox\nRUN echo a \\\n\n  && echo b   \n").unwrap();
    assert_eq!(
        w,
        "[WARNING]: Empty continuation line found in:\n    RUN echo a   && echo b   \n[WARNING]: Empty continuation lines will become errors in a future release.\n"
    );
    assert_eq!(
        empty_continuation_warning("FROM busybox\nRUN a \\\n  b\n"),
        None
    );
}

/// The transcripts' "all instruction kinds" Dockerfile.
#[test]
fn every_instruction_kind() {
    let src = "FROM busybox\nARG V=1\nENV A=b C=\"d e\"\nLABEL maintainer=\"me\" version=$V\nWORKDIR /app\n\
        COPY hello.txt /app/\nADD dir /app/dir\nRUN echo built > /built && cat /app/hello.txt\n\
        RUN [\"sh\", \"-c\", \"echo exec form\"]\nEXPOSE 80/tcp 443\nVOLUME /data\nUSER nobody\nCMD [\"sh\"]\n\
        ENTRYPOINT [\"/bin/sh\",\"-c\"]\nHEALTHCHECK --interval=5s CMD true\nSTOPSIGNAL SIGTERM\n\
        SHELL [\"/bin/sh\",\"-c\"]\nONBUILD RUN echo onbuild\n";
    let df = parse(src).unwrap();
    assert_eq!(df.escape, '\\');
    assert_eq!(df.stages.len(), 1);
    let st = &df.stages[0];
    assert_eq!(
        st.from.instruction,
        Instruction::From {
            image: "busybox".into(),
            name: None,
            platform: None
        }
    );
    let got: Vec<&Instruction> = st.steps.iter().map(|s| &s.instruction).collect();
    let want = vec![
        Instruction::Arg(vec![("V".into(), Some("1".into()))]),
        Instruction::Env(kv(&[("A", "b"), ("C", "\"d e\"")])),
        Instruction::Label(kv(&[("maintainer", "\"me\""), ("version", "$V")])),
        Instruction::Workdir("/app".into()),
        Instruction::Copy(CopyArgs {
            sources: s(&["hello.txt"]),
            dest: "/app/".into(),
            ..Default::default()
        }),
        Instruction::Add(CopyArgs {
            sources: s(&["dir"]),
            dest: "/app/dir".into(),
            ..Default::default()
        }),
        Instruction::Run {
            command: Command::Shell("echo built > /built && cat /app/hello.txt".into()),
            heredocs: vec![],
        },
        Instruction::Run {
            command: Command::Exec(s(&["sh", "-c", "echo exec form"])),
            heredocs: vec![],
        },
        Instruction::Expose(s(&["80/tcp", "443"])),
        Instruction::Volume(s(&["/data"])),
        Instruction::User("nobody".into()),
        Instruction::Cmd(Command::Exec(s(&["sh"]))),
        Instruction::Entrypoint(Command::Exec(s(&["/bin/sh", "-c"]))),
        Instruction::Healthcheck(HealthcheckArgs {
            test: s(&["CMD-SHELL", "true"]),
            interval: Some("5s".into()),
            ..Default::default()
        }),
        Instruction::StopSignal("SIGTERM".into()),
        Instruction::Shell(s(&["/bin/sh", "-c"])),
        Instruction::Onbuild {
            trigger: "RUN echo onbuild".into(),
        },
    ];
    assert_eq!(got, want.iter().collect::<Vec<_>>());
    assert_eq!(st.steps[2].text, "LABEL maintainer=\"me\" version=$V");
}

/// The transcripts' "more created_by texts" files: raw words the executor expands.
#[test]
fn raw_words_for_the_executor() {
    assert_eq!(
        one("MAINTAINER Jane <j@x>\n"),
        Instruction::Maintainer("Jane <j@x>".into())
    );
    assert_eq!(
        one("ARG NODEF\n"),
        Instruction::Arg(vec![("NODEF".into(), None)])
    );
    assert_eq!(
        one("ARG WITH=\"x y\"\n"),
        Instruction::Arg(vec![("WITH".into(), Some("\"x y\"".into()))])
    );
    assert_eq!(
        one("ARG a=1 b\n"),
        Instruction::Arg(vec![("a".into(), Some("1".into())), ("b".into(), None)])
    );
    assert_eq!(
        one("ENV PATHX=$PATH:/x K=\"a=b\" \\\n    L=c\\ d\n"),
        Instruction::Env(kv(&[
            ("PATHX", "$PATH:/x"),
            ("K", "\"a=b\""),
            ("L", "c\\ d")
        ]))
    );
    assert_eq!(
        one("LABEL \"com.x\"=\"v w\" other='$WITH'\n"),
        Instruction::Label(kv(&[("\"com.x\"", "\"v w\""), ("other", "'$WITH'")]))
    );
    assert_eq!(one("ENV a b  c\n"), Instruction::Env(kv(&[("a", "b  c")])));
    assert_eq!(one("ENV a=\n"), Instruction::Env(kv(&[("a", "")])));
    assert_eq!(
        one("CMD echo hi\n"),
        Instruction::Cmd(Command::Shell("echo hi".into()))
    );
    assert_eq!(one("CMD\n"), Instruction::Cmd(Command::Shell("".into())));
    // A broken JSON array is shell form, as in Docker.
    assert_eq!(
        one("CMD [\"a\",\n"),
        Instruction::Cmd(Command::Shell("[\"a\",".into()))
    );
    assert_eq!(
        one("VOLUME [\"/a\", \"/b\"]\n"),
        Instruction::Volume(s(&["/a", "/b"]))
    );
    assert_eq!(
        one("EXPOSE 8080 22/udp 1000-1001\n"),
        Instruction::Expose(s(&["8080", "22/udp", "1000-1001"]))
    );
    assert_eq!(one("WORKDIR a b\n"), Instruction::Workdir("a b".into()));
    assert_eq!(one("USER 1:1\n"), Instruction::User("1:1".into()));
    // 20.10 accepts any trigger word here (it fails when a build runs the trigger).
    assert_eq!(
        one("ONBUILD FOO x \\\n  y\n"),
        Instruction::Onbuild {
            trigger: "FOO x   y".into()
        }
    );
    // A trigger's arguments are checked when a child build runs it, as by dockerd 20.10:
    // a base with `ONBUILD ENV` or `ONBUILD STOPSIGNAL` (or `ONBUILD COPY a`) builds.
    for trigger in ["ENV", "STOPSIGNAL", "USER", "WORKDIR", "EXPOSE", "COPY a", "SHELL x", "HEALTHCHECK FOO", "ENV a b"] {
        assert_eq!(
            one(&format!("ONBUILD {trigger}\n")),
            Instruction::Onbuild {
                trigger: trigger.into()
            }
        );
    }
    assert_eq!(
        one("onbuild run echo x\n"),
        Instruction::Onbuild {
            trigger: "run echo x".into()
        }
    );
    assert_eq!(
        one("ONBUILD   run   echo   x  \n"),
        Instruction::Onbuild {
            trigger: "run   echo   x  ".into()
        }
    );
    assert_eq!(
        one("COPY --chown=1:2 --chmod=755 --link --from=build a b /dst/\n"),
        Instruction::Copy(CopyArgs {
            sources: s(&["a", "b"]),
            dest: "/dst/".into(),
            from: Some("build".into()),
            chown: Some("1:2".into()),
            chmod: Some("755".into()),
            link: true,
            heredocs: vec![],
        })
    );
    assert_eq!(
        one("COPY [\"a b\", \"/c d/\"]\n"),
        Instruction::Copy(CopyArgs {
            sources: s(&["a b"]),
            dest: "/c d/".into(),
            ..Default::default()
        })
    );
    assert_eq!(
        one("HEALTHCHECK --interval=1m --timeout=3s --retries=3 CMD wget -q localhost || exit 1\n"),
        Instruction::Healthcheck(HealthcheckArgs {
            test: s(&["CMD-SHELL", "wget -q localhost || exit 1"]),
            interval: Some("1m".into()),
            timeout: Some("3s".into()),
            start_period: None,
            retries: Some("3".into()),
        })
    );
    assert_eq!(
        one("HEALTHCHECK --interval=5 --foo NONE\n"),
        Instruction::Healthcheck(HealthcheckArgs {
            test: s(&["NONE"]),
            ..Default::default()
        })
    );
    assert_eq!(
        one("HEALTHCHECK CMD [\"a\", \"b\"]\n"),
        Instruction::Healthcheck(HealthcheckArgs {
            test: s(&["CMD", "a", "b"]),
            ..Default::default()
        })
    );
    assert_eq!(
        one("SHELL [\"/bin/sh\", \"-xc\"]\n"),
        Instruction::Shell(s(&["/bin/sh", "-xc"]))
    );
    assert_eq!(one("STOPSIGNAL 9\n"), Instruction::StopSignal("9".into()));
}

#[test]
fn stages_meta_args_and_names() {
    let df = parse("ARG BASE=busybox\nFROM ${BASE} AS First\nRUN x\nFROM --platform=$P first\n")
        .unwrap();
    assert_eq!(df.meta_args.len(), 1);
    assert_eq!(df.meta_args[0].text, "ARG BASE=busybox");
    assert_eq!(df.stages[0].name.as_deref(), Some("first"));
    assert_eq!(df.stages[0].index, 0);
    assert_eq!(df.stages[1].index, 1);
    assert_eq!(
        df.stages[1].from.instruction,
        Instruction::From {
            image: "first".into(),
            name: None,
            platform: Some("$P".into())
        }
    );
    assert_eq!(df.stages[1].from.line, 4);
    assert_eq!(parse("\u{feff}FROM a\n").unwrap().stages.len(), 1);
    assert_eq!(
        parse("FROM busybox AS a_b.c-d\n").unwrap().stages[0]
            .name
            .as_deref(),
        Some("a_b.c-d")
    );
}

#[test]
fn run_heredocs_anywhere_on_the_line() {
    let df = parse("FROM busybox\nRUN <<EOF\necho a\n  echo b\nEOF\nRUN cat <<-'X' > /f && echo <<Y\n\tliteral $x\n\tX\ny body\nY\nRUN echo after\n")
        .unwrap();
    let st = &df.stages[0].steps;
    assert_eq!(st.len(), 3);
    assert_eq!(
        st[0].instruction,
        Instruction::Run {
            command: Command::Shell("<<EOF\necho a\n  echo b\nEOF".into()),
            heredocs: vec![Heredoc {
                name: "EOF".into(),
                body: "echo a\n  echo b\n".into(),
                expand: true,
                strip_tabs_done: false
            }],
        }
    );
    assert_eq!(st[0].text, "RUN <<EOF");
    let Instruction::Run {
        command: Command::Shell(cmd),
        heredocs,
    } = &st[1].instruction
    else {
        panic!()
    };
    assert_eq!(cmd, "cat <<-'X' > /f && echo <<Y\nliteral $x\nX\ny body\nY");
    assert_eq!(
        heredocs,
        &vec![
            Heredoc {
                name: "X".into(),
                body: "literal $x\n".into(),
                expand: false,
                strip_tabs_done: true
            },
            Heredoc {
                name: "Y".into(),
                body: "y body\n".into(),
                expand: true,
                strip_tabs_done: false
            },
        ]
    );
    assert_eq!(st[2].line, 11);
    // BuildKit: a lone heredoc runs its body; anything else is the line plus bodies.
    let Instruction::Run {
        command: Command::Shell(c0),
        heredocs: h0,
    } = &st[0].instruction
    else {
        panic!()
    };
    assert_eq!(crate::run_heredoc_script(c0, h0), "echo a\n  echo b\n");
    assert_eq!(
        crate::run_heredoc_script(cmd, heredocs),
        "cat <<-'X' > /f && echo <<Y\nliteral $x\nX\ny body\nY"
    );
}

#[test]
fn copy_heredocs() {
    let i = one("COPY <<EOF <<-\"TWO\" /dst/\nhello $x\nEOF\n\tsecond\n\tTWO\n");
    assert_eq!(
        i,
        Instruction::Copy(CopyArgs {
            sources: vec![],
            dest: "/dst/".into(),
            heredocs: vec![
                Heredoc {
                    name: "EOF".into(),
                    body: "hello $x\n".into(),
                    expand: true,
                    strip_tabs_done: false
                },
                Heredoc {
                    name: "TWO".into(),
                    body: "second\n".into(),
                    expand: false,
                    strip_tabs_done: true
                },
            ],
            ..Default::default()
        })
    );
}

#[test]
fn crlf_and_backtick_escape() {
    let df = parse("FROM busybox\r\nRUN echo a \\\r\n  b\r\nENV A=1\r\n").unwrap();
    let st = &df.stages[0].steps;
    assert_eq!(st[0].text, "RUN echo a   b");
    assert_eq!(
        st[0].instruction,
        Instruction::Run {
            command: Command::Shell("echo a   b".into()),
            heredocs: vec![]
        }
    );
    assert_eq!(st[1].instruction, Instruction::Env(kv(&[("A", "1")])));
    assert_eq!(st[1].line, 4);

    let df = parse("# escape=`\nFROM busybox\nCOPY c:\\src `\n  /dst\nENV P=c:\\a\\b\n").unwrap();
    assert_eq!(df.escape, '`');
    let st = &df.stages[0].steps;
    assert_eq!(
        st[0].instruction,
        Instruction::Copy(CopyArgs {
            sources: s(&["c:\\src"]),
            dest: "/dst".into(),
            ..Default::default()
        })
    );
    assert_eq!(
        st[1].instruction,
        Instruction::Env(kv(&[("P", "c:\\a\\b")]))
    );
}

#[test]
fn trailing_doubled_escape_is_not_a_continuation() {
    let df = parse("FROM x\nENV C a\\\\\nENV D d\nRUN echo \\\\ \\\n  next\n").unwrap();
    let st = &df.stages[0].steps;
    assert_eq!(st.len(), 3);
    assert_eq!(st[0].instruction, Instruction::Env(kv(&[("C", "a\\\\")])));
    assert_eq!(st[2].text, "RUN echo \\\\   next");
}

/// Parse + expansion give the words of the transcripts' history lines (dockerd 20.10):
/// `ENV PATHX=/usr/local/sbin:...:/x K=a=b L=c d`, `LABEL com.x=v w other=$WITH`, `ARG WITH=x y`.
#[test]
fn expanded_words_match_docker_history() {
    use crate::process_word;
    let df = parse(
        "FROM busybox\nARG WITH=\"x y\"\nENV PATHX=$PATH:/x K=\"a=b\" \\\n    L=c\\ d\nLABEL \"com.x\"=\"v w\" other='$WITH'\n",
    )
    .unwrap();
    let env = vec!["PATH=/bin".to_string(), "WITH=x y".to_string()];
    let expand = |pairs: &[(String, String)]| -> String {
        let words: Vec<String> = pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    process_word(k, &env, '\\').unwrap(),
                    process_word(v, &env, '\\').unwrap()
                )
            })
            .collect();
        words.join(" ")
    };
    let st = &df.stages[0].steps;
    let Instruction::Arg(a) = &st[0].instruction else {
        panic!()
    };
    assert_eq!(
        process_word(a[0].1.as_deref().unwrap(), &env, '\\').unwrap(),
        "x y"
    );
    let Instruction::Env(e) = &st[1].instruction else {
        panic!()
    };
    assert_eq!(expand(e), "PATHX=/bin:/x K=a=b L=c d");
    let Instruction::Label(l) = &st[2].instruction else {
        panic!()
    };
    assert_eq!(expand(l), "com.x=v w other=$WITH");
}
