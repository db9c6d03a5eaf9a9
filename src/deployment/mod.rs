//! [`Tokenward`]: one handle that owns a deployment's backend, secret store, token service, audit
//! log and rotator, and the tasks that keep them up.
//!
//! This module holds the handle, its tokens and its parts, and its shutdown; `audit` is the audit
//! log's seal, witness, checkpoints and reconciliation, `secrets` sealed secrets read and written
//! through the handle (audited), `rotation` credentials under rotation and emergencies.

mod audit;
mod rotation;
mod secrets;

use std::sync::Arc;

use token_audit::{Actor, AuditWriter, Auditor, checkpoints::SignedCheckpoint};
use token_core::{ChildRequest, IssueRequest, IssuedToken, Principal, TokenId, clocks::Clock};
use token_rotate::{Rotator, TokioScheduler};
use token_store::{Backend, SecretStore, TokenService};

use crate::error::Result;
use crate::inner::Inner;
use crate::verifier::TokenVerifier;

/// The target of this module's log lines, whichever file writes them: what an operator filters
/// on (`TOKENWARD_LOG=tokenward::deployment=info`) stays put when the code moves.
const LOG_TARGET: &str = "tokenward::deployment";

/// What [`Tokenward::reconcile_revocations`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconciliation {
    /// Tokens the audit log says were revoked.
    pub checked: usize,
    /// Of those, tokens the store had un-revoked (or whose record was refused): revoked again.
    pub revived: Vec<TokenId>,
    /// Of those, tokens the store no longer holds at all.
    pub missing: Vec<TokenId>,
}

/// A whole Tokenward deployment behind one handle: issue, verify, revoke, seal secrets, rotate,
/// and declare emergencies, with the audit log attached once and reaching every place that
/// records. The handle runs the upkeep nobody should have to remember (cache resync, usage
/// flush, dropping expired tokens from the cache, revoking previous credentials when their overlap
/// ends, periodic signed checkpoints, following other instances' revocations on PostgreSQL) on
/// tasks it owns, and [`Tokenward::shutdown`] stops them and closes everything in order.
///
/// Cheap to clone (all clones share one deployment). The parts stay reachable
/// ([`Tokenward::tokens`], [`Tokenward::secrets`], [`Tokenward::rotator`], …) for what the simple
/// calls do not cover.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use tokenward::core::chrono::TimeDelta;
/// use tokenward::core::{IssueRequest, Policy, Principal, Request, Role};
/// use tokenward::secrecy::{ExposeSecret, SecretString};
///
/// let policy = Policy::builder()
///     .role(Role::parse("log-reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1))?)
///     .build()?;
/// let tw = tokenward::Tokenward::in_memory()
///     .passphrase(SecretString::from("correct horse battery staple"))
///     .prefix("acme_prod")
///     .policy(policy)
///     .open()
///     .await?;
/// let principal = Principal::parse("billing-api", ["log-reader"])?;
/// let request = IssueRequest::parse("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))?;
/// let token = tw.issue(&principal, &request).await?;
/// let read = Request::parse("s3:bucket/prod-logs/app.log:read")?;
/// assert!(tw.verifier().verify(token.expose_secret(), &read).is_allowed());
/// tw.revoke(token.id()).await?;
/// assert!(!tw.verifier().verify(token.expose_secret(), &read).is_allowed());
/// tw.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tokenward {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Tokenward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenward")
            .field("tokens", &self.inner.tokens)
            .field("secrets", &self.inner.secrets)
            .field("audited", &self.inner.auditor.is_some())
            .finish_non_exhaustive()
    }
}

impl Tokenward {
    /// Issues `principal` a token for `request` now: checked against the policy, stored durably
    /// (and audited durably) before it returns. The token's text is in the result, once.
    pub async fn issue(&self, principal: &Principal, request: &IssueRequest) -> Result<IssuedToken> {
        Ok(self.inner.tokens.issue_at(principal, request, self.inner.clock.now()).await?)
    }

    /// Mints a child of `parent_token` (which proves possession): narrower, shorter-lived, revoked
    /// with its parent.
    pub async fn issue_child(&self, parent_token: &str, request: &ChildRequest) -> Result<IssuedToken> {
        Ok(self.inner.tokens.issue_child_at(parent_token, request, self.inner.clock.now()).await?)
    }

    /// Revokes token `id` and its descendants, durably, before it returns; returns the ids revoked.
    /// With an audit log, the store's binding then moves to the log's new head, and with a
    /// witness the log's signed tree head is pushed to it: an `Err` after the revocation
    /// ([`Error::Witness`](crate::Error::Witness), [`Error::Binding`](crate::Error::Binding))
    /// means it stands but is not witnessed yet (the next revocation, the upkeep or
    /// [`Tokenward::witness_now`] pushes it).
    pub async fn revoke(&self, id: TokenId) -> Result<Vec<TokenId>> {
        let revoked = self
            .inner
            .tokens
            .revoke_by_at(id, self.inner.clock.now(), self.inner.actor.clone(), None)
            .await?;
        self.seal(true).await?;
        Ok(revoked)
    }

    /// [`Tokenward::revoke`], with `reason` in each audit entry.
    pub async fn revoke_because(&self, id: TokenId, reason: &str) -> Result<Vec<TokenId>> {
        let revoked = self
            .inner
            .tokens
            .revoke_by_at(id, self.inner.clock.now(), self.inner.actor.clone(), Some(reason))
            .await?;
        self.seal(true).await?;
        Ok(revoked)
    }

    /// The identity this handle records in the audit entries it writes itself (revocations,
    /// policy changes, secret accesses): [`crate::TokenwardBuilder::actor`], [`Actor::System`] by default.
    pub fn actor(&self) -> &Actor {
        &self.inner.actor
    }

    /// A verifier on this deployment's cache and clock: synchronous, no I/O, audited when the
    /// deployment has an audit log.
    pub fn verifier(&self) -> TokenVerifier {
        let plain = self.inner.tokens.verifier().with_clock(self.inner.clock.clone());
        TokenVerifier::new(
            plain,
            Arc::clone(&self.inner.tokens),
            self.inner
                .auditor
                .clone()
                .map(|a| (a, self.inner.subject_key.clone(), self.inner.summary.clone())),
        )
    }

    /// The token service.
    pub fn tokens(&self) -> &Arc<TokenService> {
        &self.inner.tokens
    }

    /// The secret store.
    pub fn secrets(&self) -> &Arc<SecretStore> {
        &self.inner.secrets
    }

    /// The rotator.
    pub fn rotator(&self) -> &Arc<Rotator> {
        &self.inner.rotator
    }

    /// The scheduler (driven by the upkeep).
    pub fn scheduler(&self) -> &Arc<TokioScheduler> {
        &self.inner.scheduler
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The auditor every part records through (`None` without an audit log).
    pub fn auditor(&self) -> Option<&Auditor> {
        self.inner.auditor.as_ref()
    }

    /// The audit log's writer (`None` without an audit log).
    pub fn audit_writer(&self) -> Option<&Arc<AuditWriter>> {
        self.inner.writer.as_ref()
    }

    /// The clock the deployment reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// What the explicit migration did when this handle opened (`None` without
    /// [`crate::TokenwardBuilder::migrate`]).
    pub fn migration(&self) -> Option<&token_store::Migration> {
        self.inner.migration.as_ref()
    }

    /// Stops the upkeep (the scheduler finishes what is in flight), persists the last use
    /// counters, signs a final checkpoint when a signer is set (returned), and closes the audit
    /// log after everything that records has stopped. Idempotent; the other clones' calls fail
    /// afterwards only where they need the audit log.
    pub async fn shutdown(&self) -> Result<Option<SignedCheckpoint>> {
        let tasks = self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(tasks) = tasks else { return Ok(None) };
        let _ = tasks.stop.send(true);
        for h in tasks.handles {
            let _ = h.await;
        }
        // Nothing rotates any more: end the targets' sessions (AppRole login tokens revoked).
        let opened = std::mem::take(&mut *self.inner.opened.lock().unwrap_or_else(|p| p.into_inner()));
        for t in opened {
            if let Err(e) = t.close().await {
                tracing::warn!(target = t.kind(), error = %e, "ending a rotation target's session failed");
            }
        }
        let flushed = self.inner.tokens.flush_usage(token_core::chrono::DateTime::UNIX_EPOCH).await;
        // Pending summaries before the log closes (and before the last checkpoint).
        let summarized = self.inner.summary.as_ref().map_or(Ok(()), |s| s.close());
        let checkpoint = self.checkpoint().await;
        // The binding moves to the log's last head (no witness push: that is the revocations' and
        // the upkeep's, so a command that only issues pays no round trip to the witness).
        let bound = self.seal(false).await;
        if let Some(w) = &self.inner.writer {
            w.close()?;
        }
        tracing::info!("tokenward shut down");
        summarized?;
        flushed?;
        bound?;
        checkpoint
    }
}
