//! Our own tokens through the conformance kit, on the in-memory and the embedded SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

mod common;

use token_core::chrono::TimeDelta;
use token_core::clocks::SystemClock;
use token_rotate::testing::{Harness, run_target_suite};
use token_rotate::*;
use token_store::*;

async fn harness(backend: Arc<dyn Backend>) -> Harness {
    let w = common::token_world(backend, TimeDelta::hours(1)).await;
    Harness {
        rotator: Rotator::new(w.secrets, TimeDelta::zero(), Arc::new(SystemClock)),
        target: Arc::new(w.target),
        name: common::name(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_target_on_memory_passes_the_kit() {
    run_target_suite(async || harness(Arc::new(MemoryBackend::new())).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_target_on_sqlite_passes_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    run_target_suite(async || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        harness(Arc::new(SqliteBackend::open(&dir.path().join(format!("s{i}.db"))).unwrap())).await
    })
    .await;
}

/// A rotated token never appears in a Debug, an error, an audit entry or the audit log's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secrets_appear_in_no_output() {
    use token_audit::{AuditWriter, Auditor, FailureMode, FileLog, WriterConfig};
    use token_rotate::secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let w = common::token_world(Arc::new(MemoryBackend::new()), TimeDelta::hours(1)).await;
    let log_path = dir.path().join("audit.jsonl");
    let writer = Arc::new(
        AuditWriter::start(Arc::new(FileLog::open(&log_path).unwrap()), WriterConfig::default()).unwrap(),
    );
    let rotator = Rotator::new(w.secrets.clone(), TimeDelta::zero(), Arc::new(SystemClock))
        .with_audit(Auditor::new(writer.clone(), FailureMode::FailClosed));
    let name = common::name();
    let mut secrets_seen = Vec::new();
    let mut outputs = Vec::new();
    for _ in 0..3 {
        let r = rotator.rotate(&name, &w.target).await.unwrap();
        let c = rotator.current(&name).await.unwrap().unwrap();
        secrets_seen.push(c.secret.expose_secret().to_owned());
        outputs.push(format!("{r:?} {c:?} {rotator:?} {:?}", w.target));
    }
    let report = rotator.revoke_and_replace(&name, &w.target).await.unwrap();
    outputs.push(format!("{report:?}"));
    let handle =
        CurrentCredential::follow(w.secrets.clone(), name.clone(), None, std::time::Duration::from_secs(1))
            .await
            .unwrap();
    secrets_seen.push(handle.get().secret.expose_secret().to_owned());
    outputs.push(format!("{handle:?} {:?}", handle.get()));
    // A stored credential that does not parse: the error must not quote it.
    let v = w
        .secrets
        .put(&name, format!("{{\"handle\":1,\"secret\":\"{}\"}}", secrets_seen[0]).as_bytes())
        .await
        .unwrap();
    w.secrets
        .update_labels(&name, &[LabelChange { label: Label::Pending, expect: None, set: Some(v) }])
        .await
        .unwrap();
    let e = rotator.rotate(&name, &w.target).await;
    outputs.push(format!("{e:?}"));
    writer.flush().await.unwrap();
    outputs.push(std::fs::read_to_string(&log_path).unwrap());
    let all = outputs.join("\n");
    for s in &secrets_seen {
        assert!(!all.contains(s.as_str()), "a rotated token appears in an output");
        assert!(
            !all.contains(&s[s.len() - 49..s.len() - 6]),
            "a rotated token's secret appears in an output"
        );
    }
}

/// A background runner that saw an emergency recorded, and reaches the credential after another
/// caller finished it, does nothing: `finish_emergency` decides on the record it holds, so an
/// emergency is never followed by a rotation nobody asked for (what `rotate` would start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_an_emergency_that_another_caller_finished_rotates_nothing() {
    use token_rotate::{EmergencyOrder, Rotator};
    let w = common::token_world(Arc::new(MemoryBackend::new()), TimeDelta::hours(1)).await;
    let rotator =
        Rotator::new(w.secrets.clone(), TimeDelta::zero(), Arc::new(token_core::clocks::SystemClock));
    let name = common::name();
    let _ = rotator.rotate(&name, &w.target).await.unwrap();
    let report =
        rotator.revoke_and_replace_with(&name, &w.target, EmergencyOrder::ReplaceFirst).await.unwrap();
    let current = rotator.current(&name).await.unwrap().unwrap();
    assert_ne!(current.handle, report.revoked);
    let rotations = rotator.record(&name).await.unwrap().rotation;
    // The runner read the record while the emergency was recorded; it gets the credential now.
    assert!(rotator.finish_emergency(&name, &w.target).await.unwrap().is_none(), "nothing left to finish");
    assert_eq!(rotator.current(&name).await.unwrap().unwrap().handle, current.handle, "no extra rotation");
    assert_eq!(rotator.record(&name).await.unwrap().rotation, rotations, "no rotation started");
    // What the runners called before: a whole new rotation.
    let _ = rotator.rotate(&name, &w.target).await.unwrap();
    assert_ne!(rotator.current(&name).await.unwrap().unwrap().handle, current.handle);
}
