//! Revocation fan-out (`tokenward_bench::fanout`) at test scale on a real PostgreSQL: four instance
//! processes with their own caches and followers, three revocation storms (one revoker, all four,
//! then one revoker with one follower's connection terminated midway). Every revoked token is denied by every
//! instance, no valid token is denied, and the four share one audit chain that verifies.
//! The figures at a million tokens: `cargo run --release -p tokenward-bench --example fanout`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use tokenward_bench::fanout;

use std::time::Duration;

/// An instance process: this test binary re-executed with the harness's environment; a no-op
/// when the suite runs it as a test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_instance() {
    if fanout::is_instance() {
        fanout::instance_main().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_denies_every_revocation_and_a_cut_off_follower_misses_none() {
    if tokenward_test_support::postgres_url().is_none() {
        return;
    }
    let config = fanout::Config {
        tokens: 5_000,
        instances: 4,
        revocations: 200,
        rate: 100.0,
        background: 500,
        idle: Duration::from_millis(500),
        settle: Duration::from_millis(500),
        resync: None,
        deadline: Duration::from_secs(60),
        pause: None,
    };
    let exe = std::env::current_exe().unwrap();
    let outcome = fanout::run(&config, || {
        let mut c = std::process::Command::new(&exe);
        c.args(["--exact", "fanout_instance", "--nocapture", "--test-threads=1"]);
        c
    })
    .await;
    eprintln!("{outcome}");
    for storm in &outcome.storms {
        assert_eq!(storm.missed, 0, "{}: every instance denies every revoked token", storm.name);
        assert_eq!(storm.latencies_ms.len(), 200);
    }
    assert!(outcome.terminated_missed_none, "the terminated follower reconnected and resynced");
    assert_eq!(outcome.background_failures, 0, "no valid token was denied");
    assert!(outcome.audit_chain_verified, "the shared chain verifies");
    assert_eq!(outcome.audit_revokers, 4, "all four instances appended revocations to it");
    assert!(outcome.audit_entries >= 400, "{}", outcome.audit_entries);
}
