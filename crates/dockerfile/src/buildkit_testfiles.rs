//! BuildKit's parser test files (`frontend/dockerfile/parser/testfiles*`, moby/buildkit,
//! Apache-2.0): each Dockerfile is parsed and rendered back in the AST notation of its `result`.
use super::*;
use crate::gofmt::go_quote;
use std::path::Path;

fn q(items: &[String]) -> String {
    items.iter().map(|s| format!(" {}", go_quote(s))).collect()
}

fn render(step: &Step, escape: char) -> String {
    let kw = step
        .text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let cmd = |c: &Command| match c {
        Command::Exec(v) => q(v),
        Command::Shell(s) => q(std::slice::from_ref(s)),
    };
    let pairs = |p: &[(String, String)]| {
        // The legacy `KEY name value` form has an empty separator in BuildKit's AST.
        let legacy = !parse_words(after_keyword(&step.text), escape)
            .first()
            .is_some_and(|w| w.contains('='));
        let sep = if legacy { "" } else { "=" };
        p.iter()
            .map(|(k, v)| q(&[k.clone(), v.clone(), sep.to_string()]))
            .collect::<String>()
    };
    let args = match &step.instruction {
        Instruction::From { image, name, .. } => q(&std::iter::once(image.clone())
            .chain(name.iter().flat_map(|n| ["AS".to_string(), n.clone()]))
            .collect::<Vec<_>>()),
        Instruction::Arg(a) => q(&a
            .iter()
            .map(|(k, v)| v.as_ref().map_or(k.clone(), |v| format!("{k}={v}")))
            .collect::<Vec<_>>()),
        Instruction::Env(p) | Instruction::Label(p) => pairs(p),
        Instruction::Run { command, .. }
        | Instruction::Cmd(command)
        | Instruction::Entrypoint(command) => cmd(command),
        Instruction::Copy(c) | Instruction::Add(c) => q(&c
            .sources
            .iter()
            .chain([&c.dest])
            .cloned()
            .collect::<Vec<_>>()),
        Instruction::Expose(v) | Instruction::Volume(v) | Instruction::Shell(v) => q(v),
        Instruction::User(s)
        | Instruction::Workdir(s)
        | Instruction::StopSignal(s)
        | Instruction::Maintainer(s) => q(std::slice::from_ref(s)),
        Instruction::Onbuild { trigger } => {
            let df = parse(&format!("FROM x\n{trigger}")).unwrap();
            return format!("(onbuild {})", render(&df.stages[0].steps[0], escape));
        }
        Instruction::Healthcheck(h) => match h.test.first().map(String::as_str) {
            Some("CMD-SHELL") => q(&["CMD".to_string(), h.test[1].clone()]),
            _ => q(&h.test),
        },
    };
    format!("({kw}{args})")
}

#[test]
fn buildkit_parser_testfiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/testdata/buildkit-parser/testfiles");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    // Files that use what Docker itself rejects past the AST: unknown flags, unknown
    // HEALTHCHECK types.
    let rejected = ["flags", "health"];
    let mut compared = 0;
    for path in entries {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let mut src = std::fs::read_to_string(path.join("Dockerfile")).unwrap();
        let mut want = std::fs::read_to_string(path.join("result")).unwrap();
        // The JSON files are bare CMD lines: give them a stage.
        if !src.to_ascii_uppercase().contains("FROM") {
            src = format!("FROM x\n{src}");
            want = format!("(from \"x\")\n{want}");
        }
        let parsed = parse(&src);
        if rejected.contains(&name.as_str()) {
            assert!(parsed.is_err(), "{name} parsed");
            continue;
        }
        let df = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
        let steps = df.meta_args.iter().chain(
            df.stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from).chain(&s.steps)),
        );
        let got: Vec<String> = steps.map(|s| render(s, df.escape)).collect();
        let want: Vec<&str> = want.lines().collect();
        assert_eq!(got, want, "{name}");
        compared += 1;
    }
    assert!(compared >= 20, "{compared}");
    for neg in [
        "empty_dockerfile",
        "env_no_value",
        "only_comments",
        "shykes-nested-json",
    ] {
        let p = dir
            .parent()
            .unwrap()
            .join("testfiles-negative")
            .join(neg)
            .join("Dockerfile");
        let src = std::fs::read_to_string(p).unwrap();
        assert!(parse(&src).is_err(), "{neg} parsed");
        if neg == "shykes-nested-json" {
            assert_eq!(
                parse(&format!("FROM x\n{src}")).unwrap_err().to_string(),
                "failed to parse Dockerfile: when using JSON array syntax, arrays must be comprised of strings only"
            );
        }
    }
}
