//! Our own issued tokens as a rotation target: a rotation issues the replacement (allowed next to
//! the current one by the one-active rule's rotation exception), proves it verifies, and revokes
//! the old one after the overlap.

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use token_core::{IssueRequest, Principal, TokenId};
use token_store::{TokenQuery, TokenService};

use crate::credential::Credential;
use crate::error::TargetError;
use crate::target::RotationTarget;

/// Rotates the token a principal holds for one purpose, in a [`TokenService`] service. The handle is the
/// token's id.
pub struct TokenwardTokenTarget {
    tokens: Arc<TokenService>,
    principal: Principal,
    request: IssueRequest,
}

impl std::fmt::Debug for TokenwardTokenTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenwardTokenTarget").field("principal", &self.principal).finish_non_exhaustive()
    }
}

impl TokenwardTokenTarget {
    /// Each rotation issues `request` (its purpose, scopes, lifetime) to `principal`.
    pub fn new(tokens: Arc<TokenService>, principal: Principal, request: IssueRequest) -> Self {
        Self { tokens, principal, request }
    }
}

fn id_of(c: &Credential, step: &'static str) -> Result<TokenId, TargetError> {
    c.handle.parse().map_err(|_| TargetError::new(step, "the handle is not a token id"))
}

#[async_trait]
impl RotationTarget for TokenwardTokenTarget {
    fn kind(&self) -> &str {
        "tokenward-token"
    }

    /// The store's last use of the token (written by the verifiers' usage flush, so it can lag
    /// by the flush interval).
    async fn last_used(&self, credential: &Credential) -> Result<crate::target::Usage, TargetError> {
        let id = id_of(credential, "last_used")?;
        let row = self.tokens.token(id).await.map_err(|e| TargetError::new("last_used", e.to_string()))?;
        Ok(match row.and_then(|r| r.last_used) {
            Some(at) => crate::target::Usage::At { at, by: None },
            None => crate::target::Usage::Never,
        })
    }

    async fn create(&self, _rotation: u64, current: Option<&Credential>) -> Result<Credential, TargetError> {
        let current_id = current.map(|c| id_of(c, "create")).transpose()?;
        let request = match current_id {
            Some(id) => self.request.clone().replacing(id),
            None => self.request.clone(),
        };
        let now = chrono::Utc::now();
        // Only rotations issue for this (principal, purpose): an active token other than the
        // current one is an orphan of a create that crashed before the store recorded it. Revoke
        // it, or the one-active rule would refuse every rotation until it expired.
        let query = TokenQuery::Active {
            principal: self.principal.id().clone(),
            purpose: self.request.purpose().clone(),
            at: now,
        };
        let active = self
            .tokens
            .backend()
            .tokens(&query)
            .await
            .map_err(|e| TargetError::new("create", e.to_string()))?;
        for orphan in active.iter().map(|t| t.record.id).filter(|id| Some(*id) != current_id) {
            self.tokens
                .revoke_at(orphan, now)
                .await
                .map_err(|e| TargetError::new("create", e.to_string()))?;
        }
        let token = self
            .tokens
            .issue_at(&self.principal, &request, now)
            .await
            .map_err(|e| TargetError::new("create", e.to_string()))?;
        Ok(Credential::new(
            token.id().to_string(),
            SecretString::from(token.expose_secret().to_owned()),
            token.expires_at(),
        ))
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        let d = self.tokens.verifier().authenticate_at(pending.secret.expose_secret(), chrono::Utc::now());
        match d.reason() {
            None => Ok(()),
            Some(r) => Err(TargetError::new("test", format!("the new token does not verify: {r}"))),
        }
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        let id = id_of(credential, "revoke")?;
        match self.tokens.revoke_at(id, chrono::Utc::now()).await {
            Ok(_) | Err(token_store::StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(TargetError::new("revoke", e.to_string())),
        }
    }
}
