//! The PostgreSQL backend against a real server: the conformance kit, concurrent issuers, and
//! revocations seen by another connection through LISTEN/NOTIFY.
//!
//! `scripts/test.sh` starts a server and sets `TOKENWARD_PG_URL`. Without it these tests say so
//! loudly and pass, except under CI (`CI=true`), where a missing server is a failure.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::sync::{Arc, Mutex};

use token_core::chrono::{TimeDelta, Utc};
use token_core::digest::{DigestKey, DigestKeyring};
use token_core::*;
use token_store::*;
use tokenward_test_support::FreshSchema;

/// A backend in a fresh schema of its own, dropped with `schemas` when the test ends.
async fn fresh(schemas: &Mutex<Vec<FreshSchema>>) -> PostgresBackend {
    let schema = FreshSchema::create("tw").expect("a server (checked by the test)");
    let backend = PostgresBackend::connect(schema.url(), 8).await.unwrap();
    schemas.lock().unwrap().push(schema);
    backend
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_passes_the_conformance_kit() {
    if tokenward_test_support::postgres_url().is_none() {
        return;
    }
    let schemas = Mutex::new(Vec::new());
    testing::run_backend_suite(async || Arc::new(fresh(&schemas).await) as Arc<dyn Backend>).await;
}

fn issuer() -> (Issuer, Principal) {
    let policy = Policy::builder()
        .role(Role::parse("r", "svc:data/**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new("pg").unwrap()),
        DigestKeyring::new(DigestKey::generate(1).unwrap()),
        policy,
    );
    (issuer, Principal::parse("svc-a", ["r"]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_issuers_cannot_both_win_a_purpose() {
    if tokenward_test_support::postgres_url().is_none() {
        return;
    }
    let schemas = Mutex::new(Vec::new());
    let backend = Arc::new(fresh(&schemas).await);
    let (issuer, principal) = issuer();
    let issuer = Arc::new(issuer);
    let now = Utc::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (b, i, p) = (Arc::clone(&backend), Arc::clone(&issuer), principal.clone());
        tasks.push(tokio::spawn(async move {
            let req = IssueRequest::parse("deploy", "svc:data/x:read", TimeDelta::hours(1)).unwrap();
            let (_, record) = i.issue_at(&p, &req, &[], now).unwrap();
            b.insert_token(&record, &token_store::backend::RecordKey::from_bytes(&[1; 32]), &[]).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::TokenRejected(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1, "exactly one of 16 concurrent issuers may create the purpose's token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_other_connections() {
    if tokenward_test_support::postgres_url().is_none() {
        return;
    }
    let schemas = Mutex::new(Vec::new());
    let backend = fresh(&schemas).await;
    let (issuer, principal) = issuer();
    let mut feed = backend.listen_revocations().await.unwrap();
    let now = Utc::now();
    let req = IssueRequest::parse("p", "svc:data/x:read", TimeDelta::hours(1)).unwrap();
    let (_, parent) = issuer.issue_at(&principal, &req, &[], now).unwrap();
    backend.insert_token(&parent, &token_store::backend::RecordKey::from_bytes(&[1; 32]), &[]).await.unwrap();
    let mut child = issuer
        .issue_at(
            &principal,
            &IssueRequest::parse("q", "svc:data/x:read", TimeDelta::hours(1)).unwrap(),
            &[],
            now,
        )
        .unwrap()
        .1;
    child.parent = Some(parent.id);
    backend.insert_token(&child, &token_store::backend::RecordKey::from_bytes(&[1; 32]), &[]).await.unwrap();
    let t = std::time::Instant::now();
    let revoked = backend
        .revoke_tree(parent.id, Utc::now(), &token_store::backend::RecordKey::from_bytes(&[1; 32]))
        .await
        .unwrap();
    assert_eq!(revoked.len(), 2);
    let mut seen = Vec::new();
    while seen.len() < 2 {
        // Channels are database-wide: the other tests of this binary revoke tokens too.
        let next = tokio::time::timeout(std::time::Duration::from_secs(20), feed.recv()).await;
        let (id, at) = next.expect("a notice within 20 s").expect("the listening connection stays up");
        if id != parent.id && id != child.id {
            continue;
        }
        assert!((Utc::now() - at).num_seconds().abs() < 60, "the notice carries the revocation time");
        seen.push(id);
    }
    seen.sort();
    let mut want = vec![parent.id, child.id];
    want.sort();
    assert_eq!(seen, want);
    eprintln!("revocation seen by a listening connection {:?} after the revoke call started", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_in_one_instance_is_denied_by_another() {
    if tokenward_test_support::postgres_url().is_none() {
        return;
    }
    let schemas = Mutex::new(Vec::new());
    let backend = fresh(&schemas).await;
    let open = async |b: &PostgresBackend| {
        let b = Arc::new(b.clone()) as Arc<dyn Backend>;
        let key = LocalKek::from_key("k", token_store::secrecy::SecretBox::new(Box::new([9u8; 32]))).unwrap();
        let secrets = SecretStore::open(Arc::clone(&b), Arc::new(key)).await.unwrap();
        let policy = Policy::builder()
            .role(Role::parse("r", "svc:data/**:read", TimeDelta::days(1)).unwrap())
            .build()
            .unwrap();
        TokenService::open(b, &secrets, TokenFormat::new(TokenPrefix::new("pg").unwrap()), policy, 10_000)
            .await
            .unwrap()
    };
    let a = open(&backend).await;
    let principal = Principal::parse("svc-a", ["r"]).unwrap();
    let now = Utc::now();
    let t = a
        .issue_at(&principal, &IssueRequest::parse("p", "svc:data/x:read", TimeDelta::hours(1)).unwrap(), now)
        .await
        .unwrap();
    // Instance B starts after the issue, shares the digest key through the secret store.
    let b = open(&backend).await;
    let _follow = b.follow_revocations(backend.listen_revocations().await.unwrap());
    let vb = b.verifier();
    let read = Request::parse("svc:data/x:read").unwrap();
    assert!(vb.verify(t.expose_secret(), &read).is_allowed());
    let start = std::time::Instant::now();
    a.revoke_at(t.id(), Utc::now()).await.unwrap();
    let acked = start.elapsed();
    while vb.verify(t.expose_secret(), &read).is_allowed() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "instance B never heard of the revocation"
        );
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
    eprintln!(
        "revoke acknowledged after {acked:?}; denied by the other instance after {:?}",
        start.elapsed()
    );
}
