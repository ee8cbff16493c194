//! `POST /auth` (`docker login`): checks credentials against the registry's `/v2/` with the
//! challenge it answers (Basic, or a Bearer token fetched with the credentials), as dockerd's
//! `loginV2` does: HTTPS first, plain HTTP for insecure registries.

use std::sync::Arc;

use berth_distribution::auth::{Authorizer, TokenCache};
use berth_distribution::client::empty;
use berth_distribution::{Credentials, Error as RegistryError};
use hyper::{Request, StatusCode};

use super::{Engine, Error, Result};

/// Docker Hub's auth server address, which `docker login` sends by default.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// The registry domain a login's `serveraddress` names ("https://r:5000/v2/" → "r:5000").
pub fn login_domain(server: &str) -> String {
    if server.is_empty()
        || server == DOCKER_HUB_SERVER
        || server == "docker.io"
        || server == "index.docker.io"
    {
        return "docker.io".into();
    }
    let s = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"))
        .unwrap_or(server);
    s.split('/').next().unwrap_or(s).to_string()
}

impl Engine {
    /// The registry client (connection pools, token cache, insecure registries and mirrors).
    pub(crate) fn registry(&self) -> &berth_distribution::Client {
        &self.registry
    }

    /// Logs in to the registry `creds.server_address` names; returns Docker's status text.
    pub async fn login(&self, creds: Credentials) -> Result<String> {
        let domain = login_domain(&creds.server_address);
        let client = self.registry();
        let mut last = None;
        for ep in client
            .config()
            .endpoints(&domain)
            .await
            .into_iter()
            .filter(|e| !e.mirror)
        {
            let url = format!("{}/v2/", ep.base);
            let auth = Authorizer::new(
                client.http().clone(),
                ep.skip_verify,
                Some(creds.clone()),
                Arc::new(TokenCache::default()),
            );
            let get = |authorization: Option<&str>| {
                let mut b = Request::get(&url);
                if let Some(a) = authorization {
                    b = b.header("Authorization", a);
                }
                b.body(empty())
                    .map_err(|e| Error::InvalidParameter(e.to_string()))
            };
            let resp = match client.http().send(get(None)?, ep.skip_verify).await {
                Ok(r) => r,
                Err(e @ RegistryError::Transport { .. }) => {
                    last = Some(e.to_string());
                    continue;
                }
                Err(e) => return Err(Error::Internal(e.to_string())),
            };
            let mut status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if auth.learn(&challenge) {
                    // A refused token request fails the ping, in Go's words for it.
                    let header = auth
                        .authorization(&[])
                        .await
                        .map_err(|e| Error::Internal(format!("Get \"{url}\": {e}")))?;
                    status = match client
                        .http()
                        .send(get(header.as_deref())?, ep.skip_verify)
                        .await
                    {
                        Ok(r) => r.status(),
                        Err(e) => return Err(Error::Internal(e.to_string())),
                    };
                }
            }
            if status.is_success() {
                return Ok("Login Succeeded".into());
            }
            return Err(Error::Internal(format!(
                "login attempt to {url} failed with status: {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )));
        }
        Err(Error::Internal(
            last.unwrap_or_else(|| format!("no endpoint for {domain}")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_of_server_addresses() {
        assert_eq!(login_domain(""), "docker.io");
        assert_eq!(login_domain(DOCKER_HUB_SERVER), "docker.io");
        assert_eq!(login_domain("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(login_domain("https://r.example:5000/v2/"), "r.example:5000");
    }
}
