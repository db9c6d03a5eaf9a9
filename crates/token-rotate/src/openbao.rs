//! OpenBao (and Vault) as rotation targets: a token of the token auth method, and a KV v2 secret;
//! and a KV v2 secret as a deploy destination.
//!
//! They act through [`OpenBao`], `token_http`'s OpenBao client (re-exported here with its builder
//! and error): TLS on rustls with ring (the
//! platform's roots, or a custom CA, and an optional client certificate), plain HTTP only to
//! loopback unless allowed, timeouts, bounded answers, no redirects (the token header never
//! follows one), the token header marked sensitive, retries of idempotent calls; a token, or
//! **AppRole** (logs in, renews its token before the lease ends, logs in again when renewal is
//! refused, logs out when the target is closed).

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use rand::TryRng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use token_http::openbao::TokenRequest;
pub use token_http::openbao::{OpenBao, OpenBaoBuilder, OpenBaoError};

use crate::credential::Credential;
use crate::error::TargetError;
use crate::target::{Probe, RotationTarget};

/// Maps an OpenBao failure to the target's error for `step`.
fn at(step: &'static str) -> impl FnOnce(OpenBaoError) -> TargetError {
    move |e| TargetError::openbao(step, e)
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
        self.bao.logout().await.map(|_| ()).map_err(at("logout"))
    }

    async fn create(&self, rotation: u64, _current: Option<&Credential>) -> Result<Credential, TargetError> {
        let ttl = self.ttl.to_std().map_err(|_| TargetError::new("create", "the token's TTL is negative"))?;
        let request = TokenRequest {
            policies: self.policies.clone(),
            ttl,
            display_name: self.display_name.clone(),
            meta: vec![("tokenward_rotation".to_owned(), rotation.to_string())],
        };
        let now = Utc::now();
        let made = self.bao.create_orphan_token(&request).await.map_err(at("create"))?;
        let lease = TimeDelta::from_std(made.lease)
            .map_err(|_| TargetError::new("create", "OpenBao's answer holds a lease out of range"))?;
        Ok(Credential::new(made.accessor, made.token, now + lease))
    }

    /// A token that authenticates (`lookup-self` with it: this uses one use of a use-limited
    /// token), by its accessor (checked against `handle` when given), expiring when OpenBao says.
    /// A token that never expires is refused: every credential Tokenward manages has an expiry.
    async fn adopt(&self, handle: Option<&str>, secret: SecretString) -> Result<Credential, TargetError> {
        // An accessor has no dot; a token does (`hvs.…`, `s.…`): a swapped argument is refused
        // without being repeated anywhere.
        if handle
            .is_some_and(|h| h.is_empty() || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(TargetError::new(
                "adopt",
                "--handle is not an accessor (was the token given there?)",
            ));
        }
        let data = match self.bao.lookup_as(&secret).await {
            Ok(data) => data,
            Err(OpenBaoError::Api { status, .. }) => {
                return Err(TargetError::new("adopt", format!("the token does not authenticate ({status})")));
            }
            Err(e) => return Err(TargetError::openbao("adopt", e)),
        };
        let Some(accessor) = data["accessor"].as_str().filter(|a| !a.is_empty()) else {
            return Err(TargetError::new("adopt", "OpenBao's lookup-self answer has no accessor"));
        };
        if handle.is_some_and(|h| h != accessor) {
            return Err(TargetError::new("adopt", "the token's accessor is not the one given"));
        }
        // Retiring it later revokes it by accessor: a token with children would take them along,
        // and a use-limited one would die of its own lookups. Only an orphan without a use limit,
        // and never the token this target acts with.
        if data["orphan"].as_bool() != Some(true) {
            return Err(TargetError::new(
                "adopt",
                "the token is not an orphan: revoking it would revoke its children (make an orphan token)",
            ));
        }
        if data["num_uses"].as_u64().unwrap_or(1) != 0 {
            return Err(TargetError::new(
                "adopt",
                "the token has a use limit: it would be used up by its checks",
            ));
        }
        let own = self.bao.lookup_self().await.map_err(|e| TargetError::openbao("adopt", e))?;
        if own["accessor"].as_str() == Some(accessor) {
            return Err(TargetError::new("adopt", "that is the token this target acts with"));
        }
        let expires = data["expire_time"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let Some(expires) = expires else {
            return Err(TargetError::new(
                "adopt",
                "the token never expires: make one with a TTL (Tokenward manages only credentials that expire)",
            ));
        };
        Ok(Credential::new(accessor, secret, expires))
    }

    fn can_probe(&self) -> bool {
        true
    }

    /// `lookup-accessor` by the target's own token: OpenBao's "invalid accessor" (400) says the
    /// token is gone. (A 403 to `lookup-self` with the old token would not prove it: a live
    /// token whose policy lacks `lookup-self` gets one too.) Needs `update` on
    /// `auth/token/lookup-accessor`.
    async fn probe(&self, credential: &Credential) -> Result<Probe, TargetError> {
        Ok(match self.bao.lookup_accessor(&credential.handle).await {
            Ok(_) => Probe::Accepted,
            Err(OpenBaoError::Api { status: 400, errors }) if errors.contains("invalid accessor") => {
                Probe::Refused
            }
            Err(e) => Probe::Unknown(e.to_string()),
        })
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        let data = match self.bao.lookup_as(&pending.secret).await {
            Ok(data) => data,
            Err(OpenBaoError::Api { status, .. }) => {
                return Err(TargetError::new(
                    "test",
                    format!("the new token does not authenticate ({status})"),
                ));
            }
            Err(e) => return Err(TargetError::openbao("test", e)),
        };
        if data["accessor"].as_str() != Some(pending.handle.as_str()) {
            return Err(TargetError::new("test", "the new token looks up as another token"));
        }
        Ok(())
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        // Already revoked or expired (the accessor is gone) is done too.
        self.bao.revoke_accessor(&credential.handle).await.map(|_| ()).map_err(at("revoke"))
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
}

#[async_trait]
impl RotationTarget for OpenBaoKvTarget {
    fn kind(&self) -> &str {
        "openbao-kv"
    }

    async fn close(&self) -> Result<(), TargetError> {
        self.bao.logout().await.map(|_| ()).map_err(at("logout"))
    }

    async fn create(&self, _rotation: u64, _current: Option<&Credential>) -> Result<Credential, TargetError> {
        let mut raw = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut raw)
            .map_err(|_| TargetError::new("create", "the OS random number generator failed"))?;
        // Hex into one buffer sized once (no intermediate strings holding pieces of the secret).
        let mut text = String::with_capacity(64);
        token_core::hex::push(&mut text, &raw);
        let value = SecretString::from(text);
        zeroize::Zeroize::zeroize(&mut raw);
        let cas = self.bao.kv_current_version(&self.mount, &self.path).await.map_err(at("create"))?;
        let mut data = serde_json::Map::new();
        data.insert(self.field.clone(), Value::String(value.expose_secret().to_owned()));
        let version = self.bao.kv_write(&self.mount, &self.path, cas, &data).await.map_err(at("create"))?;
        Ok(Credential::new(version.to_string(), value, Utc::now() + self.lifetime))
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        let cannot_read = |status: u16| {
            TargetError::new("test", format!("version {} cannot be read ({status})", pending.handle))
        };
        let version =
            pending.handle.parse().map_err(|_| TargetError::new("test", "the handle is not a version"))?;
        let read = match self.bao.kv_read(&self.mount, &self.path, Some(version)).await {
            Ok(Some(read)) => read,
            Ok(None) => return Err(cannot_read(404)),
            Err(OpenBaoError::Api { status, .. }) => return Err(cannot_read(status)),
            Err(e) => return Err(TargetError::openbao("test", e)),
        };
        let stored = read.field(&self.field).unwrap_or_default();
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
        self.bao.kv_destroy(&self.mount, &self.path, &[version]).await.map_err(at("revoke"))
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

    fn data(&self, c: &Credential) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert(self.secret_field.clone(), Value::String(c.secret.expose_secret().to_owned()));
        if let Some(h) = &self.handle_field {
            m.insert(h.clone(), Value::String(c.handle.clone()));
        }
        m.insert("tokenward_handle".into(), Value::String(c.handle.clone()));
        m
    }

    /// (current version, the handle it holds).
    async fn read(&self, step: &'static str, path: &str) -> Result<(u64, Option<String>), TargetError> {
        Ok(match self.bao.kv_read(&self.mount, path, None).await.map_err(at(step))? {
            Some(read) => (read.version, read.field("tokenward_handle").map(str::to_owned)),
            None => (0, None),
        })
    }

    async fn write(
        &self,
        step: &'static str,
        path: &str,
        cas: u64,
        c: &Credential,
    ) -> Result<(), TargetError> {
        self.bao.kv_write(&self.mount, path, cas, &self.data(c)).await.map(|_| ()).map_err(at(step))
    }

    async fn delete_pending(&self, step: &'static str) -> Result<(), TargetError> {
        self.bao.kv_delete_all(&self.mount, &format!("{}-pending", self.path)).await.map_err(at(step))
    }
}

#[async_trait]
impl crate::Destination for OpenBaoKvDestination {
    async fn close(&self) -> Result<(), TargetError> {
        self.bao.logout().await.map(|_| ()).map_err(at("logout"))
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
