//! Emergency revoke-and-replace on a shared PostgreSQL store: how long until the old token is
//! denied by a second instance (its own pool and cache, following `NOTIFY`), and the replacement
//! works. Needs `TOKENWARD_PG_URL` (set by `scripts/test.sh`); loud skip without it, failure in CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use token_core::chrono::{TimeDelta, Utc};
use token_core::clocks::SystemClock;
use token_core::*;
use token_rotate::secrecy::ExposeSecret;
use token_rotate::*;
use token_store::{Backend, PostgresBackend};

async fn instance(conn: &str) -> (common::World, PostgresBackend) {
    let pg = PostgresBackend::connect(conn, 4).await.unwrap();
    (common::token_world(Arc::new(pg.clone()) as Arc<dyn Backend>, TimeDelta::hours(1)).await, pg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_replacement_is_denied_by_another_instance_within_milliseconds() {
    let Some(schema) = tokenward_test_support::FreshSchema::create("twr") else { return };
    let conn = schema.url().to_owned();

    let (a, _) = instance(&conn).await;
    let target = a.target;
    let rotator = Rotator::new(a.secrets, TimeDelta::seconds(30), Arc::new(SystemClock));
    let name = common::name();
    let _ = rotator.rotate(&name, &target).await.unwrap();

    let (b, pg_b) = instance(&conn).await;
    let tokens_b = b.tokens;
    let _follow = tokens_b.follow_revocations(pg_b.listen_revocations().await.unwrap());
    let vb = Arc::new(tokens_b.verifier());
    let read = Request::parse("kv:app/x:read").unwrap();
    let mut denied_ms = Vec::new();
    let mut total_ms = Vec::new();
    let mut working_ms = Vec::new();
    for _ in 0..5 {
        let old = rotator.current(&name).await.unwrap().unwrap();
        tokens_b.resync_at(Utc::now()).await.unwrap(); // B knows the bootstrap token
        assert!(vb.verify(old.secret.expose_secret(), &read).is_allowed());
        let start = Instant::now();
        // Instance B watches from the start, on a task of its own.
        let watcher = tokio::spawn({
            let (vb, read, secret) = (vb.clone(), read.clone(), old.secret.expose_secret().to_owned());
            async move {
                while vb.verify(&secret, &read).is_allowed() {
                    assert!(
                        start.elapsed() < Duration::from_secs(5),
                        "instance B never heard of the revocation"
                    );
                    tokio::time::sleep(Duration::from_micros(100)).await;
                }
                start.elapsed()
            }
        });
        let report = rotator.revoke_and_replace(&name, &target).await.unwrap();
        total_ms.push(report.replaced_after.as_secs_f64() * 1e3);
        denied_ms.push(watcher.await.unwrap().as_secs_f64() * 1e3);
        // The replacement works in B as soon as B has heard of its issue (NOTIFY), no resync.
        let new = rotator.current(&name).await.unwrap().unwrap();
        while !vb.verify(new.secret.expose_secret(), &read).is_allowed() {
            assert!(start.elapsed() < Duration::from_secs(5), "instance B never heard of the replacement");
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
        working_ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let med = tokenward_test_support::stats::median;
    eprintln!(
        "PostgreSQL emergency revoke-and-replace (5 runs, medians): replacement current after {:.1} ms; \
         old token denied by the second instance after {:.1} ms; new token working there (NOTIFY) at {:.1} ms",
        med(&mut total_ms),
        med(&mut denied_ms),
        med(&mut working_ms)
    );
}
