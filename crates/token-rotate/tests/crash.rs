//! Crash safety of rotation: a child process rotates a token on the embedded store in a loop and
//! is killed with SIGKILL at random moments, many times. After each kill, a new process resumes:
//! the interrupted rotation completes or rolls back, there is exactly one current credential and
//! it works, no pending is left, every acknowledged promotion is at or before the current one, and
//! every replaced token is revoked.
//!
//! The second test kills a child that declares emergencies (both orders, alternately; each during
//! a previous credential's overlap, some back to back). After each kill, with no manual step — a
//! restarted scheduler in odd rounds, the next `rotate` in even ones — an interrupted emergency
//! completes: a working replacement is current and the leaked credential is revoked.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::sync::Arc;

mod common;

use token_core::chrono::{TimeDelta, Utc};
use token_core::clocks::SystemClock;
use token_core::*;
use token_rotate::Scheduler as _;
use token_rotate::secrecy::ExposeSecret;
use token_rotate::*;
use token_store::{Backend, Label, SecretName, SqliteBackend, TokenService};
use tokenward_test_support::kill_child_at_random;

const CHILD_ENV: &str = "TOKENWARD_ROTATE_CRASH_CHILD_DB";
const EMERGENCY_CHILD_ENV: &str = "TOKENWARD_ROTATE_EMERGENCY_CHILD_DB";

struct World {
    tokens: Arc<TokenService>,
    rotator: Arc<Rotator>,
    target: Arc<TokenwardTokenTarget>,
    name: SecretName,
}

async fn open_with_overlap(path: &std::path::Path, overlap: TimeDelta) -> World {
    let backend = Arc::new(SqliteBackend::open(path).unwrap()) as Arc<dyn Backend>;
    let w = common::token_world(backend, TimeDelta::minutes(30)).await;
    World {
        tokens: w.tokens,
        rotator: Arc::new(Rotator::new(w.secrets, overlap, Arc::new(SystemClock))),
        target: Arc::new(w.target),
        name: common::name(),
    }
}

async fn open(path: &std::path::Path) -> World {
    open_with_overlap(path, TimeDelta::zero()).await
}

/// The child: rotates until killed, acknowledging each promotion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let w = open(std::path::Path::new(&path)).await;
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nREADY").unwrap();
    out.flush().unwrap();
    loop {
        if let Rotation::Promoted { version, .. } =
            w.rotator.rotate(&w.name, w.target.as_ref()).await.unwrap()
        {
            writeln!(out, "ACK {version}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interrupted_rotation_completes_or_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotate.db");
    let kills = 25;
    let mut acked = 0u64;
    let mut interrupted = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..kills {
        let acks: Vec<u64> = kill_child_at_random("crash_child", &[(CHILD_ENV, path.as_os_str())], 200, 300)
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        let last_ack = acks.last().copied();
        acked += acks.len() as u64;

        // Restart: see where the kill left it, then resume.
        let w = open(&path).await;
        let rec = w.rotator.record(&w.name).await.unwrap();
        let at = format!("{:?}", rec.step).split([' ', '{']).next().unwrap().to_owned();
        *interrupted.entry(at).or_default() += 1;
        match w.rotator.rotate(&w.name, w.target.as_ref()).await.unwrap() {
            Rotation::Promoted { .. } | Rotation::RolledBack { .. } => {}
            other => panic!("zero overlap: {other:?}"),
        }
        let labels = w.rotator.secrets().labels(&w.name).await.unwrap();
        assert!(!labels.contains_key(&Label::Pending), "round {round}: a pending credential was left behind");
        let current_v = labels[&Label::Current];
        if let Some(a) = last_ack {
            assert!(current_v >= a, "round {round}: current {current_v} is older than acknowledged {a}");
        }
        let current = w.rotator.current(&w.name).await.unwrap().unwrap();
        let d = w.tokens.verifier().authenticate_at(current.secret.expose_secret(), Utc::now());
        assert!(d.is_allowed(), "round {round}: the current credential does not work: {d}");
        // Finish the overlap (zero) and check: every other version's token is revoked.
        assert!(w.rotator.revoke_previous_if_due(&w.name, w.target.as_ref()).await.unwrap());
        only_current_works(&w, &current, round).await;
    }
    let w = open(&path).await;
    let rec = w.rotator.record(&w.name).await.unwrap();
    eprintln!(
        "{kills} SIGKILLs of a rotating process: {acked} promotions acknowledged, {} promoted and {} rolled back \
         in all; killed at steps {interrupted:?}; every interrupted rotation completed or rolled back",
        rec.promoted, rec.rolled_back
    );
    assert!(acked >= kills as u64, "the child made progress between kills");
}

/// Every version's token other than `current` is revoked.
async fn only_current_works(w: &World, current: &Credential, round: usize) {
    let latest = w.rotator.secrets().backend().latest_version(&w.name).await.unwrap().unwrap();
    for v in 1..=latest {
        let bytes = w.rotator.secrets().get(&w.name, v).await.unwrap();
        let handle = serde_json::from_slice::<serde_json::Value>(bytes.expose_secret()).unwrap()["handle"]
            .as_str()
            .unwrap()
            .to_owned();
        if handle != current.handle {
            let t = w.tokens.backend().token(handle.parse().unwrap()).await.unwrap().unwrap();
            assert!(t.record.revoked_at.is_some(), "round {round}: version {v}'s token was not revoked");
        }
    }
}

/// The emergency child: rotate (its previous then sits in a 10 s overlap), declare an emergency
/// (revoke first and replace first in turn), sometimes a second one back to back; until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emergency_crash_child() {
    let Ok(path) = std::env::var(EMERGENCY_CHILD_ENV) else { return };
    let w = open_with_overlap(std::path::Path::new(&path), TimeDelta::seconds(10)).await;
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let _ = w.rotator.rotate(&w.name, w.target.as_ref()).await.unwrap();
        let order = if i % 2 == 0 { EmergencyOrder::RevokeFirst } else { EmergencyOrder::ReplaceFirst };
        for _ in 0..(1 + i % 3 / 2) {
            let report = w.rotator.revoke_and_replace_with(&w.name, w.target.as_ref(), order).await.unwrap();
            writeln!(out, "ACK {}", report.version).unwrap();
            out.flush().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interrupted_emergency_completes_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emergency.db");
    let kills = 20;
    let (mut in_emergency, mut acked) = (std::collections::BTreeMap::<String, u32>::new(), 0);
    for round in 0..kills {
        let acks = kill_child_at_random(
            "emergency_crash_child",
            &[(EMERGENCY_CHILD_ENV, path.as_os_str())],
            150,
            300,
        );
        acked += acks.len();
        let w = open_with_overlap(&path, TimeDelta::seconds(10)).await;
        let rec = w.rotator.record(&w.name).await.unwrap();
        let Some(em) = rec.emergency.clone() else {
            *in_emergency.entry("none".into()).or_default() += 1;
            continue;
        };
        let at =
            format!("{:?} {:?}", em.order, rec.step).split([' ', '{']).take(2).collect::<Vec<_>>().join(" ");
        *in_emergency.entry(at).or_default() += 1;
        let leaked = w.rotator.secrets().get(&w.name, em.leaked).await.unwrap();
        let leaked: serde_json::Value = serde_json::from_slice(leaked.expose_secret()).unwrap();
        // No manual step: what runs anyway after a restart finishes it.
        if round % 2 == 1 {
            let scheduler = Arc::new(TokioScheduler::new(w.rotator.clone(), SchedulerConfig::default()));
            scheduler.register(w.name.clone(), w.target.clone(), Schedule::every(TimeDelta::hours(1)));
            let report = scheduler.tick().await.unwrap();
            assert_eq!(report.promoted, 1, "round {round}: the restarted scheduler finished the emergency");
        } else {
            let r = w.rotator.rotate(&w.name, w.target.as_ref()).await.unwrap();
            assert!(
                matches!(r, Rotation::Promoted { .. }),
                "round {round}: rotate finished the emergency: {r:?}"
            );
        }
        let rec = w.rotator.record(&w.name).await.unwrap();
        assert!(rec.emergency.is_none(), "round {round}: the emergency is still recorded: {rec:?}");
        let labels = w.rotator.secrets().labels(&w.name).await.unwrap();
        assert!(!labels.contains_key(&Label::Pending), "round {round}: a pending credential was left");
        assert!(!labels.contains_key(&Label::Previous), "round {round}: a previous credential was left");
        assert_ne!(labels[&Label::Current], em.leaked, "round {round}: the leaked version is still current");
        let current = w.rotator.current(&w.name).await.unwrap().unwrap();
        let d = w.tokens.verifier().authenticate_at(current.secret.expose_secret(), Utc::now());
        assert!(d.is_allowed(), "round {round}: the replacement does not work: {d}");
        let leaked_id: TokenId = leaked["handle"].as_str().unwrap().parse().unwrap();
        let t = w.tokens.backend().token(leaked_id).await.unwrap().unwrap();
        assert!(t.record.revoked_at.is_some(), "round {round}: the leaked token was not revoked");
        only_current_works(&w, &current, round).await;
    }
    eprintln!(
        "{kills} SIGKILLs of a process declaring emergencies: {acked} emergencies acknowledged; \
         killed in {in_emergency:?}; every interrupted emergency completed with no manual step"
    );
    let inside: u32 = in_emergency.iter().filter(|(k, _)| *k != "none").map(|(_, n)| n).sum();
    assert!(inside >= 3, "too few kills landed inside an emergency to prove anything: {in_emergency:?}");
}
