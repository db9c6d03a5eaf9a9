//! Tokens with an audit log: every issue, verification and revocation is recorded; a planted token
//! and passphrase never reach the log, an error or a Debug; and fail-closed auditing withdraws an
//! issue it cannot record.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use token_audit::*;
use token_core::chrono::{TimeDelta, Utc};
use token_core::*;
use token_store::keys::{KdfParams, LocalKeyring};
use token_store::secrecy::SecretString;
use token_store::*;

const PASSPHRASE: &str = "planted passphrase: correct horse battery staple";

fn policy() -> Policy {
    Policy::builder()
        .role(Role::parse("reader", "s3:logs/**:read", TimeDelta::hours(2)).unwrap())
        .build()
        .unwrap()
}

async fn open(path: &std::path::Path, auditor: Auditor) -> TokenService {
    let backend = Arc::new(SqliteBackend::open(path).unwrap()) as Arc<dyn Backend>;
    let secrets = SecretStore::open_with_passphrase(
        Arc::clone(&backend),
        &SecretString::from(PASSPHRASE),
        Some(KdfParams::generate_with(256, 1, 1).unwrap()),
    )
    .await
    .unwrap();
    TokenService::open(backend, &secrets, TokenFormat::new(TokenPrefix::new("tw").unwrap()), policy(), 1000)
        .await
        .unwrap()
        .with_audit(auditor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_is_complete_and_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("audit.jsonl");
    let log = Arc::new(FileLog::open(&log_path).unwrap());
    let writer = Arc::new(AuditWriter::start(log.clone(), WriterConfig::default()).unwrap());
    let auditor = Auditor::new(writer.clone(), FailureMode::FailClosed);
    let tokens = open(&dir.path().join("t.db"), auditor.clone()).await;
    let who = Principal::parse("svc", ["reader"]).unwrap();
    let now = Utc::now();
    let token = tokens
        .issue_at(&who, &IssueRequest::parse("logs", "s3:logs/**:read", TimeDelta::hours(1)).unwrap(), now)
        .await
        .unwrap();
    let text = token.expose_secret().to_owned();
    let secret_part = text[text.len() - 49..text.len() - 6].to_owned();
    let child = tokens
        .issue_child_at(
            &text,
            &ChildRequest::parse("one", "s3:logs/a:read", TimeDelta::minutes(5)).unwrap(),
            now,
        )
        .await
        .unwrap();
    let v = tokens.audited_verifier().unwrap().with_subject_key(SubjectKey::generate().unwrap());
    let mut outputs = Vec::new();
    let read = Request::parse("s3:logs/a:read").unwrap();
    for presented in [
        text.clone(),
        child.expose_secret().to_owned(),
        format!("{}{}", &text[..text.len() - 1], if text.ends_with('x') { 'y' } else { 'x' }), // mistyped
        format!("{}{}", &text[..text.len() - 7], "AAAAAAA"),                                   // forged tail
        text.replace("tw_", "xx_"), // another issuer's prefix
        secret_part.clone(),        // the bare secret
    ] {
        let d = v.verify_from(&presented, &read, Some("192.0.2.7"));
        outputs.push(format!("{d} {d:?}"));
    }
    let revoked = tokens.revoke_at(token.id(), now).await.unwrap();
    assert_eq!(revoked.len(), 2);
    let d = v.verify(&text, &read);
    assert!(matches!(d.reason(), Some(DenyReason::Revoked { .. })));
    let head = writer.flush().await.unwrap();

    // The trail: issue, child issue, verifications, revocations, the denied retry.
    let trail = log.query(&AuditQuery::new().token(token.id())).await.unwrap();
    let names: Vec<_> = trail.iter().map(|e| e.event.action.name()).collect();
    assert_eq!(
        names,
        ["issue", "verify_allowed", "revoke", "verify_denied"],
        "trail: {:#?}",
        trail.iter().map(|e| e.event.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(trail[3].event.action.detail(), Some("revoked"));
    // The mistyped and forged presentations are kept by keyed hash only.
    let malformed = log.query(&AuditQuery::new().action("verify_denied")).await.unwrap();
    assert_eq!(malformed.iter().filter(|e| e.event.subject_hmac.is_some()).count(), 4);
    let child_trail = log.query(&AuditQuery::new().token(child.id())).await.unwrap();
    assert_eq!(child_trail[0].event.attrs["parent"], token.id().to_string());
    assert_eq!(log.query(&AuditQuery::new().action("revoke")).await.unwrap().len(), 2);
    assert_eq!(verify_file(&log_path, &[head]).unwrap(), head);

    // No secret anywhere: the log's bytes, the events' Debug and Display, errors, the handles' Debug.
    outputs.push(String::from_utf8(std::fs::read(&log_path).unwrap()).unwrap());
    for e in log.reader().unwrap() {
        let e = e.unwrap();
        outputs.push(format!("{e:?} {}", e.event));
    }
    outputs.push(format!("{tokens:?} {writer:?} {auditor:?} {v:?} {log:?}"));
    let unreadable = FileLog::open(&log_path).unwrap_err();
    outputs.push(format!("{unreadable} {unreadable:?}"));
    let all = outputs.join("\n");
    for (what, needle) in [
        ("token", text.as_str()),
        ("secret", secret_part.as_str()),
        ("child token", child.expose_secret()),
        ("passphrase", PASSPHRASE),
        ("mistyped token", &text[..text.len() - 1]),
    ] {
        assert!(!all.contains(needle), "the {what} appears in an output");
    }
}

type Flaky = token_audit::testing::Breakable<MemoryLog>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_withdraws_an_issue_it_cannot_record() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Flaky::new(MemoryLog::new()));
    let writer = Arc::new(AuditWriter::start(storage.clone(), WriterConfig::per_entry()).unwrap());
    let tokens = open(&dir.path().join("t.db"), Auditor::new(writer.clone(), FailureMode::FailClosed)).await;
    let who = Principal::parse("svc", ["reader"]).unwrap();
    let req = IssueRequest::parse("logs", "s3:logs/**:read", TimeDelta::hours(1)).unwrap();
    let now = Utc::now();

    storage.set_broken(true);
    let refused = tokens.issue_at(&who, &req, now).await;
    assert!(matches!(refused, Err(StoreError::Audit(_))), "{refused:?}");
    // The withdrawn token does not hold the purpose's one active slot.
    let active = tokens
        .backend()
        .tokens(&TokenQuery::Active { principal: who.id().clone(), purpose: req.purpose().clone(), at: now })
        .await
        .unwrap();
    assert!(active.is_empty());

    storage.set_broken(false);
    let mut issued = None;
    for _ in 0..200 {
        match tokens.issue_at(&who, &req, now).await {
            Ok(t) => {
                issued = Some(t);
                break;
            }
            Err(StoreError::Audit(_)) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            Err(e) => panic!("{e}"),
        }
    }
    let issued = issued.expect("issuing works again once the log does");
    writer.flush().await.unwrap();
    let issues = storage.inner().entries();
    assert!(issues.iter().any(|e| e.event.token == Some(issued.id()) && e.event.action == Action::Issue));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kek_rotation_is_recorded() {
    use token_store::secrecy::SecretBox;
    let backend = Arc::new(MemoryBackend::new()) as Arc<dyn Backend>;
    let k1 = || LocalKek::from_key("kek-1", SecretBox::new(Box::new([1u8; 32]))).unwrap();
    let k2 = || LocalKek::from_key("kek-2", SecretBox::new(Box::new([2u8; 32]))).unwrap();
    let store = SecretStore::open(backend.clone(), Arc::new(k1())).await.unwrap();
    let name = SecretName::new("svc/key").unwrap();
    for i in 0..3u8 {
        store.put(&name, &[i; 16]).await.unwrap();
    }
    let log = Arc::new(MemoryLog::new());
    let writer = Arc::new(AuditWriter::start(log.clone(), WriterConfig::default()).unwrap());
    let store = SecretStore::open(backend, Arc::new(LocalKeyring::new(k2()).with_older(k1())))
        .await
        .unwrap()
        .with_audit(Auditor::new(writer.clone(), FailureMode::FailClosed));
    // Three versions of the secret, and the store's own record and digest keys (sealed like any
    // secret, both made with the store).
    assert_eq!(store.rotate_kek(10).await.unwrap().rewrapped, 5);
    let entries = log.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].event.action, Action::KeyRotation);
    assert_eq!(entries[0].event.attrs["kek_id"], "kek-2");
    assert_eq!(entries[0].event.attrs["rewrapped"], "5");
}
