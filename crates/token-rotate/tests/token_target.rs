//! Our own tokens through the conformance kit, on the in-memory and the embedded SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use token_core::chrono::TimeDelta;
use token_core::*;
use token_rotate::testing::{Harness, run_target_suite};
use token_rotate::*;
use token_store::secrecy::SecretBox;
use token_store::*;

async fn harness(backend: Arc<dyn Backend>) -> Harness {
    let kek = Arc::new(LocalKek::from_key("kek", SecretBox::new(Box::new([7u8; 32]))).unwrap());
    let secrets = Arc::new(SecretStore::open(backend.clone(), kek).await.unwrap());
    let policy = Policy::builder()
        .role(Role::parse("r", "kv:app/**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let tokens = Arc::new(
        Tokens::open(backend, &secrets, TokenFormat::new(TokenPrefix::new("tw").unwrap()), policy, 10_000)
            .await
            .unwrap(),
    );
    let target = TokenTarget::new(
        tokens,
        Principal::parse("billing", ["r"]).unwrap(),
        IssueRequest::parse("app", "kv:app/**:read", TimeDelta::hours(1)).unwrap(),
    );
    Harness {
        rotator: Rotator::new(secrets, TimeDelta::zero(), Arc::new(SystemClock)),
        target: Arc::new(target),
        name: SecretName::new("billing/app-token").unwrap(),
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
