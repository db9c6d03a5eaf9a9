//! The PostgreSQL log against a real server: several processes appending at once form one valid
//! chain; queries; the append-only trigger; tampering found by verification.
//!
//! `scripts/test.sh` starts a server and sets `TOKENWARD_PG_URL`. Without it these tests say so
//! loudly and pass, except under CI (`CI=true`), where a missing server is a failure.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use token_audit::chains::{ChainError, ChainHead, Entry, verify};
use token_audit::*;
use token_core::TokenId;
use token_core::chrono::Utc;

const CHILD_ENV: &str = "TOKENWARD_AUDIT_PG_CHILD";

use tokenward_test_support::FreshSchema;

fn event(writer: &str, i: usize) -> AuditEvent {
    AuditEvent::new(Utc::now(), Actor::Principal(writer.to_owned()), Action::VerifyAllowed)
        .token(TokenId::from_u128(i as u128 % 7 + 1).unwrap())
        .attr("i", i.to_string())
}

/// Appends `n` events ten at a time, so the writers overlap. With a `barrier` directory it first
/// says it is ready (a file named `name`) and waits for the file `go`, so every writer, in every
/// process, starts together however long the processes took to start.
async fn append_as(conn: &str, name: &str, n: usize, barrier: Option<&std::path::Path>) {
    let log = Arc::new(PostgresLog::connect(conn, 2).await.unwrap());
    let writer = AuditWriter::start(log, WriterConfig::group_commit(50, Duration::from_millis(2))).unwrap();
    if let Some(dir) = barrier {
        std::fs::write(dir.join(name), b"").unwrap();
        while !dir.join("go").exists() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // Ten at a time, each ten committed before the next: every writer keeps coming back to the
    // database's append lock, where the others are queued, so the appends interleave however the
    // machine schedules the processes.
    for i in 0..n {
        writer.record(event(name, i)).unwrap();
        if i % 10 == 9 {
            writer.flush().await.unwrap();
        }
    }
    writer.flush().await.unwrap();
    writer.close().unwrap();
}

/// A child process: appends its share and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let mut parts = spec.splitn(3, '|');
    let (name, barrier, conn) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    append_as(conn, name, 400, Some(std::path::Path::new(barrier))).await;
}

async fn read_all(log: &PostgresLog) -> Vec<Entry> {
    let mut out = Vec::new();
    loop {
        let page = log.read(out.len() as u64, 500).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_processes_appending_at_once_form_one_chain() {
    let Some(schema) = FreshSchema::create("twa") else { return };
    let conn = schema.url().to_owned();
    // Create the table first, so the children do not all race to migrate (they may: it is locked).
    let log = PostgresLog::connect(&conn, 2).await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let barrier = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..3)
        .map(|c| {
            Command::new(&exe)
                .args(["--exact", "pg_child", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, format!("child-{c}|{}|{conn}", barrier.path().display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // This process appends at the same time, from two writers of its own; all five start together
    // once all are connected and ready.
    let dir = barrier.path();
    let go = async {
        let names = ["child-0", "child-1", "child-2", "parent-a", "parent-b"];
        let started = std::time::Instant::now();
        while !names.iter().all(|n| dir.join(n).exists()) {
            assert!(started.elapsed() < Duration::from_secs(60), "the writers never got ready");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        std::fs::write(dir.join("go"), b"").unwrap();
    };
    tokio::join!(
        go,
        append_as(&conn, "parent-a", 400, Some(dir)),
        append_as(&conn, "parent-b", 400, Some(dir))
    );
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let entries = read_all(&log).await;
    let head = verify(ChainHead::EMPTY, &entries).unwrap();
    assert_eq!(head.len, 2000);
    assert_eq!(head, log.head().await.unwrap());
    for who in ["child-0", "child-1", "child-2", "parent-a", "parent-b"] {
        let mine: Vec<_> = entries.iter().filter(|e| e.event.actor == Actor::Principal(who.into())).collect();
        assert_eq!(mine.len(), 400, "{who}");
        // Each writer's events keep their order within the one chain.
        let order: Vec<usize> = mine.iter().map(|e| e.event.attrs["i"].parse().unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{who}'s events out of order");
    }
    // Interleaved, not one process after another.
    let switches = entries.windows(2).filter(|w| w[0].event.actor != w[1].event.actor).count();
    eprintln!(
        "PostgreSQL: 5 writers in 4 processes appended 2,000 entries, one chain, {switches} writer switches"
    );
    assert!(switches > 40, "the writers did not overlap");

    // Queries run in SQL and agree with a scan.
    let id = TokenId::from_u128(3).unwrap();
    let q = AuditQuery::new().token(id).actor(Actor::Principal("child-1".into()));
    let by_sql = log.query(&q).await.unwrap();
    let by_scan: Vec<_> = entries.iter().filter(|e| q.matches(e)).cloned().collect();
    assert_eq!(by_sql, by_scan);
    assert!(!by_sql.is_empty());
    assert_eq!(log.query(&AuditQuery::new().action("verify_allowed").limit(7)).await.unwrap().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_cannot_be_rewritten_and_a_forced_edit_is_found() {
    let Some(schema) = FreshSchema::create("twa") else { return };
    let conn = schema.url().to_owned();
    let log = PostgresLog::connect(&conn, 2).await.unwrap();
    log.append(&(0..20).map(|i| event("w", i)).collect::<Vec<_>>()).await.unwrap();
    let (client, c) = tokio_postgres::connect(&conn, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(c);
    for sql in [
        "UPDATE tokenward_audit SET action = 'revoke' WHERE seq = 3",
        "DELETE FROM tokenward_audit WHERE seq = 19",
        "TRUNCATE tokenward_audit",
    ] {
        let e = client.batch_execute(sql).await.unwrap_err();
        assert!(format!("{e:?}").contains("append-only"), "{sql}: {e:?}");
    }
    // A superuser can switch the trigger off; the chain still tells.
    client
        .batch_execute(
            "ALTER TABLE tokenward_audit DISABLE TRIGGER USER; \
             UPDATE tokenward_audit SET line = replace(line, '\"i\":\"5\"', '\"i\":\"6\"') WHERE seq = 5;",
        )
        .await
        .unwrap();
    let entries = read_all(&log).await;
    assert_eq!(verify(ChainHead::EMPTY, &entries), Err(ChainError::HashMismatch { seq: 5 }));
}
