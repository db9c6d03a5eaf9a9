//! Adoption: a credential made outside Tokenward (an IAM access key made by hand, an OpenBao
//! token) taken under management as the current version of a declared credential, with no gap:
//! it keeps working, and the next rotation replaces it like any other.

use secrecy::{ExposeSecret as _, SecretString};
use token_audit::Outcome as AuditOutcome;
use token_store::{Label, LabelChange, SecretName};

use super::Rotator;
use crate::error::{Result, RotateError};
use crate::state::{self, Step};
use crate::target::RotationTarget;

impl Rotator {
    /// Takes the credential `secret` (named by `handle` where the target needs it: an access key
    /// id) under management as `name`'s current version, after `target` proves it works and is
    /// one it rotates ([`RotationTarget::adopt`]). Stored sealed in the shape every rotated
    /// version has (`{"handle", "secret", "expires_at"}`), audited as `adopt`, announced to
    /// [`Rotator::subscribe`]rs. Returns the version.
    ///
    /// Refused with [`RotateError::AlreadyManaged`] when `name` already has a version, a rotation
    /// in progress or a recorded emergency: adoption never replaces what the store holds.
    pub async fn adopt(
        &self,
        name: &SecretName,
        target: &dyn RotationTarget,
        handle: Option<&str>,
        secret: SecretString,
    ) -> Result<u64> {
        let _running = self.exclusive(name).await;
        let (rec, raw) = state::load(&self.secrets, name.as_str()).await?;
        let labels = self.secrets.labels(name).await?;
        if rec.step != Step::Idle || rec.emergency.is_some() || !labels.is_empty() {
            return Err(RotateError::AlreadyManaged(name.as_str().to_owned()));
        }
        let cred = match target.adopt(handle, secret).await {
            Ok(c) => c,
            Err(e) => {
                // The handle as given is not audited: it is unproven (it could be a secret given in
                // the wrong place); the target's error never repeats it.
                self.audit(name, target, "adopt", rec.rotation, None, AuditOutcome::Failure(e.to_string()))
                    .await?;
                return Err(e.into());
            }
        };
        let version = self.secrets.put(name, cred.to_sealed_plaintext().expose_secret()).await?;
        // The record first (its schedule counts from now: the next rotation is due one period
        // after adoption), then the label — each a compare-and-swap, so another instance that
        // got there first wins and this one fails. A crash between the two leaves no label: the
        // adoption can simply be run again.
        let adopted =
            state::RotationRecord { promoted_at_ms: Some(self.clock.now().timestamp_millis()), ..rec };
        state::cas(&self.secrets, name.as_str(), &raw, &adopted).await?;
        self.secrets
            .update_labels(name, &[LabelChange { label: Label::Current, expect: None, set: Some(version) }])
            .await?;
        self.audit(name, target, "adopt", adopted.rotation, Some(&cred.handle), AuditOutcome::Success)
            .await?;
        tracing::info!(credential = name.as_str(), handle = %cred.handle, version, "adopted");
        let _ = self.events.send((name.as_str().to_owned(), version));
        Ok(version)
    }
}
