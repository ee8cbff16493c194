//! The stage graph: which stage `--target` names, what each stage depends on (`FROM <stage>`,
//! `COPY --from=<stage name|index>`) and the stages a target needs.
use crate::{Dockerfile, Instruction, ParseError};

/// The stage to build: `--target` (names compare case-insensitively) or the last one.
pub fn target_stage(df: &Dockerfile, target: Option<&str>) -> Result<usize, ParseError> {
    if df.stages.is_empty() {
        return Err(ParseError::Other(
            "no build stage in current context".into(),
        ));
    }
    match target.filter(|t| !t.is_empty()) {
        None => Ok(df.stages.len() - 1),
        Some(t) => df
            .stages
            .iter()
            .position(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
            .ok_or_else(|| {
                ParseError::Other(format!("failed to reach build target {t} in Dockerfile"))
            }),
    }
}

/// Earlier stages `stage` uses, sorted and deduplicated. `expand_meta` expands a word with the
/// meta ARGs (FROM images and `--from` values may use them). A name that matches no earlier
/// stage is an image, not a dependency.
pub fn stage_dependencies(
    df: &Dockerfile,
    stage: usize,
    expand_meta: &dyn Fn(&str) -> String,
) -> Vec<usize> {
    let Some(s) = df.stages.get(stage) else {
        return Vec::new();
    };
    let by_name = |name: &str| {
        df.stages[..stage].iter().position(|p| {
            p.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    };
    let mut deps = Vec::new();
    if let Instruction::From { image, .. } = &s.from.instruction {
        deps.extend(by_name(&expand_meta(image)));
    }
    for step in &s.steps {
        let Instruction::Copy(c) = &step.instruction else {
            continue;
        };
        let Some(from) = &c.from else { continue };
        let from = expand_meta(from);
        match from.parse::<usize>() {
            Ok(i) if i < stage => deps.push(i),
            Ok(_) => {}
            Err(_) => deps.extend(by_name(&from)),
        }
    }
    deps.sort_unstable();
    deps.dedup();
    deps
}

/// `target` and every stage it needs, directly or not, in file order.
pub fn needed_stages(
    df: &Dockerfile,
    target: usize,
    expand_meta: &dyn Fn(&str) -> String,
) -> Vec<usize> {
    let mut needed = vec![false; df.stages.len()];
    let mut todo = vec![target];
    while let Some(s) = todo.pop() {
        if s >= needed.len() || needed[s] {
            continue;
        }
        needed[s] = true;
        todo.extend(stage_dependencies(df, s, expand_meta));
    }
    (0..needed.len()).filter(|&i| needed[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const MULTI: &str = "ARG BASE=busybox\nFROM ${BASE} AS first\nRUN echo first > /first\nFROM busybox AS skipped\n\
        RUN echo skipped\nFROM first AS mid\nARG BASE\nCOPY --from=first /first /copied\nRUN echo base=$BASE\n\
        FROM mid\nRUN echo final\n";

    fn expand(w: &str) -> String {
        w.replace("${BASE}", "busybox")
    }

    #[test]
    fn target_by_name_or_last() {
        let df = parse(MULTI).unwrap();
        assert_eq!(target_stage(&df, None).unwrap(), 3);
        assert_eq!(target_stage(&df, Some("")).unwrap(), 3);
        assert_eq!(target_stage(&df, Some("MID")).unwrap(), 2);
        assert_eq!(
            target_stage(&df, Some("nope")).unwrap_err().to_string(),
            "failed to reach build target nope in Dockerfile"
        );
    }

    #[test]
    fn dependencies_and_closure() {
        let df = parse(MULTI).unwrap();
        assert_eq!(stage_dependencies(&df, 0, &expand), Vec::<usize>::new());
        assert_eq!(stage_dependencies(&df, 2, &expand), vec![0]);
        assert_eq!(stage_dependencies(&df, 3, &expand), vec![2]);
        assert_eq!(needed_stages(&df, 3, &expand), vec![0, 2, 3]);
        assert_eq!(needed_stages(&df, 1, &expand), vec![1]);
    }

    #[test]
    fn copy_from_index_and_meta_arg_names() {
        let df = parse("ARG S=a\nFROM busybox AS a\nFROM busybox AS b\nCOPY --from=0 /x /x\nCOPY --from=${S} /y /y\n\
            COPY --from=2 /z /z\nCOPY --from=alpine /w /w\nFROM b\n")
            .unwrap();
        let e = |w: &str| w.replace("${S}", "a");
        // --from=2 is the stage itself (not earlier): an image name as far as the graph goes.
        assert_eq!(stage_dependencies(&df, 1, &e), vec![0]);
        assert_eq!(needed_stages(&df, 2, &e), vec![0, 1, 2]);
        // A later stage's name used in FROM is an image, not a dependency.
        let df = parse("FROM later\nFROM busybox AS later\n").unwrap();
        assert_eq!(needed_stages(&df, 0, &|w| w.to_string()), vec![0]);
    }
}
