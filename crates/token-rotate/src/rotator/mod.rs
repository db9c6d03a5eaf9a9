//! The rotation engine: drives a [`RotationTarget`] through create → deploy → test → promote →
//! (after the overlap) revoke previous, recording each step in the store by compare-and-swap and
//! each outcome in the audit log.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use token_audit::{Action, Actor, AuditEvent, Auditor, Outcome as AuditOutcome};
use token_core::clocks::Clock;
use token_store::{Label, SecretName, SecretStore};
use tokio::sync::broadcast;

use crate::credential::Credential;
use crate::error::Result;
use crate::state::{self, RotationRecord};
use crate::target::RotationTarget;

/// The target of the rotator's log lines, whichever file writes them: what an operator filters on
/// (`TOKENWARD_LOG=token_rotate::rotator=debug`) stays put when the code moves.
const LOG_TARGET: &str = "token_rotate::rotator";

mod adopt;
mod advance;
mod confirm;
mod emergency;
mod quiet;
mod retire;
mod steps;

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
}
