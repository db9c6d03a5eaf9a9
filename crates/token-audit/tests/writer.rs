//! The batched writer, failure modes, the audited verifier and signed checkpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use token_audit::chains::{ChainError, ChainHead, Entry, verify, verify_against};
use token_audit::checkpoints::{CheckpointError, CheckpointKey, SignedCheckpoint};
use token_audit::*;
use token_core::chrono::{TimeDelta, Utc};
use token_core::digest::{DigestKey, DigestKeyring};
use token_core::lookup::InMemoryLookup;
use token_core::*;

fn ev(i: usize) -> AuditEvent {
    AuditEvent::new(Utc::now(), Actor::System, Action::Issue).attr("n", i.to_string())
}

type Flaky = token_audit::testing::Breakable<MemoryLog>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_batches_and_chains_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(FileLog::open(dir.path().join("a.jsonl")).unwrap());
    let writer =
        AuditWriter::start(log.clone(), WriterConfig::group_commit(500, Duration::from_millis(20))).unwrap();
    let mut last = None;
    for i in 0..5000 {
        last = Some(writer.record(ev(i)).unwrap());
    }
    writer.committed(last.unwrap()).await.unwrap();
    let (committed, batches) = writer.stats();
    assert_eq!(committed, 5000);
    assert!(batches <= 5000 / 100, "{batches} batches for 5,000 events: not grouped");
    assert_eq!(log.verify(&[]).unwrap(), writer.head());
    assert_eq!(writer.head().len, 5000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_entry_mode_appends_each_event_alone() {
    let log = Arc::new(MemoryLog::new());
    let writer = AuditWriter::start(log.clone(), WriterConfig::per_entry()).unwrap();
    for i in 0..20 {
        let t = writer.record(ev(i)).unwrap();
        writer.committed(t).await.unwrap();
    }
    assert_eq!(writer.stats(), (20, 20));
    assert_eq!(verify(ChainHead::EMPTY, &log.entries()).unwrap().len, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_continues_an_existing_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    for round in 0..3 {
        let writer =
            AuditWriter::start(Arc::new(FileLog::open(&path).unwrap()), WriterConfig::default()).unwrap();
        for i in 0..10 {
            writer.record(ev(i)).unwrap();
        }
        assert_eq!(writer.flush().await.unwrap().len, 10 * (round + 1));
        writer.close().unwrap();
        assert!(matches!(writer.record(ev(0)), Err(AuditError::Unavailable(_))));
    }
    assert_eq!(verify_file(&path, &[]).unwrap().len, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_refuses_while_the_log_fails_and_recovers_after() {
    let storage = Arc::new(Flaky::new(MemoryLog::new()));
    let writer = Arc::new(AuditWriter::start(storage.clone(), WriterConfig::per_entry()).unwrap());
    let closed = Auditor::new(writer.clone(), FailureMode::FailClosed);
    let open = Auditor::new(writer.clone(), FailureMode::FailOpen);
    closed.emit_durable(ev(0)).await.unwrap();

    storage.set_broken(true);
    // The event in flight cannot be made durable: the operation waiting on it fails.
    assert!(matches!(closed.emit_durable(ev(1)).await, Err(AuditError::Unavailable(_))));
    // While the writer retries, new events are refused at once (fail closed, never stalled) ...
    assert!(matches!(closed.emit(ev(2)), Err(AuditError::Unavailable(_))));
    // ... or counted as lost (fail open).
    assert!(open.emit(ev(3)).unwrap().is_none());
    assert_eq!(open.dropped(), 1);

    storage.set_broken(false);
    // The retried batch lands, and the writer takes events again.
    let mut tries = 0;
    while closed.emit(ev(4)).is_err() {
        tries += 1;
        assert!(tries < 400, "the writer did not recover");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer.flush().await.unwrap();
    let entries = storage.inner().entries();
    assert_eq!(verify(ChainHead::EMPTY, &entries).unwrap().len, 3, "events 0, 1 (retried) and 4");
    assert_eq!(entries[1].event.attrs["n"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_log_refuses_after_the_wait_and_loses_nothing_queued() {
    let storage = Arc::new(Flaky::new(MemoryLog::new()));
    storage.set_stuck(true);
    let wait = Duration::from_millis(300);
    let writer = AuditWriter::start(
        storage.clone(),
        WriterConfig::group_commit(10, Duration::ZERO).queue_capacity(100).full_queue_wait(wait),
    )
    .unwrap();
    // The writer takes a batch (it hangs in the append), then the queue fills behind it.
    let mut queued = 0;
    let started = std::time::Instant::now();
    let refused = loop {
        match writer.record(ev(queued)) {
            Ok(_) => queued += 1,
            Err(e) => break e,
        }
        assert!(queued <= 110, "a stuck log kept taking events");
    };
    assert!(matches!(refused, AuditError::QueueFull { capacity: 100 }), "{refused}");
    let waited = started.elapsed();
    assert!(waited >= wait, "refused after {waited:?}, before the {wait:?} wait");
    assert!(queued >= 100, "{queued} queued");
    storage.set_stuck(false);
    writer.close().unwrap();
    assert_eq!(storage.inner().entries().len(), queued, "closing writes everything queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_healthy_log_slows_emitters_down_and_refuses_none() {
    // A file log with fsync, the default config, two threads emitting as fast as they can for a
    // bounded time: every event is taken (backpressure), none refused, batches within the bound.
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(FileLog::open(dir.path().join("busy.jsonl")).unwrap());
    let writer = Arc::new(AuditWriter::start(log.clone(), WriterConfig::default()).unwrap());
    let auditor = Auditor::new(writer.clone(), FailureMode::FailClosed);
    // Bounded in count (twice the queue's capacity per thread, so the queue must fill) and in time.
    let until = std::time::Instant::now() + Duration::from_secs(20);
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let auditor = auditor.clone();
            std::thread::spawn(move || {
                let (mut ok, mut refused) = (0u64, 0u64);
                while std::time::Instant::now() < until && ok < 2 * 65_536 {
                    match auditor.emit(ev(t)) {
                        Ok(_) => ok += 1,
                        Err(_) => refused += 1,
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    let (mut ok, mut refused) = (0, 0);
    for t in threads {
        let (o, r) = t.join().unwrap();
        ok += o;
        refused += r;
    }
    assert_eq!(refused, 0, "{refused} of {} refused by a healthy log", ok + refused);
    assert_eq!(ok, 4 * 65_536, "every event taken within the time bound");
    writer.flush().await.unwrap();
    let (committed, batches) = writer.stats();
    assert_eq!(committed, ok);
    assert!(committed.div_ceil(batches) <= 1000, "{committed} events in {batches} batches: over 1,000 each");
    assert_eq!(log.verify(&[]).unwrap().len, ok);
}

fn tokens() -> (InMemoryLookup, Issuer, Principal) {
    let policy = Policy::builder()
        .role(Role::parse("reader", "kv:teams/a/**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new("tw").unwrap()),
        DigestKeyring::new(DigestKey::generate(1).unwrap()),
        policy,
    );
    (InMemoryLookup::new(), issuer, Principal::parse("billing", ["reader"]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audited_verifier_records_every_decision_and_fails_closed() {
    let (store, issuer, who) = tokens();
    let token = store
        .issue_at(
            &issuer,
            &who,
            &IssueRequest::parse("reports", "kv:teams/a/**:read", TimeDelta::hours(1)).unwrap(),
            Utc::now(),
        )
        .unwrap();
    let id = issuer.format().parse(token.expose_secret()).unwrap().id();
    let storage = Arc::new(Flaky::new(MemoryLog::new()));
    let writer = Arc::new(AuditWriter::start(storage.clone(), WriterConfig::per_entry()).unwrap());
    let subjects = SubjectKey::generate().unwrap();
    let verifier = AuditedVerifier::new(
        Verifier::new(issuer.format().clone(), issuer.keys().clone(), &store),
        Auditor::new(writer.clone(), FailureMode::FailClosed),
    )
    .with_subject_key(subjects.clone());
    let read = Request::parse("kv:teams/a/x:read").unwrap();
    let write = Request::parse("kv:teams/a/x:write").unwrap();
    assert!(verifier.verify_from(token.expose_secret(), &read, Some("10.1.2.3")).is_allowed());
    assert!(!verifier.verify(token.expose_secret(), &write).is_allowed());
    let typo = "tw_not-a-token";
    assert!(!verifier.verify(typo, &read).is_allowed());
    writer.flush().await.unwrap();

    let trail = storage.inner().query(&AuditQuery::new().token(id)).await.unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].event.action, Action::VerifyAllowed);
    assert_eq!(trail[0].event.actor, Actor::Principal("billing".into()));
    assert_eq!(trail[0].event.source.as_deref(), Some("10.1.2.3"));
    assert_eq!(trail[0].event.attrs["request"], "kv:teams/a/x:read");
    assert_eq!(trail[1].event.action, Action::VerifyDenied("out_of_scope".into()));
    let malformed = storage.inner().query(&AuditQuery::new().action("verify_denied")).await.unwrap();
    assert_eq!(malformed[1].event.token, None);
    assert_eq!(malformed[1].event.subject_hmac, Some(subjects.hash(typo.as_bytes())));

    // The log fails: an allowed token is now denied, because its use cannot be recorded.
    storage.set_broken(true);
    let _ = verifier.verify(token.expose_secret(), &read); // the event that discovers the failure
    let mut denied = false;
    for _ in 0..200 {
        if verifier.verify(token.expose_secret(), &read).reason() == Some(&DenyReason::AuditUnavailable) {
            denied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(denied, "fail-closed verification must deny while the log fails");
    storage.set_broken(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_checkpoints_catch_truncation_rollback_and_forgery() {
    let log = Arc::new(MemoryLog::new());
    let writer = Arc::new(AuditWriter::start(log.clone(), WriterConfig::default()).unwrap());
    let signer = Arc::new(CheckpointSigner::generate().unwrap());
    let trusted: CheckpointKey = signer.public_key().to_string().parse().unwrap();
    for i in 0..10 {
        writer.record(ev(i)).unwrap();
    }
    let cp = writer.checkpoint(&signer, "svc-audit", Utc::now()).await.unwrap();
    // Exported as JSON and read back elsewhere.
    let exported = serde_json::to_string(&cp).unwrap();
    let imported: SignedCheckpoint = serde_json::from_str(&exported).unwrap();
    let pinned = trusted.verify_for(&imported, "svc-audit").unwrap().chain_head();
    assert_eq!(pinned.len, 10);
    for i in 10..15 {
        writer.record(ev(i)).unwrap();
    }
    writer.flush().await.unwrap();
    let entries = log.entries();
    assert!(verify_against(&entries, &pinned).is_ok());
    // Truncated below the checkpoint.
    assert!(matches!(
        verify_against(&entries[..9], &pinned),
        Err(ChainError::Truncated { expected: 10, found: 9 })
    ));
    // Rolled back to 8 entries and rewritten to 15: a valid chain, but not the one checkpointed.
    let mut forged = ChainHead::EMPTY;
    let rewritten: Vec<Entry> = (0..15).map(|i| forged.append(ev(i + 1000))).collect();
    assert!(verify(ChainHead::EMPTY, &rewritten).is_ok());
    assert!(matches!(verify_against(&rewritten, &pinned), Err(ChainError::CheckpointMismatch { seq: 9 })));

    // A checkpoint edited, signed by another key, or for another log is refused.
    let mut edited = imported.clone();
    edited.checkpoint.len = 9;
    assert_eq!(trusted.verify(&edited), Err(CheckpointError::BadSignature));
    let other = CheckpointSigner::generate().unwrap();
    let foreign = other.sign("svc-audit", pinned, Utc::now());
    assert!(matches!(trusted.verify(&foreign), Err(CheckpointError::UntrustedKey { .. })));
    let mut relabelled = foreign.clone();
    relabelled.key = trusted;
    assert_eq!(trusted.verify(&relabelled), Err(CheckpointError::BadSignature));
    assert!(matches!(trusted.verify_for(&imported, "other-log"), Err(CheckpointError::WrongLog { .. })));
    assert!(!format!("{signer:?}").contains(&hex(&signer.to_seed())), "Debug shows only the public key");

    // Periodic checkpoints, exported as the log grows.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task =
        writer.spawn_checkpoints(signer.clone(), "svc-audit".into(), Duration::from_millis(20), move |c| {
            let _ = tx.send(c);
        });
    let first = rx.recv().await.unwrap();
    assert_eq!(trusted.verify(&first).unwrap().len, 15);
    writer.record(ev(99)).unwrap();
    writer.flush().await.unwrap();
    let second = rx.recv().await.unwrap();
    assert_eq!(trusted.verify(&second).unwrap().len, 16);
    task.abort();
}

fn hex(seed: &secrecy::SecretBox<[u8; 32]>) -> String {
    use secrecy::ExposeSecret;
    seed.expose_secret().iter().map(|b| format!("{b:02x}")).collect()
}
