//! Our own tokens through the conformance kit, on the in-memory and the embedded SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

mod common;

use token_core::chrono::TimeDelta;
use token_core::*;
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
