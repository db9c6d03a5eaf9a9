//! Revocation proven: a revoked external credential is probed at its provider until the provider
//! refuses it several times in a row, and the confirmation — or that it is still accepted — goes
//! into the audit log. Pending confirmations live in the rotation record, so a command that ends,
//! a crash or a provider that is slow to forget (IAM is eventually consistent) loses none: the
//! next rotation or the deployment's upkeep carries on probing.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use token_audit::{Action, Actor, AuditEvent, Outcome as AuditOutcome};
use token_store::SecretName;

use super::Rotator;
use crate::error::Result;
use crate::state::{self, RotationRecord, Unconfirmed};
use crate::target::{Probe, RotationTarget};

/// How revocations are confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfirmPolicy {
    /// Refusals in a row that confirm a revocation (default 3).
    pub refusals: u32,
    /// The wait between two probes of one credential (default 100 ms).
    pub interval: Duration,
    /// How long a rotation goes on probing before it returns and leaves the rest to the next
    /// call or the upkeep (default 1 s).
    pub inline_budget: Duration,
    /// How long after its revocation a credential still accepted is given up on and recorded as
    /// "still accepted" (default 15 min; IAM documents changes visible "usually within seconds").
    pub give_up_after: TimeDelta,
}

impl Default for ConfirmPolicy {
    fn default() -> Self {
        Self {
            refusals: 3,
            interval: Duration::from_millis(100),
            inline_budget: Duration::from_secs(1),
            give_up_after: TimeDelta::minutes(15),
        }
    }
}

impl ConfirmPolicy {
    /// `refusals` in a row confirm, probed every `interval`, at most `inline_budget` per call, given
    /// up `give_up_after` the revocation.
    #[must_use]
    pub fn new(refusals: u32, interval: Duration, inline_budget: Duration, give_up_after: TimeDelta) -> Self {
        // At least 10 ms between probes: a dead key is never hammered at the provider.
        Self {
            refusals: refusals.max(1),
            interval: interval.max(Duration::from_millis(10)),
            inline_budget,
            give_up_after,
        }
    }
}

/// What became of a pending confirmation in one call.
pub(super) enum Settled {
    /// Refused often enough, this long after the revocation.
    Confirmed(TimeDelta),
    /// Given up on: still accepted (or never proven refused) this long after the revocation.
    GivenUp,
}

impl Rotator {
    /// Probes every revocation of `name` not yet confirmed (see [`ConfirmPolicy`]) and audits
    /// each confirmation (`revocation_confirmed`, with how long after the revocation) or, past
    /// the policy's limit, that the provider still accepts it (`revocation_unconfirmed`, a
    /// failure). Returns how many are still pending. What the deployment's upkeep calls.
    pub async fn confirm_revocations(&self, name: &SecretName, target: &dyn RotationTarget) -> Result<usize> {
        let _running = self.exclusive(name).await;
        let (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
        let (rec, _, _) = self.confirm_pending(name, target, rec, raw).await?;
        Ok(rec.unconfirmed.len())
    }

    /// Records that version `version` (`handle`) of `name` was revoked just now, to be confirmed.
    pub(super) fn unconfirmed(&self, version: u64, handle: &str) -> Unconfirmed {
        Unconfirmed {
            version,
            handle: handle.to_owned(),
            revoked_at_ms: self.clock.now().timestamp_millis(),
            refusals: 0,
            probes: 0,
        }
    }

    /// Probes the record's pending confirmations for up to the inline budget; stores what is
    /// left. Returns the record, its raw form and the settled handles.
    pub(super) async fn confirm_pending(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: RotationRecord,
        raw: Option<Vec<u8>>,
    ) -> Result<(RotationRecord, Option<Vec<u8>>, Vec<(String, Settled)>)> {
        if rec.unconfirmed.is_empty() {
            return Ok((rec, raw, Vec::new()));
        }
        let deadline = Instant::now() + self.confirm.inline_budget;
        let mut left = Vec::new();
        let mut settled = Vec::new();
        for mut u in rec.unconfirmed.clone() {
            // A version that cannot be read now (the store hiccups) is kept for the next call; one
            // no longer in the store at all is given up on, and said so.
            let cred = match self.version(name, u.version).await {
                Ok(c) => Some(c),
                Err(crate::error::RotateError::Store(token_store::StoreError::NotFound(_))) => None,
                Err(e) => {
                    tracing::warn!(credential = name.as_str(), handle = %u.handle, error = %e, "a revoked credential cannot be read to probe; the next call tries again");
                    left.push(u.clone());
                    continue;
                }
            };
            let mut last = String::from("not probed");
            let outcome = loop {
                let Some(cred) = &cred else { break Some(Settled::GivenUp) };
                // Each probe within what is left of the budget (at least one interval): a provider
                // that does not answer holds no rotation for longer than that.
                let wait = deadline.saturating_duration_since(Instant::now()).max(self.confirm.interval);
                let answer = match tokio::time::timeout(wait, target.probe(cred)).await {
                    Ok(a) => a,
                    Err(_) => Ok(Probe::Unknown(format!("no answer within {} ms", wait.as_millis()))),
                };
                u.probes += 1;
                match answer {
                    Ok(Probe::Refused) => u.refusals += 1,
                    Ok(Probe::Unsupported) => break None,
                    Ok(Probe::Accepted) => {
                        u.refusals = 0;
                        last = "still accepted".into();
                    }
                    Ok(Probe::Unknown(why)) => {
                        u.refusals = 0;
                        last = format!("unknown: {why}");
                    }
                    Err(e) => {
                        u.refusals = 0;
                        last = format!("unknown: {e}");
                    }
                }
                let since =
                    TimeDelta::milliseconds((self.clock.now().timestamp_millis() - u.revoked_at_ms).max(0));
                if u.refusals >= self.confirm.refusals {
                    break Some(Settled::Confirmed(since));
                }
                if since > self.confirm.give_up_after {
                    break Some(Settled::GivenUp);
                }
                if Instant::now() + self.confirm.interval > deadline {
                    left.push(u.clone());
                    break None;
                }
                tokio::time::sleep(self.confirm.interval).await;
            };
            match outcome {
                Some(Settled::Confirmed(after)) => {
                    tracing::info!(credential = name.as_str(), handle = %u.handle, after_ms = after.num_milliseconds(), "revocation confirmed");
                    self.audit_confirmation(name, target, &rec, &u, after, AuditOutcome::Success).await?;
                    settled.push((u.handle.clone(), Settled::Confirmed(after)));
                }
                Some(Settled::GivenUp) => {
                    let after =
                        TimeDelta::milliseconds(self.clock.now().timestamp_millis() - u.revoked_at_ms);
                    let why = format!(
                        "{} {} after its revocation ({} probes)",
                        last,
                        token_core::duration::approx(after),
                        u.probes
                    );
                    tracing::error!(credential = name.as_str(), handle = %u.handle, reason = %why, "revocation NOT confirmed");
                    self.audit_confirmation(name, target, &rec, &u, after, AuditOutcome::Failure(why))
                        .await?;
                    settled.push((u.handle.clone(), Settled::GivenUp));
                }
                None => {}
            }
        }
        let next = RotationRecord { unconfirmed: left, ..rec };
        let raw = state::cas(&self.secrets, name.as_str(), &raw, &next).await?;
        Ok((next, raw, settled))
    }

    async fn audit_confirmation(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: &RotationRecord,
        u: &Unconfirmed,
        after: TimeDelta,
        outcome: AuditOutcome,
    ) -> Result<()> {
        let Some(a) = &self.audit else { return Ok(()) };
        let step = match outcome {
            AuditOutcome::Success => "revocation_confirmed",
            _ => "revocation_unconfirmed",
        };
        let e = AuditEvent::new(self.clock.now(), Actor::System, Action::Rotate(step.to_owned()))
            .outcome(outcome)
            .attr("credential", name.as_str())
            .attr("target", target.kind())
            .attr("rotation", rec.rotation.to_string())
            .attr("handle", u.handle.as_str())
            .attr("after_ms", after.num_milliseconds().to_string())
            .attr("probes", u.probes.to_string());
        a.emit_durable(e).await?;
        Ok(())
    }
}
