//! One module per command. Each exposes its clap `Args` and an async `run` returning the
//! process exit code or a `Failure` (message for stderr plus exit code).

use clap::Subcommand;

use crate::client::{Client, ClientError};

pub mod attach;
pub mod build;
pub mod build_context;
pub mod build_query;
pub mod builder;
pub mod commit;
pub mod container;
pub mod context_sync;
pub mod cp;
pub mod create;
pub mod diff;
pub mod events;
pub mod exec;
pub mod export;
pub mod history;
pub mod image;
pub mod images;
pub mod import;
pub mod info;
pub mod inspect;
pub mod kill;
pub mod load;
pub mod lifecycle_opts;
pub mod login;
pub mod logout;
pub mod logs;
pub mod mount_opts;
pub mod namespace_opts;
pub mod network;
pub mod network_opts;
pub mod pause;
pub mod port;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rename;
pub mod restart;
pub mod rm;
pub mod rmi;
pub mod save;
pub mod security_opts;
#[allow(clippy::module_inception)]
pub mod run;
pub mod start;
pub mod stats;
pub mod stop;
pub mod system;
pub mod registry;
pub mod tag;
pub mod top;
pub mod unpause;
pub mod update;
pub mod version;
pub mod volume;
pub mod wait;

/// A command's failure: what to print on stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// A failure with `code` and `message` (empty: print nothing).
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        Failure::new(1, e.to_string())
    }
}

/// The exit code, or why the command failed.
pub type CmdResult = Result<i32, Failure>;

/// docker's commands, as berth implements them.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(create::CreateArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Start one or more stopped containers
    Start(start::StartArgs),
    /// Stop one or more running containers
    Stop(stop::StopArgs),
    /// Rename a container
    Rename(rename::RenameArgs),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(diff::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(save::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(load::LoadArgs),
    /// List port mappings or a specific mapping for the container
    Port(port::PortArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Restart one or more containers
    Restart(restart::RestartArgs),
    /// Kill one or more running containers
    Kill(kill::KillArgs),
    /// Pause all processes within one or more containers
    Pause(pause::PauseArgs),
    /// Unpause all processes within one or more containers
    Unpause(unpause::UnpauseArgs),
    /// Update configuration of one or more containers
    Update(update::UpdateArgs),
    /// Remove one or more containers
    Rm(rm::RmArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Return low-level information on Docker objects
    Inspect(inspect::InspectArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(wait::WaitArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Remove one or more images
    Rmi(rmi::RmiArgs),
    /// Show the history of an image
    History(history::HistoryArgs),
    /// Manage images
    Image(image::ImageArgs),
    /// Manage containers
    Container(container::ContainerArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(tag::TagArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(import::ImportArgs),
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Manage builds
    Builder(builder::BuilderArgs),
    /// Show the Docker version information
    Version(version::VersionArgs),
    /// Display system-wide information
    Info(info::InfoArgs),
    /// Manage volumes
    Volume(volume::VolumeArgs),
    /// Manage networks
    Network(network::NetworkArgs),
    /// Manage Docker
    System(system::SystemArgs),
    /// Pull an image or a repository from a registry
    Pull(pull::PullArgs),
    /// Push an image or a repository to a registry
    Push(push::PushArgs),
    /// Log in to a Docker registry
    Login(login::LoginArgs),
    /// Log out from a Docker registry
    Logout(logout::LogoutArgs),
    /// Run berth's registry server
    Registry(registry::RegistryArgs),
}

/// Runs `cmd` against the daemon behind `client`.
pub async fn dispatch(client: &Client, cmd: Command) -> CmdResult {
    match cmd {
        Command::Run(a) => run::run(client, a).await,
        Command::Create(a) => create::run(client, a).await,
        Command::Cp(a) => cp::run(client, a).await,
        Command::Exec(a) => exec::run(client, a).await,
        Command::Attach(a) => attach::run(client, a).await,
        Command::Start(a) => start::run(client, a).await,
        Command::Stop(a) => stop::run(client, a).await,
        Command::Rename(a) => rename::run(client, a).await,
        Command::Top(a) => top::run(client, a).await,
        Command::Commit(a) => commit::run(client, a).await,
        Command::Diff(a) => diff::run(client, a).await,
        Command::Export(a) => export::run(client, a).await,
        Command::Save(a) => save::run(client, a).await,
        Command::Load(a) => load::run(client, a).await,
        Command::Port(a) => port::run(client, a).await,
        Command::Stats(a) => stats::run(client, a).await,
        Command::Events(a) => events::run(client, a).await,
        Command::Restart(a) => restart::run(client, a).await,
        Command::Kill(a) => kill::run(client, a).await,
        Command::Pause(a) => pause::run(client, a).await,
        Command::Unpause(a) => unpause::run(client, a).await,
        Command::Update(a) => update::run(client, a).await,
        Command::Rm(a) => rm::run(client, a).await,
        Command::Ps(a) => ps::run(client, a).await,
        Command::Logs(a) => logs::run(client, a).await,
        Command::Inspect(a) => inspect::run(client, a).await,
        Command::Wait(a) => wait::run(client, a).await,
        Command::Images(a) => images::run(client, a).await,
        Command::Rmi(a) => rmi::run(client, a).await,
        Command::History(a) => history::run(client, a).await,
        Command::Image(a) => image::run(client, a).await,
        Command::Container(a) => container::run(client, a).await,
        Command::Tag(a) => tag::run(client, a).await,
        Command::Import(a) => import::run(client, a).await,
        Command::Build(a) => build::run(client, a).await,
        Command::Builder(a) => builder::run(client, a).await,
        Command::Version(a) => version::run(client, a).await,
        Command::Info(a) => info::run(client, a).await,
        Command::Volume(a) => volume::run(client, a).await,
        Command::Network(a) => network::run(client, a).await,
        Command::System(a) => system::run(client, a).await,
        Command::Pull(a) => pull::run(client, a).await,
        Command::Push(a) => push::run(client, a).await,
        Command::Login(a) => login::run(client, a).await,
        Command::Logout(a) => logout::run(a).await,
        Command::Registry(a) => registry::run(a).await,
    }
}

/// Applies `op` to each name in turn like docker's multi-container commands: prints the
/// name on success, the error on failure, and exits 1 at the end if anything failed. A
/// daemon that cannot be reached stops the loop at once.
pub async fn for_each_name<F, Fut>(names: &[String], mut op: F) -> CmdResult
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    let mut failed = false;
    for name in names {
        match op(name.clone()).await {
            Ok(()) => println!("{name}"),
            Err(e @ ClientError::Connect { .. }) => return Err(e.into()),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
