//! Managed credentials' secrets found in a scan: the current one revoked and replaced in its
//! emergency order, a previous one revoked early.

use std::time::{Duration, Instant};

use token_store::SecretName;

use super::{Answering, LOG_TARGET, LeakAction, LeakOutcome, Seen};
use crate::deployment::Tokenward;
use crate::error::Result;
use crate::managed::{ManagedIndex, Version};

impl Tokenward {
    /// Answers one finding that may be a managed credential's current or previous secret, and
    /// audits it.
    pub(super) async fn respond_to_credential(
        &self,
        text: &str,
        seen: Seen<'_>,
        start: Instant,
        answering: &mut Answering,
    ) -> Result<LeakAction> {
        if answering.index.is_none() {
            answering.index = Some(ManagedIndex::build(self).await?);
        }
        let matched = answering
            .index
            .as_ref()
            .and_then(|index| index.find(text))
            .map(|e| (e.name.clone(), e.target.clone(), e.handle.clone(), e.version));
        let (outcome, time_to_revoke) = match matched {
            None => (LeakOutcome::NotOurs, None),
            Some((name, _, handle, _)) if answering.answered(&name, &handle) => {
                (LeakOutcome::AlreadyAnswered { name, handle }, None)
            }
            Some((name, target, handle, version)) => {
                answering.answered.push((name.as_str().to_owned(), handle.clone()));
                self.answer_credential(name, target, handle, version, start).await?
            }
        };
        let credential = match &outcome {
            LeakOutcome::CredentialReplaced { name, handle, .. }
            | LeakOutcome::PreviousRevoked { name, handle }
            | LeakOutcome::AlreadyAnswered { name, handle }
            | LeakOutcome::Failed { name, handle, .. } => Some((name, handle.as_str())),
            _ => None,
        };
        self.audit_finding(&seen, None, &outcome, credential.map(|(n, h)| (n, h, time_to_revoke)), None)
            .await?;
        Ok(LeakAction {
            location: seen.location,
            fingerprint: seen.fingerprint,
            outcome,
            time_to_revoke,
            suppressed: seen.suppressed,
            bound_to: None,
        })
    }

    /// Revokes a matched credential version: the current one in an emergency (in its order), the
    /// previous one at its target. Judged again against the store first (another runner may have
    /// rotated it since the index was built). The risk window is returned with the outcome.
    pub(super) async fn answer_credential(
        &self,
        name: SecretName,
        target: std::sync::Arc<dyn token_rotate::RotationTarget>,
        handle: String,
        version: Version,
        start: Instant,
    ) -> Result<(LeakOutcome, Option<Duration>)> {
        let is = |c: &Option<token_rotate::Credential>| c.as_ref().is_some_and(|c| c.handle == handle);
        if version == Version::Current && is(&self.current_credential(&name).await?) {
            let order = self.emergency_order(&name);
            let called = start.elapsed();
            return Ok(match self.revoke_and_replace(&name, target, order).await {
                Ok(report) => (
                    LeakOutcome::CredentialReplaced { name, handle, order },
                    Some(called + report.revoked_after),
                ),
                Err(e) => {
                    tracing::error!(target: LOG_TARGET, credential = name.as_str(), handle = %handle, error = %e, "leak response: the emergency did not finish");
                    (LeakOutcome::Failed { name, handle, error: e.to_string() }, None)
                }
            });
        }
        // The previous one (or the current one became previous meanwhile): revoked at once.
        let previous = self.rotator().previous(&name).await?;
        match previous.filter(|c| c.handle == handle) {
            // Revoked at the target whatever the rotation's state (a leak outweighs a destination
            // that lags); another runner's write in between is retried.
            Some(_) => {
                match crate::busy::retry_busy(|| self.rotator().revoke_previous_now(&name, target.as_ref()))
                    .await
                {
                    Ok(_) => {
                        tracing::warn!(target: LOG_TARGET, credential = name.as_str(), handle = %handle, "leak response: previous credential revoked early");
                        Ok((LeakOutcome::PreviousRevoked { name, handle }, Some(start.elapsed())))
                    }
                    Err(e) => Ok((LeakOutcome::Failed { name, handle, error: e.to_string() }, None)),
                }
            }
            // Neither current nor previous any more: revoked by its rotation since.
            None => Ok((LeakOutcome::AlreadyAnswered { name, handle }, None)),
        }
    }
}
