//! Crash safety of rotation: a child process rotates a token on the embedded store in a loop and
//! is killed with SIGKILL at random moments, many times. After each kill, a new process resumes:
//! the interrupted rotation completes or rolls back, there is exactly one current credential and
//! it works, no pending is left, every acknowledged promotion is at or before the current one, and
//! every replaced token is revoked.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

mod common;

use rand::TryRng;
use token_core::chrono::{TimeDelta, Utc};
use token_core::*;
use token_rotate::secrecy::ExposeSecret;
use token_rotate::*;
use token_store::{Backend, Label, SecretName, SqliteBackend, Tokens};

const CHILD_ENV: &str = "TOKENWARD_ROTATE_CRASH_CHILD_DB";

struct World {
    tokens: Arc<Tokens>,
    rotator: Rotator,
    target: TokenTarget,
    name: SecretName,
}

async fn open(path: &std::path::Path) -> World {
    let backend = Arc::new(SqliteBackend::open(path).unwrap()) as Arc<dyn Backend>;
    let w = common::token_world(backend, TimeDelta::minutes(30)).await;
    World {
        tokens: w.tokens,
        rotator: Rotator::new(w.secrets, TimeDelta::zero(), Arc::new(SystemClock)),
        target: w.target,
        name: common::name(),
    }
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
        if let Rotation::Promoted { version, .. } = w.rotator.rotate(&w.name, &w.target).await.unwrap() {
            writeln!(out, "ACK {version}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interrupted_rotation_completes_or_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotate.db");
    let exe = std::env::current_exe().unwrap();
    let kills = 25;
    let mut acked = 0u64;
    let mut interrupted = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").and_then(|v| v.parse::<u64>().ok()))
                .collect::<Vec<_>>()
        });
        let mut r = [0u8; 2];
        rand::rngs::SysRng.try_fill_bytes(&mut r).unwrap();
        std::thread::sleep(Duration::from_millis(200 + u64::from(u16::from_le_bytes(r)) % 300));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        let last_ack = acks.last().copied();
        acked += acks.len() as u64;

        // Restart: see where the kill left it, then resume.
        let w = open(&path).await;
        let rec = w.rotator.record(&w.name).await.unwrap();
        let at = format!("{:?}", rec.step).split([' ', '{']).next().unwrap().to_owned();
        *interrupted.entry(at).or_default() += 1;
        match w.rotator.rotate(&w.name, &w.target).await.unwrap() {
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
        assert!(w.rotator.revoke_previous_if_due(&w.name, &w.target).await.unwrap());
        let latest = w.rotator.secrets().backend().latest_version(&w.name).await.unwrap().unwrap();
        for v in 1..=latest {
            let bytes = w.rotator.secrets().get(&w.name, v).await.unwrap();
            let handle =
                serde_json::from_slice::<serde_json::Value>(bytes.expose_secret()).unwrap()["handle"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            if handle != current.handle {
                let t = w.tokens.backend().token(handle.parse().unwrap()).await.unwrap().unwrap();
                assert!(t.record.revoked_at.is_some(), "round {round}: version {v}'s token was not revoked");
            }
        }
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
