//! Rotation's hot paths, one run:
//! - the scheduler's due-check over 1,000,000 credentials (target ≤ 50 ms), beside the floor: a
//!   plain scan of 1,000,000 due times;
//! - a full rotation of our own token on the embedded store (target ≤ 5 ms), beside the floor of
//!   its durable writes: one SQLite fsynced write;
//! - emergency revoke-and-replace end to end (target ≤ 20 ms).
//!
//! `cargo bench --bench rotate`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

#[allow(dead_code)] // paired_ratio is not used here
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::clocks::SystemClock;
use tokenward::core::*;
use tokenward::rotate::*;
use tokenward::store::secrecy::SecretBox;
use tokenward::store::*;
use tokenward_test_support::stats::median;

struct Nothing;

#[async_trait::async_trait]
impl RotationTarget for Nothing {
    fn kind(&self) -> &str {
        "nothing"
    }
    async fn create(&self, _: u64, _: Option<&Credential>) -> std::result::Result<Credential, TargetError> {
        Err(TargetError::new("create", "unused"))
    }
    async fn test(&self, _: &Credential) -> std::result::Result<(), TargetError> {
        Ok(())
    }
    async fn revoke(&self, _: &Credential) -> std::result::Result<(), TargetError> {
        Ok(())
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir =
        tempfile::tempdir_in(std::env::var("TOKENWARD_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let (rotator, target, tokens, name) = rt.block_on(async {
        let backend = Arc::new(SqliteBackend::open(&dir.path().join("r.db")).unwrap()) as Arc<dyn Backend>;
        let kek = Arc::new(LocalKek::from_key("kek", SecretBox::new(Box::new([1u8; 32]))).unwrap());
        let secrets = Arc::new(SecretStore::open(backend.clone(), kek).await.unwrap());
        let policy = Policy::builder()
            .role(Role::parse("r", "kv:app/**:read", TimeDelta::days(1)).unwrap())
            .build()
            .unwrap();
        let tokens = Arc::new(
            TokenService::open(
                backend,
                &secrets,
                TokenFormat::new(TokenPrefix::new("tw").unwrap()),
                policy,
                100_000,
            )
            .await
            .unwrap(),
        );
        let target = TokenwardTokenTarget::new(
            tokens.clone(),
            Principal::parse("billing", ["r"]).unwrap(),
            IssueRequest::parse("app", "kv:app/**:read", TimeDelta::hours(1)).unwrap(),
        );
        let rotator = Arc::new(Rotator::new(secrets, TimeDelta::zero(), Arc::new(SystemClock)));
        let name = SecretName::new("billing/app-token").unwrap();
        let _ = rotator.rotate(&name, &target).await.unwrap();
        (rotator, target, tokens, name)
    });

    // ---- the due-check over 1M credentials ----
    let scheduler = TokioScheduler::new(rotator.clone(), SchedulerConfig::default());
    let nothing: Arc<dyn RotationTarget> = Arc::new(Nothing);
    let now = Utc::now();
    let names: Vec<SecretName> =
        (0..1000).map(|i| SecretName::new(&format!("svc-{i}/key")).unwrap()).collect();
    let mut floor = Vec::with_capacity(1_000_000);
    for i in 0..1_000_000u64 {
        // 1 in 1,000 due now; the rest spread over the next day.
        let due = if i % 1000 == 0 {
            now - TimeDelta::seconds(1)
        } else {
            now + TimeDelta::seconds((i % 86_400) as i64 + 1)
        };
        scheduler.register_due(
            names[(i % 1000) as usize].clone(),
            nothing.clone(),
            Schedule::every(TimeDelta::days(1)),
            due,
        );
        floor.push(due.timestamp_millis());
    }
    let mut g = c.benchmark_group("rotate");
    g.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    g.bench_function("due_check_1M", |b| b.iter(|| assert_eq!(scheduler.due_at(black_box(now)).len(), 1000)));
    g.bench_function("floor_scan_1M_due_times", |b| {
        b.iter(|| {
            let n = now.timestamp_millis();
            let due: Vec<usize> =
                black_box(&floor).iter().enumerate().filter(|(_, d)| **d <= n).map(|(i, _)| i).collect();
            assert_eq!(due.len(), 1000);
        })
    });
    drop(scheduler);

    // ---- a full rotation on the embedded store ----
    g.sample_size(30).measurement_time(Duration::from_secs(6));
    g.bench_function("full_rotation_embedded", |b| {
        b.iter(|| {
            rt.block_on(async {
                // Zero overlap: each rotation also revokes the one before.
                assert!(matches!(rotator.rotate(&name, &target).await.unwrap(), Rotation::Promoted { .. }));
            })
        })
    });
    g.bench_function("floor_one_fsynced_sqlite_write", |b| {
        let mut i = 0u64;
        b.iter(|| {
            i += 1;
            rt.block_on(async {
                let k = format!("bench/{}", i % 64);
                let cur = rotator.secrets().backend().meta(&k).await.unwrap();
                rotator.secrets().backend().set_meta(&k, cur.as_deref(), &i.to_le_bytes()).await.unwrap();
            })
        })
    });
    // The two emergency orderings: the risk window (until the leaked credential is revoked) and the
    // time consumers are denied (revoke first: until the replacement is current; replace first: none).
    let mut windows: Vec<(&str, Vec<f64>, Vec<f64>)> = Vec::new();
    for (id, order) in [
        ("emergency_revoke_first", EmergencyOrder::RevokeFirst),
        ("emergency_replace_first", EmergencyOrder::ReplaceFirst),
    ] {
        let (mut revoked, mut replaced) = (Vec::new(), Vec::new());
        g.bench_function(id, |b| {
            b.iter(|| {
                rt.block_on(async {
                    let old = rotator.current(&name).await.unwrap().unwrap();
                    let report = rotator.revoke_and_replace_with(&name, &target, order).await.unwrap();
                    assert_eq!(report.revoked, old.handle);
                    revoked.push(report.revoked_after.as_secs_f64() * 1e3);
                    replaced.push(report.replaced_after.as_secs_f64() * 1e3);
                    let d = tokens.verifier().authenticate_at(
                        tokenward::rotate::secrecy::ExposeSecret::expose_secret(&old.secret),
                        Utc::now(),
                    );
                    assert!(!d.is_allowed());
                })
            })
        });
        windows.push((id, revoked, replaced));
    }
    for (id, mut revoked, mut replaced) in windows {
        let (rv, rp) = (median(&mut revoked), median(&mut replaced));
        let denied = if id.ends_with("revoke_first") { (rp - rv).max(0.0) } else { 0.0 };
        println!(
            "{id}: leaked credential revoked after {rv:.2} ms (the risk window), replacement current after {rp:.2} ms; \
             consumers denied for {denied:.2} ms (medians of {} calls)",
            revoked.len()
        );
    }
    g.finish();
}

fn report() {
    let m = |id: &str| support::median_ns("rotate", id);
    println!("\n==== rotate: medians of this run ====");
    if let (Some(ours), Some(floor)) = (m("due_check_1M"), m("floor_scan_1M_due_times")) {
        println!(
            "due-check over 1,000,000 credentials: {:.2} ms (target ≤ 50 ms); floor scan {:.2} ms",
            ours / 1e6,
            floor / 1e6
        );
    }
    if let (Some(ours), Some(floor)) = (m("full_rotation_embedded"), m("floor_one_fsynced_sqlite_write")) {
        println!(
            "full rotation on the embedded store: {:.2} ms (target ≤ 5 ms) = {:.1} fsynced writes' time ({:.2} ms each)",
            ours / 1e6,
            ours / floor,
            floor / 1e6
        );
    }
    for id in ["emergency_revoke_first", "emergency_replace_first"] {
        if let Some(e) = m(id) {
            println!("{id}, end to end: {:.2} ms (target ≤ 20 ms)", e / 1e6);
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    report();
}
