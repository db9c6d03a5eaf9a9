//! The front door as a user meets it: one builder, one handle; audit attached once and reaching
//! every place that records; upkeep; shutdown. Stored records that cannot be edited into more
//! power: a row edited in the database file is refused, a row rolled back is caught by the audit
//! log, and every column of every table tampered with boundary values gives a typed error or a
//! working store — never a panic, on any thread. Planted secrets never reach tracing output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokenward::audit::{FileLog, LogStorage, Query};
use tokenward::core::chrono::TimeDelta;
use tokenward::core::{DenyReason, IssueRequest, Policy, Principal, Request, Role};
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward::store::{SecretName, StoreError};
use tokenward::{EmergencyOrder, FailureMode, Tokenward, TokenwardBuilder, Upkeep};

fn policy() -> Policy {
    Policy::builder().role(Role::parse("r", "kv:app/**:read", TimeDelta::hours(2)).unwrap()).build().unwrap()
}

fn builder(dir: &Path) -> TokenwardBuilder {
    Tokenward::embedded(dir.join("tw.db"))
        .passphrase(SecretString::from("front door test passphrase"))
        .prefix("fd")
        .policy(policy())
        .audit_file(dir.join("audit.jsonl"), FailureMode::FailClosed)
        .overlap(TimeDelta::milliseconds(100))
        .upkeep(Upkeep::new().sweep_every(Duration::from_millis(10)))
}

fn principal() -> Principal {
    Principal::parse("billing", ["r"]).unwrap()
}

fn request(purpose: &str) -> IssueRequest {
    IssueRequest::parse(purpose, "kv:app/x:read", TimeDelta::hours(1)).unwrap()
}

fn read() -> Request {
    Request::parse("kv:app/x:read").unwrap()
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("tw.db")).unwrap()
}

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
    let all = log.query(&Query::new()).await.unwrap();
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
    let backup: (String, Vec<u8>) = db(dir.path())
        .query_row("SELECT record, mac FROM tokens WHERE id = ?1", [rolled.id().to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    tw.revoke(revived.id()).await.unwrap();
    tw.revoke(rolled.id()).await.unwrap();
    tw.shutdown().await.unwrap();
    drop(tw);

    let conn = db(dir.path());
    // Widen a token's scope, un-revoke another by hand, and restore the third from its backup.
    conn.execute(
        "UPDATE tokens SET record = replace(record, 'kv:app/x:read', 'kv:**:*') WHERE id = ?1",
        [wide.id().to_string()],
    )
    .unwrap();
    conn.execute(
        "UPDATE tokens SET revoked_ms = NULL, record = json_set(record, '$.revoked_at', NULL) WHERE id = ?1",
        [revived.id().to_string()],
    )
    .unwrap();
    conn.execute(
        "UPDATE tokens SET revoked_ms = NULL, record = ?2, mac = ?3 WHERE id = ?1",
        rusqlite::params![rolled.id().to_string(), backup.0, backup.1],
    )
    .unwrap();
    drop(conn);

    let tw = builder(dir.path()).open().await.unwrap();
    let refused = &tw.tokens().opened().refused;
    assert!(refused.contains(&wide.id()) && refused.contains(&revived.id()), "{refused:?}");
    assert!(!refused.contains(&rolled.id()), "a rolled-back row is validly tagged");
    let v = tw.verifier();
    let d = v.verify(wide.expose_secret(), &Request::parse("kv:other/secret:write").unwrap());
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

/// A writer that keeps what tracing prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn planted_secrets_never_reach_tracing_output() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let planted: Vec<String> = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let tw = builder(dir.path()).open().await.unwrap();
            let token = tw.issue(&principal(), &request("p")).await.unwrap();
            let typo = format!("{}x", &token.expose_secret()[..token.expose_secret().len() - 1]);
            let _ = tw.verifier().verify(&typo, &read());
            let name = SecretName::new("svc/rot").unwrap();
            let target = tw.token_target(principal(), request("rot"));
            let _ = tw.rotate(&name, target.clone()).await.unwrap();
            let first =
                tw.current_credential(&name).await.unwrap().unwrap().secret.expose_secret().to_owned();
            tw.revoke_and_replace(&name, target.clone(), EmergencyOrder::RevokeFirst).await.unwrap();
            let second =
                tw.current_credential(&name).await.unwrap().unwrap().secret.expose_secret().to_owned();
            tw.seal_current(&SecretName::new("svc/cloud").unwrap(), b"AKIAPLANTEDCLOUDKEY0").await.unwrap();
            tw.revoke(token.id()).await.unwrap();
            // A wrong passphrase, and an open that fails, print errors too.
            let _ = Tokenward::embedded(dir.path().join("tw.db"))
                .passphrase(SecretString::from("wrong planted passphrase"))
                .policy(policy())
                .open()
                .await;
            tw.shutdown().await.unwrap();
            vec![
                token.expose_secret().to_owned(),
                typo,
                first,
                second,
                "AKIAPLANTEDCLOUDKEY0".into(),
                "front door test passphrase".into(),
                "wrong planted passphrase".into(),
            ]
        })
    });
    let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("issued") && out.contains("rotation step"), "tracing saw the operations:\n{out}");
    for p in &planted {
        assert!(!out.contains(p.as_str()), "a planted secret reached tracing output");
        // Nor the token's secret part alone.
        if p.len() > 49 && p.is_ascii() {
            assert!(!out.contains(&p[p.len() - 49..p.len() - 6]));
        }
    }
}
