//! `berth logout`: forgets the credentials `login` kept (the daemon is not involved).

use clap::Args;

use crate::commands::{CmdResult, Failure};
use crate::credentials::{convert_to_hostname, ConfigFile, DEFAULT_SERVER};

/// `berth logout`
#[derive(Debug, Clone, Args)]
pub struct LogoutArgs {
    /// SERVER
    pub server: Option<String>,
}

/// `berth logout`
pub async fn run(args: LogoutArgs) -> CmdResult {
    let given = args.server.filter(|s| !s.is_empty());
    let (hostname, candidates) = match given {
        None => (DEFAULT_SERVER.to_string(), vec![DEFAULT_SERVER.to_string()]),
        Some(server) => {
            let host = convert_to_hostname(&server);
            // Older docker versions saved URLs as keys; every spelling goes, as in docker.
            let all = vec![
                server,
                host.clone(),
                format!("http://{host}"),
                format!("https://{host}"),
            ];
            (host, all)
        }
    };
    println!("Removing login credentials for {hostname}");
    let mut config = ConfigFile::load().map_err(|e| Failure::new(1, e))?;
    let mut errors = Vec::new();
    for server in &candidates {
        if let Err(e) = config.erase(server) {
            errors.push((server.clone(), e));
        }
    }
    // One spelling erased is success; only when all failed does docker warn.
    if errors.len() == candidates.len() {
        eprintln!("WARNING: could not erase credentials:");
        for (server, e) in errors {
            eprintln!("{server}: {e}");
        }
    }
    Ok(0)
}
