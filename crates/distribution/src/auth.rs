//! Registry authentication: anonymous, Basic, and Bearer tokens from the `WWW-Authenticate`
//! challenge (the flow Docker Hub and distribution's token auth use).
//!
//! The API, for pull and push alike:
//! - [`Credentials::from_header`] reads the client's `X-Registry-Auth` header (base64url JSON
//!   of Docker's `AuthConfig`); `None` means anonymous.
//! - A [`TokenCache`] lives as long as the daemon (in [`crate::Client`]): tokens are reused by
//!   realm, service, scope and user until they expire.
//! - An [`Authorizer`] belongs to one repository session: [`Authorizer::learn`] records the
//!   challenge of a 401 (the `/v2/` ping's, or any later one), and
//!   [`Authorizer::authorization`] gives the `Authorization` value for a request needing the
//!   given scopes (`repository:library/busybox:pull`), fetching a token when needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, Request};

use crate::client::{full, Http};
use crate::error::{Error, Result};

/// What the client sent in `X-Registry-Auth` (Docker's `registry.AuthConfig`).
#[derive(Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct Credentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// "user:password" in base64, as config.json keeps it; used when username is empty.
    #[serde(default)]
    pub auth: String,
    /// An OAuth refresh token (Docker Hub's `docker login` keeps one in place of a password).
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    /// A bearer token to send as is.
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
    #[serde(default, rename = "serveraddress")]
    pub server_address: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secrets, even in debug logs.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Decodes an `X-Registry-Auth` value; empty or `{}` is anonymous (`None`).
    pub fn from_header(value: &str) -> Result<Option<Credentials>> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let engines = [
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ];
        let json = engines
            .iter()
            .find_map(|e| e.decode(value).ok())
            .ok_or_else(|| {
                Error::InvalidArgument("invalid X-Registry-Auth header: not base64".into())
            })?;
        let mut c: Credentials = serde_json::from_slice(&json)
            .map_err(|e| Error::InvalidArgument(format!("invalid X-Registry-Auth header: {e}")))?;
        if c.username.is_empty() && !c.auth.is_empty() {
            let pair = base64::engine::general_purpose::STANDARD
                .decode(&c.auth)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            if let Some((u, p)) = pair.split_once(':') {
                c.username = u.to_string();
                c.password = p.to_string();
            }
        }
        let anonymous =
            c.username.is_empty() && c.identity_token.is_empty() && c.registry_token.is_empty();
        Ok((!anonymous).then_some(c))
    }

    fn basic(&self) -> Option<String> {
        (!self.username.is_empty()).then(|| {
            let raw = format!("{}:{}", self.username, self.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        })
    }
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer { realm: String, service: String },
}

/// The challenges in a `WWW-Authenticate` value we can answer, in the order given:
/// `Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut out = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let (params, next) = parse_params(after);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => out.push(Challenge::Basic),
            "bearer" => out.push(Challenge::Bearer {
                realm: params.get("realm").cloned().unwrap_or_default(),
                service: params.get("service").cloned().unwrap_or_default(),
            }),
            _ => {}
        }
        rest = next.trim_start_matches([',', ' ']);
    }
    out
}

/// The OAuth error of a Bearer challenge (RFC 6750 §3.1) in distribution's client's words,
/// which it reports before the body's: `invalid_token` → "unauthorized: authentication
/// required", `insufficient_scope` → "denied: requested access to the resource is denied"
/// (or the challenge's `error_description`).
pub(crate) fn bearer_error_message(header: &str) -> Option<String> {
    let mut rest = header.trim();
    while !rest.is_empty() {
        let (scheme, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let (params, next) = parse_params(after);
        if scheme.eq_ignore_ascii_case("bearer") {
            let (code, default) = match params.get("error").map(String::as_str) {
                Some("invalid_token") => ("unauthorized", "authentication required"),
                Some("insufficient_scope") => {
                    ("denied", "requested access to the resource is denied")
                }
                _ => {
                    rest = next.trim_start_matches([',', ' ']);
                    continue;
                }
            };
            let message = params
                .get("error_description")
                .filter(|d| !d.is_empty())
                .map(String::as_str)
                .unwrap_or(default);
            return Some(format!("{code}: {message}"));
        }
        rest = next.trim_start_matches([',', ' ']);
    }
    None
}

/// `key="value", key=value` pairs up to the next scheme; returns them and what follows.
fn parse_params(mut s: &str) -> (HashMap<String, String>, &str) {
    let mut params = HashMap::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        let Some(eq) = s.find('=') else {
            return (params, s);
        };
        let key = &s[..eq];
        if key.contains(' ') || key.is_empty() {
            // "Basic realm=…, Bearer …": the next scheme starts here.
            return (params, s);
        }
        let after = &s[eq + 1..];
        let (value, rest) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end.min(q.len())..])
        } else {
            let end = after.find([',', ' ']).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        params.insert(key.to_ascii_lowercase(), value);
        s = rest;
    }
}

/// Bearer tokens by realm, service, scopes and user; shared by every session of a daemon.
#[derive(Debug, Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl TokenCache {
    fn get(&self, key: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(key)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(t, _)| t.clone())
    }

    fn put(&self, key: String, token: String, lifetime: Duration) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, (_, until)| Instant::now() < *until);
        tokens.insert(key, (token, Instant::now() + lifetime));
    }

    fn forget(&self, key: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// The token endpoint's answer (Docker's token spec; `access_token` is the OAuth2 form).
#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

/// Docker's floor for a token's lifetime when the server says less or nothing.
const MIN_TOKEN_LIFETIME: u64 = 60;

/// Authentication state of one repository session.
#[derive(Debug)]
pub struct Authorizer {
    http: Http,
    skip_verify: bool,
    creds: Option<Credentials>,
    cache: Arc<TokenCache>,
    challenge: Mutex<Option<Challenge>>,
}

impl Authorizer {
    /// A session's authorizer; `skip_verify` applies to the token realm too (insecure registries).
    pub fn new(
        http: Http,
        skip_verify: bool,
        creds: Option<Credentials>,
        cache: Arc<TokenCache>,
    ) -> Authorizer {
        Authorizer {
            http,
            skip_verify,
            creds,
            cache,
            challenge: Mutex::new(None),
        }
    }

    /// The credentials this session uses, if any.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.creds.as_ref()
    }

    /// Records the challenge of a 401 answer; Bearer is preferred to Basic, as Docker does.
    /// Returns whether there is a challenge we can answer.
    pub fn learn(&self, www_authenticate: &str) -> bool {
        let all = parse_challenges(www_authenticate);
        let best = all
            .iter()
            .find(|c| matches!(c, Challenge::Bearer { .. }))
            .or_else(|| all.first())
            .cloned();
        let found = best.is_some();
        if found {
            *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = best;
        }
        found
    }

    /// Drops the cached token for `scopes` (the registry refused it: expired or revoked).
    pub fn forget(&self, scopes: &[String]) {
        if let Some(Challenge::Bearer { realm, service }) = self.current() {
            self.cache.forget(&self.key(&realm, &service, scopes));
        }
    }

    /// Whether the registry asks for Bearer tokens.
    pub fn uses_tokens(&self) -> bool {
        matches!(self.current(), Some(Challenge::Bearer { .. }))
    }

    /// Whether the registry asks for Basic credentials and this session has none.
    pub fn needs_credentials(&self) -> bool {
        self.creds.is_none() && self.current() == Some(Challenge::Basic)
    }

    fn current(&self) -> Option<Challenge> {
        self.challenge
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn key(&self, realm: &str, service: &str, scopes: &[String]) -> String {
        let user = self
            .creds
            .as_ref()
            .map(|c| c.username.as_str())
            .unwrap_or("");
        format!("{realm}\n{service}\n{}\n{user}", scopes.join(" "))
    }

    /// The `Authorization` header value for a request needing `scopes`, or `None` while the
    /// registry has not asked for any (anonymous).
    pub async fn authorization(&self, scopes: &[String]) -> Result<Option<String>> {
        match self.current() {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.creds.as_ref().and_then(Credentials::basic)),
            Some(Challenge::Bearer { realm, service }) => {
                if let Some(t) = self
                    .creds
                    .as_ref()
                    .map(|c| &c.registry_token)
                    .filter(|t| !t.is_empty())
                {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let key = self.key(&realm, &service, scopes);
                if let Some(t) = self.cache.get(&key) {
                    return Ok(Some(format!("Bearer {t}")));
                }
                let (token, lifetime) = self.fetch_token(&realm, &service, scopes).await?;
                self.cache
                    .put(key, token.clone(), Duration::from_secs(lifetime));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Asks the realm for a token: GET with Basic credentials (or none), or the OAuth2
    /// refresh-token POST when the client holds an identity token.
    async fn fetch_token(
        &self,
        realm: &str,
        service: &str,
        scopes: &[String],
    ) -> Result<(String, u64)> {
        if realm.is_empty() {
            return Err(Error::Unauthorized(
                "bearer challenge without a realm".into(),
            ));
        }
        let identity = self
            .creds
            .as_ref()
            .map(|c| c.identity_token.as_str())
            .filter(|t| !t.is_empty());
        let req = if let Some(refresh) = identity {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", refresh);
            form.append_pair("service", service);
            form.append_pair("client_id", "docker");
            for s in scopes {
                form.append_pair("scope", s);
            }
            Request::post(realm)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(full(Bytes::from(form.finish())))
        } else {
            let mut q = form_urlencoded::Serializer::new(String::new());
            if !service.is_empty() {
                q.append_pair("service", service);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
            if self.creds.is_some() {
                q.append_pair(
                    "account",
                    &self
                        .creds
                        .as_ref()
                        .map(|c| c.username.clone())
                        .unwrap_or_default(),
                );
            }
            let sep = if realm.contains('?') { '&' } else { '?' };
            let mut b = Request::get(format!("{realm}{sep}{}", q.finish()));
            if let Some(basic) = self.creds.as_ref().and_then(Credentials::basic) {
                b = b.header("Authorization", basic);
            }
            b.body(full(Bytes::new()))
        }
        .map_err(|e| Error::InvalidArgument(format!("token realm {realm}: {e}")))?;
        let method = if identity.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let resp = self.http.send(req, self.skip_verify).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if !status.is_success() {
            let detail = crate::error::registry_message(status.as_u16(), &body);
            return Err(if status.as_u16() == 401 || status.as_u16() == 403 {
                Error::Unauthorized(format!("{detail}"))
            } else {
                Error::Transport {
                    method: crate::error::go_method(&method),
                    url: realm.to_string(),
                    reason: detail,
                }
            });
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| Error::Invalid(format!("token from {realm}: {e}")))?;
        let token = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if token.is_empty() {
            return Err(Error::Unauthorized(format!(
                "no token in the answer of {realm}"
            )));
        }
        Ok((token, t.expires_in.max(MIN_TOKEN_LIFETIME)))
    }
}

/// The scope a repository operation needs: `repository:library/busybox:pull`.
pub fn repository_scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        );
        assert_eq!(
            c,
            vec![Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: "registry.docker.io".into()
            }]
        );
        let c = parse_challenges(
            r#"Basic realm="Registry Realm", Bearer realm="https://x/t",service=y"#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], Challenge::Basic);
        assert_eq!(
            c[1],
            Challenge::Bearer {
                realm: "https://x/t".into(),
                service: "y".into()
            }
        );
    }

    #[test]
    fn bearer_errors_as_distribution_words_them() {
        let h = r#"Bearer realm="http://t/token",service="reg",scope="repository:a:pull",error="insufficient_scope""#;
        assert_eq!(
            bearer_error_message(h).as_deref(),
            Some("denied: requested access to the resource is denied")
        );
        let h =
            r#"Bearer realm="http://t/token",error="invalid_token",error_description="expired""#;
        assert_eq!(
            bearer_error_message(h).as_deref(),
            Some("unauthorized: expired")
        );
        assert_eq!(
            bearer_error_message(r#"Bearer realm="x",service="y""#),
            None
        );
        assert_eq!(bearer_error_message(r#"Basic realm="x""#), None);
    }

    #[test]
    fn credentials_from_header() {
        use base64::engine::general_purpose::URL_SAFE;
        assert!(Credentials::from_header("").unwrap().is_none());
        assert!(Credentials::from_header(&URL_SAFE.encode("{}"))
            .unwrap()
            .is_none());
        let h = URL_SAFE.encode(r#"{"username":"u","password":"p?>","serveraddress":"r"}"#);
        let c = Credentials::from_header(&h).unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p?>"));
        assert_eq!(c.basic().unwrap(), "Basic dTpwPz4=");
        let auth = base64::engine::general_purpose::STANDARD.encode("a:b");
        let h = URL_SAFE.encode(format!(r#"{{"auth":"{auth}"}}"#));
        let c = Credentials::from_header(&h).unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("a", "b"));
        assert!(Credentials::from_header("!!!").is_err());
    }
}
