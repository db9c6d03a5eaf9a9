//! The front door as a user meets it: one builder, one handle; audit attached once and reaching
//! every place that records; upkeep; shutdown. Stored records that cannot be edited into more
//! power: a row edited in the database file is refused, a row rolled back is caught by the audit
//! log (the column-by-column tampering is `tamper_columns.rs`; tracing output, `tracing_secrets.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::time::Duration;

use tokenward::audit::{AuditQuery, FileLog, LogStorage};
use tokenward::core::{DenyReason, Request, TokenId};

use tokenward::store::backend::{RecordDecoder, encode_token_record};
use tokenward::store::{SecretName, StoreError};
use tokenward::{EmergencyOrder, FailureMode, Tokenward, Upkeep};

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_handle_audits_every_place_and_runs_the_upkeep() {
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let token = tw.issue(&principal(), &request("a")).await.unwrap();
    assert!(tw.verifier().is_audited());
    assert!(tw.verifier().verify(token.expose_secret(), &read()).is_allowed());
    let name = SecretName::new("billing/a").unwrap();
    let target = tw.token_target(principal(), request("rotated"));
    let idle = async || {
        // The upkeep revokes the previous token when the overlap ends.
        for _ in 0..200 {
            if tw.rotator().record(&name).await.unwrap().step == tokenward::rotate::Step::Idle {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    };
    for _ in 0..2 {
        let r = tw.rotate(&name, target.clone()).await.unwrap();
        assert!(matches!(r, tokenward::rotate::Rotation::Promoted { .. }), "{r:?}");
        assert!(idle().await, "the upkeep revoked the previous credential after its overlap");
    }
    let leaked = tw.current_credential(&name).await.unwrap().unwrap();
    let report = tw.revoke_and_replace(&name, target.clone(), EmergencyOrder::ReplaceFirst).await.unwrap();
    assert_eq!(
        (report.order, report.revoked.as_str()),
        (EmergencyOrder::ReplaceFirst, leaked.handle.as_str())
    );
    let v =
        tw.seal_current(&SecretName::new("billing/cloud-key").unwrap(), b"AKIA-front-door").await.unwrap();
    assert_eq!(v, 1);
    tw.secrets().rotate_kek(100).await.unwrap();
    tw.revoke(token.id()).await.unwrap();
    tw.shutdown().await.unwrap();
    tw.shutdown().await.unwrap(); // idempotent

    let log = FileLog::open(dir.path().join("audit.jsonl")).unwrap();
    let all = log.query(&AuditQuery::new()).await.unwrap();
    let actions: Vec<String> = all.iter().map(|e| e.event.action.name().to_owned()).collect();
    for want in ["issue", "verify_allowed", "rotate", "revoke", "key_rotation"] {
        assert!(actions.iter().any(|a| a == want), "{want} is audited: {actions:?}");
    }
    let steps: Vec<String> = all
        .iter()
        .filter_map(|e| match &e.event.action {
            tokenward::audit::Action::Rotate(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    for want in ["create", "deploy", "test", "promote", "revoke_previous", "emergency", "emergency_revoke"] {
        assert!(steps.iter().any(|s| s == want), "rotation step {want} is audited: {steps:?}");
    }
    let declared = steps.iter().filter(|s| *s == "emergency").count();
    assert_eq!(declared, 1, "one call, one emergency (the upkeep races it, never doubles it): {steps:?}");
    log.verify(&[]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_row_is_refused_and_a_rolled_back_row_is_revoked_again() {
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let wide = tw.issue(&principal(), &request("wide")).await.unwrap();
    let revived = tw.issue(&principal(), &request("revived")).await.unwrap();
    let rolled = tw.issue(&principal(), &request("rolled")).await.unwrap();
    let backup: (Vec<u8>, Vec<u8>) = db(dir.path())
        .query_row("SELECT body, mac FROM tokens WHERE id = ?1", [rolled.id().to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    tw.revoke(revived.id()).await.unwrap();
    tw.revoke(rolled.id()).await.unwrap();
    tw.shutdown().await.unwrap();
    drop(tw);

    let conn = db(dir.path());
    // Widen a token's scope, un-revoke another by hand, and restore the third from its backup.
    let body = |id: TokenId| -> Vec<u8> {
        conn.query_row("SELECT body FROM tokens WHERE id = ?1", [id.to_string()], |r| r.get(0)).unwrap()
    };
    let mut widened = body(wide.id());
    let at = widened.windows(13).position(|w| w == b"kv:app/x:read").expect("the scope is in the record");
    widened[at..at + 13].copy_from_slice(b"kv:app/*:read");
    conn.execute(
        "UPDATE tokens SET body = ?2 WHERE id = ?1",
        rusqlite::params![wide.id().to_string(), widened],
    )
    .unwrap();
    let mut unrevoked = RecordDecoder::new().decode(&body(revived.id())).unwrap();
    unrevoked.revoked_at = None;
    conn.execute(
        "UPDATE tokens SET revoked_ms = NULL, body = ?2 WHERE id = ?1",
        rusqlite::params![revived.id().to_string(), encode_token_record(&unrevoked)],
    )
    .unwrap();
    conn.execute(
        "UPDATE tokens SET revoked_ms = NULL, body = ?2, mac = ?3 WHERE id = ?1",
        rusqlite::params![rolled.id().to_string(), backup.0, backup.1],
    )
    .unwrap();
    drop(conn);

    let tw = builder(dir.path()).open().await.unwrap();
    let refused = &tw.tokens().opened().refused;
    assert!(refused.contains(&wide.id()) && refused.contains(&revived.id()), "{refused:?}");
    assert!(!refused.contains(&rolled.id()), "a rolled-back row is validly tagged");
    let v = tw.verifier();
    let d = v.verify(wide.expose_secret(), &Request::parse("kv:app/other:read").unwrap());
    assert!(!d.is_allowed(), "the widened token gained nothing: {d}");
    assert!(!v.verify(wide.expose_secret(), &read()).is_allowed(), "the edited record is not used at all");
    assert!(!v.verify(revived.expose_secret(), &read()).is_allowed(), "un-revoking by hand does not work");
    let d = v.verify(rolled.expose_secret(), &read());
    assert!(matches!(d.reason(), Some(DenyReason::Revoked { .. })), "the audit log revoked it again: {d}");
    match tw.tokens().token(wide.id()).await {
        Err(StoreError::Corrupted { id: Some(id), .. }) => assert_eq!(id, wide.id().to_string()),
        other => panic!("an edited record reads as corrupted, naming it: {other:?}"),
    }
    let again = tw.reconcile_revocations().await.unwrap();
    assert!(again.revived.is_empty(), "the reconciliation at open already fixed it");
    tw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summarized_verification_audit_counts_allowed_and_shutdown_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path())
        .verify_audit(tokenward::VerifyAuditMode::Summarized { interval: Duration::from_secs(60) })
        .open()
        .await
        .unwrap();
    let token = tw.issue(&principal(), &request("a")).await.unwrap();
    let v = tw.verifier();
    for i in 0..250 {
        let source = if i % 2 == 0 { "10.0.0.1" } else { "10.0.0.2" };
        assert!(v.verify_from(token.expose_secret(), &read(), Some(source)).is_allowed());
    }
    let denied = Request::parse("kv:app/x:write").unwrap();
    assert!(!v.verify(token.expose_secret(), &denied).is_allowed());
    let id = token.id();
    tw.shutdown().await.unwrap();

    let log = FileLog::open(dir.path().join("audit.jsonl")).unwrap();
    let trail = log.query(&AuditQuery::new().token(id)).await.unwrap();
    let allowed: Vec<_> = trail.iter().filter(|e| e.event.action.name() == "verify_allowed").collect();
    assert_eq!(allowed.len(), 2, "one entry per source, recorded at shutdown: {allowed:?}");
    let counts: u64 = allowed.iter().map(|e| e.event.attrs["count"].parse::<u64>().unwrap()).sum();
    assert_eq!(counts, 250);
    assert_eq!(trail.iter().filter(|e| e.event.action.name() == "verify_denied").count(), 1);
    log.verify(&[]).unwrap();
}

/// The periodic backstop between full resyncs: another instance on the same store issues and
/// revokes, nothing announces it (the embedded store has no notices), and this handle's catch-up
/// (every 100 ms here; full resyncs an hour apart) loads the new token and denies it once revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_catch_up_loads_new_tokens_and_applies_revocations_between_full_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    let upkeep = Upkeep::new()
        .sweep_every(Duration::from_millis(10))
        .resync_every(Duration::from_millis(100))
        .full_resync_every(Duration::from_secs(3600));
    let here = builder(dir.path()).upkeep(upkeep).open().await.unwrap();
    let there = builder(dir.path())
        .audit_file(dir.path().join("audit-there.jsonl"), FailureMode::FailClosed)
        .open()
        .await
        .unwrap();
    let token = there.issue(&principal(), &request("elsewhere")).await.unwrap();
    let allowed = |tw: &Tokenward| tw.verifier().verify(token.expose_secret(), &read()).is_allowed();
    let within = async |want: bool| {
        for _ in 0..300 {
            if allowed(&here) == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    };
    assert!(within(true).await, "a token issued by another instance is loaded by the catch-up");
    there.revoke(token.id()).await.unwrap();
    assert!(!allowed(&there));
    assert!(within(false).await, "a revocation by another instance is applied by the catch-up");
    here.shutdown().await.unwrap();
    there.shutdown().await.unwrap();
}

/// A backend handed in with `with_backend` is followed like one the builder connects itself:
/// a PostgreSQL backend announces other instances' issues and revocations, and a handle over it
/// applies them within moments, not at the next periodic catch-up (a minute away).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_handed_in_is_followed_when_it_announces_changes() {
    use std::sync::Arc;
    use tokenward::store::{Backend, PostgresBackend};
    let Some(schema) = tokenward_test_support::FreshSchema::create("fd_follow") else { return };
    let key = || {
        let kek = tokenward::store::LocalKek::from_key("kek", Box::new([3u8; 32]).into()).unwrap();
        Arc::new(kek) as Arc<dyn tokenward::store::KeyProvider>
    };
    let other = Tokenward::postgres(schema.url())
        .key_provider(key())
        .prefix("fd")
        .policy(policy())
        .open()
        .await
        .unwrap();
    let handed: Arc<dyn Backend> = Arc::new(PostgresBackend::connect(schema.url(), 4).await.unwrap());
    let tw = Tokenward::with_backend(handed)
        .key_provider(key())
        .prefix("fd")
        .policy(policy())
        .open()
        .await
        .unwrap();

    let token = other.issue(&principal(), &request("followed")).await.unwrap();
    let until = |want: fn(&tokenward::core::Decision) -> bool| {
        let v = tw.verifier();
        let text = token.expose_secret().to_owned();
        async move {
            for _ in 0..500 {
                if want(&v.verify(&text, &read())) {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            false
        }
    };
    assert!(until(|d| d.is_allowed()).await, "an issue announced elsewhere is loaded");
    other.revoke(token.id()).await.unwrap();
    assert!(
        until(|d| matches!(d.reason(), Some(DenyReason::Revoked { .. }))).await,
        "a revocation announced elsewhere is applied"
    );
    tw.shutdown().await.unwrap();
    other.shutdown().await.unwrap();
}
