//! Emergencies: the current credential leaked. The intent is recorded first (the leaked version
//! and the order), then the rotation state machine runs with no overlap until a tested
//! replacement is current and the leaked credential is revoked at the target.

use std::time::{Duration, Instant};

use token_audit::{Action, Actor, AuditEvent, Outcome as AuditOutcome};
use token_store::{Label, SecretName};

use super::{LOG_TARGET, Rotation, Rotator};
use crate::error::{Result, RotateError};
use crate::state::{self, Emergency, EmergencyOrder, RotationRecord};
use crate::target::RotationTarget;

/// How long an emergency revoke-and-replace took.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmergencyReport {
    /// The revoked credential's handle.
    pub revoked: String,
    /// The order it ran in.
    pub order: EmergencyOrder,
    /// From the call until the old credential was revoked at the target (zero if an earlier,
    /// interrupted call had revoked it).
    pub revoked_after: Duration,
    /// From the call until the replacement was current (tested and promoted).
    pub replaced_after: Duration,
    /// The replacement's version.
    pub version: u64,
    /// From the call until its provider was proven to refuse the old credential (several
    /// refusals in a row), when that was proven within the call; otherwise the confirmation goes
    /// on in the upkeep and is audited there.
    pub confirmed_after: Option<Duration>,
}

impl Rotator {
    /// Revoke an emergency's leaked version at the target (idempotent), then record that.
    pub(super) async fn revoke_leaked(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
        em: &Emergency,
        timings: &mut Timings,
    ) -> Result<(RotationRecord, Option<Vec<u8>>)> {
        let leaked = self.version(name, em.leaked).await?;
        target.revoke(&leaked).await?;
        timings.revoked(&leaked.handle);
        tracing::warn!(target: LOG_TARGET, credential = name.as_str(), handle = %leaked.handle, "emergency: leaked credential revoked");
        self.audit(
            name,
            target,
            "emergency_revoke",
            rec.rotation,
            Some(&leaked.handle),
            AuditOutcome::Success,
        )
        .await?;
        let mut unconfirmed = rec.unconfirmed.clone();
        if target.can_probe() && !unconfirmed.iter().any(|u| u.version == em.leaked) {
            unconfirmed.push(self.unconfirmed(em.leaked, &leaked.handle));
        }
        let next = RotationRecord {
            emergency: Some(Emergency { revoked: true, ..em.clone() }),
            unconfirmed,
            ..rec.clone()
        };
        // Confirmed once the replacement is current (a revoke-first emergency does not wait for
        // the proof before replacing).
        let raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        Ok((next, raw))
    }

    /// Finishes an emergency a crash or another runner left recorded — if one is still recorded
    /// once this call holds the credential; `None` (nothing done) when none is left. What a
    /// background runner calls: deciding on a record read before taking the credential would
    /// start a whole new rotation after an emergency another caller just finished.
    pub async fn finish_emergency(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
    ) -> Result<Option<Rotation>> {
        let _running = self.exclusive(name).await;
        let (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
        if rec.emergency.is_none() {
            return Ok(None);
        }
        self.advance(name, target, rec, raw, &mut Timings::new()).await.map(Some)
    }

    /// Emergency, revoke first: [`Rotator::revoke_and_replace_with`] with
    /// [`EmergencyOrder::RevokeFirst`].
    pub async fn revoke_and_replace(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
    ) -> Result<EmergencyReport> {
        self.revoke_and_replace_with(name, target, EmergencyOrder::RevokeFirst).await
    }

    /// Emergency: the current credential of `name` has leaked. Records the intent first (the
    /// leaked version and `order`), then runs the rotation state machine with no overlap until a
    /// tested replacement is current and the leaked credential is revoked at the target — revoked
    /// before anything else with [`EmergencyOrder::RevokeFirst`], at the replacement's promotion
    /// with [`EmergencyOrder::ReplaceFirst`]. A previous credential in its overlap is revoked too;
    /// a rotation in progress is carried on (its pending credential never reached a consumer).
    ///
    /// If an emergency is already recorded (a crash interrupted one), this finishes it — with its
    /// recorded order and leaked version — instead of starting another. A failed replacement is
    /// rolled back and reported as [`RotateError::EmergencyIncomplete`]; the emergency stays
    /// recorded, and the next call or the scheduler tries again.
    pub async fn revoke_and_replace_with(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        order: EmergencyOrder,
    ) -> Result<EmergencyReport> {
        let mut timings = Timings::new();
        let _running = self.exclusive(name).await;
        let (mut rec, mut raw) = state::load(&self.secrets, name.as_str()).await?;
        let em = match rec.emergency.clone() {
            Some(em) => em,
            None => {
                let leaked = self
                    .secrets
                    .labels(name)
                    .await?
                    .get(&Label::Current)
                    .copied()
                    .ok_or_else(|| RotateError::NoCurrent(name.as_str().to_owned()))?;
                let em = Emergency {
                    leaked,
                    order,
                    revoked: false,
                    declared_ms: self.clock.now().timestamp_millis(),
                };
                let next = RotationRecord { emergency: Some(em.clone()), ..rec.clone() };
                raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
                rec = next;
                tracing::warn!(
                    target: LOG_TARGET,
                    credential = name.as_str(),
                    leaked,
                    order = order.name(),
                    "emergency declared"
                );
                self.audit_emergency(name, target, &rec, &em).await?;
                em
            }
        };
        // Another runner (a scheduler, an upkeep task) may advance the same record meanwhile: on a
        // lost compare-and-swap, carry on from where it stands — or stop if it finished this
        // emergency — but never declare a second one.
        let mut tries = 0;
        let outcome = loop {
            match self.advance(name, target, rec, raw, &mut timings).await {
                Err(RotateError::Busy(_)) if tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(tries.min(20))).await;
                    (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
                    if rec.emergency.as_ref().is_none_or(|e| e.leaked != em.leaked) {
                        let current = self.secrets.labels(name).await?.get(&Label::Current).copied();
                        break Rotation::Promoted {
                            rotation: rec.rotation,
                            version: current.unwrap_or_default(),
                        };
                    }
                }
                other => break other?,
            }
        };
        match outcome {
            Rotation::Promoted { version, .. } => {
                // The leaked credential proven dead at its provider, if not already (a lost race
                // leaves it to the upkeep).
                let (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
                match self.confirm_pending(name, target, rec, raw).await {
                    Ok((_, _, settled)) => timings.settled(&settled),
                    Err(RotateError::Busy(_)) => {}
                    Err(e) => return Err(e),
                }
                let revoked = match timings.revoked_handle.take() {
                    Some(h) => h,
                    None => self.version(name, em.leaked).await?.handle,
                };
                Ok(EmergencyReport {
                    revoked,
                    order: em.order,
                    revoked_after: timings.revoked_after.unwrap_or_default(),
                    replaced_after: timings.replaced_after.unwrap_or_default(),
                    version,
                    confirmed_after: timings.confirmed_after,
                })
            }
            Rotation::RolledBack { reason, .. }
            | Rotation::Partial { left: reason, .. }
            | Rotation::RollbackIncomplete { reason, .. } => {
                Err(RotateError::EmergencyIncomplete { name: name.as_str().to_owned(), reason })
            }
            Rotation::InOverlap { .. } | Rotation::Waiting { .. } => Err(RotateError::Corrupted {
                name: name.as_str().to_owned(),
                detail: "emergency in overlap".into(),
            }),
        }
    }

    async fn audit_emergency(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: &RotationRecord,
        em: &Emergency,
    ) -> Result<()> {
        let Some(a) = &self.audit else { return Ok(()) };
        let e = AuditEvent::new(self.clock.now(), Actor::System, Action::Rotate("emergency".to_owned()))
            .attr("credential", name.as_str())
            .attr("target", target.kind())
            .attr("rotation", rec.rotation.to_string())
            .attr("leaked_version", em.leaked.to_string())
            .attr("order", em.order.name());
        a.emit_durable(e).await?;
        Ok(())
    }
}

/// What one call saw of an emergency's timing.
pub(super) struct Timings {
    started: Instant,
    revoked_after: Option<Duration>,
    revoked_handle: Option<String>,
    replaced_after: Option<Duration>,
    confirmed_after: Option<Duration>,
}

impl Timings {
    pub(super) fn new() -> Self {
        Self {
            started: Instant::now(),
            revoked_after: None,
            revoked_handle: None,
            replaced_after: None,
            confirmed_after: None,
        }
    }

    /// Notes the confirmation of the revoked credential, if it is among `settled`.
    pub(super) fn settled(&mut self, settled: &[(String, super::confirm::Settled)]) {
        for (handle, s) in settled {
            if matches!(s, super::confirm::Settled::Confirmed(_))
                && self.revoked_handle.as_deref() == Some(handle)
            {
                self.confirmed_after.get_or_insert(self.started.elapsed());
            }
        }
    }

    pub(super) fn revoked(&mut self, handle: &str) {
        self.revoked_after.get_or_insert(self.started.elapsed());
        self.revoked_handle.get_or_insert_with(|| handle.to_owned());
    }

    pub(super) fn replaced(&mut self) {
        self.replaced_after = Some(self.started.elapsed());
    }
}
