//! The rotation engine: drives a [`RotationTarget`] through create → deploy → test → promote →
//! (after the overlap) revoke previous, recording each step in the store by compare-and-swap and
//! each outcome in the audit log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use token_audit::{Action, Actor, AuditEvent, Auditor, Outcome as AuditOutcome};
use token_core::Clock;
use token_store::{Label, LabelChange, SecretName, SecretStore};
use tokio::sync::broadcast;

use crate::credential::Credential;
use crate::error::{Result, RotateError};
use crate::state::{self, RotationRecord, Step};
use crate::target::RotationTarget;

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
}

/// How long an emergency revoke-and-replace took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmergencyReport {
    /// The revoked credential's handle.
    pub revoked: String,
    /// From the call until the old credential was revoked at the target.
    pub revoked_after: Duration,
    /// From the call until the replacement was current (tested and promoted).
    pub replaced_after: Duration,
    /// The replacement's version.
    pub version: u64,
}

/// Rotates credentials kept in a [`SecretStore`].
pub struct Rotator {
    secrets: Arc<SecretStore>,
    audit: Option<Auditor>,
    clock: Arc<dyn Clock>,
    overlap: TimeDelta,
    events: broadcast::Sender<(String, u64)>,
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
        Self { secrets, audit: None, clock, overlap, events }
    }

    /// Records every step through `auditor` (durably, before the step is acknowledged).
    pub fn with_audit(mut self, auditor: Auditor) -> Self {
        self.audit = Some(auditor);
        self
    }

    /// The overlap a previous credential keeps working after a promotion.
    pub fn overlap(&self) -> TimeDelta {
        self.overlap
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

    /// The rotation record of `name`.
    pub async fn record(&self, name: &SecretName) -> Result<RotationRecord> {
        Ok(state::load(&self.secrets, name.as_str()).await?.0)
    }

    /// The current credential of `name`.
    pub async fn current(&self, name: &SecretName) -> Result<Option<Credential>> {
        self.labeled(name, Label::Current).await
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
    /// returns [`Rotation::InOverlap`] if it has not.
    pub async fn rotate(&self, name: &SecretName, target: &dyn RotationTarget) -> Result<Rotation> {
        let (mut rec, mut raw) = state::load(&self.secrets, name.as_str()).await?;
        // The pending credential, once created or read, carried from step to step (not re-read).
        let mut cached: Option<(u64, Credential)> = None;
        loop {
            let now = self.clock.now();
            match rec.step.clone() {
                Step::Promoted { previous, revoke_after_ms } => {
                    let until = DateTime::from_timestamp_millis(revoke_after_ms).unwrap_or(now);
                    if now < until {
                        return Ok(Rotation::InOverlap { until });
                    }
                    (rec, raw) = self.finish_previous(name, target, rec, raw, previous).await?;
                }
                Step::Idle => {
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
                                return self.roll_back(name, target, rec, raw, None, e.to_string()).await;
                            }
                        },
                    };
                    let next = RotationRecord { step: Step::Created { version }, ..rec.clone() };
                    raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
                    rec = next;
                }
                Step::Created { version } => {
                    let pending = self.pending(name, version, cached.take()).await?;
                    if let Err(e) = target.deploy(&pending).await {
                        return self.roll_back(name, target, rec, raw, Some(version), e.to_string()).await;
                    }
                    self.audit(
                        name,
                        target,
                        "deploy",
                        rec.rotation,
                        Some(&pending.handle),
                        AuditOutcome::Success,
                    )
                    .await?;
                    let next = RotationRecord { step: Step::Deployed { version }, ..rec.clone() };
                    raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
                    rec = next;
                    cached = Some((version, pending));
                }
                Step::Deployed { version } => {
                    let pending = self.pending(name, version, cached.take()).await?;
                    if let Err(e) = target.test(&pending).await {
                        return self.roll_back(name, target, rec, raw, Some(version), e.to_string()).await;
                    }
                    self.audit(
                        name,
                        target,
                        "test",
                        rec.rotation,
                        Some(&pending.handle),
                        AuditOutcome::Success,
                    )
                    .await?;
                    let next = RotationRecord { step: Step::Tested { version }, ..rec.clone() };
                    raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
                    rec = next;
                    cached = Some((version, pending));
                }
                Step::Tested { version } => {
                    let pending = self.pending(name, version, cached.take()).await?;
                    let rotation = rec.rotation;
                    self.promote(name, target, rec, raw, (version, &pending.handle), self.overlap).await?;
                    return Ok(Rotation::Promoted { rotation, version });
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

    /// Promote in one compare-and-swap of the labels: pending → current → previous.
    async fn promote(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
        (version, handle): (u64, &str),
        overlap: TimeDelta,
    ) -> Result<(RotationRecord, Option<Vec<u8>>)> {
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
        let previous = if current == Some(version) { labels.get(&Label::Previous).copied() } else { current };
        let revoke_after = self.clock.now() + overlap;
        let next = RotationRecord {
            step: Step::Promoted { previous, revoke_after_ms: revoke_after.timestamp_millis() },
            promoted: rec.promoted + 1,
            promoted_at_ms: Some(self.clock.now().timestamp_millis()),
            ..rec.clone()
        };
        let raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        let _ = self.events.send((name.as_str().to_owned(), version));
        self.audit(name, target, "promote", rec.rotation, Some(handle), AuditOutcome::Success).await?;
        Ok((next, raw))
    }

    /// Revoke the previous credential at the target and drop its label.
    async fn finish_previous(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
        previous: Option<u64>,
    ) -> Result<(RotationRecord, Option<Vec<u8>>)> {
        if let Some(p) = previous {
            let cred = self.version(name, p).await?;
            target.revoke(&cred).await?;
            let labels = self.secrets.labels(name).await?;
            if labels.get(&Label::Previous) == Some(&p) {
                self.secrets
                    .update_labels(
                        name,
                        &[LabelChange { label: Label::Previous, expect: Some(p), set: None }],
                    )
                    .await?;
            }
            self.audit(
                name,
                target,
                "revoke_previous",
                rec.rotation,
                Some(&cred.handle),
                AuditOutcome::Success,
            )
            .await?;
        }
        let next = RotationRecord { step: Step::Idle, ..rec };
        let raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        Ok((next, raw))
    }

    /// Withdraw a pending credential: revoke it at the target, drop its label, record the failure
    /// (an alert event), and return to idle. The current credential is untouched.
    async fn roll_back(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
        version: Option<u64>,
        reason: String,
    ) -> Result<Rotation> {
        let mut handle = None;
        if let Some(v) = version {
            let cred = self.version(name, v).await?;
            if let Err(e) = target.revoke(&cred).await {
                // It stays valid until its expiry; say so in the log.
                self.audit(
                    name,
                    target,
                    "revoke_pending",
                    rec.rotation,
                    Some(&cred.handle),
                    AuditOutcome::Failure(e.to_string()),
                )
                .await?;
            }
            let labels = self.secrets.labels(name).await?;
            if labels.get(&Label::Pending) == Some(&v) {
                self.secrets
                    .update_labels(name, &[LabelChange { label: Label::Pending, expect: Some(v), set: None }])
                    .await?;
            }
            handle = Some(cred.handle);
        }
        self.audit(
            name,
            target,
            "rollback",
            rec.rotation,
            handle.as_deref(),
            AuditOutcome::Failure(reason.clone()),
        )
        .await?;
        let next = RotationRecord { step: Step::Idle, rolled_back: rec.rolled_back + 1, ..rec.clone() };
        state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        Ok(Rotation::RolledBack { rotation: rec.rotation, reason })
    }

    /// Revokes the previous credential of `name` if its overlap has ended. Returns whether the
    /// credential is now idle (nothing awaiting revocation).
    pub async fn revoke_previous_if_due(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
    ) -> Result<bool> {
        let (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
        match rec.step.clone() {
            Step::Promoted { previous, revoke_after_ms } => {
                if self.clock.now().timestamp_millis() < revoke_after_ms {
                    return Ok(false);
                }
                self.finish_previous(name, target, rec, raw, previous).await?;
                Ok(true)
            }
            Step::Idle => Ok(true),
            _ => Ok(false),
        }
    }

    /// Emergency: revoke the current credential of `name` at the target now, then create, deploy,
    /// test and promote a replacement with no overlap. A rotation in progress is rolled back first.
    /// Every step is audited.
    pub async fn revoke_and_replace(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
    ) -> Result<EmergencyReport> {
        let started = Instant::now();
        let current =
            self.current(name).await?.ok_or_else(|| RotateError::NoCurrent(name.as_str().to_owned()))?;
        target.revoke(&current).await?;
        let revoked_after = started.elapsed();
        let (mut rec, mut raw) = state::load(&self.secrets, name.as_str()).await?;
        self.audit(
            name,
            target,
            "emergency_revoke",
            rec.rotation,
            Some(&current.handle),
            AuditOutcome::Success,
        )
        .await?;
        // Clear whatever was under way: a previous awaiting revocation, a pending credential.
        match rec.step.clone() {
            Step::Promoted { previous, .. } => {
                (rec, raw) = self.finish_previous(name, target, rec, raw, previous).await?;
            }
            Step::Idle => {}
            Step::Creating => {
                let pending = self.secrets.labels(name).await?.get(&Label::Pending).copied();
                let _ =
                    self.roll_back(name, target, rec, raw, pending, "emergency replacement".into()).await?;
                (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
            }
            Step::Created { version } | Step::Deployed { version } | Step::Tested { version } => {
                let _ = self
                    .roll_back(name, target, rec, raw, Some(version), "emergency replacement".into())
                    .await?;
                (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
            }
        }
        let next = RotationRecord { rotation: rec.rotation + 1, step: Step::Creating, ..rec.clone() };
        raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        rec = next;
        let (version, pending) = self.create(name, target, &rec).await?;
        let failed = match target.deploy(&pending).await {
            Err(e) => Some(e),
            Ok(()) => target.test(&pending).await.err(),
        };
        if let Some(e) = failed {
            let next = RotationRecord { step: Step::Created { version }, ..rec.clone() };
            raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
            let _ = self.roll_back(name, target, next, raw, Some(version), e.to_string()).await?;
            return Err(e.into());
        }
        let tested = RotationRecord { step: Step::Tested { version }, ..rec.clone() };
        raw = state::cas(&self.secrets, name.as_str(), &raw, &tested).await?;
        let (rec, raw) =
            self.promote(name, target, tested, raw, (version, &pending.handle), TimeDelta::zero()).await?;
        let replaced_after = started.elapsed();
        // The revoked credential is now `previous`: drop it (revoking again is harmless).
        if let Step::Promoted { previous, .. } = rec.step.clone() {
            self.finish_previous(name, target, rec, raw, previous).await?;
        }
        Ok(EmergencyReport { revoked: current.handle, revoked_after, replaced_after, version })
    }
}
