//! OpenBao (and Vault) as rotation targets: a token of the token auth method, and a KV v2 secret.
//!
//! The client goes through [`token_http`]: TLS on rustls with ring (the platform's roots, or a
//! custom CA, and an optional client certificate), plain HTTP only to loopback unless allowed,
//! timeouts, bounded answers, no redirects (the token header never follows one), the token header
//! marked sensitive, retries of idempotent calls. It authenticates with a token, or with
//! **AppRole** (logs in, renews its token before the lease ends, logs in again when renewal is
//! refused).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use rand::TryRng;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde_json::{Value, json};
use token_http::{HttpClient, HttpClientBuilder, Method, Request};

use crate::credential::Credential;
use crate::error::TargetError;
use crate::target::RotationTarget;

/// How the client proves itself to OpenBao.
enum Auth {
    Token(SecretString),
    AppRole(AppRole),
}

struct AppRole {
    mount: String,
    role_id: String,
    secret_id: SecretString,
    session: tokio::sync::Mutex<Option<Session>>,
}

/// An AppRole login's token and when to renew it (at two thirds of its lease).
struct Session {
    token: SecretString,
    renew_at: Instant,
    renewable: bool,
}

/// An OpenBao HTTP API client, acting with a token or through AppRole.
pub struct OpenBao {
    http: HttpClient,
    auth: Auth,
}

impl std::fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            Auth::Token(_) => "token",
            Auth::AppRole(_) => "approle",
        };
        f.debug_struct("OpenBao")
            .field("addr", &self.http.base())
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

/// Builds an [`OpenBao`] client: an address, how to trust it, how to authenticate.
#[must_use = "a builder does nothing until `build`"]
pub struct OpenBaoBuilder {
    http: HttpClientBuilder,
    auth: Option<Auth>,
}

impl std::fmt::Debug for OpenBaoBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBaoBuilder").field("http", &self.http).finish_non_exhaustive()
    }
}

impl OpenBaoBuilder {
    /// Trust only this CA (PEM) for the server's certificate.
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.http = self.http.ca_pem(pem);
        self
    }

    /// Present this client certificate (PEM chain and key) — OpenBao's TLS certificate auth, or a
    /// listener that requires client certificates.
    pub fn client_identity_pem(mut self, cert_chain: Vec<u8>, key: SecretBox<Vec<u8>>) -> Self {
        self.http = self.http.client_identity_pem(cert_chain, key);
        self
    }

    /// Allow plain HTTP to a non-loopback address (tokens in the clear: a trusted network only).
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.http = self.http.allow_plain_http(allow);
        self
    }

    /// Each call's timeout (default 10 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.http = self.http.timeout(d);
        self
    }

    /// Act with this token.
    pub fn token(mut self, token: SecretString) -> Self {
        self.auth = Some(Auth::Token(token));
        self
    }

    /// Act through AppRole at `auth/approle`: log in with `role_id` and `secret_id`, renew before
    /// the lease ends, log in again when renewal is refused.
    pub fn approle(self, role_id: &str, secret_id: SecretString) -> Self {
        self.approle_at("approle", role_id, secret_id)
    }

    /// [`OpenBaoBuilder::approle`] with the auth method mounted at `auth/<mount>`.
    pub fn approle_at(mut self, mount: &str, role_id: &str, secret_id: SecretString) -> Self {
        self.auth = Some(Auth::AppRole(AppRole {
            mount: mount.trim_matches('/').to_owned(),
            role_id: role_id.to_owned(),
            secret_id,
            session: tokio::sync::Mutex::new(None),
        }));
        self
    }

    /// Checks the address and the TLS material and builds the client.
    pub fn build(self) -> Result<OpenBao, TargetError> {
        let auth =
            self.auth.ok_or_else(|| TargetError::new("connect", "OpenBao: no token or AppRole given"))?;
        let http = self.http.build().map_err(|e| TargetError::with_source("connect", "OpenBao client", e))?;
        Ok(OpenBao { http, auth })
    }
}

impl OpenBao {
    /// A client of the server at `addr` (`https://bao.internal:8200` with the platform's roots,
    /// or plain `http://` to a loopback address), acting with `token` (which needs the policies
    /// the targets use). [`OpenBao::builder`] sets a custom CA, a client certificate or AppRole.
    pub fn new(addr: &str, token: SecretString) -> Result<Self, TargetError> {
        Self::builder(addr).token(token).build()
    }

    /// A builder for the server at `addr`.
    pub fn builder(addr: &str) -> OpenBaoBuilder {
        OpenBaoBuilder {
            http: HttpClient::builder(addr.trim_end_matches('/'))
                .timeout(Duration::from_secs(10))
                .max_response(1 << 20),
            auth: None,
        }
    }

    /// The token to act with now: the configured one, or the AppRole session's (logging in or
    /// renewing first when due).
    async fn acting_token(&self, step: &'static str) -> Result<SecretString, TargetError> {
        let approle = match &self.auth {
            Auth::Token(t) => return Ok(t.clone()),
            Auth::AppRole(a) => a,
        };
        let mut session = approle.session.lock().await;
        if let Some(s) = session.as_ref()
            && Instant::now() < s.renew_at
        {
            return Ok(s.token.clone());
        }
        if let Some(s) = session.as_ref().filter(|s| s.renewable) {
            let token = s.token.clone();
            // Refused or unreachable: log in afresh below.
            if let Ok((200, v)) = self
                .send(step, Method::Post, "/v1/auth/token/renew-self", Some(&token), Some(&json!({})))
                .await
            {
                let lease = v["auth"]["lease_duration"].as_u64().unwrap_or(0);
                if lease > 0 {
                    *session = Some(Session {
                        token: token.clone(),
                        renew_at: Instant::now() + Duration::from_secs(lease * 2 / 3),
                        renewable: v["auth"]["renewable"].as_bool().unwrap_or(false),
                    });
                    tracing::debug!(lease, "OpenBao AppRole token renewed");
                    return Ok(token);
                }
            }
        }
        // A login replaces the session: the old token (renewal refused or unreachable) is revoked
        // if it still works, not left alive until its TTL.
        if let Some(old) = session.take() {
            let _ = self.send(step, Method::Post, "/v1/auth/token/revoke-self", Some(&old.token), None).await;
        }
        let body = json!({ "role_id": approle.role_id, "secret_id": approle.secret_id.expose_secret() });
        let path = format!("/v1/auth/{}/login", approle.mount);
        let (status, v) = self.send(step, Method::Post, &path, None, Some(&body)).await?;
        if status != 200 {
            *session = None;
            return Err(TargetError::new(
                step,
                format!("OpenBao AppRole login answered {status}: {}", errors(&v)),
            ));
        }
        let auth = &v["auth"];
        let (Some(token), Some(lease)) = (auth["client_token"].as_str(), auth["lease_duration"].as_u64())
        else {
            return Err(TargetError::new(step, "OpenBao's AppRole login answer lacks the token or lease"));
        };
        let token = SecretString::from(token.to_owned());
        *session = Some(Session {
            token: token.clone(),
            renew_at: Instant::now() + Duration::from_secs(lease.max(1) * 2 / 3),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
        });
        tracing::debug!(lease, "OpenBao AppRole login");
        Ok(token)
    }

    /// Sends one request, with `token` if any (a login has none); returns the status and the JSON
    /// body (`null` when empty).
    async fn send(
        &self,
        step: &'static str,
        method: Method,
        path: &str,
        token: Option<&SecretString>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), TargetError> {
        let mut req = Request::new(method, path);
        if let Some(token) = token {
            req = req.secret_header("X-Vault-Token", token);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = self
            .http
            .send(req)
            .await
            .map_err(|e| TargetError::with_source(step, "OpenBao call failed", e))?;
        let value = r.json().map_err(|_| {
            TargetError::new(step, format!("OpenBao answered {} with a body that is not JSON", r.status))
        })?;
        Ok((r.status, value))
    }

    /// A call with the client's own (acting) token. A 403 names the path whose capability the
    /// acting token's policy lacks (see the minimum policy in `docs/rotation.md`).
    async fn admin(
        &self,
        step: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), TargetError> {
        let token = self.acting_token(step).await?;
        let (status, v) = self.send(step, method, path, Some(&token), body).await?;
        if status == 403 {
            let api_path = path.trim_start_matches("/v1/").split('?').next().unwrap_or_default();
            return Err(TargetError::new(
                step,
                format!(
                    "OpenBao denied {api_path} (403): the acting token's policy lacks a capability on that path: {}",
                    errors(&v)
                ),
            ));
        }
        Ok((status, v))
    }

    /// Ends the AppRole session: revokes its login token (`auth/token/revoke-self`) so it does not
    /// outlive the command or daemon that logged in. Returns whether a token was revoked. A
    /// client acting with a configured token does nothing (the token is the operator's). The next
    /// call logs in again.
    pub async fn logout(&self) -> Result<bool, TargetError> {
        let Auth::AppRole(approle) = &self.auth else { return Ok(false) };
        let Some(s) = approle.session.lock().await.take() else { return Ok(false) };
        let (status, v) =
            self.send("logout", Method::Post, "/v1/auth/token/revoke-self", Some(&s.token), None).await?;
        match status {
            200 | 204 => {
                tracing::debug!("OpenBao AppRole token revoked");
                Ok(true)
            }
            // Expired or revoked already.
            403 => Ok(false),
            _ => Err(TargetError::new("logout", format!("OpenBao answered {status}: {}", errors(&v)))),
        }
    }

    /// Looks up the acting token (`auth/token/lookup-self`): its accessor, policies and TTL.
    /// A quick check that the address, TLS and credentials work.
    pub async fn lookup_self(&self) -> Result<Value, TargetError> {
        let (status, v) = self.admin("connect", Method::Get, "/v1/auth/token/lookup-self", None).await?;
        if status != 200 {
            return Err(TargetError::new("connect", format!("OpenBao answered {status}: {}", errors(&v))));
        }
        Ok(v["data"].clone())
    }
}

/// OpenBao's own error messages (they never echo tokens).
fn errors(v: &Value) -> String {
    v.get("errors").map(|e| e.to_string()).unwrap_or_else(|| "no detail".into())
}

/// Rotates an OpenBao token of the token auth method: each rotation creates a token with the
/// given policies and TTL (an orphan, so revoking it revokes nothing else), tests it with
/// `lookup-self`, and revokes the old one by its accessor (the handle: an accessor can look up and
/// revoke a token but not authenticate with it, so it is safe to log).
#[derive(Debug)]
pub struct OpenBaoTokenTarget {
    bao: OpenBao,
    policies: Vec<String>,
    ttl: TimeDelta,
    display_name: String,
}

impl OpenBaoTokenTarget {
    /// TokenService with `policies`, living `ttl`, named `display_name` in OpenBao.
    pub fn new(bao: OpenBao, policies: &[&str], ttl: TimeDelta, display_name: &str) -> Self {
        Self {
            bao,
            policies: policies.iter().map(|p| (*p).to_owned()).collect(),
            ttl,
            display_name: display_name.to_owned(),
        }
    }
}

#[async_trait]
impl RotationTarget for OpenBaoTokenTarget {
    fn kind(&self) -> &str {
        "openbao-token"
    }

    async fn close(&self) -> Result<(), TargetError> {
        self.bao.logout().await.map(|_| ())
    }

    async fn create(&self, rotation: u64, _current: Option<&Credential>) -> Result<Credential, TargetError> {
        let body = json!({
            "policies": self.policies,
            "ttl": format!("{}s", self.ttl.num_seconds()),
            "explicit_max_ttl": format!("{}s", self.ttl.num_seconds()),
            "renewable": false,
            "no_parent": true,
            "display_name": self.display_name,
            "meta": { "tokenward_rotation": rotation.to_string() },
        });
        let now = Utc::now();
        let (status, v) =
            self.bao.admin("create", Method::Post, "/v1/auth/token/create-orphan", Some(&body)).await?;
        if status != 200 {
            return Err(TargetError::new("create", format!("OpenBao answered {status}: {}", errors(&v))));
        }
        let auth = &v["auth"];
        let (Some(token), Some(accessor), Some(lease)) =
            (auth["client_token"].as_str(), auth["accessor"].as_str(), auth["lease_duration"].as_i64())
        else {
            return Err(TargetError::new("create", "OpenBao's answer lacks the token, accessor or lease"));
        };
        Ok(Credential::new(accessor, SecretString::from(token.to_owned()), now + TimeDelta::seconds(lease)))
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        let (status, v) = self
            .bao
            .send("test", Method::Get, "/v1/auth/token/lookup-self", Some(&pending.secret), None)
            .await?;
        if status != 200 {
            return Err(TargetError::new("test", format!("the new token does not authenticate ({status})")));
        }
        if v["data"]["accessor"].as_str() != Some(pending.handle.as_str()) {
            return Err(TargetError::new("test", "the new token looks up as another token"));
        }
        Ok(())
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        let body = json!({ "accessor": credential.handle });
        let (status, v) =
            self.bao.admin("revoke", Method::Post, "/v1/auth/token/revoke-accessor", Some(&body)).await?;
        match status {
            200 | 204 => Ok(()),
            // Already revoked or expired: the accessor is gone.
            400 if errors(&v).contains("invalid accessor") => Ok(()),
            _ => Err(TargetError::new("revoke", format!("OpenBao answered {status}: {}", errors(&v)))),
        }
    }
}

/// Rotates a KV v2 secret: each rotation writes a fresh random value as a new version (with
/// check-and-set, so a concurrent writer is detected), tests by reading that version back, and
/// revokes an old value by destroying its version. The handle is the version number.
#[derive(Debug)]
pub struct OpenBaoKvTarget {
    bao: OpenBao,
    mount: String,
    path: String,
    field: String,
    lifetime: TimeDelta,
}

impl OpenBaoKvTarget {
    /// The secret at `mount`/`path` (e.g. `secret`, `billing/db`), its value in `field`; each value
    /// is considered to expire after `lifetime` (KV values have no TTL of their own).
    pub fn new(bao: OpenBao, mount: &str, path: &str, field: &str, lifetime: TimeDelta) -> Self {
        Self { bao, mount: mount.to_owned(), path: path.to_owned(), field: field.to_owned(), lifetime }
    }

    async fn latest_version(&self) -> Result<u64, TargetError> {
        let (status, v) = self
            .bao
            .admin("create", Method::Get, &format!("/v1/{}/metadata/{}", self.mount, self.path), None)
            .await?;
        match status {
            200 => Ok(v["data"]["current_version"].as_u64().unwrap_or(0)),
            404 => Ok(0),
            _ => Err(TargetError::new("create", format!("OpenBao answered {status}: {}", errors(&v)))),
        }
    }
}

#[async_trait]
impl RotationTarget for OpenBaoKvTarget {
    fn kind(&self) -> &str {
        "openbao-kv"
    }

    async fn close(&self) -> Result<(), TargetError> {
        self.bao.logout().await.map(|_| ())
    }

    async fn create(&self, _rotation: u64, _current: Option<&Credential>) -> Result<Credential, TargetError> {
        let mut raw = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut raw)
            .map_err(|_| TargetError::new("create", "the OS random number generator failed"))?;
        // Hex into one buffer sized once (no intermediate strings holding pieces of the secret).
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(64);
        for &b in &raw {
            text.push(char::from(DIGITS[usize::from(b >> 4)]));
            text.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        let value = SecretString::from(text);
        zeroize::Zeroize::zeroize(&mut raw);
        let cas = self.latest_version().await?;
        let body =
            json!({ "options": { "cas": cas }, "data": { self.field.as_str(): value.expose_secret() } });
        let (status, v) = self
            .bao
            .admin("create", Method::Post, &format!("/v1/{}/data/{}", self.mount, self.path), Some(&body))
            .await?;
        if status != 200 {
            return Err(TargetError::new("create", format!("OpenBao answered {status}: {}", errors(&v))));
        }
        let version = v["data"]["version"]
            .as_u64()
            .ok_or_else(|| TargetError::new("create", "OpenBao's answer lacks the version"))?;
        Ok(Credential::new(version.to_string(), value, Utc::now() + self.lifetime))
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        let path = format!("/v1/{}/data/{}?version={}", self.mount, self.path, pending.handle);
        let (status, v) = self.bao.admin("test", Method::Get, &path, None).await?;
        if status != 200 {
            return Err(TargetError::new(
                "test",
                format!("version {} cannot be read ({status})", pending.handle),
            ));
        }
        let stored = v["data"]["data"][self.field.as_str()].as_str().unwrap_or_default();
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(stored.as_bytes(), pending.secret.expose_secret().as_bytes())
                .into();
        if !same {
            return Err(TargetError::new(
                "test",
                format!("version {} does not hold the new value", pending.handle),
            ));
        }
        Ok(())
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        let version: u64 = credential
            .handle
            .parse()
            .map_err(|_| TargetError::new("revoke", "the handle is not a version"))?;
        let body = json!({ "versions": [version] });
        let (status, v) = self
            .bao
            .admin("revoke", Method::Post, &format!("/v1/{}/destroy/{}", self.mount, self.path), Some(&body))
            .await?;
        match status {
            200 | 204 => Ok(()),
            _ => Err(TargetError::new("revoke", format!("OpenBao answered {status}: {}", errors(&v)))),
        }
    }
}

/// An OpenBao KV v2 secret as a deploy [`crate::Destination`]: KV v2 has no staging labels, so a
/// pending credential is staged beside the secret (at `<path>-pending`) and written to `<path>`
/// at promotion as a new version with check-and-set against the version read just before (a
/// concurrent writer fails the promotion instead of being overwritten); a withdrawn one's staged
/// copy is deleted. The secret's data: `{secret_field: secret}` and, if set,
/// `{handle_field: handle}`.
#[derive(Debug)]
pub struct OpenBaoKvDestination {
    bao: OpenBao,
    mount: String,
    path: String,
    secret_field: String,
    handle_field: Option<String>,
}

impl OpenBaoKvDestination {
    /// The KV v2 secret `mount`/`path`, its value in `secret_field`.
    pub fn new(bao: OpenBao, mount: &str, path: &str, secret_field: &str) -> Self {
        Self {
            bao,
            mount: mount.trim_matches('/').to_owned(),
            path: path.trim_matches('/').to_owned(),
            secret_field: secret_field.to_owned(),
            handle_field: None,
        }
    }

    /// Also write the credential's handle (an access key id) in `field`.
    #[must_use]
    pub fn handle_field(mut self, field: &str) -> Self {
        self.handle_field = Some(field.to_owned());
        self
    }

    fn data(&self, c: &Credential) -> Value {
        let mut m = serde_json::Map::new();
        m.insert(self.secret_field.clone(), Value::String(c.secret.expose_secret().to_owned()));
        if let Some(h) = &self.handle_field {
            m.insert(h.clone(), Value::String(c.handle.clone()));
        }
        m.insert("tokenward_handle".into(), Value::String(c.handle.clone()));
        Value::Object(m)
    }

    /// (current version, the handle it holds).
    async fn read(&self, step: &'static str, path: &str) -> Result<(u64, Option<String>), TargetError> {
        let (status, v) =
            self.bao.admin(step, Method::Get, &format!("/v1/{}/data/{path}", self.mount), None).await?;
        match status {
            200 => Ok((
                v["data"]["metadata"]["version"].as_u64().unwrap_or(0),
                v["data"]["data"]["tokenward_handle"].as_str().map(str::to_owned),
            )),
            404 => Ok((0, None)),
            _ => Err(TargetError::new(step, format!("OpenBao answered {status}: {}", errors(&v)))),
        }
    }

    async fn write(
        &self,
        step: &'static str,
        path: &str,
        cas: u64,
        c: &Credential,
    ) -> Result<(), TargetError> {
        let body = json!({ "options": { "cas": cas }, "data": self.data(c) });
        let (status, v) = self
            .bao
            .admin(step, Method::Post, &format!("/v1/{}/data/{path}", self.mount), Some(&body))
            .await?;
        if status != 200 {
            return Err(TargetError::new(step, format!("OpenBao answered {status}: {}", errors(&v))));
        }
        Ok(())
    }

    async fn delete_pending(&self, step: &'static str) -> Result<(), TargetError> {
        let path = format!("/v1/{}/metadata/{}-pending", self.mount, self.path);
        let (status, v) = self.bao.admin(step, Method::Delete, &path, None).await?;
        match status {
            200 | 204 | 404 => Ok(()),
            _ => Err(TargetError::new(step, format!("OpenBao answered {status}: {}", errors(&v)))),
        }
    }
}

#[async_trait]
impl crate::Destination for OpenBaoKvDestination {
    async fn close(&self) -> Result<(), TargetError> {
        self.bao.logout().await.map(|_| ())
    }

    fn name(&self) -> String {
        format!("openbao-kv:{}/{}", self.mount, self.path)
    }

    async fn stage(&self, pending: &Credential) -> Result<(), TargetError> {
        let staged = format!("{}-pending", self.path);
        let (version, handle) = self.read("deploy", &staged).await?;
        if handle.as_deref() == Some(pending.handle.as_str()) {
            return Ok(());
        }
        self.write("deploy", &staged, version, pending).await
    }

    async fn promote(&self, current: &Credential) -> Result<(), TargetError> {
        let (version, handle) = self.read("promote", &self.path).await?;
        if handle.as_deref() != Some(current.handle.as_str()) {
            self.write("promote", &self.path, version, current).await?;
        }
        let (_, staged) = self.read("promote", &format!("{}-pending", self.path)).await?;
        if staged.as_deref() == Some(current.handle.as_str()) {
            self.delete_pending("promote").await?;
        }
        Ok(())
    }

    async fn withdraw(&self, credential: &Credential) -> Result<(), TargetError> {
        let (_, staged) = self.read("revoke", &format!("{}-pending", self.path)).await?;
        if staged.as_deref() == Some(credential.handle.as_str()) {
            self.delete_pending("revoke").await?;
        }
        Ok(())
    }
}
