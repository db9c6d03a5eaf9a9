//! The policy stored in the store, versioned: apply (compare-and-swap, audited), the history,
//! and the active tokens a new version would orphan.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use token_audit::{Action, Actor, AuditEvent};
use token_core::TokenId;
use token_core::chrono::{DateTime, Utc};
use token_store::TokenQuery;

use super::error::PolicyFileError;
use super::schema::PolicyFile;
use crate::deployment::Tokenward;
use crate::error::{Error, Result};

/// The sealed metadata key of the current policy.
const HEAD_KEY: &str = "tokenward/policy";

fn version_key(v: u64) -> String {
    format!("tokenward/policy/{v}")
}

/// A stored version of the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicyRecord {
    /// Its version (1, 2, …).
    pub version: u64,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
    /// Who applied it.
    pub actor: String,
    /// SHA-256 of its canonical TOML (hex).
    pub sha256: String,
    /// Its canonical TOML.
    pub text: String,
}

impl PolicyRecord {
    /// The file it holds.
    pub fn file(&self) -> Result<PolicyFile, PolicyFileError> {
        PolicyFile::parse(&self.text)
    }
}

/// An active token the new policy would no longer cover: its principal is gone, or its scopes are
/// outside every grant its principal's roles would have.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Orphan {
    /// The token.
    pub token: TokenId,
    /// Its principal.
    pub principal: String,
    /// Its purpose.
    pub purpose: String,
    /// Why.
    pub why: String,
}

/// How [`Tokenward::apply_policy`] applies a file.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// Apply only if the stored version is still this one (`Some(0)`: no policy stored yet);
    /// `None`: over whatever is stored (still compare-and-swap against what was read).
    pub expect_version: Option<u64>,
    /// Apply even if it orphans active tokens.
    pub allow_orphans: bool,
}

impl ApplyOptions {
    /// Over whatever is stored, refusing to orphan tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only over stored version `v` (`0`: none stored yet).
    pub fn expect_version(mut self, v: u64) -> Self {
        self.expect_version = Some(v);
        self
    }

    /// Apply even if active tokens are orphaned (they keep working until they expire or are revoked).
    pub fn allow_orphans(mut self, on: bool) -> Self {
        self.allow_orphans = on;
        self
    }
}

/// What [`Tokenward::apply_policy`] did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PolicyApplied {
    /// The version stored (the old one when nothing changed).
    pub version: u64,
    /// What changed (empty: the file was already the stored policy; nothing was written).
    pub diff: Vec<String>,
    /// Active tokens it orphans (applied anyway: `allow_orphans`).
    pub orphans: Vec<Orphan>,
}

fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::Principal(p) => format!("principal:{p}"),
        Actor::Operator(o) => format!("operator:{o}"),
        Actor::System => "system".into(),
        Actor::Anonymous => "anonymous".into(),
        other => format!("{other:?}"),
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(text.as_bytes());
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn decode(bytes: &[u8]) -> Result<PolicyRecord> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::Store(token_store::StoreError::Corrupted {
            id: None,
            what: "stored policy",
            detail: e.to_string(),
        })
    })
}

/// Reads the stored policy through a secret store (what the builder does before the token service
/// opens).
pub(crate) async fn read_head(secrets: &token_store::SecretStore) -> Result<Option<(PolicyRecord, Vec<u8>)>> {
    match secrets.sealed_meta(HEAD_KEY).await? {
        None => Ok(None),
        Some((value, raw)) => Ok(Some((decode(&value)?, raw))),
    }
}

impl Tokenward {
    /// The stored policy, if one was applied.
    pub async fn stored_policy(&self) -> Result<Option<PolicyRecord>> {
        Ok(read_head(self.secrets()).await?.map(|(r, _)| r))
    }

    /// Every stored version of the policy, oldest first.
    pub async fn policy_history(&self) -> Result<Vec<PolicyRecord>> {
        let Some((head, _)) = read_head(self.secrets()).await? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for v in 1..head.version {
            if let Some((value, _)) = self.secrets().sealed_meta(&version_key(v)).await? {
                out.push(decode(&value)?);
            }
        }
        out.push(head);
        Ok(out)
    }

    /// Active tokens `file` would orphan (see [`Orphan`]).
    pub async fn policy_orphans(&self, file: &PolicyFile) -> Result<Vec<Orphan>> {
        let policy = file.to_policy().map_err(|e| Error::Config(e.to_string()))?;
        let now = self.clock().now();
        let rows = self.backend().tokens(&TokenQuery::Unexpired { at: now }).await?;
        let mut out = Vec::new();
        for row in rows {
            let r = &row.record;
            if r.revoked_at.is_some() {
                continue;
            }
            let principal = r.principal.as_str().to_owned();
            let why = match file.principal(&principal) {
                None => Some("its principal is no longer declared".to_owned()),
                Some(p) => {
                    let grants: Vec<&token_core::Scope> = p
                        .roles()
                        .filter_map(|n| policy.role(n))
                        .flat_map(|role| role.grants().iter())
                        .collect();
                    r.scopes
                        .iter()
                        .find(|s| !grants.iter().any(|g| s.is_subset(g)))
                        .map(|s| format!("scope {s} is no longer granted to {principal}"))
                }
            };
            if let Some(why) = why {
                out.push(Orphan { token: r.id, principal, purpose: r.purpose.as_str().to_owned(), why });
            }
        }
        Ok(out)
    }

    /// Stores `file` as the next policy version: refused if the stored version is not
    /// `options.expect_version` (or changed since it was read: compare-and-swap), or if it would
    /// orphan active tokens and `allow_orphans` is off ([`Error::PolicyOrphans`], naming them).
    /// Records a `policy_change` audit entry (version, SHA-256, changes). Applying the stored
    /// policy again writes nothing. The running deployment keeps the policy it opened with; a
    /// handle opened afterwards with [`crate::TokenwardBuilder::stored_policy`] issues under the new one.
    pub async fn apply_policy(&self, file: &PolicyFile, options: ApplyOptions) -> Result<PolicyApplied> {
        file.check().map_err(|e| Error::Config(e.to_string()))?;
        let head = read_head(self.secrets()).await?;
        let current = head.as_ref().map_or(0, |(r, _)| r.version);
        if let Some(expect) = options.expect_version
            && expect != current
        {
            return Err(Error::PolicyConflict { expected: expect, found: current });
        }
        let old = match &head {
            Some((r, _)) => r.file().map_err(|e| Error::Config(format!("the stored policy: {e}")))?,
            None => PolicyFile::default(),
        };
        let text = file.to_toml();
        let diff = file.diff(&old);
        if head.is_some() && diff.is_empty() {
            return Ok(PolicyApplied { version: current, diff, orphans: Vec::new() });
        }
        let orphans = self.policy_orphans(file).await?;
        if !orphans.is_empty() && !options.allow_orphans {
            return Err(Error::PolicyOrphans(orphans.iter().map(|o| o.token).collect()));
        }
        let record = PolicyRecord {
            version: current + 1,
            applied_at: self.clock().now(),
            actor: actor_name(self.actor()),
            sha256: sha256_hex(&text),
            text,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::Config(e.to_string()))?;
        let expect = head.as_ref().map(|(_, raw)| raw.as_slice());
        match self.secrets().set_sealed_meta(HEAD_KEY, expect, &bytes).await {
            Ok(_) => {}
            Err(token_store::StoreError::Conflict(_)) => {
                let found = read_head(self.secrets()).await?.map_or(0, |(r, _)| r.version);
                return Err(Error::PolicyConflict { expected: current, found });
            }
            Err(e) => return Err(e.into()),
        }
        // History: the head holds the newest; older versions keep their own key.
        if let Some((old_record, _)) = &head {
            let old_bytes = serde_json::to_vec(old_record).map_err(|e| Error::Config(e.to_string()))?;
            match self.secrets().set_sealed_meta(&version_key(old_record.version), None, &old_bytes).await {
                Ok(_) | Err(token_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(auditor) = self.auditor() {
            let event = AuditEvent::new(record.applied_at, self.actor().clone(), Action::PolicyChange)
                .attr("version", record.version.to_string())
                .attr("sha256", record.sha256.clone())
                .attr("changes", diff.join("\n"))
                .attr("orphaned", orphans.len().to_string());
            auditor.emit_durable(event).await?;
        }
        tracing::info!(version = record.version, changes = diff.len(), "policy applied");
        Ok(PolicyApplied { version: record.version, diff, orphans })
    }
}
