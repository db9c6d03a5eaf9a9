//! Failures that used to vanish are logged at their level — a rollback that could not withdraw
//! its credential and a panicked rotation task as errors, a consumer's failed refresh as a
//! warning — and a planted secret (the credentials' secrets, a stored value that does not parse)
//! never reaches the tracing output (TRACE, every thread).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::result::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use token_core::chrono::{TimeDelta, Utc};
use token_core::clocks::SystemClock;
use token_rotate::secrecy::SecretString;
use token_rotate::*;
use token_store::{Backend, Label, LabelChange, MemoryBackend, SecretName};
use tokenward_test_support::Captured;

/// Issues credentials holding `planted`; while `failing`, refuses them at `test` and cannot
/// revoke them.
struct Stubborn {
    planted: String,
    failing: AtomicBool,
}

#[async_trait]
impl RotationTarget for Stubborn {
    fn kind(&self) -> &str {
        "stubborn"
    }
    async fn create(&self, rotation: u64, _: Option<&Credential>) -> Result<Credential, TargetError> {
        let secret = SecretString::from(format!("{}-{rotation}", self.planted));
        Ok(Credential::new(format!("handle-{rotation}"), secret, Utc::now() + TimeDelta::hours(1)))
    }
    async fn test(&self, _: &Credential) -> Result<(), TargetError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(TargetError::new("test", "the pending credential is refused"));
        }
        Ok(())
    }
    async fn revoke(&self, _: &Credential) -> Result<(), TargetError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(TargetError::new("revoke", "the target does not answer"));
        }
        Ok(())
    }
}

/// Panics creating a credential.
struct Panicky;

#[async_trait]
impl RotationTarget for Panicky {
    fn kind(&self) -> &str {
        "panicky"
    }
    async fn create(&self, _: u64, _: Option<&Credential>) -> Result<Credential, TargetError> {
        panic!("a target bug")
    }
    async fn test(&self, _: &Credential) -> Result<(), TargetError> {
        Ok(())
    }
    async fn revoke(&self, _: &Credential) -> Result<(), TargetError> {
        Ok(())
    }
}

async fn logged(captured: &Captured, what: &str) -> bool {
    for _ in 0..200 {
        if captured.text().contains(what) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_logged_at_their_level_and_never_with_a_secret() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let planted = format!("PLANTED{:016x}", rand_u64());
    let w =
        common::token_world(Arc::new(MemoryBackend::new()) as Arc<dyn Backend>, TimeDelta::hours(1)).await;
    let rotator = Arc::new(Rotator::new(w.secrets.clone(), TimeDelta::zero(), Arc::new(SystemClock)));
    let target = Stubborn { planted: planted.clone(), failing: AtomicBool::new(false) };
    let name = SecretName::new("app/stubborn").unwrap();
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));

    // A rollback that cannot withdraw its credential: an error line.
    target.failing.store(true, Ordering::SeqCst);
    assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::RollbackIncomplete { .. }));
    assert!(logged(&captured, "rollback incomplete").await);
    assert!(
        captured.text().lines().any(|l| l.contains(" ERROR ") && l.contains("rollback incomplete")),
        "{}",
        captured.text()
    );

    // A consumer whose refresh fails (the current version does not parse, and holds the secret):
    // a warning, once, and the credential it holds is kept.
    let consumer =
        CurrentCredential::follow(w.secrets.clone(), name.clone(), None, Duration::from_millis(10))
            .await
            .unwrap();
    let held = consumer.version();
    let current = w.secrets.labels(&name).await.unwrap()[&Label::Current];
    let broken = format!(r#"{{"handle":"h","secret":"{planted}-broken","expires_at":"soon"}}"#);
    let v = w.secrets.put(&name, broken.as_bytes()).await.unwrap();
    w.secrets
        .update_labels(&name, &[LabelChange { label: Label::Current, expect: Some(current), set: Some(v) }])
        .await
        .unwrap();
    assert!(logged(&captured, "refreshing the current credential failed").await, "{}", captured.text());
    assert!(
        captured
            .text()
            .lines()
            .any(|l| l.contains(" WARN ") && l.contains("refreshing the current credential failed")),
        "{}",
        captured.text()
    );
    assert_eq!(consumer.version(), held);

    // A rotation task that panics: an error line naming the credential.
    let scheduler = Arc::new(TokioScheduler::new(rotator.clone(), SchedulerConfig::default()));
    scheduler.register(
        SecretName::new("app/panicky").unwrap(),
        Arc::new(Panicky),
        Schedule::every(TimeDelta::hours(1)),
    );
    for _ in 0..3 {
        scheduler.tick().await.unwrap();
    }
    assert!(
        captured.text().lines().any(|l| l.contains(" ERROR ")
            && l.contains("a rotation task panicked")
            && l.contains("app/panicky")),
        "{}",
        captured.text()
    );

    let text = captured.text();
    assert!(!text.contains(&planted), "a planted secret reached the log:\n{text}");
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    h.finish()
}
