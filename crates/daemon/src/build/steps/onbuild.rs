//! ONBUILD triggers of a stage's base image (dockerd's `dispatchTriggeredOnBuild`): after
//! `# Executing N build trigger(s)` each runs as a step of its own, without a `Step` line.

use berth_dockerfile::Step;

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
fn parse_trigger(trigger: &str) -> Result<Step, BuildError> {
    let df = berth_dockerfile::parse(&format!("FROM scratch\n{trigger}\n"))
        .map_err(|e| BuildError::msg(e.to_string()))?;
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
