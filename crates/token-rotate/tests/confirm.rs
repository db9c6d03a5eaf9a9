//! After a promotion: a revoked credential is probed until its provider refuses it several times
//! in a row; the proof (or "still accepted") is audited, and a confirmation not reached within a
//! call stays in the record for the next call or the upkeep. A previous credential is retired
//! early only on a reported quiet last use; a leaked one is revoked whatever the record says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use token_audit::{AuditWriter, Auditor, FailureMode, FileLog, WriterConfig};
use token_core::chrono::TimeDelta;
use token_core::clocks::SystemClock;
use token_rotate::retire::{ConfirmPolicy, Probe, Usage};
use token_rotate::secrecy::SecretString;
use token_rotate::*;
use token_store::{Label, MemoryBackend};

/// Our token target, with a provider whose answers to probes are scripted (then `then`).
struct Scripted {
    inner: TokenwardTokenTarget,
    answers: Mutex<VecDeque<Probe>>,
    then: Mutex<Probe>,
    probes: Mutex<u32>,
    usage: Mutex<Usage>,
}

#[async_trait::async_trait]
impl RotationTarget for Scripted {
    fn kind(&self) -> &str {
        "scripted"
    }
    async fn create(&self, rotation: u64, current: Option<&Credential>) -> Result<Credential, TargetError> {
        self.inner.create(rotation, current).await
    }
    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        self.inner.test(pending).await
    }
    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        self.inner.revoke(credential).await
    }
    async fn adopt(&self, handle: Option<&str>, secret: SecretString) -> Result<Credential, TargetError> {
        self.inner.adopt(handle, secret).await
    }
    fn can_probe(&self) -> bool {
        *self.then.lock().unwrap() != Probe::Unsupported || !self.answers.lock().unwrap().is_empty()
    }
    async fn last_used(&self, _: &Credential) -> Result<Usage, TargetError> {
        Ok(self.usage.lock().unwrap().clone())
    }
    async fn probe(&self, _: &Credential) -> Result<Probe, TargetError> {
        *self.probes.lock().unwrap() += 1;
        let next = self.answers.lock().unwrap().pop_front();
        Ok(next.unwrap_or_else(|| self.then.lock().unwrap().clone()))
    }
}

struct World {
    rotator: Rotator,
    target: Scripted,
    writer: Arc<AuditWriter>,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn world(policy: ConfirmPolicy, answers: Vec<Probe>, then: Probe) -> World {
    let dir = tempfile::tempdir().unwrap();
    let w = common::token_world(Arc::new(MemoryBackend::new()), TimeDelta::hours(1)).await;
    let log = dir.path().join("audit.jsonl");
    let writer = Arc::new(
        AuditWriter::start(Arc::new(FileLog::open(&log).unwrap()), WriterConfig::default()).unwrap(),
    );
    let rotator = Rotator::new(w.secrets, TimeDelta::zero(), Arc::new(SystemClock))
        .with_audit(Auditor::new(writer.clone(), FailureMode::FailClosed))
        .with_confirmation(policy);
    let target = Scripted {
        inner: w.target,
        answers: Mutex::new(answers.into()),
        then: Mutex::new(then),
        probes: Mutex::new(0),
        usage: Mutex::new(Usage::Unknown),
    };
    World { rotator, target, writer, log, _dir: dir }
}

impl World {
    /// Two rotations, then the previous version revoked (its overlap is zero), as the upkeep does.
    async fn retire_a_previous_version(&self, name: &token_store::SecretName) {
        for _ in 0..2 {
            let _ = self.rotator.rotate(name, &self.target).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(self.rotator.revoke_previous_if_due(name, &self.target).await.unwrap());
    }

    /// The audit entries of `step`, as JSON.
    async fn entries(&self, step: &str) -> Vec<serde_json::Value> {
        self.writer.flush().await.unwrap();
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e.to_string().contains(&format!("\"{step}\"")))
            .collect()
    }
}

fn policy(budget: Duration, give_up: TimeDelta) -> ConfirmPolicy {
    ConfirmPolicy::new(3, Duration::from_millis(5), budget, give_up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_is_confirmed_after_three_refusals_in_a_row_and_audited() {
    use Probe::*;
    // An acceptance or an unknown answer breaks the streak.
    let answers = vec![Accepted, Refused, Refused, Unknown("throttled".into()), Refused, Refused, Refused];
    let w = world(policy(Duration::from_secs(5), TimeDelta::minutes(5)), answers, Accepted).await;
    let name = common::name();
    w.retire_a_previous_version(&name).await;
    assert_eq!(*w.target.probes.lock().unwrap(), 7, "probed until three refusals in a row");
    assert!(w.rotator.record(&name).await.unwrap().unconfirmed.is_empty());
    let confirmed = w.entries("revocation_confirmed").await;
    assert_eq!(confirmed.len(), 1);
    let text = confirmed[0].to_string();
    assert!(text.contains("\"probes\"") && text.contains("\"after_ms\""), "{text}");
    assert!(w.entries("revocation_unconfirmed").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_still_accepted_past_the_limit_is_recorded_as_a_failure() {
    let w =
        world(policy(Duration::from_secs(5), TimeDelta::milliseconds(30)), Vec::new(), Probe::Accepted).await;
    let name = common::name();
    w.retire_a_previous_version(&name).await;
    assert!(w.rotator.record(&name).await.unwrap().unconfirmed.is_empty(), "given up on, not kept");
    let failed = w.entries("revocation_unconfirmed").await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0].to_string().contains("still accepted"), "{}", failed[0]);
    assert!(w.entries("revocation_confirmed").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_not_reached_in_a_call_is_kept_and_finished_later() {
    let w =
        world(policy(Duration::from_millis(50), TimeDelta::minutes(5)), Vec::new(), Probe::Accepted).await;
    let name = common::name();
    w.retire_a_previous_version(&name).await;
    let rec = w.rotator.record(&name).await.unwrap();
    assert_eq!(rec.unconfirmed.len(), 1, "kept for later: {rec:?}");
    assert!(w.entries("revocation_confirmed").await.is_empty());
    // The provider catches up (IAM is eventually consistent): the upkeep's call confirms it.
    *w.target.then.lock().unwrap() = Probe::Refused;
    assert_eq!(w.rotator.confirm_revocations(&name, &w.target).await.unwrap(), 0);
    assert_eq!(w.entries("revocation_confirmed").await.len(), 1);
    assert!(w.rotator.record(&name).await.unwrap().unconfirmed.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_cannot_probe_is_not_confirmed_and_not_kept() {
    let w =
        world(policy(Duration::from_secs(1), TimeDelta::minutes(5)), Vec::new(), Probe::Unsupported).await;
    let name = common::name();
    w.retire_a_previous_version(&name).await;
    assert!(w.rotator.record(&name).await.unwrap().unconfirmed.is_empty());
    assert_eq!(*w.target.probes.lock().unwrap(), 0, "not even asked: it said it cannot");
    assert!(w.entries("revocation_confirmed").await.is_empty());
    assert!(w.entries("revocation_unconfirmed").await.is_empty());
}

/// With a quiet period, the previous credential goes early only when the provider reports a use
/// that long ago; "never", "unknown" and a recent use keep it until its overlap ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_credential_goes_early_only_on_a_reported_quiet_use() {
    let w = world(policy(Duration::from_secs(1), TimeDelta::minutes(5)), Vec::new(), Probe::Refused).await;
    let name = common::name();
    let _ = w.rotator.rotate(&name, &w.target).await.unwrap();
    // From the next promotion: an overlap of an hour, a quiet period of a minute.
    w.rotator.set_overlap(&name, Some(TimeDelta::hours(1)));
    w.rotator.set_quiet_period(&name, Some(TimeDelta::minutes(1)));
    let _ = w.rotator.rotate(&name, &w.target).await.unwrap();
    let now = token_core::chrono::Utc::now();
    for usage in [Usage::Unknown, Usage::Never, Usage::At { at: now, by: None }] {
        *w.target.usage.lock().unwrap() = usage;
        assert!(!w.rotator.revoke_previous_if_due(&name, &w.target).await.unwrap());
        assert!(w.rotator.previous(&name).await.unwrap().is_some(), "kept: no quiet use reported");
    }
    assert!(w.entries("previous_quiet").await.is_empty());
    // Last used two minutes before the promotion: quiet for a minute only once a minute has
    // passed since the promotion (the quiet time counts from it at the earliest).
    *w.target.usage.lock().unwrap() = Usage::At { at: now - TimeDelta::minutes(2), by: None };
    assert!(!w.rotator.revoke_previous_if_due(&name, &w.target).await.unwrap());
}

/// A leaked previous credential is revoked by `revoke_previous_now` even when the rotation record
/// was rolled back to `Idle` (an older, validly sealed record restored): the store's `Previous`
/// label decides, and the proof is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_previous_credential_is_revoked_whatever_the_record_says() {
    let w = world(policy(Duration::from_secs(1), TimeDelta::minutes(5)), Vec::new(), Probe::Refused).await;
    let name = common::name();
    let _ = w.rotator.rotate(&name, &w.target).await.unwrap();
    let old_record = w.rotator.record(&name).await.unwrap();
    w.rotator.set_overlap(&name, Some(TimeDelta::hours(1)));
    let _ = w.rotator.rotate(&name, &w.target).await.unwrap();
    let previous = w.rotator.previous(&name).await.unwrap().expect("in its overlap");
    // The record as it was after the first rotation (Idle, with no previous): as if restored.
    let secrets = w.rotator.secrets().clone();
    let key = format!("tokenward/rotation/{}", name.as_str());
    let (_, raw) = secrets.sealed_meta(&key).await.unwrap().unwrap();
    secrets.set_sealed_meta(&key, Some(&raw), &serde_json::to_vec(&old_record).unwrap()).await.unwrap();
    assert!(matches!(
        w.rotator.record(&name).await.unwrap().step,
        Step::Promoted { previous: None, .. } | Step::Idle
    ));

    assert!(w.rotator.revoke_previous_now(&name, &w.target).await.unwrap());
    assert!(w.rotator.previous(&name).await.unwrap().is_none());
    assert!(!secrets.labels(&name).await.unwrap().contains_key(&Label::Previous));
    assert!(*w.target.probes.lock().unwrap() >= 3, "probed until refused");
    let confirmed = w.entries("revocation_confirmed").await;
    assert!(confirmed.iter().any(|e| e.to_string().contains(&previous.handle)), "{confirmed:?}");
}
