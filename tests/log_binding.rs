//! The store remembers its audit log (issue 24 §2): an open against a log that is missing,
//! shorter, another one or a fork of it fails with the typed error naming which; a store without a
//! binding is refused until bound deliberately; a new log is started only deliberately, audited;
//! writers sharing one log never make each other's check fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;

use tokenward::audit::{AuditQuery, FileLog, LogStorage, file::FileSync, witnesses::BindingError};
use tokenward::{Error, FailureMode, Tokenward};

mod common;

use common::*;

fn log(dir: &Path) -> std::path::PathBuf {
    dir.join("audit.jsonl")
}

/// Opens, issues `n` tokens, revokes the last, shuts down.
async fn use_store(dir: &Path, n: usize) {
    let tw = builder(dir).open().await.unwrap();
    let mut last = None;
    for i in 0..n {
        last = Some(tw.issue(&principal(), &request(&format!("p{i}"))).await.unwrap().id());
    }
    if let Some(id) = last {
        tw.revoke(id).await.unwrap();
    }
    tw.shutdown().await.unwrap();
}

async fn open_err(b: tokenward::TokenwardBuilder) -> BindingError {
    match b.open().await {
        Err(Error::Binding(e)) => e,
        Err(other) => panic!("expected a binding error, got {other}"),
        Ok(_) => panic!("opened against the wrong log"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_wrong_log_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    use_store(dir.path(), 10).await;
    let original = std::fs::read(log(dir.path())).unwrap();
    let lines: Vec<&[u8]> = original.split_inclusive(|&b| b == b'\n').collect();
    assert!(lines.len() > 10);

    // `rm tokenward.audit.jsonl; issue …`
    std::fs::remove_file(log(dir.path())).unwrap();
    let e = open_err(builder(dir.path())).await;
    assert!(matches!(e, BindingError::MissingLog { bound } if bound == lines.len() as u64), "{e}");

    // `--audit-log elsewhere.jsonl issue …`: a new file, and another store's log.
    let e =
        open_err(builder(dir.path()).audit_file(dir.path().join("elsewhere.jsonl"), FailureMode::FailClosed))
            .await;
    assert!(matches!(e, BindingError::MissingLog { .. }), "{e}");
    let other = tempfile::tempdir().unwrap();
    use_store(other.path(), 12).await;
    let e = open_err(builder(dir.path()).audit_file(log(other.path()), FailureMode::FailClosed)).await;
    assert!(matches!(e, BindingError::OtherLog { .. }), "{e}");

    // Cut short.
    std::fs::write(log(dir.path()), lines[..lines.len() - 2].concat()).unwrap();
    let e = open_err(builder(dir.path())).await;
    assert!(matches!(e, BindingError::ShorterLog { .. }), "{e}");

    // A fork: the first entries, then others chained on (a valid chain, another history).
    std::fs::write(log(dir.path()), lines[..lines.len() - 2].concat()).unwrap();
    let forked = FileLog::open(log(dir.path())).unwrap();
    let events: Vec<_> = (0..5)
        .map(|i| {
            tokenward::audit::AuditEvent::new(
                tokenward::core::chrono::Utc::now(),
                tokenward::audit::Actor::System,
                tokenward::audit::Action::Issue,
            )
            .attr("forged", i.to_string())
        })
        .collect();
    forked.append_now(&events).unwrap();
    forked.release();
    drop(forked);
    let e = open_err(builder(dir.path())).await;
    assert!(matches!(e, BindingError::ForkedLog { .. }), "{e}");

    // The right log again: it opens, and nothing of the refused opens was written to the store.
    std::fs::write(log(dir.path()), &original).unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    assert_eq!(tw.tokens().cache().len(), 10, "every token loaded");
    tw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_store_is_refused_until_an_audited_migrate_binds_it() {
    let dir = tempfile::tempdir().unwrap();
    use_store(dir.path(), 2).await;
    // A store from before bindings: no binding row.
    db(dir.path()).execute("DELETE FROM meta WHERE key = 'tokenward/audit-binding'", []).unwrap();
    let e = open_err(builder(dir.path())).await;
    assert!(matches!(e, BindingError::Unbound), "{e}");
    // A forged binding (unsealed, or sealed for another key) is refused as tampering, never used.
    db(dir.path())
        .execute("INSERT INTO meta (key, value) VALUES ('tokenward/audit-binding', x'7b7d')", [])
        .unwrap();
    assert!(matches!(builder(dir.path()).open().await, Err(Error::Store(_))));
    db(dir.path()).execute("DELETE FROM meta WHERE key = 'tokenward/audit-binding'", []).unwrap();

    let tw = builder(dir.path()).migrate().open().await.unwrap();
    assert!(tw.migration().unwrap().markers_written.contains(&"tokenward/audit-binding"));
    tw.shutdown().await.unwrap();
    let entries =
        FileLog::open(log(dir.path())).unwrap().query(&AuditQuery::new().action("store")).await.unwrap();
    assert!(entries.iter().any(|e| e.event.attrs.iter().any(|(_, v)| v.contains("tokenward/audit-binding"))));
    // Bound now: a plain open works, and a removed log is caught again.
    builder(dir.path()).open().await.unwrap().shutdown().await.unwrap();
    std::fs::remove_file(log(dir.path())).unwrap();
    assert!(matches!(open_err(builder(dir.path())).await, BindingError::MissingLog { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_log_is_deliberate_and_audited_and_the_old_one_is_then_refused() {
    let dir = tempfile::tempdir().unwrap();
    use_store(dir.path(), 3).await;
    let archived = dir.path().join("archived.jsonl");
    std::fs::rename(log(dir.path()), &archived).unwrap();
    assert!(matches!(open_err(builder(dir.path())).await, BindingError::MissingLog { .. }));

    let tw = builder(dir.path()).new_audit_log("archived to archived.jsonl").open().await.unwrap();
    tw.issue(&principal(), &request("after")).await.unwrap();
    tw.shutdown().await.unwrap();
    let fresh = FileLog::open(log(dir.path())).unwrap();
    let first = fresh.read(0, 1).await.unwrap();
    let attrs = &first[0].event.attrs;
    assert_eq!(first[0].event.action.name(), "store");
    assert!(attrs.iter().any(|(k, v)| k == "reason" && v == "archived to archived.jsonl"), "{attrs:?}");
    assert!(attrs.iter().any(|(k, v)| k == "epoch" && v == "1"), "{attrs:?}");
    assert!(attrs.iter().any(|(k, v)| k == "found" && v.contains("missing")), "{attrs:?}");
    fresh.release();
    drop(fresh);
    builder(dir.path()).open().await.unwrap().shutdown().await.unwrap();
    // The archived log is not the store's any more.
    let e = open_err(builder(dir.path()).audit_file(&archived, FailureMode::FailClosed)).await;
    assert!(matches!(e, BindingError::OtherLog { .. } | BindingError::ShorterLog { .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_sharing_one_log_never_fail_each_other() {
    let dir = tempfile::tempdir().unwrap();
    use_store(dir.path(), 1).await;
    let path = dir.path().to_path_buf();
    let shared =
        || -> Arc<dyn LogStorage> { Arc::new(FileLog::open_shared(log(&path), FileSync::Data).unwrap()) };
    let a = builder(dir.path()).audit_storage(shared(), FailureMode::FailClosed).open().await.unwrap();
    let b = builder(dir.path()).audit_storage(shared(), FailureMode::FailClosed).open().await.unwrap();
    let work = async |tw: Tokenward, tag: &'static str| {
        for i in 0..15 {
            let t = tw.issue(&principal(), &request(&format!("{tag}{i}"))).await.unwrap();
            if i % 3 == 0 {
                tw.revoke(t.id()).await.unwrap(); // binds, racing the other writer
            }
            if i % 5 == 0 {
                // A third process opening meanwhile: the log is always at or past the binding.
                let c = builder(&path).audit_storage(shared(), FailureMode::FailClosed).open().await.unwrap();
                c.shutdown().await.unwrap();
            }
        }
        tw.shutdown().await.unwrap();
    };
    tokio::join!(work(a, "a"), work(b, "b"));
    let tw = builder(dir.path()).open().await.unwrap();
    let head = tw.audit_writer().unwrap().head();
    tw.shutdown().await.unwrap();
    // The binding reached the end of the log (each shutdown binds its last head).
    let all = std::fs::read(log(dir.path())).unwrap();
    let keep = all.split_inclusive(|&b| b == b'\n').take(head.len as usize - 1).collect::<Vec<_>>().concat();
    std::fs::write(log(dir.path()), keep).unwrap();
    assert!(matches!(open_err(builder(dir.path())).await, BindingError::ShorterLog { .. }));
}
