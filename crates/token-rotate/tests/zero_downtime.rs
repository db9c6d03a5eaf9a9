//! The proof of zero downtime: consumers call a protected operation in a tight loop on several
//! threads while the scheduler performs 100 rotations of their token on the embedded store — and
//! again with failures injected at each step. Zero failed calls; every rotation promoted or rolled
//! back; the audit chain verifies; no credential outlives its expiry or its replacement's overlap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use std::result::Result;

use async_trait::async_trait;

mod common;
use token_audit::{AuditWriter, Auditor, FailureMode, FileLog, WriterConfig, verify_file};
use token_core::chrono::{TimeDelta, Utc};
use token_core::clocks::SystemClock;
use token_core::*;
use token_rotate::secrecy::ExposeSecret;
use token_rotate::*;
use token_store::*;

/// Fails create, deploy or test at random, about one step in `one_in`.
struct Flaky {
    inner: TokenwardTokenTarget,
    one_in: u64,
    n: AtomicU64,
    injected: AtomicU64,
}

impl Flaky {
    fn roll(&self, step: &'static str) -> Result<(), TargetError> {
        if self.one_in == 0 {
            return Ok(());
        }
        // A fixed pseudo-random sequence (splitmix64), so runs are comparable.
        let mut z = self.n.fetch_add(1, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        if (z ^ (z >> 31)).is_multiple_of(self.one_in) {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(TargetError::new(step, "injected failure"));
        }
        Ok(())
    }
}

#[async_trait]
impl RotationTarget for Flaky {
    fn kind(&self) -> &str {
        self.inner.kind()
    }
    async fn create(&self, rotation: u64, current: Option<&Credential>) -> Result<Credential, TargetError> {
        self.roll("create")?;
        self.inner.create(rotation, current).await
    }
    async fn deploy(&self, pending: &Credential) -> Result<(), TargetError> {
        self.roll("deploy")?;
        self.inner.deploy(pending).await
    }
    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        self.inner.test(pending).await?;
        self.roll("test")
    }
    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        self.inner.revoke(credential).await
    }
}

async fn run(one_in: u64) {
    let dir = tempfile::tempdir().unwrap();
    let backend = Arc::new(SqliteBackend::open(&dir.path().join("t.db")).unwrap()) as Arc<dyn Backend>;
    let common::World { secrets, tokens, target: inner } =
        common::token_world(backend, TimeDelta::minutes(10)).await;
    let log_path = dir.path().join("audit.jsonl");
    let writer = Arc::new(
        AuditWriter::start(Arc::new(FileLog::open(&log_path).unwrap()), WriterConfig::default()).unwrap(),
    );
    let target = Arc::new(Flaky { inner, one_in, n: AtomicU64::new(0), injected: AtomicU64::new(0) });
    let overlap = TimeDelta::milliseconds(150);
    let rotator = Arc::new(
        Rotator::new(secrets.clone(), overlap, Arc::new(SystemClock))
            .with_audit(Auditor::new(writer.clone(), FailureMode::FailClosed)),
    );
    let name = common::name();
    while !matches!(rotator.rotate(&name, target.as_ref()).await.unwrap(), Rotation::Promoted { .. }) {}
    let handle = Arc::new(
        CurrentCredential::follow(
            secrets.clone(),
            name.clone(),
            Some(rotator.subscribe()),
            Duration::from_millis(20),
        )
        .await
        .unwrap(),
    );

    // The consumers: a protected operation (verify the token for a request) in a tight loop.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let request = Request::parse("kv:app/config:read").unwrap();
    let consumers: Vec<_> = (0..3)
        .map(|_| {
            let (handle, stop, calls, failures, tokens, request) = (
                handle.clone(),
                stop.clone(),
                calls.clone(),
                failures.clone(),
                tokens.clone(),
                request.clone(),
            );
            std::thread::spawn(move || {
                let verifier = tokens.verifier();
                let mut seen = std::collections::HashSet::new();
                while !stop.load(Ordering::Relaxed) {
                    let cred = handle.get();
                    let d = verifier.verify(cred.secret.expose_secret(), &request);
                    calls.fetch_add(1, Ordering::Relaxed);
                    if !d.is_allowed() {
                        failures.fetch_add(1, Ordering::Relaxed);
                        eprintln!("consumer call failed with {} on {}", d, cred.handle);
                    }
                    seen.insert(cred.handle.clone());
                }
                seen.len()
            })
        })
        .collect();

    let scheduler = Arc::new(TokioScheduler::new(
        rotator.clone(),
        SchedulerConfig {
            retry_base: Duration::from_millis(5),
            retry_max: Duration::from_millis(50),
            poll: Duration::from_millis(5),
            ..SchedulerConfig::default()
        },
    ));
    scheduler.register_due(
        name.clone(),
        target.clone(),
        Schedule::every(TimeDelta::milliseconds(10)),
        Utc::now(),
    );
    let (tx, rx) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(scheduler.clone().run(rx));
    let started = std::time::Instant::now();
    while scheduler.counts().0 < 100 {
        assert!(started.elapsed() < Duration::from_secs(120), "100 rotations did not finish in 2 minutes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.send(true).unwrap();
    let report = run.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let distinct: Vec<usize> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    let (promoted, rolled_back) = scheduler.counts();
    let rec = rotator.record(&name).await.unwrap();
    let head = writer.flush().await.unwrap();
    let entries = verify_file(&log_path, &[head]).unwrap();

    // Every version: either current, or revoked; none outlives its expiry.
    let now = Utc::now();
    let latest = secrets.backend().latest_version(&name).await.unwrap().unwrap();
    let current = rotator.current(&name).await.unwrap().unwrap();
    let mut revoked = 0;
    for v in 1..=latest {
        let bytes = secrets.get(&name, v).await.unwrap();
        let text = String::from_utf8(bytes.expose_secret().clone()).unwrap();
        let handle: String =
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["handle"].as_str().unwrap().to_owned();
        let id: TokenId = handle.parse().unwrap();
        let stored = tokens.backend().token(id).await.unwrap().unwrap();
        assert!(stored.record.expires_at > stored.record.created_at);
        if handle == current.handle {
            assert!(stored.record.revoked_at.is_none() && stored.record.expires_at > now);
        } else if stored.record.revoked_at.is_some() {
            revoked += 1;
        } else {
            // Only the last promotion's previous may still be in its overlap.
            assert!(matches!(rec.step, Step::Promoted { .. }), "version {v} is neither current nor revoked");
        }
    }
    eprintln!(
        "zero downtime (failures injected 1 step in {one_in}): {} consumer calls on 3 threads, {} failed; \
         {promoted} rotations promoted, {rolled_back} rolled back ({} failures injected); \
         {} versions, {revoked} revoked; consumers saw {distinct:?} distinct credentials; audit chain of {} entries verifies; {:.1} s",
        calls.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
        target.injected.load(Ordering::Relaxed),
        latest,
        entries.len,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "a consumer call failed");
    assert!(promoted >= 100);
    assert_eq!(rec.promoted, promoted + 1, "the bootstrap and every scheduled promotion are recorded");
    assert_eq!(rec.rolled_back, rolled_back);
    assert_eq!(report.promoted, promoted);
    if one_in > 0 {
        assert!(rolled_back > 0, "failures were injected, some rotations must have rolled back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_rotations_under_load_with_zero_failed_calls() {
    run(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_rotations_with_injected_failures_and_zero_failed_calls() {
    run(6).await;
}
