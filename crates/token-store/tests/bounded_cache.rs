//! The bounded cache mode: hot tokens held, misses read by id, unknown ids remembered, a budget
//! of reads, eviction by recency, and revocation guarantees as in full mode — on the in-memory
//! backend, and on a real PostgreSQL with NOTIFY between two instances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use token_core::chrono::{TimeDelta, Utc};
use token_core::*;
use token_store::cache::BoundedCache;
use token_store::*;

fn policy() -> Policy {
    Policy::builder().role(Role::parse("r", "svc:data/**:read", TimeDelta::days(1)).unwrap()).build().unwrap()
}

fn format() -> TokenFormat {
    TokenFormat::new(TokenPrefix::new("bc").unwrap())
}

async fn secrets(backend: &Arc<dyn Backend>) -> SecretStore {
    let key = LocalKek::from_key("k", token_store::secrecy::SecretBox::new(Box::new([7u8; 32]))).unwrap();
    SecretStore::open(Arc::clone(backend), Arc::new(key)).await.unwrap()
}

async fn full(backend: &Arc<dyn Backend>) -> TokenService {
    TokenService::open(Arc::clone(backend), &secrets(backend).await, format(), policy(), 100_000)
        .await
        .unwrap()
}

async fn bounded(backend: &Arc<dyn Backend>, config: BoundedCache) -> TokenService {
    TokenService::open_bounded(Arc::clone(backend), &secrets(backend).await, format(), policy(), config)
        .await
        .unwrap()
}

async fn issue(tokens: &TokenService, n: usize) -> Vec<IssuedToken> {
    let principal = Principal::parse("svc", ["r"]).unwrap();
    let mut out = Vec::new();
    for i in 0..n {
        let req = IssueRequest::parse(&format!("p{i}"), "svc:data/x:read", TimeDelta::hours(1)).unwrap();
        out.push(tokens.issue_at(&principal, &req, Utc::now()).await.unwrap());
    }
    out
}

async fn verify(tokens: &TokenService, token: &str) -> Decision {
    tokens.fetch_missing(token).await.unwrap();
    tokens.verifier().verify(token, &Request::parse("svc:data/x:read").unwrap())
}

#[tokio::test]
async fn misses_are_read_by_id_and_the_least_recently_used_evicted() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let issued = issue(&full(&backend).await, 100).await;
    let b = bounded(&backend, BoundedCache::new(10)).await;
    assert!(b.cache().is_empty(), "nothing is loaded up front");
    for t in &issued {
        assert!(verify(&b, t.expose_secret()).await.is_allowed());
        assert!(b.cache().len() <= 10);
    }
    let s = b.cache().stats();
    assert_eq!((s.misses, s.lookups, s.hits), (100, 100, 0), "{s:?}");
    assert_eq!(s.evictions, 90, "{s:?}");
    // A hot token stays: used again and again while others come and go, it is hit, not re-read.
    let hot = issued[0].expose_secret();
    assert!(verify(&b, hot).await.is_allowed());
    for t in &issued[1..40] {
        // Recency is kept in milliseconds: a tick apart, the hot token is always the most recent.
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert!(verify(&b, hot).await.is_allowed());
        assert!(verify(&b, t.expose_secret()).await.is_allowed());
    }
    assert!(b.cache().contains(issued[0].id()), "the hot token was kept");
    // Uses of evicted tokens are not lost: the flush hands them over.
    let flushed = b.flush_usage(Utc::now() - TimeDelta::hours(1)).await.unwrap();
    assert!(flushed >= 40, "{flushed}");
    let row = backend.token(issued[5].id()).await.unwrap().unwrap();
    assert_eq!(row.uses, 2, "two uses of an evicted token were recorded");
}

#[tokio::test]
async fn unknown_ids_are_remembered_and_a_flood_is_bounded_by_the_budget() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    full(&backend).await;
    // Tokens of another store with the same prefix: well formed, unknown here.
    let elsewhere: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let strangers = issue(&full(&elsewhere).await, 60).await;
    let b = bounded(&backend, BoundedCache::new(100).max_lookups_per_sec(20)).await;
    let first = strangers[0].expose_secret();
    assert_eq!(verify(&b, first).await.reason(), Some(&DenyReason::UnknownToken));
    let before = b.cache().stats();
    for _ in 0..100 {
        assert_eq!(verify(&b, first).await.reason(), Some(&DenyReason::UnknownToken));
    }
    let after = b.cache().stats();
    assert_eq!(after.lookups, before.lookups, "an unknown id is not read again within the TTL");
    assert_eq!(after.negative_hits - before.negative_hits, 100);

    // A flood of distinct unknown ids: at most the budget reaches the backend.
    let mut refused = 0;
    for t in &strangers[1..] {
        match b.fetch_missing(t.expose_secret()).await {
            Ok(()) => {}
            Err(StoreError::LookupUnavailable { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let s = b.cache().stats();
    assert!(s.lookups <= 21, "the budget bounds reads: {s:?}");
    assert!(refused >= 35, "{refused} refused, {s:?}");
    assert_eq!(s.unavailable, refused);
    // Malformed input never reaches the backend.
    b.fetch_missing("not a token").await.unwrap();
    assert_eq!(b.cache().stats().lookups, s.lookups);
    // The error names no token.
    let err = b.fetch_missing(strangers[59].expose_secret()).await.unwrap_err().to_string();
    assert!(!err.contains(strangers[59].expose_secret()), "{err}");
}

#[tokio::test]
async fn revocation_holds_for_cached_and_uncached_tokens() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let a = full(&backend).await;
    let issued = issue(&a, 3).await;
    let b = bounded(&backend, BoundedCache::new(10)).await;
    assert!(verify(&b, issued[0].expose_secret()).await.is_allowed());
    // Revoked elsewhere: the uncached token is read revoked.
    a.revoke_at(issued[1].id(), Utc::now()).await.unwrap();
    assert!(matches!(verify(&b, issued[1].expose_secret()).await.reason(), Some(DenyReason::Revoked { .. })));
    // The cached one: denied once the notice (here: the backstop resync) arrives.
    a.revoke_at(issued[0].id(), Utc::now()).await.unwrap();
    let report = b.resync_at(Utc::now()).await.unwrap();
    assert_eq!(report.loaded, 2);
    assert!(matches!(verify(&b, issued[0].expose_secret()).await.reason(), Some(DenyReason::Revoked { .. })));
    // A notice that arrives before the read it races: the record read unrevoked is cached revoked.
    let at = Utc::now();
    b.cache().revoke(&[issued[2].id()], at);
    assert!(matches!(verify(&b, issued[2].expose_secret()).await.reason(), Some(DenyReason::Revoked { .. })));
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_bounded_instance_hears_revocations_of_what_it_holds() {
    if tokenward_test_support::postgres_url().is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must have PostgreSQL (scripts/test.sh starts it)");
        return;
    }
    let schema = tokenward_test_support::FreshSchema::create("twb").unwrap();
    let pg = PostgresBackend::connect(schema.url(), 8).await.unwrap();
    let backend: Arc<dyn Backend> = Arc::new(pg.clone());
    let a = full(&backend).await;
    let issued = issue(&a, 20).await;
    let b = bounded(&backend, BoundedCache::new(8)).await;
    let _follow = b.follow_revocations(pg.listen_revocations().await.unwrap());
    let mut latencies = Vec::new();
    for t in &issued {
        let start = std::time::Instant::now();
        assert!(verify(&b, t.expose_secret()).await.is_allowed());
        latencies.push(start.elapsed());
    }
    latencies.sort();
    eprintln!(
        "miss read on PostgreSQL: p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies.last()
    );
    // Revoke one it holds and one it evicted.
    let held = issued.iter().rev().find(|t| b.cache().contains(t.id())).unwrap();
    let evicted = issued.iter().find(|t| !b.cache().contains(t.id())).unwrap();
    let start = std::time::Instant::now();
    a.revoke_at(held.id(), Utc::now()).await.unwrap();
    a.revoke_at(evicted.id(), Utc::now()).await.unwrap();
    let read = Request::parse("svc:data/x:read").unwrap();
    while b.verifier().verify(held.expose_secret(), &read).is_allowed() {
        assert!(start.elapsed() < Duration::from_secs(5), "the bounded instance never heard");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    eprintln!("a held token denied by the bounded instance {:?} after the revoke started", start.elapsed());
    assert!(matches!(verify(&b, evicted.expose_secret()).await.reason(), Some(DenyReason::Revoked { .. })));
    // A token issued elsewhere is read on first use.
    let fresh = issue(&a, 1).await;
    assert!(verify(&b, fresh[0].expose_secret()).await.is_allowed());
}

#[tokio::test]
async fn a_resync_that_read_a_record_before_its_revocation_does_not_undo_it() {
    // Full mode too: the table a resync builds may hold a record read just before a revocation
    // was applied; the swap applies it again.
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let a = full(&backend).await;
    let t = issue(&a, 1).await.remove(0);
    let stale = backend.token(t.id()).await.unwrap().unwrap();
    a.cache().revoke(&[t.id()], Utc::now());
    a.cache().replace_all([(&stale.record, 0, None)]).unwrap();
    let read = Request::parse("svc:data/x:read").unwrap();
    assert!(matches!(
        a.verifier().verify(t.expose_secret(), &read).reason(),
        Some(DenyReason::Revoked { .. })
    ));
}

#[tokio::test]
async fn a_follower_catches_up_on_what_it_missed_without_a_full_reload() {
    // What a follower does after reconnecting: revocations stored since it lost the feed, and
    // tokens issued meanwhile, found by id.
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let a = full(&backend).await;
    let before = issue(&a, 2).await;
    let b = full(&backend).await;
    let lost = Utc::now();
    let principal = Principal::parse("svc", ["r"]).unwrap();
    let mut issued_meanwhile = Vec::new();
    for i in 0..3 {
        let req = IssueRequest::parse(&format!("m{i}"), "svc:data/x:read", TimeDelta::hours(1)).unwrap();
        issued_meanwhile.push(a.issue_at(&principal, &req, Utc::now()).await.unwrap());
    }
    a.revoke_at(before[0].id(), Utc::now()).await.unwrap();
    let read = Request::parse("svc:data/x:read").unwrap();
    assert!(b.verifier().verify(before[0].expose_secret(), &read).is_allowed(), "b has not heard yet");
    // Revocation times are kept to the millisecond: a follower allows slack (a minute).
    assert_eq!(b.catch_up_revocations(lost - TimeDelta::seconds(1)).await.unwrap(), 1);
    assert_eq!(b.load_missing_at(Utc::now()).await.unwrap(), 3);
    assert!(matches!(
        b.verifier().verify(before[0].expose_secret(), &read).reason(),
        Some(DenyReason::Revoked { .. })
    ));
    for t in &issued_meanwhile {
        assert!(b.verifier().verify(t.expose_secret(), &read).is_allowed());
    }
    assert_eq!(b.load_missing_at(Utc::now()).await.unwrap(), 0, "nothing is loaded twice");
}
