//! The conformance kit: drives any [`RotationTarget`] through the protocol — bootstrap, rotation
//! with overlap, an injected failure at each step, a crash (the rotation abandoned mid-step) at
//! each step, and emergency revoke-and-replace — and checks the invariants after each: exactly one
//! current credential and it works, no pending left behind, a withdrawn or previous credential
//! revoked at the target.
//!
//! ```no_run
//! # async fn example(make: impl AsyncFn() -> token_rotate::testing::Harness) {
//! token_rotate::testing::run_target_suite(make).await;
//! # }
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use token_store::{Label, SecretName};

use crate::credential::Credential;
use crate::error::TargetError;
use crate::rotator::{Rotation, Rotator};
use crate::state::Step;
use crate::target::RotationTarget;

/// What the kit needs: a rotator with **zero overlap** on a fresh store, the target, and a
/// credential name not used before.
pub struct Harness {
    /// The rotator (overlap zero: a previous credential is revoked by the next rotation).
    pub rotator: Rotator,
    /// The target under test.
    pub target: Arc<dyn RotationTarget>,
    /// The credential's name.
    pub name: SecretName,
}

/// Where a fault is injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    None = 0,
    Create = 1,
    Deploy = 2,
    Test = 3,
}

/// Wraps a target: fails (or hangs, for a crash) once at the chosen step.
struct Faulty {
    inner: Arc<dyn RotationTarget>,
    at: AtomicU8,
    hang: bool,
}

impl Faulty {
    async fn hit(&self, step: At, name: &'static str) -> Result<(), TargetError> {
        if self.at.compare_exchange(step as u8, At::None as u8, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            if self.hang {
                // A crash: the rotation is abandoned here, its future dropped.
                std::future::pending::<()>().await;
            }
            return Err(TargetError::new(name, "injected failure"));
        }
        Ok(())
    }
}

#[async_trait]
impl RotationTarget for Faulty {
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    async fn blocked_until(
        &self,
        current: Option<&Credential>,
    ) -> Result<Option<(chrono::DateTime<chrono::Utc>, String)>, TargetError> {
        self.inner.blocked_until(current).await
    }
    async fn upkeep(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, TargetError> {
        self.inner.upkeep().await
    }

    async fn make_room(&self, current: Option<&Credential>) -> Result<usize, TargetError> {
        self.inner.make_room(current).await
    }
    async fn create(&self, rotation: u64, current: Option<&Credential>) -> Result<Credential, TargetError> {
        self.hit(At::Create, "create").await?;
        self.inner.create(rotation, current).await
    }
    async fn deploy(&self, pending: &Credential) -> Result<(), TargetError> {
        self.hit(At::Deploy, "deploy").await?;
        self.inner.deploy(pending).await
    }
    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        // The fault comes after the real test: the credential is real, the check says no.
        self.inner.test(pending).await?;
        self.hit(At::Test, "test").await
    }
    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        self.inner.revoke(credential).await
    }
}

async fn works(target: &dyn RotationTarget, c: &Credential) -> bool {
    target.test(c).await.is_ok()
}

/// Checks: one current, it works; no pending label; the rotation record idle or promoted.
async fn invariants(h: &Harness, what: &str) -> Credential {
    let labels = h.rotator.secrets().labels(&h.name).await.unwrap();
    assert!(!labels.contains_key(&Label::Pending), "{what}: a pending credential was left behind");
    let current = h.rotator.current(&h.name).await.unwrap().unwrap_or_else(|| panic!("{what}: no current"));
    assert!(works(h.target.as_ref(), &current).await, "{what}: the current credential does not work");
    assert!(current.expires_at > chrono::Utc::now(), "{what}: the current credential has expired");
    let rec = h.rotator.record(&h.name).await.unwrap();
    assert!(matches!(rec.step, Step::Idle | Step::Promoted { .. }), "{what}: left at {:?}", rec.step);
    current
}

async fn rotate_until_promoted(h: &Harness, target: &dyn RotationTarget, what: &str) -> u64 {
    for _ in 0..3 {
        match h.rotator.rotate(&h.name, target).await.unwrap() {
            Rotation::Promoted { version, .. } => return version,
            Rotation::InOverlap { .. } => tokio::time::sleep(Duration::from_millis(5)).await,
            Rotation::RolledBack { reason, .. } => panic!("{what}: rolled back: {reason}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    panic!("{what}: never promoted")
}

/// Runs every check against harnesses from `make` (one fresh harness per check).
pub async fn run_target_suite(make: impl AsyncFn() -> Harness) {
    // Bootstrap, then rotate: the previous works until the next rotation revokes it.
    {
        let h = make().await;
        let v1 = rotate_until_promoted(&h, h.target.as_ref(), "bootstrap").await;
        let first = invariants(&h, "bootstrap").await;
        let v2 = rotate_until_promoted(&h, h.target.as_ref(), "second rotation").await;
        assert!(v2 > v1);
        let second = invariants(&h, "second rotation").await;
        assert_ne!(first.handle, second.handle);
        assert!(
            works(h.target.as_ref(), &first).await,
            "the previous credential must work during the overlap"
        );
        assert!(h.rotator.revoke_previous_if_due(&h.name, h.target.as_ref()).await.unwrap());
        assert!(
            !works(h.target.as_ref(), &first).await,
            "the previous credential must be revoked after the overlap"
        );
        assert!(!h.rotator.secrets().labels(&h.name).await.unwrap().contains_key(&Label::Previous));
        invariants(&h, "after the overlap").await;
    }
    // A failure at each step: rolled back, the current untouched, the withdrawn credential revoked.
    for at in [At::Create, At::Deploy, At::Test] {
        let h = make().await;
        rotate_until_promoted(&h, h.target.as_ref(), "bootstrap").await;
        let before = invariants(&h, "bootstrap").await;
        let faulty = Faulty { inner: Arc::clone(&h.target), at: AtomicU8::new(at as u8), hang: false };
        h.rotator.revoke_previous_if_due(&h.name, &faulty).await.unwrap();
        let versions_before = h.rotator.secrets().backend().latest_version(&h.name).await.unwrap();
        match h.rotator.rotate(&h.name, &faulty).await.unwrap() {
            Rotation::RolledBack { .. } => {}
            other => panic!("a failure at {at:?} must roll back, got {other:?}"),
        }
        let after = invariants(&h, &format!("failure at {at:?}")).await;
        assert_eq!(before.handle, after.handle, "a failed rotation must not touch the current credential");
        let latest = h.rotator.secrets().backend().latest_version(&h.name).await.unwrap();
        if at != At::Create {
            let withdrawn_v = latest.unwrap();
            assert!(Some(withdrawn_v) > versions_before);
            let bytes = h.rotator.secrets().get(&h.name, withdrawn_v).await.unwrap();
            let withdrawn = Credential::from_sealed_plaintext(h.name.as_str(), &bytes).unwrap();
            assert!(
                !works(h.target.as_ref(), &withdrawn).await,
                "a withdrawn credential must be revoked ({at:?})"
            );
        }
        assert_eq!(h.rotator.record(&h.name).await.unwrap().rolled_back, 1);
        rotate_until_promoted(&h, h.target.as_ref(), "the retry").await;
        invariants(&h, "retry after a failure").await;
    }
    // A crash at each step: the abandoned rotation resumes to a promotion.
    for at in [At::Create, At::Deploy, At::Test] {
        let h = make().await;
        rotate_until_promoted(&h, h.target.as_ref(), "bootstrap").await;
        let faulty = Faulty { inner: Arc::clone(&h.target), at: AtomicU8::new(at as u8), hang: true };
        h.rotator.revoke_previous_if_due(&h.name, &faulty).await.unwrap();
        let crashed =
            tokio::time::timeout(Duration::from_millis(200), h.rotator.rotate(&h.name, &faulty)).await;
        assert!(crashed.is_err(), "the injected crash at {at:?} must abandon the rotation");
        let rec = h.rotator.record(&h.name).await.unwrap();
        assert!(!matches!(rec.step, Step::Idle), "a crash at {at:?} leaves the rotation in progress");
        rotate_until_promoted(&h, h.target.as_ref(), &format!("resume after a crash at {at:?}")).await;
        invariants(&h, &format!("resumed after a crash at {at:?}")).await;
    }
    // Emergency revoke-and-replace, in both orders, from idle and during a previous credential's
    // overlap; and one interrupted (abandoned) right after its declaration, finished by `rotate`.
    for order in [crate::EmergencyOrder::RevokeFirst, crate::EmergencyOrder::ReplaceFirst] {
        for during_overlap in [false, true] {
            let what = format!("{order:?}, during an overlap: {during_overlap}");
            let h = make().await;
            rotate_until_promoted(&h, h.target.as_ref(), "bootstrap").await;
            if during_overlap {
                h.rotator.revoke_previous_if_due(&h.name, h.target.as_ref()).await.unwrap();
                rotate_until_promoted(&h, h.target.as_ref(), "second rotation").await;
            }
            let leaked = invariants(&h, "before the emergency").await;
            let report = h.rotator.revoke_and_replace_with(&h.name, h.target.as_ref(), order).await.unwrap();
            assert_eq!(report.revoked, leaked.handle, "{what}");
            assert!(
                !works(h.target.as_ref(), &leaked).await,
                "{what}: the leaked credential must be revoked"
            );
            let new = invariants(&h, &format!("after an emergency ({what})")).await;
            assert_ne!(new.handle, leaked.handle);
            let labels = h.rotator.secrets().labels(&h.name).await.unwrap();
            assert!(!labels.contains_key(&Label::Previous), "{what}: no previous survives an emergency");
            assert!(h.rotator.record(&h.name).await.unwrap().emergency.is_none(), "{what}: finished");
        }
    }
    {
        let h = make().await;
        rotate_until_promoted(&h, h.target.as_ref(), "bootstrap").await;
        let leaked = invariants(&h, "before the emergency").await;
        let faulty = Faulty { inner: Arc::clone(&h.target), at: AtomicU8::new(At::Create as u8), hang: true };
        let crashed = tokio::time::timeout(
            Duration::from_millis(200),
            h.rotator.revoke_and_replace_with(&h.name, &faulty, crate::EmergencyOrder::ReplaceFirst),
        )
        .await;
        assert!(crashed.is_err(), "the injected crash must abandon the emergency");
        assert!(h.rotator.record(&h.name).await.unwrap().emergency.is_some(), "the emergency is recorded");
        rotate_until_promoted(&h, h.target.as_ref(), "the next rotate finishes the emergency").await;
        assert!(!works(h.target.as_ref(), &leaked).await, "the leaked credential is revoked after the crash");
        invariants(&h, "after an interrupted emergency").await;
        assert!(h.rotator.record(&h.name).await.unwrap().emergency.is_none());
    }
}
