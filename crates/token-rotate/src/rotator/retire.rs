//! Retiring credentials: the previous one once its overlap has ended (or at once in an
//! emergency), and a pending one whose rotation failed (withdrawn and rolled back).

use token_audit::Outcome as AuditOutcome;
use token_store::{Label, LabelChange, SecretName};

use super::{LOG_TARGET, Rotation, Rotator, Timings};
use crate::error::Result;
use crate::state::{self, RotationRecord, Step};
use crate::target::RotationTarget;

impl Rotator {
    /// Revoke the previous credential at the target and drop its label. In an emergency whose
    /// leaked version this is, that counts as revoking the leaked one.
    pub(super) async fn finish_previous(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
        previous: Option<u64>,
        timings: &mut Timings,
    ) -> Result<(RotationRecord, Option<Vec<u8>>)> {
        let mut emergency = rec.emergency.clone();
        let mut unconfirmed = rec.unconfirmed.clone();
        if let Some(p) = previous {
            // (The caller made sure the current one is current where consumers read it.)
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
            let leaked = emergency.as_mut().filter(|em| em.leaked == p && !em.revoked);
            let step = if let Some(em) = leaked {
                em.revoked = true;
                timings.revoked(&cred.handle);
                "emergency_revoke"
            } else {
                "revoke_previous"
            };
            self.audit(name, target, step, rec.rotation, Some(&cred.handle), AuditOutcome::Success).await?;
            if target.can_probe() && !unconfirmed.iter().any(|u| u.version == p) {
                unconfirmed.push(self.unconfirmed(p, &cred.handle));
            }
        }
        let next = RotationRecord { step: Step::Idle, emergency, unconfirmed, ..rec };
        let raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        // Proven dead at the provider (or left pending for the next call and the upkeep). An
        // emergency proves it once its replacement is current, at its end.
        if next.emergency.is_some() {
            return Ok((next, raw));
        }
        let (next, raw, settled) = self.confirm_pending(name, target, next, raw).await?;
        timings.settled(&settled);
        Ok((next, raw))
    }

    /// Withdraw a pending credential: revoke it at the target (which withdraws it from its
    /// destinations), drop its label, record the failure (an alert event), and return to idle.
    /// If withdrawing it fails, the record says so (`RollingBack`) and the next run carries on
    /// with the rollback; nothing claims it is done. The current credential is untouched (an
    /// emergency stays recorded, to be finished by the next attempt).
    pub(super) async fn roll_back(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
        version: Option<u64>,
        reason: String,
    ) -> Result<Rotation> {
        let resuming = matches!(rec.step, Step::RollingBack { .. });
        let rolled_back = if resuming { rec.rolled_back } else { rec.rolled_back + 1 };
        let mut handle = None;
        if let Some(v) = version {
            let cred = self.version(name, v).await?;
            if let Err(e) = target.revoke(&cred).await {
                // It may still be staged or valid somewhere: say so, and keep at it.
                let left = format!("withdraw and revoke {}: {e}", cred.handle);
                // A guarantee lost until a later run finishes it: an error, not a warning.
                tracing::error!(target: LOG_TARGET, credential = name.as_str(), rotation = rec.rotation, %reason, %left, "rollback incomplete: the withdrawn credential may still be staged or valid");
                self.audit(
                    name,
                    target,
                    "revoke_pending",
                    rec.rotation,
                    Some(&cred.handle),
                    AuditOutcome::Failure(e.to_string()),
                )
                .await?;
                if !resuming {
                    self.audit(
                        name,
                        target,
                        "rollback",
                        rec.rotation,
                        Some(&cred.handle),
                        AuditOutcome::Failure(format!("{reason} (rollback incomplete: {left})")),
                    )
                    .await?;
                    let next = RotationRecord {
                        step: Step::RollingBack { version: v, reason: reason.clone() },
                        rolled_back,
                        ..rec.clone()
                    };
                    state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
                }
                return Ok(Rotation::RollbackIncomplete { rotation: rec.rotation, reason, left });
            }
            let labels = self.secrets.labels(name).await?;
            if labels.get(&Label::Pending) == Some(&v) {
                self.secrets
                    .update_labels(name, &[LabelChange { label: Label::Pending, expect: Some(v), set: None }])
                    .await?;
            }
            handle = Some(cred.handle);
        }
        tracing::warn!(target: LOG_TARGET, credential = name.as_str(), rotation = rec.rotation, %reason, "rotation rolled back");
        self.audit(
            name,
            target,
            "rollback",
            rec.rotation,
            handle.as_deref(),
            AuditOutcome::Failure(reason.clone()),
        )
        .await?;
        let next = RotationRecord { step: Step::Idle, rolled_back, ..rec.clone() };
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
        self.revoke_previous(name, target, false).await
    }

    /// Revokes the previous credential of `name` now, its overlap cut short (it leaked): the
    /// version the store's `Previous` label names, revoked at the target without waiting for
    /// destinations that lag, its label dropped, and proven refused at the provider as every
    /// revocation is. Returns `true` (also when there is no previous version any more).
    pub async fn revoke_previous_now(&self, name: &SecretName, target: &dyn RotationTarget) -> Result<bool> {
        self.revoke_previous(name, target, true).await
    }

    async fn revoke_previous(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        early: bool,
    ) -> Result<bool> {
        let _running = self.exclusive(name).await;
        let (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
        if early {
            return self.revoke_labelled_previous(name, target, rec, raw).await;
        }
        if rec.emergency.is_some() {
            return Ok(false); // an interrupted emergency: `rotate` finishes it
        }
        match rec.step.clone() {
            Step::Promoted { previous, revoke_after_ms, .. } => {
                let quiet = if self.clock.now().timestamp_millis() < revoke_after_ms {
                    match self.quiet_enough(name, target, &rec, previous).await? {
                        Some(q) => Some(q),
                        None => return Ok(false),
                    }
                } else {
                    None
                };
                // Not while the current one is not current everywhere consumers read it.
                let (rec, raw, left) = self.repromote(name, target, rec, raw).await?;
                if left.is_some() {
                    return Ok(false);
                }
                let audited = rec.clone();
                self.finish_previous(name, target, rec, raw, previous, &mut Timings::new()).await?;
                if let Some(q) = quiet {
                    self.audit_quiet(name, target, &audited, &q).await?;
                }
                Ok(true)
            }
            Step::Idle => Ok(true),
            _ => Ok(false),
        }
    }

    /// A leaked previous version revoked now, whatever the record's step says: the version the
    /// `Previous` label names (the store's truth, not a record that could be stale or rolled
    /// back), revoked at the target without waiting for destinations, its label dropped, its
    /// proof pending. The step is kept (a partial promotion stays partial) but forgets it.
    async fn revoke_labelled_previous(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
    ) -> Result<bool> {
        let Some(p) = self.secrets.labels(name).await?.get(&Label::Previous).copied() else {
            return Ok(true); // nothing previous: revoked and forgotten already
        };
        let cred = self.version(name, p).await?;
        target.revoke(&cred).await?;
        self.secrets
            .update_labels(name, &[LabelChange { label: Label::Previous, expect: Some(p), set: None }])
            .await?;
        self.audit(name, target, "revoke_previous", rec.rotation, Some(&cred.handle), AuditOutcome::Success)
            .await?;
        let step = match rec.step.clone() {
            Step::Promoted { previous: Some(x), revoke_after_ms, unfinished } if x == p => {
                Step::Promoted { previous: None, revoke_after_ms, unfinished }
            }
            other => other,
        };
        let mut unconfirmed = rec.unconfirmed.clone();
        if target.can_probe() && !unconfirmed.iter().any(|u| u.version == p) {
            unconfirmed.push(self.unconfirmed(p, &cred.handle));
        }
        let next = RotationRecord { step, unconfirmed, ..rec };
        let raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        self.confirm_pending(name, target, next, raw).await?;
        Ok(true)
    }
}
