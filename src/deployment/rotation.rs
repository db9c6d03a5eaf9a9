//! Credentials under rotation through the handle: rotate, schedule, follow, read, and answer a leak
//! in the credential's emergency order.

use std::sync::Arc;

use token_core::{IssueRequest, Principal};
use token_rotate::{
    Credential, CurrentCredential, EmergencyOrder, EmergencyReport, Rotation, RotationTarget, Schedule,
    TokenwardTokenTarget,
};
use token_store::SecretName;
use token_store::secrecy::SecretString;

use super::Tokenward;
use crate::busy::retry_busy;
use crate::error::Result;

impl Tokenward {
    /// A consumer's handle on the current credential `name`: a lock and a clone to read, refreshed
    /// at once on every promotion this deployment makes, and every second from the store (other
    /// processes' promotions).
    pub async fn follow(&self, name: &SecretName) -> Result<CurrentCredential> {
        Ok(CurrentCredential::follow(
            self.inner.secrets.clone(),
            name.clone(),
            Some(self.inner.rotator.subscribe()),
            std::time::Duration::from_secs(1),
        )
        .await?)
    }

    /// A rotation target for `principal`'s token for `request`'s purpose, in this deployment.
    pub fn token_target(&self, principal: Principal, request: IssueRequest) -> Arc<TokenwardTokenTarget> {
        Arc::new(TokenwardTokenTarget::new(self.inner.tokens.clone(), principal, request))
    }

    /// The order a leak of credential `name` found by the leak response
    /// ([`Tokenward::respond_to_leaks`], [`Tokenward::respond_to_github_alerts`]) is answered in:
    /// `RevokeFirst` (the default) kills the leaked credential at once and denies consumers until
    /// the replacement is deployed; `ReplaceFirst` denies nobody and leaves the leaked credential
    /// alive for one rotation. A declared credential's `emergency` sets it
    /// ([`Tokenward::manage_declared`]).
    pub fn set_emergency_order(&self, name: &SecretName, order: EmergencyOrder) {
        let mut orders = self.inner.emergency_orders.lock().unwrap_or_else(|p| p.into_inner());
        orders.insert(name.as_str().to_owned(), order);
    }

    /// The order a leak of credential `name` is answered in (see [`Tokenward::set_emergency_order`]).
    pub fn emergency_order(&self, name: &SecretName) -> EmergencyOrder {
        let orders = self.inner.emergency_orders.lock().unwrap_or_else(|p| p.into_inner());
        orders.get(name.as_str()).copied().unwrap_or(EmergencyOrder::RevokeFirst)
    }

    pub(crate) fn watch(&self, name: &SecretName, target: &Arc<dyn RotationTarget>) {
        {
            let mut opened = self.inner.opened.lock().unwrap_or_else(|p| p.into_inner());
            if !opened.iter().any(|t| Arc::ptr_eq(t, target)) {
                opened.push(target.clone());
            }
        }
        let mut w = self.inner.watched.lock().unwrap_or_else(|p| p.into_inner());
        w.insert(name.as_str().to_owned(), (name.clone(), target.clone()));
    }

    /// Rotates the credential `name` at `target` now (or resumes an interrupted rotation or
    /// emergency): create → deploy → test → promote. The previous credential is revoked by the
    /// upkeep when the overlap ends.
    pub async fn rotate(&self, name: &SecretName, target: Arc<dyn RotationTarget>) -> Result<Rotation> {
        self.watch(name, &target);
        retry_busy(|| self.inner.rotator.rotate(name, target.as_ref())).await
    }

    /// Takes a credential made elsewhere under management as `name`'s current version (see
    /// [`Rotator::adopt`](token_rotate::Rotator::adopt)): `target` proves it works and is one it
    /// rotates; refused when `name` already has a version. Returns the version.
    pub async fn adopt(
        &self,
        name: &SecretName,
        target: Arc<dyn RotationTarget>,
        handle: Option<&str>,
        secret: SecretString,
    ) -> Result<u64> {
        self.watch(name, &target);
        Ok(self.inner.rotator.adopt(name, target.as_ref(), handle, secret).await?)
    }

    /// Emergency: the current credential `name` leaked. Revokes it and replaces it with a tested
    /// one, in the `order` chosen (see [`EmergencyOrder`]); crash-safe (a restarted deployment, or
    /// the next call, finishes it).
    pub async fn revoke_and_replace(
        &self,
        name: &SecretName,
        target: Arc<dyn RotationTarget>,
        order: EmergencyOrder,
    ) -> Result<EmergencyReport> {
        self.watch(name, &target);
        // No retry here: the rotator carries an emergency on through lost races itself, and a
        // second call after another runner finished it would declare a new one.
        Ok(self.inner.rotator.revoke_and_replace_with(name, target.as_ref(), order).await?)
    }

    /// The current credential `name` (its handle, secret and expiry).
    pub async fn current_credential(&self, name: &SecretName) -> Result<Option<Credential>> {
        Ok(self.inner.rotator.current(name).await?)
    }

    /// [`Tokenward::current_credential`] for a consumer that will use its secret: audited as a
    /// `secret_access` read first (fail-closed).
    pub async fn read_credential(&self, name: &SecretName) -> Result<Option<Credential>> {
        let c = self.inner.rotator.current(name).await?;
        if c.is_some() {
            self.audit_access(name, "read", None).await?;
        }
        Ok(c)
    }

    /// Puts `name` under the scheduler: rotated on `schedule` (never past its expiry), previous
    /// credentials revoked after the overlap, interrupted rotations resumed — until shutdown.
    pub fn schedule(&self, name: SecretName, target: Arc<dyn RotationTarget>, schedule: Schedule) {
        self.watch(&name, &target);
        self.inner.scheduler.register(name, target, schedule);
    }
}
