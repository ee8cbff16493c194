//! `berth container`: docker's management command, whose subcommands are the container
//! commands under their short names (`container ls` is `ps`), plus `prune`.

use berth_api::models::ContainerPruneResponse;
use clap::{Args, Subcommand};
use hyper::Method;

use crate::client::{self, Client};
use crate::commands::ps::filters_json;
use crate::commands::{
    attach, commit, cp, create, diff, exec, export, inspect, kill, logs, pause, port, ps, rename,
    restart, rm, run, start, stats, stop, top, unpause, update, wait, CmdResult,
};
use crate::format;

/// `berth container`
#[derive(Debug, Args)]
pub struct ContainerArgs {
    #[command(subcommand)]
    pub command: ContainerCommand,
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ContainerCommand {
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Create a new container
    Create(create::CreateArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(diff::DiffArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Kill one or more running containers
    Kill(kill::KillArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// List containers
    #[command(alias = "ps", alias = "list")]
    Ls(ps::PsArgs),
    /// Pause all processes within one or more containers
    Pause(pause::PauseArgs),
    /// List port mappings or a specific mapping for the container
    Port(port::PortArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
    /// Rename a container
    Rename(rename::RenameArgs),
    /// Restart one or more containers
    Restart(restart::RestartArgs),
    /// Remove one or more containers
    #[command(alias = "remove")]
    Rm(rm::RmArgs),
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Start one or more stopped containers
    Start(start::StartArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Stop one or more running containers
    Stop(stop::StopArgs),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// Unpause all processes within one or more containers
    Unpause(unpause::UnpauseArgs),
    /// Update configuration of one or more containers
    Update(update::UpdateArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(wait::WaitArgs),
}

/// `berth container inspect`: `inspect --type container`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short = 'f', long = "format", value_name = "string")]
    pub format: Option<String>,
    /// Display total file sizes
    #[arg(short = 's', long = "size")]
    pub size: bool,
    /// The containers to inspect
    #[arg(required = true, value_name = "CONTAINER")]
    pub names: Vec<String>,
}

/// `berth container prune`
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. 'until=<timestamp>')
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}

/// `berth container …`
pub async fn run(client: &Client, args: ContainerArgs) -> CmdResult {
    match args.command {
        ContainerCommand::Attach(a) => attach::run(client, a).await,
        ContainerCommand::Commit(a) => commit::run(client, a).await,
        ContainerCommand::Cp(a) => cp::run(client, a).await,
        ContainerCommand::Create(a) => create::run(client, a).await,
        ContainerCommand::Diff(a) => diff::run(client, a).await,
        ContainerCommand::Exec(a) => exec::run(client, a).await,
        ContainerCommand::Export(a) => export::run(client, a).await,
        ContainerCommand::Inspect(a) => {
            let a = inspect::InspectArgs {
                format: a.format,
                kind: Some("container".into()),
                size: a.size,
                names: a.names,
            };
            inspect::run(client, a).await
        }
        ContainerCommand::Kill(a) => kill::run(client, a).await,
        ContainerCommand::Logs(a) => logs::run(client, a).await,
        ContainerCommand::Ls(a) => ps::run(client, a).await,
        ContainerCommand::Pause(a) => pause::run(client, a).await,
        ContainerCommand::Port(a) => port::run(client, a).await,
        ContainerCommand::Prune(a) => prune(client, a).await,
        ContainerCommand::Rename(a) => rename::run(client, a).await,
        ContainerCommand::Restart(a) => restart::run(client, a).await,
        ContainerCommand::Rm(a) => rm::run(client, a).await,
        ContainerCommand::Run(a) => run::run(client, a).await,
        ContainerCommand::Start(a) => start::run(client, a).await,
        ContainerCommand::Stats(a) => stats::run(client, a).await,
        ContainerCommand::Stop(a) => stop::run(client, a).await,
        ContainerCommand::Top(a) => top::run(client, a).await,
        ContainerCommand::Unpause(a) => unpause::run(client, a).await,
        ContainerCommand::Update(a) => update::run(client, a).await,
        ContainerCommand::Wait(a) => wait::run(client, a).await,
    }
}

/// Asks berthd to prune containers; returns the space reclaimed and docker's
/// `Deleted Containers:` block (empty when nothing went), as docker's `RunPrune`.
pub async fn prune_request(
    client: &Client,
    filters: &[String],
) -> Result<(u64, String), crate::commands::Failure> {
    let q = if filters.is_empty() {
        String::new()
    } else {
        client::query(&[("filters", filters_json(filters)?)])
    };
    let resp: ContainerPruneResponse = client
        .json(
            Method::POST,
            &format!("/containers/prune{q}"),
            client::empty(),
        )
        .await?;
    Ok(prune_report(&resp))
}

/// docker counts the space only when some container went.
fn prune_report(resp: &ContainerPruneResponse) -> (u64, String) {
    let deleted = resp.containers_deleted.as_deref().unwrap_or_default();
    if deleted.is_empty() {
        return (0, String::new());
    }
    let mut out = String::from("Deleted Containers:\n");
    for id in deleted {
        out.push_str(id);
        out.push('\n');
    }
    (resp.space_reclaimed.unwrap_or(0).max(0) as u64, out)
}

async fn prune(client: &Client, a: PruneArgs) -> CmdResult {
    // docker 20.10 still prints the (zero) total when the prompt is declined.
    let (space, output) =
        if a.force || crate::flags::confirm("WARNING! This will remove all stopped containers.") {
            prune_request(client, &a.filter).await?
        } else {
            (0, String::new())
        };
    if !output.is_empty() {
        println!("{output}");
    }
    println!(
        "Total reclaimed space: {}",
        format::human_size(space as i64, 4)
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_report_like_docker() {
        let none = ContainerPruneResponse {
            containers_deleted: None,
            space_reclaimed: Some(0),
        };
        assert_eq!(prune_report(&none), (0, String::new()));
        let some = ContainerPruneResponse {
            containers_deleted: Some(vec!["abc".into(), "def".into()]),
            space_reclaimed: Some(12),
        };
        assert_eq!(
            prune_report(&some),
            (12, "Deleted Containers:\nabc\ndef\n".into())
        );
    }
}
