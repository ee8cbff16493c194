//! `docker build` (the classic builder): the Dockerfile executor behind `POST /build`.
//! Design: docs/design/build.md.

pub mod args;
pub mod cache;
pub mod child_image;
pub mod compression;
pub mod config;
pub mod context_store;
pub mod expand;
pub mod leases;
pub mod options;
pub mod output;
pub mod remote;
pub mod sources;
pub mod steps;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use berth_dockerfile::{Dockerfile, Instruction, Stage};
use berth_store::Image;
use bytes::Bytes;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::engine::build_step::CancelToken;
use crate::engine::Engine;
use args::{unconsumed_warning, BuildArgs};
use context_store::ContextView;
use expand::Scope;
use leases::BuildLeases;
use options::BuildOptions;
use output::{short_id, Sink, StageOut};
use steps::{BuildCtx, StageResults, StageState};

/// Why a build stopped.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Bad input found before the first step ran: an HTTP 400 instead of a stream.
    #[error("{0}")]
    Invalid(String),
    /// A step failed: the stream's last message (`errorDetail`). `code` is set for a RUN that
    /// exited non-zero (the docker CLI exits with it).
    #[error("{message}")]
    Step { message: String, code: Option<i64> },
    /// The client went away, or another stage failed first.
    #[error("Build cancelled")]
    Cancelled,
}

impl BuildError {
    /// A step failure without an exit code (`COPY failed: …`).
    pub fn msg(message: impl Into<String>) -> BuildError {
        BuildError::Step {
            message: message.into(),
            code: None,
        }
    }
}

impl From<crate::engine::Error> for BuildError {
    fn from(e: crate::engine::Error) -> Self {
        BuildError::msg(e.to_string())
    }
}

impl From<berth_store::Error> for BuildError {
    fn from(e: berth_store::Error) -> Self {
        BuildError::msg(e.to_string())
    }
}

impl From<std::io::Error> for BuildError {
    fn from(e: std::io::Error) -> Self {
        BuildError::msg(e.to_string())
    }
}

impl From<tokio::task::JoinError> for BuildError {
    fn from(e: tokio::task::JoinError) -> Self {
        BuildError::msg(format!("background task failed: {e}"))
    }
}

/// A Dockerfile checked before the stream starts: what is wrong here is a 400.
pub struct Plan {
    pub dockerfile: Dockerfile,
    /// The target stage's index.
    pub target: usize,
}

/// Parses the Dockerfile and finds the target: the errors dockerd answers with a 400 before
/// any output.
pub fn plan(opts: &BuildOptions, text: &str) -> Result<Plan, BuildError> {
    let dockerfile =
        berth_dockerfile::parse(text).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let target = berth_dockerfile::target_stage(&dockerfile, opts.target.as_deref())
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    Ok(Plan { dockerfile, target })
}

/// Runs a planned build, writing Docker's JSON stream to `tx`. Returns once the build ended
/// (its containers removed); the stream ends when `tx` is dropped.
pub async fn run(
    engine: Arc<Engine>,
    opts: BuildOptions,
    context: Arc<ContextView>,
    plan: Plan,
    tx: mpsc::Sender<Bytes>,
) {
    let cancel = CancelToken::new();
    // A client that goes away cancels the build (its RUN is killed, its containers removed).
    let watcher = {
        let (tx, cancel) = (tx.clone(), cancel.clone());
        tokio::spawn(async move {
            tx.closed().await;
            cancel.cancel();
        })
    };
    let mut sink = Sink::new(tx, opts.quiet);
    let leases = Arc::new(BuildLeases::new(engine.store.clone()));
    let result = Build::new(engine.clone(), opts, context, plan, cancel, leases.clone())
        .run(&mut sink)
        .await;
    // What an `rmi` removed during the build is freed before the client hears it ended.
    leases.release().await;
    watcher.abort();
    match result {
        Ok((image_id, tail)) => {
            for line in tail {
                sink.send(line).await;
            }
            sink.succeed(&image_id).await;
        }
        Err(BuildError::Cancelled) => {}
        Err(e) => sink.fail(&e).await,
    }
}

/// One build under way.
struct Build {
    ctx: Arc<BuildCtx>,
    plan: Plan,
}

/// What a stage hands back: its image and the ARG names it declared.
type StageResult = Result<(Option<Image>, BuildArgs), BuildError>;

impl Build {
    fn new(
        engine: Arc<Engine>,
        opts: BuildOptions,
        context: Arc<ContextView>,
        plan: Plan,
        cancel: CancelToken,
        leases: Arc<BuildLeases>,
    ) -> Build {
        let names = plan
            .dockerfile
            .stages
            .iter()
            .filter_map(|s| s.name.as_ref().map(|n| (n.to_ascii_lowercase(), s.index)))
            .collect::<HashMap<_, _>>();
        let ctx = BuildCtx {
            engine,
            cache_from: cache::CacheFrom::new(opts.cache_from.clone()),
            opts: Arc::new(opts),
            escape: plan.dockerfile.escape,
            cancel,
            context,
            stages: StageResults::new(names),
            leases,
        };
        Build {
            ctx: Arc::new(ctx),
            plan,
        }
    }

    /// The steps, stage by stage; returns the image ID and the closing lines.
    async fn run(self, sink: &mut Sink) -> Result<(String, Vec<Bytes>), BuildError> {
        let df = &self.plan.dockerfile;
        let ctx = &self.ctx;
        let mut global = BuildArgs::new(ctx.opts.build_args.clone());
        // The cache-from images are read by every step's cache lookup; missing ones are
        // skipped, as the lookup skips them.
        for name in &ctx.opts.cache_from {
            if let Ok(image) = ctx.engine.image(name).await {
                let _ = ctx.leases.hold(&image).await;
            }
        }

        // The meta ARGs: steps of their own that print nothing under them.
        let (meta_out, meta_rx) = StageOut::new();
        let meta_expanded = {
            let mut failed = None;
            for step in &df.meta_args {
                if let Instruction::Arg(args) = &step.instruction {
                    let scope = Scope::for_meta_args(&global, ctx.escape);
                    match scope.args(args) {
                        Ok(args) => args.into_iter().for_each(|(k, v)| global.add_meta(&k, v)),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            failed
        };
        let expand_meta = |word: &str| {
            Scope::for_from(&global, ctx.escape)
                .word(word)
                .unwrap_or_else(|_| word.to_string())
        };
        let needed = berth_dockerfile::needed_stages(df, self.plan.target, &expand_meta);
        let labels: Vec<(String, String)> = ctx
            .opts
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let total = df.meta_args.len()
            + needed
                .iter()
                .map(|&i| 1 + df.stages[i].steps.len())
                .sum::<usize>()
            + labels.len();
        for (n, step) in df.meta_args.iter().enumerate() {
            meta_out.step(n + 1, total, &step.text);
        }
        drop(meta_out);
        if let Some(e) = meta_expanded {
            print_sections(sink, vec![meta_rx]).await?;
            return Err(e);
        }

        // One section and one task per needed stage; a stage starts when the stages it
        // reads are done, at most one per CPU at once.
        let permits = Arc::new(Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        ));
        let mut sections = vec![meta_rx];
        let mut done: HashMap<usize, watch::Receiver<Option<bool>>> = HashMap::new();
        let mut tasks = Vec::new();
        let mut next_step = df.meta_args.len() + 1;
        for &index in &needed {
            let stage = df.stages[index].clone();
            let deps: Vec<watch::Receiver<Option<bool>>> =
                berth_dockerfile::stage_dependencies(df, index, &expand_meta)
                    .into_iter()
                    .filter_map(|d| done.get(&d).cloned())
                    .collect();
            let (out, rx) = StageOut::new();
            sections.push(rx);
            let (finished_tx, finished_rx) = watch::channel(None);
            done.insert(index, finished_rx);
            let first_step = next_step;
            next_step += 1 + stage.steps.len();
            let is_target = index == self.plan.target;
            let job = StageJob {
                ctx: ctx.clone(),
                stage,
                args: global.for_stage(),
                out,
                first_step,
                total,
                labels: if is_target {
                    labels.clone()
                } else {
                    Vec::new()
                },
            };
            let permits = permits.clone();
            tasks.push(tokio::spawn(async move {
                let result = job.run_after(deps, permits).await;
                let _ = finished_tx.send(Some(result.is_ok()));
                result
            }));
        }

        // The printer runs beside the stages; a client gone cancels them.
        let printed = {
            let printer = print_sections(sink, sections);
            let cancel_on_gone = async {
                let r = printer.await;
                if r.is_err() {
                    ctx.cancel.cancel();
                }
                r
            };
            let results = async {
                let mut results = Vec::new();
                for t in tasks {
                    results.push(t.await.unwrap_or_else(|e| Err(e.into())));
                }
                results
            };
            let (printed, results) = tokio::join!(cancel_on_gone, results);
            (printed, results)
        };
        let (printed, results): (Result<(), BuildError>, Vec<StageResult>) = printed;
        printed?;

        // The first real failure in file order (the others were cancelled because of it).
        let mut target_image = None;
        let mut first_error = None;
        for (i, r) in needed.iter().zip(results) {
            match r {
                Ok((image, args)) => {
                    global.merge_referenced(&args);
                    if *i == self.plan.target {
                        target_image = image;
                    }
                }
                Err(BuildError::Cancelled) => {
                    first_error.get_or_insert(BuildError::Cancelled);
                }
                Err(e) => {
                    if first_error
                        .as_ref()
                        .is_none_or(|f| matches!(f, BuildError::Cancelled))
                    {
                        first_error = Some(e);
                    }
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        // ARGs of stages the build skipped still count as consumed (20.10 runs them).
        let needed_set: BTreeSet<usize> = needed.iter().copied().collect();
        for stage in df
            .stages
            .iter()
            .take(self.plan.target + 1)
            .filter(|s| !needed_set.contains(&s.index))
        {
            for step in &stage.steps {
                if let Instruction::Arg(args) = &step.instruction {
                    args.iter().for_each(|(k, _)| global.reference(k));
                }
            }
        }
        let image = target_image
            .ok_or_else(|| BuildError::msg("No image was generated. Is your Dockerfile empty?"))?;

        let mut tail = Vec::new();
        if let Some(w) = unconsumed_warning(&global.unconsumed()) {
            tail.push(output::stream_line(&w));
        }
        tail.push(output::stream_line(&format!(
            "Successfully built {}\n",
            short_id(&image.id)
        )));
        for tag in &ctx.opts.tags {
            let (store, id, reference) = (ctx.engine.store.clone(), image.id.clone(), tag.clone());
            tokio::task::spawn_blocking(move || store.tag(&id, &reference)).await??;
            ctx.engine.image_event(&image.id, &tag.familiar(), "tag");
            tail.push(output::stream_line(&format!(
                "Successfully tagged {}\n",
                tag.familiar()
            )));
        }
        Ok((image.id, tail))
    }
}

/// Prints the sections in order; `Err(Cancelled)` when the client went away.
async fn print_sections(
    sink: &mut Sink,
    sections: Vec<mpsc::UnboundedReceiver<Bytes>>,
) -> Result<(), BuildError> {
    if output::print_in_order(sink, sections).await {
        Ok(())
    } else {
        Err(BuildError::Cancelled)
    }
}

/// One stage to build.
struct StageJob {
    ctx: Arc<BuildCtx>,
    stage: Stage,
    args: BuildArgs,
    out: StageOut,
    first_step: usize,
    total: usize,
    /// `--label`s: the target stage's last steps.
    labels: Vec<(String, String)>,
}

impl StageJob {
    /// Waits for the stages this one reads, then for a CPU, then builds it. A failure
    /// cancels the rest of the build.
    async fn run_after(
        self,
        mut deps: Vec<watch::Receiver<Option<bool>>>,
        permits: Arc<Semaphore>,
    ) -> StageResult {
        for dep in &mut deps {
            let ok = dep
                .wait_for(Option::is_some)
                .await
                .map(|v| *v == Some(true))
                .unwrap_or(false);
            if !ok {
                return Err(BuildError::Cancelled);
            }
        }
        let _permit = tokio::select! {
            p = permits.acquire_owned() => p.map_err(|_| BuildError::Cancelled)?,
            () = self.ctx.cancel.cancelled() => return Err(BuildError::Cancelled),
        };
        let ctx = self.ctx.clone();
        let result = self.build().await;
        if let Err(e) = &result {
            if !matches!(e, BuildError::Cancelled) {
                ctx.cancel.cancel();
            }
        }
        result
    }

    async fn build(self) -> StageResult {
        let StageJob {
            ctx,
            stage,
            args,
            out,
            first_step,
            total,
            labels,
        } = self;
        let mut n = first_step;
        out.step(n, total, &stage.from.text);
        n += 1;
        let Instruction::From {
            image, platform, ..
        } = &stage.from.instruction
        else {
            return Err(BuildError::msg("a stage must start with FROM"));
        };
        let (mut st, triggers): (StageState, Vec<String>) =
            steps::from::initialize(&ctx, stage.index, image, platform.as_deref(), args, &out)
                .await?;
        steps::onbuild::run_triggers(&ctx, &mut st, &triggers, &out).await?;
        st.print_id(&out);
        for step in &stage.steps {
            if ctx.cancel.is_cancelled() {
                return Err(BuildError::Cancelled);
            }
            out.step(n, total, &step.text);
            n += 1;
            steps::dispatch(&ctx, &mut st, step, &out).await?;
            // The one ` ---> <id>` of every step (none after each ONBUILD trigger, as dockerd).
            st.print_id(&out);
        }
        for (k, v) in &labels {
            out.step(n, total, &format!("LABEL {k}={v}"));
            n += 1;
            steps::meta::option_label(&ctx, &mut st, k, v, &out).await?;
            st.hold(&ctx).await?;
            st.print_id(&out);
        }
        if let Some(id) = st.image_id() {
            out.aux(id);
        }
        ctx.stages.finish(stage.index, st.image.clone());
        Ok((st.image, st.args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_refused_before_the_stream() {
        let opts = BuildOptions {
            target: Some("nope".into()),
            ..Default::default()
        };
        let err = |text: &str, opts: &BuildOptions| match plan(opts, text) {
            Err(BuildError::Invalid(m)) => m,
            Err(e) => panic!("not a 400: {e}"),
            Ok(_) => panic!("accepted: {text}"),
        };
        assert_eq!(
            err("FROM busybox AS a\n", &opts),
            "failed to reach build target nope in Dockerfile"
        );
        let none = BuildOptions::default();
        assert_eq!(
            err("FROM busybox\nFOO bar\n", &none),
            "dockerfile parse error line 2: unknown instruction: FOO"
        );
        assert_eq!(err("RUN x\n", &none), "no build stage in current context");
        assert_eq!(
            err("FROM busybox\nHEALTHCHECK --retries=0 CMD true\n", &none),
            "dockerfile parse error line 2: --retries must be at least 1 (not 0)"
        );
        let p = plan(
            &BuildOptions {
                target: Some("B".into()),
                ..Default::default()
            },
            "FROM busybox AS a\nFROM a AS b\nFROM b\n",
        )
        .unwrap();
        assert_eq!(p.target, 1);
    }
}
