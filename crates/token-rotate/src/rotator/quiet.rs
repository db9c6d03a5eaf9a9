//! Usage-aware retirement: a previous credential is retired once its provider reports it unused
//! for the credential's quiet period (after the promotion), and at the latest when its overlap
//! ends. Who still uses it can be asked ([`Rotator::previous_usage`]).

use chrono::{DateTime, TimeDelta, Utc};
use token_audit::{Action, Actor, AuditEvent, Outcome as AuditOutcome};
use token_store::SecretName;

use super::Rotator;
use crate::error::Result;
use crate::state::RotationRecord;
use crate::target::{RotationTarget, Usage};

/// Why a previous credential may go before its overlap ends: its handle and last use.
pub(super) struct Quiet {
    handle: String,
    last_used: DateTime<Utc>,
}

impl Rotator {
    /// The previous credential of `name`, if there is one, and its last use as the provider
    /// reports it: what an operator looks at to find consumers that have not switched.
    pub async fn previous_usage(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
    ) -> Result<Option<(String, Usage)>> {
        let Some(previous) = self.previous(name).await? else { return Ok(None) };
        let usage = target.last_used(&previous).await?;
        Ok(Some((previous.handle, usage)))
    }

    /// Whether `name`'s previous version may be retired before its overlap ends: it has a quiet
    /// period, and the provider reports its last use, that long ago or more (counted from the
    /// promotion at the earliest). Only a reported use counts: "never used", "unknown" and an
    /// error asking are no permission (a provider that has not caught up reports "never" too),
    /// and the credential waits for its overlap's end.
    pub(super) async fn quiet_enough(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: &RotationRecord,
        previous: Option<u64>,
    ) -> Result<Option<Quiet>> {
        let Some(quiet) = self.quiet_period(name) else { return Ok(None) };
        let Some(version) = previous else { return Ok(None) };
        let now = self.clock.now();
        let promoted = rec.promoted_at_ms.and_then(DateTime::from_timestamp_millis).unwrap_or(now);
        let cred = self.version(name, version).await?;
        let usage = match target.last_used(&cred).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(credential = name.as_str(), handle = %cred.handle, error = %e, "the previous credential's last use could not be read: it stays until its overlap ends");
                return Ok(None);
            }
        };
        let Usage::At { at, .. } = usage else { return Ok(None) };
        if now - at.max(promoted) < quiet {
            return Ok(None);
        }
        tracing::info!(credential = name.as_str(), handle = %cred.handle, last_used = %at, "the previous credential is unused: retiring it");
        Ok(Some(Quiet { handle: cred.handle.clone(), last_used: at }))
    }

    /// Audits an early retirement (`previous_quiet`, with the last use), once it is done.
    pub(super) async fn audit_quiet(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        rec: &RotationRecord,
        q: &Quiet,
    ) -> Result<()> {
        let Some(a) = &self.audit else { return Ok(()) };
        let now = self.clock.now();
        let promoted = rec.promoted_at_ms.and_then(DateTime::from_timestamp_millis).unwrap_or(now);
        let quiet = self.quiet_period(name).unwrap_or_default();
        let e = AuditEvent::new(now, Actor::System, Action::Rotate("previous_quiet".to_owned()))
            .outcome(AuditOutcome::Success)
            .attr("credential", name.as_str())
            .attr("target", target.kind())
            .attr("rotation", rec.rotation.to_string())
            .attr("handle", q.handle.as_str())
            .attr("last_used", q.last_used.to_rfc3339())
            .attr("quiet_ms", quiet.num_milliseconds().to_string())
            .attr("overlap_used_ms", (now - promoted).max(TimeDelta::zero()).num_milliseconds().to_string());
        a.emit_durable(e).await?;
        Ok(())
    }
}
