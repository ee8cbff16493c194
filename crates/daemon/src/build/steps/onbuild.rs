//! ONBUILD triggers of a stage's base image (dockerd's `dispatchTriggeredOnBuild`): after
//! `# Executing N build trigger(s)` each runs as a step of its own, without a `Step` line.

use berth_dockerfile::{ParseError, Step};

use super::{dispatch, BuildCtx, StageState};
use crate::build::output::StageOut;
use crate::build::BuildError;

/// Runs the triggers in order.
pub async fn run_triggers(
    ctx: &BuildCtx,
    st: &mut StageState,
    triggers: &[String],
    out: &StageOut,
) -> Result<(), BuildError> {
    if triggers.is_empty() {
        return Ok(());
    }
    let plural = if triggers.len() > 1 { "s" } else { "" };
    out.text(&format!(
        "# Executing {} build trigger{plural}\n",
        triggers.len()
    ));
    for trigger in triggers {
        let step = parse_trigger(trigger)?;
        Box::pin(dispatch(ctx, st, &step, out)).await?;
    }
    Ok(())
}

/// A stored trigger (`RUN echo x`) as a step: parsed as the only instruction of a stage.
/// dockerd parses the trigger on its own and reports what is wrong with it without a
/// `dockerfile parse error line N:` prefix (the line would be the trigger's, not the
/// Dockerfile's), e.g. `Unknown flag: bogus`.
fn parse_trigger(trigger: &str) -> Result<Step, BuildError> {
    let df = berth_dockerfile::parse(&format!("FROM scratch\n{trigger}\n")).map_err(|e| {
        BuildError::msg(match e {
            ParseError::Line { message, .. } => message,
            other => other.to_string(),
        })
    })?;
    let mut steps = df
        .stages
        .into_iter()
        .next()
        .map(|s| s.steps)
        .unwrap_or_default();
    if steps.len() != 1 {
        return Err(BuildError::msg(
            "onbuild trigger should be a single expression",
        ));
    }
    Ok(steps.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_errors_are_dockerds_without_a_line() {
        let err = |t: &str| match parse_trigger(t) {
            Err(BuildError::Step {
                message,
                code: None,
            }) => message,
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(err("FOO bar"), "unknown instruction: FOO");
        assert_eq!(err("COPY --bogus=1 a b"), "Unknown flag: bogus");
        assert_eq!(
            err("HEALTHCHECK --retries=0 CMD true"),
            "--retries must be at least 1 (not 0)"
        );
        // A base may store these (dockerd builds it); they fail in the child, as there.
        assert_eq!(err("ENV"), "ENV requires at least one argument");
        assert_eq!(err("STOPSIGNAL"), "STOPSIGNAL requires exactly one argument");
        assert_eq!(err("SHELL x"), "SHELL requires the arguments to be in JSON form");
        assert_eq!(
            err("COPY a"),
            "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
        );
        assert_eq!(parse_trigger("RUN echo x").unwrap().text, "RUN echo x");
    }
}
