//! Crash safety of the file log: a child process appends through the group-committing writer from
//! several tasks and is killed with SIGKILL at random moments, many times. After each kill the log
//! reopens (cutting a torn tail if the kill tore a write), verifies from its first entry, and holds
//! every entry the child saw acknowledged, once.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;

use std::time::Duration;
use tokenward_test_support::kill_child_at_random;

use token_audit::*;
use token_core::chrono::Utc;

const CHILD_ENV: &str = "TOKENWARD_AUDIT_CRASH_CHILD_LOG";

/// The child: runs only when the parent sets the environment variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let round = std::env::var("TOKENWARD_AUDIT_CRASH_ROUND").unwrap();
    let log = Arc::new(FileLog::open(&path).unwrap());
    let writer =
        Arc::new(AuditWriter::start(log, WriterConfig::group_commit(256, Duration::from_millis(2))).unwrap());
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "\nREADY").unwrap();
        out.flush().unwrap();
    }
    // Big events make multi-page writes, which a kill can tear.
    let padding = "x".repeat(700);
    let mut tasks = Vec::new();
    for task in 0..4 {
        let writer = Arc::clone(&writer);
        let padding = padding.clone();
        let round = round.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0u64.. {
                let id = format!("{round}-{task}-{i}");
                let e = AuditEvent::new(Utc::now(), Actor::System, Action::Issue)
                    .attr("id", id.clone())
                    .attr("pad", padding.clone());
                let t = writer.record(e).unwrap();
                writer.committed(t).await.unwrap();
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {id}").unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn acknowledged_entries_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let kills = 25;
    let mut acked = Vec::new();
    let mut torn = 0;
    let mut torn_bytes = 0;
    for round in 0..kills {
        let round_s = round.to_string();
        acked.extend(kill_child_at_random(
            "crash_child",
            &[(CHILD_ENV, path.as_os_str()), ("TOKENWARD_AUDIT_CRASH_ROUND", round_s.as_ref())],
            150,
            400,
        ));

        // Reopen as the next writer would: a torn tail is cut, the rest verifies.
        let log = FileLog::open(&path).unwrap();
        if log.torn_bytes_cut() > 0 {
            torn += 1;
            torn_bytes += log.torn_bytes_cut();
        }
        let head = log.verify(&[]).unwrap();
        assert_eq!(head, log.head_now());
        let mut present = HashSet::new();
        for e in log.reader().unwrap() {
            let id = e.unwrap().event.attrs["id"].clone();
            assert!(present.insert(id.clone()), "entry {id} appears twice");
        }
        for id in &acked {
            assert!(present.contains(id), "acknowledged entry {id} is missing after kill {round}");
        }
    }
    let entries = FileLog::open(&path).unwrap().head_now().len;
    eprintln!(
        "{kills} SIGKILLs: {} acknowledged entries all present in a log of {entries} that verifies; \
         torn tails cut after {torn} kills ({torn_bytes} bytes in all)",
        acked.len()
    );
    assert!(acked.len() >= kills, "the child made progress between kills");
}
