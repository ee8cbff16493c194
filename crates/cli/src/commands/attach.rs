//! `berth attach`: joins our terminal (or stdio) to a running container's, until it exits or
//! the user types the detach keys, in the order docker uses: check the state, register the
//! wait, attach, check again, then stream.

use berth_api::models::{ContainerInspectResponse, ContainerWaitResponse};
use clap::Args;
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::run::parse_go_bool;
use crate::commands::{CmdResult, Failure};
use crate::stream::{self, AttachStreams, Ended};
use crate::term;

/// `berth attach`
#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys", value_name = "string")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(
        long = "sig-proxy",
        value_name = "bool",
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        value_parser = parse_go_bool
    )]
    pub sig_proxy: bool,
    /// The container to attach to
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Inspects the container and refuses, in docker's words, one that is not running.
async fn running_container(
    client: &Client,
    name: &str,
) -> Result<ContainerInspectResponse, Failure> {
    let info: ContainerInspectResponse = match client
        .get(&format!("/containers/{}/json", client::enc(name)))
        .await
    {
        Ok(info) => info,
        Err(e) if e.is_not_found() => {
            return Err(Failure::new(1, format!("Error: No such container: {name}")))
        }
        Err(e) => return Err(e.into()),
    };
    let state = info.state.clone().unwrap_or_default();
    let refuse = |why: &str| Err(Failure::new(1, why));
    if state.running != Some(true) {
        return refuse("You cannot attach to a stopped container, start it first");
    }
    if state.paused == Some(true) {
        return refuse("You cannot attach to a paused container, unpause it first");
    }
    if state.restarting == Some(true) {
        return refuse("You cannot attach to a restarting container, wait until it is running");
    }
    Ok(info)
}

/// `berth attach`
pub async fn run(client: &Client, args: AttachArgs) -> CmdResult {
    let info = running_container(client, &args.container).await?;
    let id = info.id.clone().unwrap_or_else(|| args.container.clone());
    let config = info.config.unwrap_or_default();
    let tty = config.tty == Some(true);
    if tty && !args.no_stdin && !term::is_tty(0) {
        return Err(Failure::new(1, "the input device is not a TTY"));
    }
    let streams = AttachStreams {
        stdin: !args.no_stdin && config.open_stdin == Some(true),
        stdout: true,
        stderr: true,
        tty,
    };
    let detach_keys = stream::detach_keys(args.detach_keys.as_deref());

    // Registered before attaching, so an exit right after cannot be missed.
    let wait_path = format!("/containers/{}/wait", client::enc(&id));
    let wait_resp = client
        .send(Method::POST, &wait_path, client::empty())
        .await?;
    let wait = tokio::spawn(async move {
        let data = client::collect(wait_resp.into_body()).await?;
        serde_json::from_slice::<ContainerWaitResponse>(&data)
            .map_err(|e| ClientError::Io(format!("cannot decode wait answer: {e}")))
    });

    if args.sig_proxy && !tty {
        stream::forward_signals(client.clone(), id.clone());
    }
    let raw = if streams.tty && streams.stdin {
        term::RawMode::enable(0)
    } else {
        None
    };
    let session = stream::attach(client, &id, streams, detach_keys.as_deref()).await?;
    // It may have stopped in between: the session would then wait for its next start.
    running_container(client, &id).await?;
    if tty && term::is_tty(1) {
        let target = format!("/containers/{}", client::enc(&id));
        // A size off by one first, as docker does, so the program redraws even when the
        // terminal is the size it was at the last attach.
        if let Some((h, w)) = term::size(1) {
            let _ = client
                .post(&format!("{target}/resize?h={}&w={}", h + 1, w + 1))
                .await;
        }
        stream::resize(client, &target).await;
        stream::spawn_resize_watch(client.clone(), target);
    }
    let ended = session.finish().await;
    drop(raw);
    match ended {
        Ok(Ended::Finished) => {}
        // As docker attach: the container runs on, and the detach is reported as an error.
        Ok(Ended::Detached) => return Err(Failure::new(1, "read escape sequence")),
        Err(e) => return Err(Failure::new(1, e)),
    }
    let resp = match wait.await {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => return Err(Failure::new(1, e.to_string())),
    };
    if let Some(msg) = resp.error.and_then(|e| e.message).filter(|m| !m.is_empty()) {
        return Err(Failure::new(1, msg));
    }
    Ok(i32::try_from(resp.status_code).unwrap_or(1))
}
