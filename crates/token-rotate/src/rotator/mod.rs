//! The rotation engine: drives a [`RotationTarget`] through create → deploy → test → promote →
//! (after the overlap) revoke previous, recording each step in the store by compare-and-swap and
//! each outcome in the audit log.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use token_audit::{Action, Actor, AuditEvent, Auditor, Outcome as AuditOutcome};
use token_core::clocks::Clock;
use token_store::{Label, LabelChange, SecretName, SecretStore};
use tokio::sync::broadcast;

use crate::credential::Credential;
use crate::error::Result;
use crate::state::{self, EmergencyOrder, RotationRecord, Step};
use crate::target::RotationTarget;

/// The target of the rotator's log lines, whichever file writes them: what an operator filters on
/// (`TOKENWARD_LOG=token_rotate::rotator=debug`) stays put when the code moves.
const LOG_TARGET: &str = "token_rotate::rotator";

mod adopt;
mod confirm;
mod emergency;
mod quiet;
mod retire;

pub use confirm::ConfirmPolicy;
pub use emergency::EmergencyReport;
use emergency::Timings;

/// What a call to [`Rotator::rotate`] ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub enum Rotation {
    /// The new credential is current.
    Promoted {
        /// The rotation's number.
        rotation: u64,
        /// Its version in the store.
        version: u64,
    },
    /// The new credential failed (its test, or a step before it) and was withdrawn; the current
    /// one is untouched.
    RolledBack {
        /// The rotation's number.
        rotation: u64,
        /// Why.
        reason: String,
    },
    /// The previous credential's overlap has not ended; nothing was started.
    InOverlap {
        /// When it ends.
        until: DateTime<Utc>,
    },
    /// The target cannot take a new credential yet (an IAM user's second key slot is held by a
    /// deactivated key still in its deletion grace, which is never deleted early); nothing was
    /// started. See [`RotationTarget::blocked_until`].
    Waiting {
        /// When it can.
        until: DateTime<Utc>,
        /// Why not before.
        reason: String,
    },
    /// The new credential is current in the store (and for consumers reading it there), but not
    /// everywhere consumers read it: a destination refused or did not answer. The previous
    /// credential keeps working and is not revoked until the promotion is finished; the next run
    /// (or the scheduler) retries it.
    Partial {
        /// The rotation's number.
        rotation: u64,
        /// The new current version in the store.
        version: u64,
        /// What is left, destination by destination, with the provider's error.
        left: String,
    },
    /// The new credential failed and is being withdrawn, but withdrawing it did not finish (a
    /// destination or the target refused or did not answer): it may still be staged or valid
    /// somewhere. The current credential is untouched. The next run finishes the rollback (it
    /// never resumes the rotation).
    RollbackIncomplete {
        /// The rotation's number.
        rotation: u64,
        /// Why the rotation failed.
        reason: String,
        /// What is left to withdraw, with the provider's error.
        left: String,
    },
}

/// Rotates credentials kept in a [`SecretStore`].
pub struct Rotator {
    /// One runner per credential in this process (a scheduler, an upkeep task and a direct call
    /// share a rotator): a target's side effects happen before a step is recorded, so two runners
    /// of one record would create twice. Across processes, the scheduler's lease does this.
    running: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    secrets: Arc<SecretStore>,
    audit: Option<Auditor>,
    clock: Arc<dyn Clock>,
    overlap: TimeDelta,
    /// Per-credential overlaps (a policy's `overlap`), instead of `overlap`.
    overlaps: std::sync::Mutex<std::collections::HashMap<String, TimeDelta>>,
    events: broadcast::Sender<(String, u64)>,
    confirm: ConfirmPolicy,
    quiet: std::sync::Mutex<std::collections::HashMap<String, TimeDelta>>,
}

impl std::fmt::Debug for Rotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotator").field("overlap", &self.overlap).finish_non_exhaustive()
    }
}

impl Rotator {
    /// A rotator over `secrets`, keeping a previous credential working for `overlap` after each
    /// promotion.
    pub fn new(secrets: Arc<SecretStore>, overlap: TimeDelta, clock: Arc<dyn Clock>) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            running: Default::default(),
            secrets,
            audit: None,
            clock,
            overlap,
            overlaps: Default::default(),
            events,
            confirm: ConfirmPolicy::default(),
            quiet: Default::default(),
        }
    }

    /// Retires `name`'s previous credential once it has been unused for `quiet` (its provider's
    /// [`RotationTarget::last_used`]; the quiet time counts from the promotion at the earliest),
    /// and in any case when its overlap ends — the overlap becomes the maximum. `None`: at the
    /// overlap's end only (the default).
    pub fn set_quiet_period(&self, name: &SecretName, quiet: Option<TimeDelta>) {
        let mut q = self.quiet.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match quiet {
            Some(d) => q.insert(name.as_str().to_owned(), d.max(TimeDelta::zero())),
            None => q.remove(name.as_str()),
        };
    }

    /// `name`'s quiet period, if it has one.
    pub fn quiet_period(&self, name: &SecretName) -> Option<TimeDelta> {
        self.quiet.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(name.as_str()).copied()
    }

    /// How revocations are confirmed at the provider (see [`ConfirmPolicy`]).
    #[must_use]
    pub fn with_confirmation(mut self, policy: ConfirmPolicy) -> Self {
        self.confirm = policy;
        self
    }

    /// Records every step through `auditor` (durably, before the step is acknowledged).
    pub fn with_audit(mut self, auditor: Auditor) -> Self {
        self.audit = Some(auditor);
        self
    }

    /// The overlap a previous credential keeps working after a promotion (for credentials
    /// without their own: [`Rotator::set_overlap`]).
    pub fn overlap(&self) -> TimeDelta {
        self.overlap
    }

    /// Gives `name` its own overlap (`None`: the rotator's again). Applies from its next
    /// promotion; a negative one counts as zero.
    pub fn set_overlap(&self, name: &SecretName, overlap: Option<TimeDelta>) {
        let mut o = self.overlaps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match overlap {
            Some(d) => o.insert(name.as_str().to_owned(), d.max(TimeDelta::zero())),
            None => o.remove(name.as_str()),
        };
    }

    /// The overlap `name`'s previous credential keeps working after a promotion.
    pub fn overlap_for(&self, name: &SecretName) -> TimeDelta {
        let o = self.overlaps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        o.get(name.as_str()).copied().unwrap_or(self.overlap)
    }

    /// The clock it reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The store.
    pub fn secrets(&self) -> &Arc<SecretStore> {
        &self.secrets
    }

    /// Promotions as they happen: `(credential name, new current version)`.
    pub fn subscribe(&self) -> broadcast::Receiver<(String, u64)> {
        self.events.subscribe()
    }

    /// Waits until no other call of this rotator is running `name`'s record.
    async fn exclusive(&self, name: &SecretName) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut running = self.running.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            running.entry(name.as_str().to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// The rotation record of `name`.
    pub async fn record(&self, name: &SecretName) -> Result<RotationRecord> {
        Ok(state::load(&self.secrets, name.as_str()).await?.0)
    }

    /// The current credential of `name`.
    pub async fn current(&self, name: &SecretName) -> Result<Option<Credential>> {
        self.labeled(name, Label::Current).await
    }

    /// The previous credential of `name`: still alive in its overlap after a promotion (the label
    /// is dropped when it is revoked), `None` otherwise.
    pub async fn previous(&self, name: &SecretName) -> Result<Option<Credential>> {
        self.labeled(name, Label::Previous).await
    }

    async fn labeled(&self, name: &SecretName, label: Label) -> Result<Option<Credential>> {
        match self.secrets.get_labeled(name, label).await? {
            None => Ok(None),
            Some((_, bytes)) => Credential::from_sealed_plaintext(name.as_str(), &bytes).map(Some),
        }
    }

    async fn version(&self, name: &SecretName, version: u64) -> Result<Credential> {
        let bytes = self.secrets.get(name, version).await?;
        Credential::from_sealed_plaintext(name.as_str(), &bytes)
    }

    async fn audit(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        step: &str,
        rotation: u64,
        handle: Option<&str>,
        outcome: AuditOutcome,
    ) -> Result<()> {
        match &outcome {
            AuditOutcome::Success => {
                tracing::info!(
                    credential = name.as_str(),
                    target = target.kind(),
                    rotation,
                    step,
                    handle,
                    "rotation step"
                );
            }
            AuditOutcome::Failure(why) => {
                tracing::warn!(credential = name.as_str(), target = target.kind(), rotation, step, handle, reason = %why, "rotation step failed");
            }
        }
        let Some(a) = &self.audit else { return Ok(()) };
        let mut e = AuditEvent::new(self.clock.now(), Actor::System, Action::Rotate(step.to_owned()))
            .outcome(outcome)
            .attr("credential", name.as_str())
            .attr("target", target.kind())
            .attr("rotation", rotation.to_string());
        if let Some(h) = handle {
            e = e.attr("handle", h);
            if let Ok(id) = h.parse() {
                e = e.token(id);
            }
        }
        a.emit_durable(e).await?;
        Ok(())
    }

    /// Runs one rotation of `name` to its end (or resumes the one a crash interrupted): create,
    /// deploy, test, promote. Revokes the previous credential first if its overlap has ended;
    /// returns [`Rotation::InOverlap`] if it has not. An emergency that a crash interrupted is
    /// finished first (whatever the overlap), and its replacement returned as promoted.
    pub async fn rotate(&self, name: &SecretName, target: &dyn RotationTarget) -> Result<Rotation> {
        let _running = self.exclusive(name).await;
        let (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
        // Revocations still to be proven, first (cheap when there are none).
        let (rec, raw, _) = self.confirm_pending(name, target, rec, raw).await?;
        self.advance(name, target, rec, raw, &mut Timings::new()).await
    }

    /// The one state machine behind [`Rotator::rotate`] and [`Rotator::revoke_and_replace`]: every
    /// step is recorded by compare-and-swap before the next one starts, and audited.
    ///
    /// An emergency recorded in the record changes three things only: a revoke-first emergency
    /// revokes the leaked version before anything else, overlaps are zero (a previous credential
    /// is revoked at once), and the machine does not stop at a promotion but goes on until the
    /// leaked version is revoked and the emergency cleared.
    async fn advance(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        mut rec: RotationRecord,
        mut raw: Option<Vec<u8>>,
        timings: &mut Timings,
    ) -> Result<Rotation> {
        // The pending credential, once created or read, carried from step to step (not re-read).
        let mut cached: Option<(u64, Credential)> = None;
        loop {
            let now = self.clock.now();
            if let Some(em) = rec.emergency.clone()
                && em.order == EmergencyOrder::RevokeFirst
                && !em.revoked
            {
                (rec, raw) = self.revoke_leaked(name, target, rec, raw, &em, timings).await?;
                continue;
            }
            match rec.step.clone() {
                Step::Promoted { previous, revoke_after_ms, unfinished } => {
                    let until = DateTime::from_timestamp_millis(revoke_after_ms).unwrap_or(now);
                    let quiet = if rec.emergency.is_none() && now < until && unfinished.is_none() {
                        self.quiet_enough(name, target, &rec, previous).await?
                    } else {
                        None
                    };
                    let due = rec.emergency.is_some() || now >= until || quiet.is_some();
                    // An unfinished promotion is retried at once; a finished one is made again
                    // (idempotent) before the previous credential is revoked.
                    if unfinished.is_some() || due {
                        let left;
                        (rec, raw, left) = self.repromote(name, target, rec, raw).await?;
                        if let Some(left) = left {
                            let version = self.secrets.labels(name).await?.get(&Label::Current).copied();
                            return Ok(Rotation::Partial {
                                rotation: rec.rotation,
                                version: version.unwrap_or_default(),
                                left,
                            });
                        }
                    }
                    if !due {
                        return Ok(Rotation::InOverlap { until });
                    }
                    let audited = rec.clone();
                    (rec, raw) = self.finish_previous(name, target, rec, raw, previous, timings).await?;
                    if let Some(q) = quiet {
                        self.audit_quiet(name, target, &audited, &q).await?;
                    }
                }
                Step::RollingBack { version, reason } => {
                    return self.roll_back(name, target, rec, raw, Some(version), reason).await;
                }
                Step::Idle => {
                    if let Some(em) = rec.emergency.clone() {
                        let current = self.secrets.labels(name).await?.get(&Label::Current).copied();
                        if current.is_some() && current != Some(em.leaked) {
                            // A replacement is current: make sure the leaked version is revoked,
                            // then the emergency is over.
                            if !em.revoked {
                                (rec, raw) = self.revoke_leaked(name, target, rec, raw, &em, timings).await?;
                            }
                            let next = RotationRecord { emergency: None, ..rec.clone() };
                            state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
                            let version = current.unwrap_or_default();
                            tracing::info!(credential = name.as_str(), version, "emergency finished");
                            self.audit(
                                name,
                                target,
                                "emergency_done",
                                next.rotation,
                                None,
                                AuditOutcome::Success,
                            )
                            .await?;
                            return Ok(Rotation::Promoted { rotation: next.rotation, version });
                        }
                    }
                    // A target that cannot take a new credential yet (a key in its deletion grace
                    // holding IAM's second slot): nothing is started, and the caller is told
                    // until when. (An emergency does not ask: its create fails and says why.)
                    if rec.emergency.is_none() {
                        let current = self.current(name).await?;
                        if let Some((until, reason)) = target.blocked_until(current.as_ref()).await?
                            && until > now
                        {
                            tracing::info!(credential = name.as_str(), until = %until, %reason, "rotation waits");
                            return Ok(Rotation::Waiting { until, reason });
                        }
                    }
                    let next =
                        RotationRecord { rotation: rec.rotation + 1, step: Step::Creating, ..rec.clone() };
                    raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
                    rec = next;
                }
                Step::Creating => {
                    // A crash may have stored the version and labelled it before recording it.
                    let labels = self.secrets.labels(name).await?;
                    let version = match labels.get(&Label::Pending) {
                        Some(&v) => v,
                        None => match self.create(name, target, &rec).await {
                            Ok((v, cred)) => {
                                cached = Some((v, cred));
                                v
                            }
                            Err(e) => {
                                let why = e.to_string();
                                self.audit(
                                    name,
                                    target,
                                    "create",
                                    rec.rotation,
                                    None,
                                    AuditOutcome::Failure(why.clone()),
                                )
                                .await?;
                                return self.roll_back(name, target, rec, raw, None, why).await;
                            }
                        },
                    };
                    let next = RotationRecord { step: Step::Created { version }, ..rec.clone() };
                    raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
                    rec = next;
                }
                Step::Created { version } | Step::Deployed { version } => {
                    let pending = self.pending(name, version, cached.take()).await?;
                    let deploying = matches!(rec.step, Step::Created { .. });
                    let (result, step, next_step) = if deploying {
                        (target.deploy(&pending).await, "deploy", Step::Deployed { version })
                    } else {
                        (target.test(&pending).await, "test", Step::Tested { version })
                    };
                    if let Err(e) = result {
                        let why = e.to_string();
                        self.audit(
                            name,
                            target,
                            step,
                            rec.rotation,
                            Some(&pending.handle),
                            AuditOutcome::Failure(why.clone()),
                        )
                        .await?;
                        return self.roll_back(name, target, rec, raw, Some(version), why).await;
                    }
                    self.audit(
                        name,
                        target,
                        step,
                        rec.rotation,
                        Some(&pending.handle),
                        AuditOutcome::Success,
                    )
                    .await?;
                    let next = RotationRecord { step: next_step, ..rec.clone() };
                    raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
                    rec = next;
                    cached = Some((version, pending));
                }
                Step::Tested { version } => {
                    let pending = self.pending(name, version, cached.take()).await?;
                    let rotation = rec.rotation;
                    let overlap =
                        if rec.emergency.is_some() { TimeDelta::zero() } else { self.overlap_for(name) };
                    let left;
                    (rec, raw, left) =
                        self.promote(name, target, rec, raw, (version, &pending), overlap).await?;
                    if let Some(left) = left {
                        return Ok(Rotation::Partial { rotation, version, left });
                    }
                    timings.replaced();
                    if rec.emergency.is_none() {
                        return Ok(Rotation::Promoted { rotation, version });
                    }
                }
            }
        }
    }

    /// The pending credential `version`: the one carried from the last step, or read from the store.
    async fn pending(
        &self,
        name: &SecretName,
        version: u64,
        cached: Option<(u64, Credential)>,
    ) -> Result<Credential> {
        match cached {
            Some((v, c)) if v == version => Ok(c),
            _ => self.version(name, version).await,
        }
    }

    /// Create: the target makes the credential, the store keeps it sealed as a new version
    /// labelled `pending`.
    async fn create(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: &RotationRecord,
    ) -> Result<(u64, Credential)> {
        let current = self.current(name).await?;
        if rec.emergency.is_some() {
            let removed = target.make_room(current.as_ref()).await?;
            if removed > 0 {
                self.audit(name, target, "make_room", rec.rotation, None, AuditOutcome::Success).await?;
            }
        }
        let cred = target.create(rec.rotation, current.as_ref()).await?;
        let sealed = cred.to_sealed_plaintext();
        let version = {
            use secrecy::ExposeSecret;
            self.secrets.put(name, sealed.expose_secret()).await?
        };
        self.secrets
            .update_labels(name, &[LabelChange { label: Label::Pending, expect: None, set: Some(version) }])
            .await?;
        self.audit(name, target, "create", rec.rotation, Some(&cred.handle), AuditOutcome::Success).await?;
        Ok((version, cred))
    }

    /// Promote in one compare-and-swap of the labels: pending → current → previous; then at the
    /// target's destinations (where consumers read it). Returns what is left at the destinations
    /// if they did not all take it (recorded in the `Promoted` step, audited as a failed
    /// `promote`).
    async fn promote(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
        (version, pending): (u64, &Credential),
        overlap: TimeDelta,
    ) -> Result<(RotationRecord, Option<Vec<u8>>, Option<String>)> {
        let labels = self.secrets.labels(name).await?;
        let current = labels.get(&Label::Current).copied();
        if current != Some(version) {
            // (Already promoted by a run that crashed before recording it: the labels say so.)
            self.secrets
                .update_labels(
                    name,
                    &[
                        LabelChange { label: Label::Current, expect: current, set: Some(version) },
                        LabelChange { label: Label::Pending, expect: Some(version), set: None },
                        LabelChange {
                            label: Label::Previous,
                            expect: labels.get(&Label::Previous).copied(),
                            set: current,
                        },
                    ],
                )
                .await?;
        }
        let _ = self.events.send((name.as_str().to_owned(), version));
        let previous = if current == Some(version) { labels.get(&Label::Previous).copied() } else { current };
        // Where consumers read it (secrets managers). A failure is the truth of this rotation:
        // recorded, audited, reported, and retried before the previous credential is revoked.
        let left = target.promote(pending).await.err().map(|e| e.to_string());
        let revoke_after = self.clock.now() + overlap;
        let next = RotationRecord {
            step: Step::Promoted {
                previous,
                revoke_after_ms: revoke_after.timestamp_millis(),
                unfinished: left.clone(),
            },
            promoted: rec.promoted + 1,
            promoted_at_ms: Some(self.clock.now().timestamp_millis()),
            ..rec.clone()
        };
        let raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        let outcome = match &left {
            None => AuditOutcome::Success,
            Some(l) => AuditOutcome::Failure(format!("current in the store, not at every destination: {l}")),
        };
        self.audit(name, target, "promote", rec.rotation, Some(&pending.handle), outcome).await?;
        Ok((next, raw, left))
    }

    /// Makes the current credential current at the target's destinations again (idempotent):
    /// the retry of an unfinished promotion, and the check before a previous credential is
    /// revoked. Audited as `promote_retry` when it retries or fails. Returns what is left.
    async fn repromote(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
    ) -> Result<(RotationRecord, Option<Vec<u8>>, Option<String>)> {
        let Step::Promoted { previous, revoke_after_ms, unfinished } = rec.step.clone() else {
            return Ok((rec, raw, None));
        };
        let Some(c) = self.secrets.labels(name).await?.get(&Label::Current).copied() else {
            return Ok((rec, raw, None));
        };
        let current = self.version(name, c).await?;
        let left = target.promote(&current).await.err().map(|e| e.to_string());
        if left.is_none() && unfinished.is_none() {
            return Ok((rec, raw, None));
        }
        let outcome = left.clone().map_or(AuditOutcome::Success, AuditOutcome::Failure);
        self.audit(name, target, "promote_retry", rec.rotation, Some(&current.handle), outcome).await?;
        if left == unfinished {
            return Ok((rec, raw, left));
        }
        let next = RotationRecord {
            step: Step::Promoted { previous, revoke_after_ms, unfinished: left.clone() },
            ..rec
        };
        let raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        Ok((next, raw, left))
    }
}
