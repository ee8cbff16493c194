//! `berth login`: checks credentials with the daemon (`POST /auth`, which asks the registry)
//! and keeps them as the docker CLI does (see `credentials`).

use std::io::{BufRead, IsTerminal, Read, Write};

use clap::Args;
use hyper::Method;

use crate::client::{self, Client, ClientError};
use crate::commands::{CmdResult, Failure};
use crate::credentials::{convert_to_hostname, AuthConfig, ConfigFile, DEFAULT_SERVER};

/// `berth login`
#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long = "username", value_name = "string")]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long = "password", value_name = "string")]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// SERVER
    pub server: Option<String>,
}

const UNENCRYPTED_WARNING: &str = "WARNING! Your password will be stored unencrypted in {}.\n\
Configure a credential helper to remove this warning. See\n\
https://docs.docker.com/engine/reference/commandline/login/#credentials-store\n";

/// The daemon's answer to `POST /auth`.
#[derive(Debug, Default, serde::Deserialize)]
struct AuthResponse {
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(rename = "IdentityToken", default)]
    identity_token: String,
}

fn fail(msg: impl Into<String>) -> Failure {
    Failure::new(1, msg)
}

/// `berth login`
pub async fn run(client: &Client, args: LoginArgs) -> CmdResult {
    let mut user = args.username.clone().unwrap_or_default();
    let mut password = args.password.clone().unwrap_or_default();
    if !password.is_empty() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        if args.password_stdin {
            return Err(fail(
                "--password and --password-stdin are mutually exclusive",
            ));
        }
    }
    if args.password_stdin {
        if user.is_empty() {
            return Err(fail("Must provide --username with --password-stdin"));
        }
        let mut contents = String::new();
        std::io::stdin()
            .read_to_string(&mut contents)
            .map_err(|e| fail(e.to_string()))?;
        password = contents.strip_suffix('\n').unwrap_or(&contents).to_string();
        password = password.strip_suffix('\r').unwrap_or(&password).to_string();
    }

    let given = args
        .server
        .clone()
        .filter(|s| !s.is_empty() && s != "docker.io");
    let is_default = given.is_none();
    let server_address = given.unwrap_or_else(|| DEFAULT_SERVER.to_string());
    // Credentials are kept under the host ("127.0.0.1:5000"), whatever URL was typed.
    let key = if is_default {
        server_address.clone()
    } else {
        convert_to_hostname(&server_address)
    };

    let mut config = ConfigFile::load().map_err(fail)?;
    let mut auth = AuthConfig::default();
    if user.is_empty() && password.is_empty() {
        auth = config.get(&key).map_err(fail)?;
    }
    auth.serveraddress = key.clone();
    auth.identitytoken.clear();

    let mut response = None;
    if !auth.username.is_empty() && !auth.password.is_empty() {
        println!("Authenticating with existing credentials...");
        match login(client, &auth).await {
            Ok(r) => response = Some(r),
            Err(ClientError::Api { status, .. }) if status == hyper::StatusCode::UNAUTHORIZED => {
                eprintln!("Stored credentials invalid or expired");
            }
            Err(e) => eprintln!("Login did not succeed, error: {e}"),
        }
    }
    let response = match response {
        Some(r) => r,
        None => {
            configure(&mut auth, &mut user, &mut password, is_default)?;
            login(client, &auth).await?
        }
    };
    if !response.identity_token.is_empty() {
        auth.password.clear();
        auth.identitytoken = response.identity_token.clone();
    }
    if config.stores_in_file(&server_address) && !auth.password.is_empty() {
        eprintln!(
            "{}",
            UNENCRYPTED_WARNING.replace("{}", &config.path().display().to_string())
        );
    }
    config
        .store(auth)
        .map_err(|e| fail(format!("Error saving credentials: {e}")))?;
    if !response.status.is_empty() {
        println!("{}", response.status);
    }
    Ok(0)
}

/// Fills in the user name and password, prompting on a terminal as docker does.
fn configure(
    auth: &mut AuthConfig,
    user: &mut String,
    password: &mut String,
    is_default: bool,
) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    if password.is_empty() && !stdin.is_terminal() {
        return Err(fail(
            "Error: Cannot perform an interactive login from a non TTY device",
        ));
    }
    let current = auth.username.trim().to_string();
    *user = user.trim().to_string();
    if user.is_empty() {
        if is_default {
            println!("Login with your Docker ID to push and pull images from Docker Hub. If you don't have a Docker ID, head over to https://hub.docker.com to create one.");
        }
        if current.is_empty() {
            print!("Username: ");
        } else {
            print!("Username ({current}): ");
        }
        let _ = std::io::stdout().flush();
        *user = read_line().trim().to_string();
        if user.is_empty() {
            *user = current;
        }
    }
    if user.is_empty() {
        return Err(fail("Error: Non-null Username Required"));
    }
    if password.is_empty() {
        print!("Password: ");
        let _ = std::io::stdout().flush();
        let echo = NoEcho::new();
        *password = read_line();
        drop(echo);
        println!();
        if password.is_empty() {
            return Err(fail("Error: Password Required"));
        }
    }
    auth.username = user.clone();
    auth.password = password.clone();
    Ok(())
}

/// One line from stdin without its line ending.
fn read_line() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.trim_end_matches(['\n', '\r']).to_string()
}

/// Terminal echo off while a password is typed; restored on drop.
struct NoEcho(Option<libc::termios>);

impl NoEcho {
    fn new() -> NoEcho {
        // SAFETY: termios is plain data that tcgetattr fills before use.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 and a termios we own.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return NoEcho(None);
        }
        let mut quiet = t;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: settings derived from the terminal's own.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
        NoEcho(Some(t))
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restores the settings read in `new`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        }
    }
}

async fn login(client: &Client, auth: &AuthConfig) -> Result<AuthResponse, ClientError> {
    let body = client::json_body(auth)?;
    let data = client.bytes(Method::POST, "/auth", body).await?;
    Ok(serde_json::from_slice(&data).unwrap_or_default())
}
