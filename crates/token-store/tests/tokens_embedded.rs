//! Tokens on the embedded store: issue, verify through the cache, revoke durably, reopen.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use token_core::chrono::{TimeDelta, Utc};
use token_core::errors::PolicyViolation;
use token_core::*;
use token_store::keys::KdfParams;
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

/// Another instance's announcements, written by the test: any backend's [`RevocationFeed`].
#[derive(Debug)]
struct Announced(tokio::sync::mpsc::UnboundedReceiver<Change>);

#[async_trait::async_trait]
impl RevocationFeed for Announced {
    async fn recv_change(&mut self) -> Option<Change> {
        self.0.recv().await
    }
}

#[tokio::test]
async fn a_revocation_feed_is_any_backends_and_a_backend_that_cannot_follow_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let sqlite = SqliteBackend::open(&path).unwrap();
    assert!(matches!(sqlite.listen_revocations().await, Err(StoreError::NoRevocationFeed)));
    drop(sqlite);
    let a = open(&path).await;
    let b = open(&path).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let following = b.follow_revocations(Box::new(Announced(rx)));
    let principal = Principal::parse("svc", ["reader"]).unwrap();
    let read = Request::parse("s3:logs/x:read").unwrap();
    let issue = async |purpose: &'static str| {
        let request = IssueRequest::parse(purpose, "s3:logs/x:read", TimeDelta::hours(1)).unwrap();
        a.issue_at(&principal, &request, Utc::now()).await
    };
    let vb = b.verifier();
    let settle = async |t: &IssuedToken, allowed: bool| {
        for _ in 0..500 {
            if vb.verify(t.expose_secret(), &read).is_allowed() == allowed {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        panic!("instance B never applied the change");
    };

    // Issued elsewhere: loaded when announced. Revoked elsewhere: denied when announced.
    let t = issue("one").await.unwrap();
    assert!(!vb.verify(t.expose_secret(), &read).is_allowed(), "not yet announced");
    tx.send(Change::Issued(t.id())).unwrap();
    settle(&t, true).await;
    a.revoke_at(t.id(), Utc::now()).await.unwrap();
    tx.send(Change::Revoked(t.id(), Utc::now())).unwrap();
    settle(&t, false).await;

    // A record edited outside Tokenward (its scope widened), then announced: refused, counted.
    let edited = issue("two").await.unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut body: Vec<u8> = conn
        .query_row("SELECT body FROM tokens WHERE id = ?1", [edited.id().to_string()], |r| r.get(0))
        .unwrap();
    let at = body.windows(14).position(|w| w == b"s3:logs/x:read").expect("the scope is in the record");
    body[at..at + 14].copy_from_slice(b"s3:logs/*:read");
    conn.execute(
        "UPDATE tokens SET body = ?2 WHERE id = ?1",
        rusqlite::params![edited.id().to_string(), body],
    )
    .unwrap();
    tx.send(Change::Issued(edited.id())).unwrap();
    drop(tx);
    let done = following.await.unwrap();
    assert_eq!((done.revocations, done.loaded, done.refused, done.unreadable), (1, 1, 1, 0));
    assert_eq!(b.refused_records(), 1, "a count the caller can watch");
    assert!(!vb.verify(edited.expose_secret(), &read).is_allowed());
}
