//! The audit log through the handle: the store's binding sealed to its head, the witness,
//! signed checkpoints and tree heads, and revocations reconciled with the log.

use token_audit::checkpoints::SignedCheckpoint;
use token_core::clocks::Clock;

use super::{LOG_TARGET, Reconciliation, Tokenward};
use crate::error::{Error, Result};

impl Tokenward {
    /// Flushes the audit log, moves the store's binding to its head, and (with `witness`) pushes
    /// the signed tree head to the witness. Nothing without an audit log.
    pub(crate) async fn seal(&self, witness: bool) -> Result<Option<token_audit::chains::ChainHead>> {
        match &self.inner.guard {
            Some(g) => Ok(Some(g.seal(&self.inner.secrets, witness).await?)),
            None => Ok(None),
        }
    }

    /// Binds the store to the audit log's head now and pushes its signed tree head to the witness
    /// (what a revocation and the upkeep do); returns the head. `None` without an audit log;
    /// without a witness it only binds.
    pub async fn witness_now(&self) -> Result<Option<token_audit::chains::ChainHead>> {
        self.seal(true).await
    }

    /// Checks `storage` — the audit log, read only — against the store's binding (the right log,
    /// not missing, shorter or forked) and, with `witness`, against the newest signed tree head it
    /// holds (signed by the store's key, under [`crate::AUDIT_LOG_NAME`]): what an open with the
    /// log attached checks, for a handle opened without one (a read-only command beside a daemon
    /// that holds the log). Fails closed with [`Error::Binding`] or [`Error::Witness`].
    pub async fn check_audit_log(
        &self,
        storage: &dyn token_audit::LogStorage,
        witness: Option<&dyn token_audit::witnesses::Witness>,
    ) -> Result<()> {
        crate::guard::check_read_only(&self.inner.secrets, storage, witness).await
    }

    /// Where the witness is (`None` without one).
    pub fn witness_location(&self) -> Option<String> {
        self.inner.guard.as_ref().and_then(|g| g.witness_location())
    }

    /// Flushes the audit log and signs a checkpoint of it (`None` without an audit log or a
    /// checkpoint signer).
    pub async fn checkpoint(&self) -> Result<Option<SignedCheckpoint>> {
        match (&self.inner.writer, &self.inner.signer) {
            (Some(w), Some((s, log))) => Ok(Some(w.checkpoint(s, log, self.inner.clock.now()).await?)),
            _ => Ok(None),
        }
    }

    /// Reconciles the store's revocations with the audit log: every token the log says was
    /// revoked must be revoked in the store. A row rolled back to an older, validly tagged state
    /// (a restored backup row un-revoking a token) passes its integrity check but not this: such a
    /// token is revoked again, and reported. Runs at `open` when there is an audit log.
    ///
    /// Limits: it knows only what the log holds — a revocation whose entry was never written
    /// (fail-open auditing, or a log rolled back with the store; signed checkpoints expose the
    /// latter) cannot be restored; it reads every `revoke` entry (indexed on PostgreSQL, a scan of
    /// the file log).
    pub async fn reconcile_revocations(&self) -> Result<Reconciliation> {
        let mut report = Reconciliation::default();
        let Some(writer) = &self.inner.writer else { return Ok(report) };
        writer.flush().await?;
        let revocations = token_audit::AuditQuery::new().action("revoke");
        let entries = if self.witness_location().is_some() {
            crate::guard::verified_matches(writer.storage().as_ref(), &revocations).await?
        } else {
            writer.storage().query(&revocations).await?
        };
        let mut seen = std::collections::HashSet::new();
        for id in entries.iter().filter_map(|e| e.event.token) {
            if !seen.insert(id) {
                continue;
            }
            report.checked += 1;
            match self.inner.tokens.token(id).await {
                Ok(Some(t)) if t.record.revoked_at.is_some() => {}
                Ok(None) => report.missing.push(id),
                Ok(Some(_)) => {
                    tracing::error!(target: LOG_TARGET, token = %id, "the audit log says this token was revoked, the store does not: revoking it again");
                    self.inner.tokens.revoke_at(id, self.inner.clock.now()).await?;
                    report.revived.push(id);
                }
                // Refused already (it fails its tag, and is never re-tagged): denied here too,
                // reported as tampered by every listing, not as revived on each open.
                Err(token_store::StoreError::Corrupted { .. }) => {
                    self.inner.tokens.cache().revoke(&[id], self.inner.clock.now());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(report)
    }

    /// The store's audit signer (sealed in the store; made and its public key recorded on first
    /// use): what the CLI's checkpoints, tree heads and witness records are signed with.
    pub async fn audit_signer(&self) -> Result<token_audit::CheckpointSigner> {
        crate::guard::stored_signer(&self.inner.secrets, true)
            .await?
            .ok_or_else(|| Error::Config("the store's audit signer could not be made".into()))
    }

    /// The public key the store's own tree heads are checked with (`None` if it has signed none).
    pub async fn audit_key(&self) -> Result<Option<token_audit::checkpoints::CheckpointKey>> {
        crate::guard::stored_key(&self.inner.secrets).await
    }
}
