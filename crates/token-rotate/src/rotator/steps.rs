//! The steps forward: create (the target makes the credential, the store seals it), promote (one
//! compare-and-swap of the labels), and making the current credential current again.

use chrono::TimeDelta;
use token_audit::Outcome as AuditOutcome;
use token_core::clocks::Clock;
use token_store::{Label, LabelChange, SecretName};

use super::Rotator;
use crate::credential::Credential;
use crate::error::Result;
use crate::state::{self, RotationRecord, Step};
use crate::target::RotationTarget;

impl Rotator {
    /// Create: the target makes the credential, the store keeps it sealed as a new version
    /// labelled `pending`.
    pub(super) async fn create(
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
    pub(super) async fn promote(
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
    pub(super) async fn repromote(
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
