//! The rotation state machine: from the stored record, the next step, until the rotation ends.

use chrono::{DateTime, TimeDelta};
use token_audit::Outcome as AuditOutcome;
use token_core::clocks::Clock;
use token_store::{Label, SecretName};

use super::{LOG_TARGET, Rotation, Rotator, Timings};
use crate::credential::Credential;
use crate::error::Result;
use crate::state::{self, EmergencyOrder, RotationRecord, Step};
use crate::target::RotationTarget;

impl Rotator {
    /// The one state machine behind [`Rotator::rotate`] and [`Rotator::revoke_and_replace`]: every
    /// step is recorded by compare-and-swap before the next one starts, and audited.
    ///
    /// An emergency recorded in the record changes three things only: a revoke-first emergency
    /// revokes the leaked version before anything else, overlaps are zero (a previous credential
    /// is revoked at once), and the machine does not stop at a promotion but goes on until the
    /// leaked version is revoked and the emergency cleared.
    pub(super) async fn advance(
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
                            tracing::info!(target: LOG_TARGET, credential = name.as_str(), version, "emergency finished");
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
                            tracing::info!(target: LOG_TARGET, credential = name.as_str(), until = %until, %reason, "rotation waits");
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
    pub(super) async fn pending(
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
}
