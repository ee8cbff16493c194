//! RUN (dockerd's `dispatchRun`): the cache key is the command with the build args in scope
//! in front (`|N K=V… cmd`); the container runs the command with those args in its
//! environment, no entrypoint and no healthcheck; its changes become the next image.

use berth_dockerfile::{Command, Heredoc};
use serde_json::json;
use tokio::sync::mpsc;

use super::meta::command_line;
use super::{
    commit_container, create_container, probe_cache, remove_container, BuildCtx, StageState,
};
use crate::build::config::RunConfig;
use crate::build::output::StageOut;
use crate::build::BuildError;
use crate::engine::build_step::Output;

/// Runs one RUN step.
pub async fn run(
    ctx: &BuildCtx,
    st: &mut StageState,
    command: &Command,
    heredocs: &[Heredoc],
    out: &StageOut,
) -> Result<(), BuildError> {
    let cmd = run_command(&st.config, command, heredocs);
    let args_env = st.args.filter_allowed(st.config.env());
    let mut save_cmd = st.args.run_prefix(&args_env);
    save_cmd.extend(cmd.iter().cloned());

    let mut probe = st.config.clone();
    probe.cmd = Some(save_cmd.clone());
    probe.args_escaped = false;
    if !save_cmd.is_empty() {
        // ContainerCreate turns the run's `[""]` into nil: the cache compares nil.
        probe.entrypoint = None;
    }
    if probe_cache(ctx, st, &probe, out).await? {
        return Ok(());
    }

    let mut run_config = st.config.clone();
    run_config.cmd = Some(cmd);
    run_config.args_escaped = false;
    let mut env = st.config.env().to_vec();
    env.extend(args_env);
    run_config.env = Some(env);
    if !save_cmd.is_empty() {
        run_config.entrypoint = Some(vec![String::new()]);
    }
    run_config.healthcheck = Some(json!({"Test": ["NONE"]}));

    let c = create_container(ctx, st, &run_config, out).await?;
    let (tx, mut rx) = mpsc::channel::<Output>(64);
    let running = ctx.engine.build_run(&c, tx, ctx.cancel.clone());
    let forward = async {
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Output::Stdout(b) => out.stdout(&b),
                Output::Stderr(b) => out.stderr(&b),
            }
        }
    };
    let (exit, ()) = tokio::join!(running, forward);
    let failure = match exit {
        Ok(0) => None,
        Ok(code) => Some(BuildError::Step {
            message: format!(
                "The command '{}' returned a non-zero code: {code}",
                run_config.cmd_line()
            ),
            code: Some(code),
        }),
        Err(_) if ctx.cancel.is_cancelled() => Some(BuildError::Cancelled),
        Err(e) => Some(e.into()),
    };
    if let Some(e) = failure {
        remove_container(ctx, c, out, false).await;
        return Err(e);
    }
    commit_container(ctx, st, c, &probe, out).await
}

/// The command a RUN runs. A RUN that is a single heredoc runs the heredoc's body as the
/// shell's script (BuildKit's "fake heredoc"); any other text, heredocs included, goes to
/// the shell whole.
fn run_command(config: &RunConfig, command: &Command, heredocs: &[Heredoc]) -> Vec<String> {
    if let (Command::Shell(text), [only]) = (command, heredocs) {
        let first_line = text.lines().next().unwrap_or_default().trim();
        if is_heredoc_token(first_line, &only.name) {
            let mut cmd = config.shell();
            cmd.push(only.body.clone());
            return cmd;
        }
    }
    command_line(config, command)
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`.
fn is_heredoc_token(word: &str, name: &str) -> bool {
    let Some(rest) = word.strip_prefix("<<") else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let unquoted = rest
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| rest.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        .unwrap_or(rest);
    unquoted == name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heredoc(name: &str, body: &str) -> Heredoc {
        Heredoc {
            name: name.into(),
            body: body.into(),
            expand: true,
            strip_tabs_done: false,
        }
    }

    #[test]
    fn single_heredoc_runs_its_body() {
        let c = RunConfig::default();
        let cmd = run_command(
            &c,
            &Command::Shell("<<EOF\necho a\nEOF".into()),
            &[heredoc("EOF", "echo a\n")],
        );
        assert_eq!(cmd, ["/bin/sh", "-c", "echo a\n"]);
        let whole = "cat <<EOF > /f\nx\nEOF";
        let cmd = run_command(&c, &Command::Shell(whole.into()), &[heredoc("EOF", "x\n")]);
        assert_eq!(cmd, ["/bin/sh", "-c", whole]);
        assert!(is_heredoc_token("<<-'END'", "END"));
        assert!(!is_heredoc_token("<<END x", "END"));
    }

    #[test]
    fn exec_form_is_as_written() {
        let c = RunConfig::default();
        let cmd = run_command(
            &c,
            &Command::Exec(vec!["sh".into(), "-c".into(), "echo".into()]),
            &[],
        );
        assert_eq!(cmd, ["sh", "-c", "echo"]);
    }
}
