//! Issuing, revoking and persisting usage: durable in the backend first, then the cache, then
//! (with an auditor) the audit log.

use chrono::{DateTime, Utc};
use token_audit::{Action, Actor, AuditEvent};
use token_core::{ChildRequest, IssueRequest, IssuedToken, Principal, TokenId};

use super::{LOG_TARGET, TokenService};
use crate::error::{Result, StoreError};
use crate::model::TokenQuery;

impl TokenService {
    /// Records an issue; in fail-closed mode, withdraws the token if that fails.
    async fn audit_issue(&self, record: &token_core::lookup::TokenRecord, now: DateTime<Utc>) -> Result<()> {
        let Some(audit) = &self.audit else { return Ok(()) };
        let mut event =
            AuditEvent::new(now, Actor::Principal(record.principal.as_str().to_owned()), Action::Issue)
                .token(record.id)
                .attr("purpose", record.purpose.as_str())
                .attr("scopes", record.scopes.to_string())
                .attr("expires", record.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        if let Some(p) = record.parent {
            event = event.attr("parent", p.to_string());
        }
        if let Some(r) = record.replaces {
            event = event.attr("replaces", r.to_string());
        }
        if let Err(e) = audit.emit_durable(event).await {
            tracing::error!(target: LOG_TARGET, token = %record.id, error = %e, "the issue could not be audited; the token is withdrawn");
            // Nobody has seen the token's text; revoke its record so it can never be used and does
            // not hold the purpose's one active slot.
            let revoked = self.backend.revoke_tree(record.id, now, &self.record_key).await?;
            self.cache.revoke(&revoked, now);
            return Err(e.into());
        }
        Ok(())
    }
    /// Issues a token at `now` and stores its record; returns the token text, once. The one-active
    /// rule is checked by the policy and again, atomically, by the backend; a lost race is retried.
    pub async fn issue_at(
        &self,
        principal: &Principal,
        request: &IssueRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        let query = TokenQuery::Active {
            principal: principal.id().clone(),
            purpose: request.purpose().clone(),
            at: now,
        };
        // Optimistic first try: assume the purpose's active set is what the request implies (none,
        // or the token it replaces); the backend's atomic check corrects us, and then we ask.
        let mut active: Vec<TokenId> = request.replaces().into_iter().collect();
        let mut attempt = 0;
        loop {
            let (token, record) = self.issuer.issue_at(principal, request, &active, now)?;
            match self.backend.insert_token(&record, &self.record_key, &active).await {
                Ok(()) => {
                    self.cache.insert(&record, 0, None)?;
                    self.audit_issue(&record, now).await?;
                    tracing::info!(target: LOG_TARGET, token = %record.id, principal = %record.principal, purpose = %record.purpose, "issued");
                    return Ok(token);
                }
                Err(StoreError::TokenRejected(_)) if attempt < 3 => {
                    attempt += 1;
                    active = self.backend.tokens(&query).await?.into_iter().map(|t| t.record.id).collect();
                    tracing::debug!(target: LOG_TARGET, attempt, "the purpose's active tokens changed meanwhile; issuing again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Mints a child of the token `parent_token` (which proves possession) and stores it.
    pub async fn issue_child_at(
        &self,
        parent_token: &str,
        request: &ChildRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        let parent_id = self.issuer.format().parse(parent_token).map_err(token_core::IssueError::from)?.id();
        let parent = self
            .token(parent_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("parent token {parent_id}")))?;
        let (token, record) = self.issuer.issue_child_at(parent_token, &parent.record, request, now)?;
        self.backend.insert_token(&record, &self.record_key, &[]).await?;
        self.cache.insert(&record, 0, None)?;
        self.audit_issue(&record, now).await?;
        Ok(token)
    }

    /// Revokes `id` and its descendants: durable in the backend first, then out of this process's
    /// cache, then (with an auditor) one durable `revoke` entry per token, then returns. Other
    /// processes follow through notices or their next resync. A revocation is never held back by
    /// the audit log: if its entries cannot be written (fail-closed), the tokens are revoked all
    /// the same and [`StoreError::Audit`] says the record is missing.
    pub async fn revoke_at(&self, id: TokenId, now: DateTime<Utc>) -> Result<Vec<TokenId>> {
        self.revoke_by_at(id, now, Actor::System, None).await
    }

    /// [`TokenService::revoke_at`] on behalf of `actor` (an operator, an automation), with the
    /// reason recorded in each `revoke` entry.
    pub async fn revoke_by_at(
        &self,
        id: TokenId,
        now: DateTime<Utc>,
        actor: Actor,
        reason: Option<&str>,
    ) -> Result<Vec<TokenId>> {
        let revoked = self.backend.revoke_tree(id, now, &self.record_key).await?;
        self.cache.revoke(&revoked, now);
        tracing::info!(target: LOG_TARGET, token = %id, revoked = revoked.len(), "revoked");
        if let Some(audit) = &self.audit {
            let root = id.to_string();
            let mut last = None;
            for r in &revoked {
                let mut event =
                    AuditEvent::new(now, actor.clone(), Action::Revoke).token(*r).attr("root", root.clone());
                if let Some(reason) = reason {
                    event = event.attr("reason", reason);
                }
                last = audit.emit(event)?.or(last);
            }
            if let Some(t) = last
                && let Err(e) = audit.sink().committed(t).await
                && audit.mode() == token_audit::FailureMode::FailClosed
            {
                return Err(e.into());
            }
        }
        Ok(revoked)
    }

    /// Persists use counters gathered in the cache since `since` (call it every few seconds, not
    /// per verification). Returns how many tokens it updated.
    pub async fn flush_usage(&self, since: DateTime<Utc>) -> Result<usize> {
        let usage = self.cache.usage_since(since);
        self.backend.record_uses(&usage).await?;
        Ok(usage.len())
    }
}
