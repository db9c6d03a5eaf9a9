//! Summarized auditing of allowed verifications: one entry per token, request and source per
//! interval with the count and the first and last time; denials stay entries of their own, at
//! once; nothing counted is lost on close, or while the log fails (fail-closed denies meanwhile).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use token_audit::chains::{ChainHead, verify};
use token_audit::summary::{MAX_SUMMARY_INTERVAL, VerificationSummary};
use token_audit::*;
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_core::digest::{DigestKey, DigestKeyring};
use token_core::lookup::InMemoryLookup;
use token_core::*;

type Flaky = token_audit::testing::Breakable<MemoryLog>;

struct Setup {
    store: InMemoryLookup,
    issuer: Issuer,
    tokens: Vec<(IssuedToken, TokenId)>,
}

fn setup(n: usize) -> Setup {
    let policy = Policy::builder()
        .role(Role::parse("reader", "kv:teams/a/**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new("tw").unwrap()),
        DigestKeyring::new(DigestKey::generate(1).unwrap()),
        policy,
    );
    let store = InMemoryLookup::new();
    let who = Principal::parse("billing", ["reader"]).unwrap();
    let tokens = (0..n)
        .map(|i| {
            let req =
                IssueRequest::parse(&format!("p{i}"), "kv:teams/a/**:read", TimeDelta::hours(1)).unwrap();
            let t = store.issue_at(&issuer, &who, &req, Utc::now()).unwrap();
            let id = issuer.format().parse(t.expose_secret()).unwrap().id();
            (t, id)
        })
        .collect();
    Setup { store, issuer, tokens }
}

fn attr_time(e: &AuditEvent, k: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&e.attrs[k]).unwrap().with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_verifications_are_counted_per_token_request_and_source_denials_stay_entries() {
    let s = setup(2);
    let storage = Arc::new(MemoryLog::new());
    let writer = Arc::new(AuditWriter::start(storage.clone(), WriterConfig::default()).unwrap());
    let auditor = Auditor::new(writer.clone(), FailureMode::FailClosed);
    // A long interval: only the explicit flush records.
    let summary = VerificationSummary::start(auditor.clone(), Duration::from_secs(60)).unwrap();
    let verifier = AuditedVerifier::new(
        Verifier::new(s.issuer.format().clone(), s.issuer.keys().clone(), &s.store),
        auditor,
    )
    .summarized(summary.clone());
    let reads = [Request::parse("kv:teams/a/x:read").unwrap(), Request::parse("kv:teams/a/y:read").unwrap()];
    let write = Request::parse("kv:teams/a/x:write").unwrap();
    let started = Utc::now();
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..3000usize {
        let (t, id) = &s.tokens[i % 2];
        let req = &reads[(i / 2) % 2];
        let source = ["10.0.0.1", "10.0.0.2", ""][i % 3];
        let source = (!source.is_empty()).then_some(source);
        assert!(verifier.verify_from(t.expose_secret(), req, source).is_allowed());
        *expected.entry((id.to_string(), req.to_string(), source.map(str::to_owned))).or_insert(0u64) += 1;
    }
    // Denials: each an entry, recorded without waiting for the summary.
    for _ in 0..5 {
        assert!(!verifier.verify(s.tokens[0].0.expose_secret(), &write).is_allowed());
    }
    writer.flush().await.unwrap();
    let denied = storage.query(&AuditQuery::new().action("verify_denied")).await.unwrap();
    assert_eq!(denied.len(), 5);
    assert!(storage.query(&AuditQuery::new().action("verify_allowed")).await.unwrap().is_empty());

    summary.flush().unwrap();
    writer.flush().await.unwrap();
    let allowed = storage.query(&AuditQuery::new().action("verify_allowed")).await.unwrap();
    assert_eq!(allowed.len(), expected.len(), "one entry per token, request and source");
    let mut seen = std::collections::BTreeMap::new();
    for e in &allowed {
        let ev = &e.event;
        assert_eq!(ev.actor, Actor::Principal("billing".into()));
        let key = (ev.token.unwrap().to_string(), ev.attrs["request"].clone(), ev.source.clone());
        seen.insert(key, ev.attrs["count"].parse::<u64>().unwrap());
        let (first, last) = (attr_time(ev, "first"), attr_time(ev, "last"));
        assert!(first <= last && first >= started - TimeDelta::seconds(1) && last <= Utc::now());
        assert_eq!(ev.time, last);
    }
    assert_eq!(seen, expected);
    assert_eq!(seen.values().sum::<u64>(), 3000);
    // Nothing pending: another flush records nothing.
    summary.flush().unwrap();
    writer.flush().await.unwrap();
    assert_eq!(
        storage.query(&AuditQuery::new().action("verify_allowed")).await.unwrap().len(),
        expected.len()
    );
    let entries = storage.entries();
    assert_eq!(verify(ChainHead::EMPTY, &entries).unwrap().len, entries.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interval_records_on_its_own_and_close_records_what_is_left() {
    let s = setup(1);
    let storage = Arc::new(MemoryLog::new());
    let writer = Arc::new(AuditWriter::start(storage.clone(), WriterConfig::default()).unwrap());
    let auditor = Auditor::new(writer.clone(), FailureMode::FailClosed);
    let summary = VerificationSummary::start(auditor.clone(), Duration::from_millis(50)).unwrap();
    assert_eq!(summary.interval(), Duration::from_millis(50));
    let verifier = AuditedVerifier::new(
        Verifier::new(s.issuer.format().clone(), s.issuer.keys().clone(), &s.store),
        auditor,
    )
    .summarized(summary.clone());
    let read = Request::parse("kv:teams/a/x:read").unwrap();
    let token = s.tokens[0].0.expose_secret();
    for _ in 0..10 {
        assert!(verifier.verify(token, &read).is_allowed());
    }
    let counted = |storage: Arc<MemoryLog>| async move {
        storage
            .query(&AuditQuery::new().action("verify_allowed"))
            .await
            .unwrap()
            .iter()
            .map(|e| e.event.attrs["count"].parse::<u64>().unwrap())
            .sum::<u64>()
    };
    let mut waited = 0;
    while counted(storage.clone()).await < 10 {
        waited += 1;
        assert!(waited < 500, "the interval never recorded");
        tokio::time::sleep(Duration::from_millis(10)).await;
        writer.flush().await.unwrap();
    }
    for _ in 0..7 {
        assert!(verifier.verify(token, &read).is_allowed());
    }
    summary.close().unwrap();
    writer.flush().await.unwrap();
    assert_eq!(counted(storage.clone()).await, 17, "close records the pending counts");
    // The intervals are bounded: a minute at most.
    let long = VerificationSummary::start(summary.auditor().clone(), Duration::from_secs(3600)).unwrap();
    assert_eq!(long.interval(), MAX_SUMMARY_INTERVAL);
    long.close().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_keeps_the_counts_and_fail_closed_denies_until_it_recovers() {
    let s = setup(1);
    let storage = Arc::new(Flaky::new(MemoryLog::new()));
    let writer = Arc::new(AuditWriter::start(storage.clone(), WriterConfig::per_entry()).unwrap());
    let auditor = Auditor::new(writer.clone(), FailureMode::FailClosed);
    let summary = VerificationSummary::start(auditor.clone(), Duration::from_secs(60)).unwrap();
    let verifier = AuditedVerifier::new(
        Verifier::new(s.issuer.format().clone(), s.issuer.keys().clone(), &s.store),
        auditor.clone(),
    )
    .summarized(summary.clone());
    let read = Request::parse("kv:teams/a/x:read").unwrap();
    let token = s.tokens[0].0.expose_secret();
    for _ in 0..4 {
        assert!(verifier.verify(token, &read).is_allowed());
    }
    storage.set_broken(true);
    // An event the writer cannot store: it starts refusing.
    assert!(auditor.emit_durable(AuditEvent::new(Utc::now(), Actor::System, Action::Issue)).await.is_err());
    assert!(summary.flush().is_err(), "the summary cannot be recorded");
    let decision = verifier.verify(token, &read);
    assert_eq!(decision.reason(), Some(&DenyReason::AuditUnavailable), "{decision:?}");

    storage.set_broken(false);
    let mut tries = 0;
    while summary.flush().is_err() {
        tries += 1;
        assert!(tries < 400, "never recovered");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(verifier.verify(token, &read).is_allowed());
    summary.close().unwrap();
    writer.flush().await.unwrap();
    let total: u64 = storage
        .inner()
        .query(&AuditQuery::new().action("verify_allowed"))
        .await
        .unwrap()
        .iter()
        .map(|e| e.event.attrs["count"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 5, "the four counted before the failure and the one after: none lost");
}

#[test]
fn counts_from_many_threads_while_flushes_run_all_arrive_exactly_once() {
    // Eight threads count at once (more threads than shards' worth of contention on two cores)
    // while the interval (1 ms) and explicit flushes take the tables away underneath them.
    let s = setup(64);
    let storage = Arc::new(MemoryLog::new());
    let writer = Arc::new(AuditWriter::start(storage.clone(), WriterConfig::default()).unwrap());
    let auditor = Auditor::new(writer.clone(), FailureMode::FailClosed);
    let summary = VerificationSummary::start(auditor.clone(), Duration::from_millis(1)).unwrap();
    let verifier = AuditedVerifier::new(
        Verifier::new(s.issuer.format().clone(), s.issuer.keys().clone(), &s.store),
        auditor,
    )
    .summarized(summary.clone());
    let reqs: Vec<Request> =
        (0..4).map(|i| Request::parse(&format!("kv:teams/a/r{i}:read")).unwrap()).collect();
    const THREADS: usize = 8;
    const EACH: usize = 5_000;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (verifier, reqs, tokens) = (&verifier, &reqs, &s.tokens);
            scope.spawn(move || {
                for i in 0..EACH {
                    let (tok, _) = &tokens[(i * 7 + t) % tokens.len()];
                    assert!(verifier.verify(tok.expose_secret(), &reqs[(i + t) % reqs.len()]).is_allowed());
                }
            });
        }
        let summary = &summary;
        scope.spawn(move || {
            for _ in 0..50 {
                summary.flush().unwrap();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
    });
    summary.close().unwrap();
    writer.flush_blocking().unwrap();
    let entries = block_on(storage.query(&AuditQuery::new().action("verify_allowed"))).unwrap();
    let total: u64 = entries.iter().map(|e| e.event.attrs["count"].parse::<u64>().unwrap()).sum();
    assert_eq!(total, (THREADS * EACH) as u64, "every allowed verification counted exactly once");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}
