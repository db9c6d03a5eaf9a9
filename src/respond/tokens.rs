//! This deployment's own tokens found in a scan: judged against their stored records, revoked, or
//! revoked and replaced when one is the current credential of a rotation this handle runs.

use std::time::Instant;

use token_core::{Decision, DenyReason, Thumbprint, TokenId};
use token_store::SecretName;

use super::{Answering, LeakAction, LeakOutcome, Seen};
use crate::deployment::Tokenward;
use crate::error::Result;

impl Tokenward {
    /// Revokes (or replaces) one reported token if it is ours and active, and audits it.
    pub(super) async fn respond_to_token(
        &self,
        text: &str,
        seen: Seen<'_>,
        start: Instant,
        answering: &mut Answering,
    ) -> Result<LeakAction> {
        let (outcome, id, bound_to) = self.judge_and_revoke(text).await?;
        if let LeakOutcome::Replaced { id, name, .. } = &outcome {
            answering.answered.push((name.as_str().to_owned(), id.to_string()));
        }
        let time_to_revoke = outcome.revoked().then(|| start.elapsed());
        self.audit_finding(&seen, id, &outcome, None, bound_to.as_ref()).await?;
        Ok(LeakAction {
            location: seen.location,
            fingerprint: seen.fingerprint,
            outcome,
            time_to_revoke,
            suppressed: seen.suppressed,
            bound_to,
        })
    }

    /// Whether `text` is one of ours — judged against its record read from the store, not the
    /// cache (a bounded cache may not hold it; a token not valid yet is ours all the same) — and
    /// if it is and is not revoked, revokes (or replaces) it, bound to a key or not. With the
    /// key it is bound to, if it is ours and is.
    pub(super) async fn judge_and_revoke(
        &self,
        text: &str,
    ) -> Result<(LeakOutcome, Option<TokenId>, Option<Thumbprint>)> {
        let verifier = self.tokens().verifier();
        let Ok(parsed) = verifier.format().parse(text) else {
            return Ok((LeakOutcome::NotOurs, None, None));
        };
        let id = parsed.id();
        let row = match self.tokens().token(id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Ok((LeakOutcome::NotOurs, None, None)),
            Err(token_store::StoreError::Corrupted { .. }) => {
                return Ok((LeakOutcome::Quarantined { id }, Some(id), None));
            }
            Err(e) => return Err(e.into()),
        };
        let bound_to = row.record.bound_to;
        let one = token_core::lookup::InMemoryLookup::new();
        one.insert(row.record);
        let outcome = match verifier.over(one).authenticate_at(text, self.clock().now()) {
            Decision::Denied(DenyReason::Revoked { .. }) => LeakOutcome::AlreadyRevoked { id },
            Decision::Denied(
                DenyReason::UnknownToken
                | DenyReason::BadSecret
                | DenyReason::Malformed(_)
                | DenyReason::UnknownDigestKey { .. },
            ) => return Ok((LeakOutcome::NotOurs, None, None)),
            // Its secret matches its record: ours, whether active, not valid yet, expired or used up.
            _ => match self.rotated_credential_for(id).await? {
                Some((name, target)) => {
                    let order = self.emergency_order(&name);
                    self.revoke_and_replace(&name, target, order).await?;
                    LeakOutcome::Replaced { id, name, order }
                }
                None => LeakOutcome::Revoked { id, revoked: self.revoke(id).await? },
            },
        };
        Ok((outcome, Some(id), bound_to))
    }

    /// The rotation (run through this handle) whose current credential is token `id`.
    pub(super) async fn rotated_credential_for(
        &self,
        id: TokenId,
    ) -> Result<Option<(SecretName, std::sync::Arc<dyn token_rotate::RotationTarget>)>> {
        let watched: Vec<_> =
            self.inner.watched.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let handle = id.to_string();
        for (name, target) in watched {
            if self.current_credential(&name).await?.is_some_and(|c| c.handle == handle) {
                return Ok(Some((name, target)));
            }
        }
        Ok(None)
    }
}
