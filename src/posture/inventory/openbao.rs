//! OpenBao / Vault as an inventory source: every token by its accessor (`auth/token/accessors`,
//! then `auth/token/lookup-accessor` each: display name, policies, creation, expiry, orphan) —
//! never the token. OpenBao does not report a token's last use. A token is managed when a
//! declared credential's record knows its accessor (current or previous).

use std::sync::Arc;

use token_core::chrono::{DateTime, Utc};
use token_http::openbao::OpenBao;
use token_store::SecretName;

use super::entry::{CredentialStatus, InventoryEntry, Managed, SourceKind};
use super::error::InventoryError;
use crate::Tokenward;
use crate::error::Result;

/// Every OpenBao token's accessor, read with a client allowed `sudo` on `auth/token/accessors`
/// and `update` on `auth/token/lookup-accessor`.
#[derive(Debug, Clone)]
pub struct OpenBaoSource {
    client: Arc<OpenBao>,
    managed: Vec<SecretName>,
}

impl OpenBaoSource {
    /// Reads with `client`.
    #[must_use]
    pub fn new(client: OpenBao) -> Self {
        Self { client: Arc::new(client), managed: Vec::new() }
    }

    /// The declared credential `credential` rotates an OpenBao token: the accessors of its
    /// record's current and previous versions are managed.
    #[must_use]
    pub fn managed(mut self, credential: SecretName) -> Self {
        self.managed.push(credential);
        self
    }

    pub(super) async fn read(&self, tw: &Tokenward, now: DateTime<Utc>) -> Result<Vec<InventoryEntry>> {
        let mut known = Vec::new();
        for name in &self.managed {
            if let Some(c) = tw.rotator().current(name).await? {
                known.push((c.handle, Managed::Current { credential: name.as_str().to_owned() }));
            }
            if let Some(c) = tw.rotator().previous(name).await? {
                known.push((c.handle, Managed::Previous { credential: name.as_str().to_owned() }));
            }
        }
        let mut out = Vec::new();
        for accessor in self.client.token_accessors().await.map_err(InventoryError::from)? {
            // Gone between the list and the lookup (expired, revoked: "invalid accessor"): not
            // listed. Any other failure is one: a token is never left out silently.
            let d = match self.client.lookup_accessor(&accessor).await {
                Ok(d) => d,
                Err(token_http::openbao::OpenBaoError::Api { status: 400, errors })
                    if errors.contains("invalid accessor") =>
                {
                    continue;
                }
                Err(e) => return Err(InventoryError::from(e).into()),
            };
            let owner = d["display_name"].as_str().unwrap_or_default().to_owned();
            let expires = d["expire_time"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let status = if expires.is_some_and(|t| t <= now) {
                CredentialStatus::Expired
            } else {
                CredentialStatus::Active
            };
            let mut e = InventoryEntry::new(SourceKind::Openbao, accessor.clone(), owner, status);
            e.created = d["creation_time"].as_i64().and_then(|s| DateTime::from_timestamp(s, 0));
            e.expires = expires;
            e.usage_reported = false;
            let policies: Vec<&str> =
                d["policies"].as_array().into_iter().flatten().filter_map(|p| p.as_str()).collect();
            e.purpose = Some(policies.join(","));
            e.managed = known.iter().find(|(h, _)| *h == accessor).map(|(_, m)| m.clone());
            out.push(e);
        }
        Ok(out)
    }
}
