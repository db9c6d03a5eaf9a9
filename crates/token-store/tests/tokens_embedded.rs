//! Tokens on the embedded store: issue, verify through the cache, revoke durably, reopen.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use token_core::chrono::{TimeDelta, Utc};
use token_core::*;
use token_store::secrecy::SecretString;
use token_store::*;

fn policy() -> Policy {
    Policy::builder()
        .role(Role::parse("reader", "s3:logs/**:read", TimeDelta::hours(2)).unwrap())
        .build()
        .unwrap()
}

async fn open(path: &std::path::Path) -> TokenService {
    let backend = Arc::new(SqliteBackend::open(path).unwrap()) as Arc<dyn Backend>;
    let secrets = SecretStore::open_with_passphrase(
        Arc::clone(&backend),
        &SecretString::from("quick test passphrase"),
        Some(KdfParams::generate_with(256, 1, 1).unwrap()),
    )
    .await
    .unwrap();
    TokenService::open(backend, &secrets, TokenFormat::new(TokenPrefix::new("tw").unwrap()), policy(), 1000)
        .await
        .unwrap()
}

#[tokio::test]
async fn issue_verify_revoke_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let principal = Principal::parse("svc", ["reader"]).unwrap();
    let read = Request::parse("s3:logs/a:read").unwrap();
    let now = Utc::now();
    let (kept, revoked, child) = {
        let tokens = open(&path).await;
        let v = tokens.verifier();
        let kept = tokens
            .issue_at(
                &principal,
                &IssueRequest::parse("keep", "s3:logs/*:read", TimeDelta::hours(1)).unwrap(),
                now,
            )
            .await
            .unwrap();
        let gone = tokens
            .issue_at(
                &principal,
                &IssueRequest::parse("gone", "s3:logs/*:read", TimeDelta::hours(1)).unwrap(),
                now,
            )
            .await
            .unwrap();
        let child = tokens
            .issue_child_at(
                gone.expose_secret(),
                &ChildRequest::parse("c", "s3:logs/a:read", TimeDelta::minutes(5)).unwrap(),
                now,
            )
            .await
            .unwrap();
        assert!(v.verify_at(kept.expose_secret(), &read, now).is_allowed());
        assert!(v.verify_at(child.expose_secret(), &read, now).is_allowed());
        // The store enforces one active token per purpose too.
        let again = tokens
            .issue_at(
                &principal,
                &IssueRequest::parse("keep", "s3:logs/*:read", TimeDelta::hours(1)).unwrap(),
                now,
            )
            .await;
        assert!(matches!(
            again,
            Err(StoreError::Issue(IssueError::Policy(PolicyViolation::ActiveTokenExists { .. })))
        ));
        let ids = tokens.revoke_at(gone.id(), now).await.unwrap();
        assert_eq!(ids.len(), 2, "parent and child");
        assert_eq!(
            v.verify_at(gone.expose_secret(), &read, now),
            Decision::Denied(DenyReason::Revoked { at: now_ms(now) })
        );
        assert_eq!(
            v.verify_at(child.expose_secret(), &read, now),
            Decision::Denied(DenyReason::Revoked { at: now_ms(now) })
        );
        tokens.flush_usage(now - TimeDelta::seconds(1)).await.unwrap();
        (kept.into_secret(), gone.into_secret(), child.into_secret())
    };
    use token_store::secrecy::ExposeSecret;
    let tokens = open(&path).await;
    let v = tokens.verifier();
    assert!(v.verify_at(kept.expose_secret(), &read, now).is_allowed(), "the digest key survived the reopen");
    assert!(
        matches!(v.verify_at(revoked.expose_secret(), &read, now).reason(), Some(DenyReason::Revoked { .. })),
        "a revoked token stays denied, as revoked"
    );
    assert!(matches!(
        v.verify_at(child.expose_secret(), &read, now).reason(),
        Some(DenyReason::Revoked { .. })
    ));
    let kept_id = TokenFormat::new(TokenPrefix::new("tw").unwrap()).parse(kept.expose_secret()).unwrap().id();
    let stored = tokens.backend().token(kept_id).await.unwrap().unwrap();
    assert_eq!(stored.uses, 1, "use counters were flushed");
    // A reopened cache starts from the stored count and hands each later use over once, however
    // often it flushes (it once added its whole count at every flush).
    assert!(v.verify_at(kept.expose_secret(), &read, now).is_allowed());
    tokens.flush_usage(now - TimeDelta::seconds(1)).await.unwrap();
    tokens.flush_usage(now - TimeDelta::seconds(1)).await.unwrap();
    assert_eq!(
        tokens.backend().token(kept_id).await.unwrap().unwrap().uses,
        3,
        "each use counted once: 1 stored, 2 since"
    );
    assert_eq!(tokens.backend().tokens(&TokenQuery::Revoked).await.unwrap().len(), 2);
}

fn now_ms(t: token_core::chrono::DateTime<Utc>) -> token_core::chrono::DateTime<Utc> {
    token_core::chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}
