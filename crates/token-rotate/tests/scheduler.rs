//! The scheduler: its policies, the lease that lets one instance of several run a credential's
//! rotation, retries, and graceful shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::result::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use token_core::chrono::{DateTime, TimeDelta};
use token_core::clocks::SystemClock;
use token_rotate::*;
use token_store::{Backend, MemoryBackend};

mod common;

#[test]
fn schedules_never_run_past_expiry_and_jitter_only_earlier() {
    let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let exp = t0 + TimeDelta::hours(10);
    assert_eq!(Schedule::every(TimeDelta::hours(1)).next_after(t0, exp, 0.0), t0 + TimeDelta::hours(1));
    assert_eq!(Schedule::every(TimeDelta::hours(20)).next_after(t0, exp, 0.0), exp, "never past expiry");
    let s = Schedule::every(TimeDelta::hours(20)).min_remaining(TimeDelta::minutes(30));
    assert_eq!(s.next_after(t0, exp, 0.0), exp - TimeDelta::minutes(30));
    assert_eq!(Schedule::at_lifetime_fraction(0.5).next_after(t0, exp, 0.0), t0 + TimeDelta::hours(5));
    let both = Schedule::at_lifetime_fraction(0.5).or_every(TimeDelta::hours(2));
    assert_eq!(both.next_after(t0, exp, 0.0), t0 + TimeDelta::hours(2), "the earlier wins");
    let j = Schedule::every(TimeDelta::hours(1)).jitter(TimeDelta::minutes(10));
    for x in [0.0, 0.3, 0.999] {
        let d = j.next_after(t0, exp, x);
        assert!(d <= t0 + TimeDelta::hours(1) && d >= t0 + TimeDelta::minutes(50), "{d}");
    }
    // An already-expired credential is due at once, never before its promotion.
    assert_eq!(Schedule::every(TimeDelta::hours(1)).next_after(t0, t0 - TimeDelta::hours(1), 0.0), t0);
}

/// Counts how many rotations are between create and test at once.
struct Watched {
    inner: TokenwardTokenTarget,
    now: AtomicU64,
    max: AtomicU64,
}

#[async_trait]
impl RotationTarget for Watched {
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    async fn create(&self, rotation: u64, current: Option<&Credential>) -> Result<Credential, TargetError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(3)).await; // widen the window a second runner would hit
        self.inner.create(rotation, current).await
    }
    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        let r = self.inner.test(pending).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        r
    }
    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        self.inner.revoke(credential).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_one_rotation_at_a_time_and_graceful_shutdown() {
    let backend = Arc::new(MemoryBackend::new()) as Arc<dyn Backend>;
    let w = common::token_world(backend, TimeDelta::hours(1)).await;
    let target = Arc::new(Watched { inner: w.target, now: AtomicU64::new(0), max: AtomicU64::new(0) });
    let name = common::name();
    let mut runs = Vec::new();
    let mut schedulers = Vec::new();
    let (tx, rx) = tokio::sync::watch::channel(false);
    for i in 0..2 {
        // Two service instances: each its own rotator and scheduler, one store.
        let rotator =
            Arc::new(Rotator::new(w.secrets.clone(), TimeDelta::milliseconds(5), Arc::new(SystemClock)));
        let s = Arc::new(TokioScheduler::new(
            rotator,
            SchedulerConfig {
                holder: format!("instance-{i}"),
                poll: Duration::from_millis(2),
                retry_base: Duration::from_millis(2),
                retry_max: Duration::from_millis(10),
                ..SchedulerConfig::default()
            },
        ));
        s.register(name.clone(), target.clone(), Schedule::every(TimeDelta::milliseconds(5)));
        runs.push(tokio::spawn(s.clone().run(rx.clone())));
        schedulers.push(s);
    }
    let rotator = Rotator::new(w.secrets.clone(), TimeDelta::zero(), Arc::new(SystemClock));
    let started = std::time::Instant::now();
    while rotator.record(&name).await.unwrap().promoted < 40 {
        assert!(started.elapsed() < Duration::from_secs(60), "40 rotations did not happen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tx.send(true).unwrap();
    let reports: Vec<TickReport> = futures_join(runs).await;
    let rec = rotator.record(&name).await.unwrap();
    let by_instance: Vec<u64> = schedulers.iter().map(|s| s.counts().0).collect();
    eprintln!(
        "two instances: {} rotations promoted ({by_instance:?} by instance), at most {} in flight at once; \
         skipped for a held lease or a lost race: {:?}",
        rec.promoted,
        target.max.load(Ordering::SeqCst),
        reports.iter().map(|r| r.failed_or_skipped).collect::<Vec<_>>()
    );
    assert_eq!(
        target.max.load(Ordering::SeqCst),
        1,
        "two instances ran a rotation of one credential at once"
    );
    assert_eq!(by_instance.iter().sum::<u64>(), rec.promoted, "every promotion is one instance's");
    // Shut down gracefully: nothing left half-done.
    assert!(matches!(rec.step, Step::Idle | Step::Promoted { .. }), "left at {:?}", rec.step);
    assert_eq!(target.now.load(Ordering::SeqCst), 0);
}

async fn futures_join(runs: Vec<tokio::task::JoinHandle<TickReport>>) -> Vec<TickReport> {
    let mut out = Vec::new();
    for r in runs {
        out.push(r.await.unwrap());
    }
    out
}
