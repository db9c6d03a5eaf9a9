//! [`Tokenward`]: one handle that owns a deployment's backend, secret store, token service, audit
//! log and rotator, and the tasks that keep them up.

use std::sync::Arc;

use token_audit::{Action, Actor, AuditEvent, AuditWriter, Auditor, checkpoints::SignedCheckpoint};
use token_core::{ChildRequest, IssueRequest, IssuedToken, Principal, TokenId, clocks::Clock};
use token_rotate::{
    Credential, CurrentCredential, EmergencyOrder, EmergencyReport, Rotation, RotationTarget, Rotator,
    Schedule, TokenwardTokenTarget, TokioScheduler,
};
use token_store::secrecy::{SecretBox, SecretString};
use token_store::{Backend, Label, LabelChange, SecretName, SecretStore, TokenService};

use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::verifier::TokenVerifier;

/// Runs a rotation call again while another instance or this handle's own upkeep holds the
/// credential's record (every step is recorded, so a retry resumes where the other left it).
pub(crate) async fn retry_busy<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = token_rotate::Result<T>>,
{
    let mut wait = std::time::Duration::from_millis(1);
    for _ in 0..20 {
        match call().await {
            Err(token_rotate::RotateError::Busy(_)) => {
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_millis(50));
            }
            other => return Ok(other?),
        }
    }
    Ok(call().await?)
}

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
    /// ([`Error::Witness`], [`Error::Binding`]) means it stands but is not witnessed yet (the next
    /// revocation, the upkeep or [`Tokenward::witness_now`] pushes it).
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

    /// The identity this handle records in the audit entries it writes itself (revocations,
    /// policy changes, secret accesses): [`crate::TokenwardBuilder::actor`], [`Actor::System`] by default.
    pub fn actor(&self) -> &Actor {
        &self.inner.actor
    }

    /// Records a durable `secret_access` entry (fail-closed: an unrecorded access is refused).
    async fn audit_access(&self, name: &SecretName, detail: &str, version: Option<u64>) -> Result<()> {
        let Some(auditor) = &self.inner.auditor else { return Ok(()) };
        let mut event = AuditEvent::new(
            self.inner.clock.now(),
            self.inner.actor.clone(),
            Action::SecretAccess(detail.into()),
        )
        .attr("secret", name.as_str());
        if let Some(v) = version {
            event = event.attr("version", v.to_string());
        }
        auditor.emit_durable(event).await?;
        Ok(())
    }

    /// Secret names under this prefix are the store's own (its keys, signer seeds):
    /// [`Tokenward::secret_names`] hides them, and tools should not let users write them.
    pub const RESERVED_SECRET_PREFIX: &str = "tokenward/";

    /// Every secret's name and latest version, in name order, except the store's own (under
    /// [`Tokenward::RESERVED_SECRET_PREFIX`]).
    pub async fn secret_names(&self) -> Result<Vec<(SecretName, u64)>> {
        let mut names = self.inner.backend.secret_names().await?;
        names.retain(|(n, _)| !n.as_str().starts_with(Self::RESERVED_SECRET_PREFIX));
        Ok(names)
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

    /// A consumer's handle on the current credential `name`: a lock and a clone to read, refreshed
    /// at once on every promotion this deployment makes, and every second from the store (other
    /// processes' promotions).
    pub async fn follow(&self, name: &SecretName) -> Result<CurrentCredential> {
        Ok(CurrentCredential::follow(
            self.inner.secrets.clone(),
            name.clone(),
            Some(self.inner.rotator.subscribe()),
            std::time::Duration::from_secs(1),
        )
        .await?)
    }

    /// Seals `plaintext` as a new version of the secret `name` and makes it current (audited as
    /// `secret_access` / `write`). Returns its version.
    pub async fn seal_current(&self, name: &SecretName, plaintext: &[u8]) -> Result<u64> {
        let secrets = &self.inner.secrets;
        let version = secrets.put(name, plaintext).await?;
        for _ in 0..8 {
            let current = secrets.labels(name).await?.get(&Label::Current).copied();
            let change = LabelChange { label: Label::Current, expect: current, set: Some(version) };
            match secrets.update_labels(name, &[change]).await {
                Ok(()) => {
                    self.audit_access(name, "write", Some(version)).await?;
                    return Ok(version);
                }
                Err(token_store::StoreError::Conflict(_)) => continue, // moved meanwhile: read again
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(token_store::StoreError::Conflict(format!(
            "{name}: the current label keeps moving"
        ))))
    }

    /// The current version of the secret `name`, decrypted (`None` if it has none). Zeroized when
    /// dropped. Audited as `secret_access` / `read` before the value is returned (fail-closed: an
    /// access that cannot be recorded is refused).
    pub async fn read_current(&self, name: &SecretName) -> Result<Option<SecretBox<Vec<u8>>>> {
        Ok(self.read_current_version(name).await?.map(|(_, bytes)| bytes))
    }

    /// [`Tokenward::read_current`], with the version read.
    pub async fn read_current_version(&self, name: &SecretName) -> Result<Option<(u64, SecretBox<Vec<u8>>)>> {
        let Some((version, bytes)) = self.inner.secrets.get_labeled(name, Label::Current).await? else {
            return Ok(None);
        };
        self.audit_access(name, "read", Some(version)).await?;
        Ok(Some((version, bytes)))
    }

    /// A rotation target for `principal`'s token for `request`'s purpose, in this deployment.
    pub fn token_target(&self, principal: Principal, request: IssueRequest) -> Arc<TokenwardTokenTarget> {
        Arc::new(TokenwardTokenTarget::new(self.inner.tokens.clone(), principal, request))
    }

    /// The order a leak of credential `name` found by the leak response
    /// ([`Tokenward::respond_to_leaks`], [`Tokenward::respond_to_github_alerts`]) is answered in:
    /// `RevokeFirst` (the default) kills the leaked credential at once and denies consumers until
    /// the replacement is deployed; `ReplaceFirst` denies nobody and leaves the leaked credential
    /// alive for one rotation. A declared credential's `emergency` sets it
    /// ([`Tokenward::manage_declared`]).
    pub fn set_emergency_order(&self, name: &SecretName, order: EmergencyOrder) {
        let mut orders = self.inner.emergency_orders.lock().unwrap_or_else(|p| p.into_inner());
        orders.insert(name.as_str().to_owned(), order);
    }

    /// The order a leak of credential `name` is answered in (see [`Tokenward::set_emergency_order`]).
    pub fn emergency_order(&self, name: &SecretName) -> EmergencyOrder {
        let orders = self.inner.emergency_orders.lock().unwrap_or_else(|p| p.into_inner());
        orders.get(name.as_str()).copied().unwrap_or(EmergencyOrder::RevokeFirst)
    }

    pub(crate) fn watch(&self, name: &SecretName, target: &Arc<dyn RotationTarget>) {
        {
            let mut opened = self.inner.opened.lock().unwrap_or_else(|p| p.into_inner());
            if !opened.iter().any(|t| Arc::ptr_eq(t, target)) {
                opened.push(target.clone());
            }
        }
        let mut w = self.inner.watched.lock().unwrap_or_else(|p| p.into_inner());
        w.insert(name.as_str().to_owned(), (name.clone(), target.clone()));
    }

    /// Rotates the credential `name` at `target` now (or resumes an interrupted rotation or
    /// emergency): create → deploy → test → promote. The previous credential is revoked by the
    /// upkeep when the overlap ends.
    pub async fn rotate(&self, name: &SecretName, target: Arc<dyn RotationTarget>) -> Result<Rotation> {
        self.watch(name, &target);
        retry_busy(|| self.inner.rotator.rotate(name, target.as_ref())).await
    }

    /// Takes a credential made elsewhere under management as `name`'s current version (see
    /// [`Rotator::adopt`](token_rotate::Rotator::adopt)): `target` proves it works and is one it
    /// rotates; refused when `name` already has a version. Returns the version.
    pub async fn adopt(
        &self,
        name: &SecretName,
        target: Arc<dyn RotationTarget>,
        handle: Option<&str>,
        secret: SecretString,
    ) -> Result<u64> {
        self.watch(name, &target);
        Ok(self.inner.rotator.adopt(name, target.as_ref(), handle, secret).await?)
    }

    /// Emergency: the current credential `name` leaked. Revokes it and replaces it with a tested
    /// one, in the `order` chosen (see [`EmergencyOrder`]); crash-safe (a restarted deployment, or
    /// the next call, finishes it).
    pub async fn revoke_and_replace(
        &self,
        name: &SecretName,
        target: Arc<dyn RotationTarget>,
        order: EmergencyOrder,
    ) -> Result<EmergencyReport> {
        self.watch(name, &target);
        // No retry here: the rotator carries an emergency on through lost races itself, and a
        // second call after another runner finished it would declare a new one.
        Ok(self.inner.rotator.revoke_and_replace_with(name, target.as_ref(), order).await?)
    }

    /// The current credential `name` (its handle, secret and expiry).
    pub async fn current_credential(&self, name: &SecretName) -> Result<Option<Credential>> {
        Ok(self.inner.rotator.current(name).await?)
    }

    /// [`Tokenward::current_credential`] for a consumer that will use its secret: audited as a
    /// `secret_access` read first (fail-closed).
    pub async fn read_credential(&self, name: &SecretName) -> Result<Option<Credential>> {
        let c = self.inner.rotator.current(name).await?;
        if c.is_some() {
            self.audit_access(name, "read", None).await?;
        }
        Ok(c)
    }

    /// Puts `name` under the scheduler: rotated on `schedule` (never past its expiry), previous
    /// credentials revoked after the overlap, interrupted rotations resumed — until shutdown.
    pub fn schedule(&self, name: SecretName, target: Arc<dyn RotationTarget>, schedule: Schedule) {
        self.watch(&name, &target);
        self.inner.scheduler.register(name, target, schedule);
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
                    tracing::error!(token = %id, "the audit log says this token was revoked, the store does not: revoking it again");
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

    /// Moves the store to the KEK it was opened to move to
    /// ([`crate::TokenwardBuilder::moving_kek_to`]): every data key and the key check rewrapped
    /// under it, resumable (a rerun after a crash finishes it), audited (`key_rotation`, with both
    /// KEK ids). Afterwards only the new KEK opens the store. See [`SecretStore::move_kek`].
    pub async fn move_kek(&self) -> Result<token_store::keys::RewrapReport> {
        Ok(self.inner.secrets.move_kek(256).await?)
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
