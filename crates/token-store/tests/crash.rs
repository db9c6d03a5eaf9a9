//! Crash safety of the embedded store: a child process writes, rotates and revokes in a loop and is
//! killed with SIGKILL at random moments, many times. After each kill the file opens, every
//! acknowledged write is there, and no rotation is half-applied.

#![cfg(all(feature = "sqlite", unix))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::sync::Arc;

use tokenward_test_support::kill_child_at_random;

use token_core::chrono::{TimeDelta, Utc};
use token_core::lookup::ParsedToken;
use token_core::*;
use token_store::secrecy::{ExposeSecret, SecretBox};
use token_store::*;

const CHILD_ENV: &str = "TOKENWARD_CRASH_CHILD_DB";
const SECRET: &str = "crash/rotating-key";

fn kek() -> Arc<dyn KeyProvider> {
    Arc::new(LocalKek::from_key("crash-kek", SecretBox::new(Box::new([42u8; 32]))).unwrap())
}

fn policy() -> Policy {
    Policy::builder()
        .role(Role::parse("w", "svc:data/**:write", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap()
}

async fn open(path: &std::path::Path) -> (TokenService, SecretStore) {
    let b = Arc::new(SqliteBackend::open(path).unwrap()) as Arc<dyn Backend>;
    let secrets = SecretStore::open(Arc::clone(&b), kek()).await.unwrap();
    let tokens = TokenService::open(
        b,
        &secrets,
        TokenFormat::new(TokenPrefix::new("crash").unwrap()),
        policy(),
        1_000_000,
    )
    .await
    .unwrap();
    (tokens, secrets)
}

/// The child: runs only when the parent sets the environment variable.
#[tokio::test]
async fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let (tokens, secrets) = open(std::path::Path::new(&path)).await;
    let name = SecretName::new(SECRET).unwrap();
    let principal = Principal::parse("writer", ["w"]).unwrap();
    let mut out = std::io::stdout().lock();
    // The test harness prints its own words on the first line; start ours on a fresh one.
    writeln!(out, "\nREADY").unwrap();
    out.flush().unwrap();
    for i in 0u64.. {
        // A rotation: new version → pending → promote (current→previous, pending→current) in one CAS.
        let v = secrets
            .put(
                &name,
                format!("value-{}", secrets.backend().latest_version(&name).await.unwrap().unwrap_or(0) + 1)
                    .as_bytes(),
            )
            .await
            .unwrap();
        writeln!(out, "ACK put {v}").unwrap();
        out.flush().unwrap();
        let labels = secrets.labels(&name).await.unwrap();
        let current = labels.get(&Label::Current).copied();
        let previous = labels.get(&Label::Previous).copied();
        secrets
            .update_labels(
                &name,
                &[LabelChange {
                    label: Label::Pending,
                    expect: labels.get(&Label::Pending).copied(),
                    set: Some(v),
                }],
            )
            .await
            .unwrap();
        let promote = [
            LabelChange { label: Label::Current, expect: current, set: Some(v) },
            LabelChange { label: Label::Previous, expect: previous, set: current.or(Some(v)) },
            LabelChange { label: Label::Pending, expect: Some(v), set: None },
        ];
        secrets.update_labels(&name, &promote).await.unwrap();
        writeln!(out, "ACK promote {v}").unwrap();
        out.flush().unwrap();
        // An issue, and every third iteration a revocation.
        let req = IssueRequest::parse(
            &format!("p{}-{i}", std::process::id()),
            "svc:data/x:write",
            TimeDelta::hours(1),
        )
        .unwrap();
        let t = tokens.issue_at(&principal, &req, Utc::now()).await.unwrap();
        writeln!(out, "ACK token {}", t.expose_secret()).unwrap();
        out.flush().unwrap();
        if i % 3 == 2 {
            tokens.revoke_at(t.id(), Utc::now()).await.unwrap();
            writeln!(out, "ACK revoke {}", t.id()).unwrap();
            out.flush().unwrap();
        }
    }
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let kills = 25;
    let (mut puts, mut promotes, mut tokens_acked, mut revokes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..kills {
        for line in kill_child_at_random("crash_child", &[(CHILD_ENV, path.as_os_str())], 150, 400) {
            let mut parts = line.splitn(2, ' ');
            let (kind, arg) = (parts.next().unwrap(), parts.next().unwrap().to_owned());
            match kind {
                "put" => puts.push(arg.parse::<u64>().unwrap()),
                "promote" => promotes.push(arg.parse::<u64>().unwrap()),
                "token" => tokens_acked.push(arg),
                "revoke" => revokes.push(arg),
                _ => panic!("unexpected line {line}"),
            }
        }
        check(&path, &puts, &promotes, &tokens_acked, &revokes).await;
        eprintln!(
            "round {round}: {} puts, {} promotions, {} tokens, {} revocations acknowledged so far",
            puts.len(),
            promotes.len(),
            tokens_acked.len(),
            revokes.len()
        );
    }
    assert!(promotes.len() >= kills, "the child made progress between kills");
    assert!(puts.len() >= promotes.len(), "every promotion follows an acknowledged put");
    assert!(!revokes.is_empty());
}

async fn check(
    path: &std::path::Path,
    puts: &[u64],
    promotes: &[u64],
    tokens: &[String],
    revokes: &[String],
) {
    let (svc, secrets) = open(path).await;
    let name = SecretName::new(SECRET).unwrap();
    for v in puts {
        let got = secrets
            .get(&name, *v)
            .await
            .unwrap_or_else(|e| panic!("acknowledged version {v} unreadable: {e}"));
        assert_eq!(got.expose_secret().as_slice(), format!("value-{v}").as_bytes());
    }
    // Never half-rotated: current is the newest promoted or a later one, and opens; a pending
    // version, if any, is newer than current; previous is older than current.
    let labels = secrets.labels(&name).await.unwrap();
    if let Some(&last) = promotes.last() {
        let current = *labels.get(&Label::Current).expect("a promoted secret has a current version");
        assert!(current >= last, "current {current} is behind the acknowledged promotion {last}");
        secrets.get(&name, current).await.unwrap();
        if let Some(&p) = labels.get(&Label::Pending) {
            assert!(p > current, "pending {p} not newer than current {current}");
        }
        if let Some(&p) = labels.get(&Label::Previous) {
            assert!(p < current || current == 1, "previous {p} not older than current {current}");
        }
    }
    let verifier = svc.verifier();
    let req = Request::parse("svc:data/x:write").unwrap();
    for t in tokens {
        let id = ParsedToken::parse(t).unwrap().id().to_string();
        let d = verifier.verify(t, &req);
        if revokes.contains(&id) {
            assert!(
                matches!(d.reason(), Some(DenyReason::Revoked { .. })),
                "acknowledged revocation lost: {d}"
            );
        } else {
            // A token whose revocation was in flight when killed may be revoked or not; an
            // acknowledged issue must be known.
            assert!(
                d.is_allowed() || matches!(d.reason(), Some(DenyReason::Revoked { .. })),
                "acknowledged token lost: {d}"
            );
        }
    }
}
