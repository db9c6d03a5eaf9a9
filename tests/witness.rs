//! The witness (issue 24 §2): rolling back the store *and* its audit log together — which no local
//! file can reveal — is caught at open because the witness holds a newer signed tree head; and
//! what the witness and the log binding cost per issue, per revocation and per open.
//!
//! The cost figures: `cargo test --test witness -- --ignored --nocapture costs` (medians, each
//! against the same operation without the addition, measured in the same run).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenward::audit::chains::ChainHead;
use tokenward::audit::{
    Action, Actor, AuditError, AuditEvent, FileLog, LogStorage, chains::Entry, witnesses::FileWitness,
    witnesses::Witness, witnesses::WitnessError,
};
use tokenward::{Error, TokenwardBuilder};

mod common;

use common::*;
use tokenward_test_support::stats::median_duration;

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tw.db") || n == "audit.jsonl")
        .collect();
    v.sort();
    v
}

fn copy_all(from: &Path, to: &Path) {
    for n in files(to) {
        std::fs::remove_file(to.join(n)).unwrap();
    }
    for n in files(from) {
        std::fs::copy(from.join(&n), to.join(&n)).unwrap();
    }
}

fn witnessed(dir: &Path, w: &Arc<dyn Witness>) -> TokenwardBuilder {
    builder(dir).witness(w.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_log_rolled_back_together_are_caught_by_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let mount = tempfile::tempdir().unwrap(); // "another mount"
    let w: Arc<dyn Witness> = Arc::new(FileWitness::open(mount.path()).unwrap());
    let tw = witnessed(dir.path(), &w).open().await.unwrap();
    let token = tw.issue(&principal(), &request("a")).await.unwrap();
    tw.issue(&principal(), &request("b")).await.unwrap();
    tw.shutdown().await.unwrap();
    let before = tempfile::tempdir().unwrap();
    copy_all(dir.path(), before.path());

    let tw = witnessed(dir.path(), &w).open().await.unwrap();
    tw.revoke(token.id()).await.unwrap(); // pushed to the witness before it returns
    tw.shutdown().await.unwrap();
    let newest = w.newest().await.unwrap().unwrap();

    // Store and log restored together from the copy taken before the revocation: consistent
    // with each other (the binding holds, reconciliation finds nothing), and without the witness
    // the revoked token would be alive again…
    copy_all(before.path(), dir.path());
    let blind = builder(dir.path()).open().await.unwrap();
    assert!(blind.verifier().verify(token.expose_secret(), &read()).is_allowed(), "the threat is real");
    blind.shutdown().await.unwrap();
    // …but the witness holds a newer head: every open fails closed, naming it.
    copy_all(before.path(), dir.path());
    match witnessed(dir.path(), &w).open().await {
        Err(Error::Witness(WitnessError::RolledBack { witnessed, log })) => {
            assert_eq!(witnessed, newest.size);
            assert!(log < witnessed);
        }
        Err(e) => panic!("expected a rollback, got {e}"),
        Ok(_) => panic!("a rolled-back store opened"),
    }
    // The read-only check (a command beside a daemon) says the same.
    let ro = tokenward::Tokenward::embedded(dir.path().join("tw.db"))
        .passphrase(tokenward::secrecy::SecretString::from(PASSPHRASE))
        .policy(policy())
        .open()
        .await
        .unwrap();
    let log =
        FileLog::open_shared(dir.path().join("audit.jsonl"), tokenward::audit::file::FileSync::Data).unwrap();
    let e = ro.check_audit_log(&log, Some(w.as_ref())).await.unwrap_err();
    assert!(matches!(e, Error::Witness(WitnessError::RolledBack { .. })), "{e}");
    ro.shutdown().await.unwrap();
    drop(log);

    // A rolled-back log grown back past the witnessed size is a fork, not a pass.
    copy_all(before.path(), dir.path());
    let blind = builder(dir.path()).open().await.unwrap();
    for i in 0..5 {
        blind.issue(&principal(), &request(&format!("regrow{i}"))).await.unwrap();
    }
    blind.shutdown().await.unwrap();
    match witnessed(dir.path(), &w).open().await {
        Err(Error::Witness(WitnessError::Forked { size })) => assert_eq!(size, newest.size),
        Err(e) => panic!("expected a fork, got {e}"),
        Ok(_) => panic!("a forked log opened"),
    }
}

/// The file log at `dir`, counting the entries read through it (the front door reads the log only
/// through its `LogStorage`).
#[derive(Debug)]
struct Counting {
    inner: FileLog,
    read: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl LogStorage for Counting {
    fn release(&self) {
        self.inner.release();
    }
    async fn append(&self, events: &[AuditEvent]) -> Result<ChainHead, AuditError> {
        self.inner.append(events).await
    }
    async fn head(&self) -> Result<ChainHead, AuditError> {
        self.inner.head().await
    }
    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Entry>, AuditError> {
        let page = self.inner.read(from, limit).await?;
        self.read.fetch_add(page.len() as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(page)
    }
    async fn query(&self, q: &tokenward::audit::AuditQuery) -> Result<Vec<Entry>, AuditError> {
        self.inner.query(q).await // the revocations re-applied at open: not the witness's
    }
}

/// Opens the deployment in `dir` with the witness, its log counted; returns the entries read.
async fn open_counted(dir: &Path, w: &Arc<dyn Witness>) -> (Result<tokenward::Tokenward, Error>, u64) {
    let log = Arc::new(Counting { inner: FileLog::open(dir.join("audit.jsonl")).unwrap(), read: 0.into() });
    let opened =
        witnessed(dir, w).audit_storage(log.clone(), tokenward::FailureMode::FailClosed).open().await;
    let n = log.read.load(std::sync::atomic::Ordering::SeqCst);
    (opened, n)
}

/// Appends `n` entries to the log in `dir` directly (what `n` issues would add).
async fn bulk(dir: &Path, n: usize, tag: &str) {
    let log = FileLog::open(dir.join("audit.jsonl")).unwrap();
    let now = tokenward::core::chrono::Utc::now();
    let events: Vec<AuditEvent> = (0..n)
        .map(|i| AuditEvent::new(now, Actor::System, Action::Store(tag.into())).attr("n", i.to_string()))
        .collect();
    log.append(&events).await.unwrap();
}

/// The sealed value `key` holds in the store's metadata (as stored), or `None`.
fn meta(dir: &Path, key: &str) -> Option<Vec<u8>> {
    db(dir).query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_checks_the_witness_from_the_sealed_mark_without_reading_the_log() {
    const BULK: usize = 3000;
    let dir = tempfile::tempdir().unwrap();
    let mount = tempfile::tempdir().unwrap();
    let w: Arc<dyn Witness> = Arc::new(FileWitness::open(mount.path()).unwrap());
    let tw = witnessed(dir.path(), &w).open().await.unwrap();
    tw.issue(&principal(), &request("a")).await.unwrap();
    tw.shutdown().await.unwrap();
    let early_binding = meta(dir.path(), "tokenward/audit-binding").unwrap();
    bulk(dir.path(), BULK, "bulk").await;
    let (tw, _) = open_counted(dir.path(), &w).await;
    let tw = tw.unwrap();
    let t = tw.issue(&principal(), &request("b")).await.unwrap();
    tw.revoke(t.id()).await.unwrap(); // pushed, and its tree marked in the store
    tw.issue(&principal(), &request("after")).await.unwrap(); // past the witnessed head
    tw.shutdown().await.unwrap();
    let witnessed_size = w.newest().await.unwrap().unwrap().size;
    assert!(witnessed_size > BULK as u64);

    // The mark is at the witnessed size: the witness check reads a few entries (the binding's,
    // the mark's), not the log. (The open also reads the whole log once, chain verified, for the
    // revocations it re-applies: `len` entries.)
    let len = || async {
        FileLog::open(dir.path().join("audit.jsonl")).unwrap().read(0, usize::MAX).await.unwrap().len() as u64
    };
    let n = len().await;
    let (tw, read) = open_counted(dir.path(), &w).await;
    tw.unwrap().shutdown().await.unwrap();
    assert!(read <= n + 4, "an open with a current mark read {read} entries of {n}");

    // Without the mark (a store from before marks): the full check reads the witnessed prefix
    // again, and it passes; that open marks the witnessed size, so the next one is quick again.
    db(dir.path()).execute("DELETE FROM meta WHERE key = ?1", [tokenward::AUDIT_TREE_META]).unwrap();
    let n = len().await;
    let (tw, read) = open_counted(dir.path(), &w).await;
    tw.unwrap().shutdown().await.unwrap();
    assert!(read >= n + witnessed_size, "without a mark the open read {read} entries of {n}");
    let n = len().await;
    let (tw, read) = open_counted(dir.path(), &w).await;
    tw.unwrap().shutdown().await.unwrap();
    assert!(read <= n + 4, "the full check marked the witnessed size ({read} entries read of {n})");

    // Only the log is edited (the store's mark is current): rewritten from an entry before the
    // witnessed position with a valid chain and regrown to the same length. Refused by the
    // binding; and with the binding also set back to before the fork (a restored record), by
    // the witness: the mark does not hold for that log, so the check reads it all, and fails.
    let before = tempfile::tempdir().unwrap();
    copy_all(dir.path(), before.path());
    let entries = FileLog::open(dir.path().join("audit.jsonl")).unwrap().read(0, usize::MAX).await.unwrap();
    let keep = 1000;
    std::fs::remove_file(dir.path().join("audit.jsonl")).unwrap();
    {
        let log = FileLog::open(dir.path().join("audit.jsonl")).unwrap();
        let events: Vec<AuditEvent> = entries[..keep].iter().map(|e| e.event.clone()).collect();
        log.append(&events).await.unwrap();
    }
    bulk(dir.path(), entries.len() - keep, "forged").await;
    let (opened, _) = open_counted(dir.path(), &w).await;
    match opened {
        Err(Error::Binding(tokenward::audit::witnesses::BindingError::ForkedLog { .. })) => {}
        Err(e) => panic!("expected the binding to refuse a fork, got {e}"),
        Ok(_) => panic!("a forked log opened"),
    }
    db(dir.path())
        .execute("UPDATE meta SET value = ?1 WHERE key = 'tokenward/audit-binding'", [&early_binding])
        .unwrap();
    let (opened, _) = open_counted(dir.path(), &w).await;
    match opened {
        Err(Error::Witness(WitnessError::Forked { size })) => assert_eq!(size, witnessed_size),
        Err(e) => panic!("expected a fork, got {e}"),
        Ok(_) => panic!("a forked log opened with a current mark"),
    }
    // The same log, unforked, with that binding: opens (the binding was what was set back).
    copy_all(before.path(), dir.path());
    db(dir.path())
        .execute("UPDATE meta SET value = ?1 WHERE key = 'tokenward/audit-binding'", [&early_binding])
        .unwrap();
    let (tw, _) = open_counted(dir.path(), &w).await;
    tw.unwrap().shutdown().await.unwrap();
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_locked_bucket_catches_the_rollback_too() {
    use tokenward::audit::witnesses::S3Witness;
    use tokenward_test_support::{ALLOW_ALL, Moto};
    let Some(moto) = Moto::start(3) else { return };
    let client = moto.client(moto.setup_user("writer", ALLOW_ALL).await);
    let r = client
        .rest(
            "s3",
            token_http::Method::Put,
            "/tw-witness",
            &[],
            &[("x-amz-bucket-object-lock-enabled", "true")],
            Vec::new(),
        )
        .await
        .unwrap();
    assert!(r.is_success());
    let w: Arc<dyn Witness> = Arc::new(S3Witness::connect(client, "tw-witness", "", 1).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let tw = witnessed(dir.path(), &w).open().await.unwrap();
    let token = tw.issue(&principal(), &request("a")).await.unwrap();
    tw.shutdown().await.unwrap();
    let before = tempfile::tempdir().unwrap();
    copy_all(dir.path(), before.path());
    let tw = witnessed(dir.path(), &w).open().await.unwrap();
    tw.revoke(token.id()).await.unwrap();
    tw.shutdown().await.unwrap();
    copy_all(before.path(), dir.path());
    assert!(matches!(
        witnessed(dir.path(), &w).open().await,
        Err(Error::Witness(WitnessError::RolledBack { .. }))
    ));
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// What the binding and the witness cost, as medians against the same operation without them,
/// in one run: the same store and log, opened alternately with and without the witness (a file
/// witness on the same disk: its fsyncs are counted, a remote witness's round trip is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn costs() {
    const ROUNDS: usize = 6;
    const PER: usize = 15;
    let dir = tempfile::tempdir().unwrap();
    let mount = tempfile::tempdir().unwrap();
    let w: Arc<dyn Witness> = Arc::new(FileWitness::open(mount.path()).unwrap());
    let kdf = tokenward::store::keys::KdfParams::generate_with(8, 1, 1).unwrap();
    let b = |witness: bool| {
        let b = builder_with(dir.path(), Some(kdf.clone()));
        if witness { b.witness(w.clone()) } else { b }
    };
    let tw = b(true).open().await.unwrap();
    for i in 0..2000 {
        tw.issue(&principal(), &request(&format!("seed{i}"))).await.unwrap(); // a log to read at open
    }
    tw.shutdown().await.unwrap();
    let mut m: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
    let mut n = 0;
    for _ in 0..ROUNDS {
        for witness in [true, false] {
            let t0 = Instant::now();
            let tw = b(witness).open().await.unwrap();
            m.entry(if witness { "open+" } else { "open" }).or_default().push(t0.elapsed());
            for _ in 0..PER {
                n += 1;
                let t0 = Instant::now();
                let a = tw.issue(&principal(), &request(&format!("a{n}"))).await.unwrap();
                m.entry(if witness { "issue+" } else { "issue" }).or_default().push(t0.elapsed());
                let t0 = Instant::now();
                tw.tokens().revoke_by_at(a.id(), tw.clock().now(), tw.actor().clone(), None).await.unwrap();
                m.entry("revoke-raw").or_default().push(t0.elapsed());
                let c = tw.issue(&principal(), &request(&format!("c{n}"))).await.unwrap();
                let t0 = Instant::now();
                tw.revoke(c.id()).await.unwrap();
                m.entry(if witness { "revoke+witness" } else { "revoke+bind" })
                    .or_default()
                    .push(t0.elapsed());
                if !witness {
                    tw.issue(&principal(), &request(&format!("d{n}"))).await.unwrap();
                    let t0 = Instant::now();
                    tw.witness_now().await.unwrap(); // no witness: the bind a CLI command's shutdown does
                    m.entry("bind").or_default().push(t0.elapsed());
                }
            }
            if witness {
                let storage: Arc<dyn LogStorage> = tw.audit_writer().unwrap().storage().clone();
                let t0 = Instant::now();
                tw.check_audit_log(storage.as_ref(), None).await.unwrap();
                m.entry("check-binding").or_default().push(t0.elapsed());
                let t0 = Instant::now();
                tw.check_audit_log(storage.as_ref(), Some(w.as_ref())).await.unwrap();
                m.entry("check-both").or_default().push(t0.elapsed());
            }
            tw.shutdown().await.unwrap();
        }
    }
    let md = |k: &str| median_duration(&mut m[k].clone());
    let line = |what: &str, with: Duration, without: Duration| {
        eprintln!(
            "{what:<44} {:>8.0} µs  vs {:>8.0} µs without  ratio {:.2}",
            us(with),
            us(without),
            us(with) / us(without)
        );
    };
    eprintln!(
        "log of {}..{} entries; medians (issues/revocations: {} each, opens: {ROUNDS} each)",
        2000,
        2000 + 5 * n,
        ROUNDS * PER
    );
    line("issue, library (binding + witness attached)", md("issue+"), md("issue"));
    line("issue, CLI command (+ the bind at shutdown)", md("issue") + md("bind"), md("issue"));
    line("revocation + bind", md("revoke+bind"), md("revoke-raw"));
    line("revocation + bind + witness push", md("revoke+witness"), md("revoke-raw"));
    line("open with witness (binding + consistency)", md("open+"), md("open"));
    eprintln!(
        "  in an open: the binding check {:.0} µs, the witness check (newest + the log's tree) {:.0} µs",
        us(md("check-binding")),
        us(md("check-both").saturating_sub(md("check-binding")))
    );
    assert!(
        md("revoke+witness") > md("revoke-raw") && md("open+") > md("check-binding"),
        "the additions were measured"
    );
}

/// Someone who can write the store and the log: the victim's row rolled back to before its
/// revocation, and its revocation entry — in the middle of the log, before the store's sealed mark
/// at the newest witnessed head — turned into another token's. The log keeps its length and its
/// last entries, so the binding and the witness's one-entry check hold; the open still fails,
/// because with a witness it verifies the whole chain as it reads the revocations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_edited_out_of_the_middle_of_a_witnessed_log_is_caught_at_open() {
    use rusqlite::types::Value;
    let dir = tempfile::tempdir().unwrap();
    let mount = tempfile::tempdir().unwrap();
    let w: Arc<dyn Witness> = Arc::new(FileWitness::open(mount.path()).unwrap());
    let tw = witnessed(dir.path(), &w).open().await.unwrap();
    let victim = tw.issue(&principal(), &request("victim")).await.unwrap();
    let later = tw.issue(&principal(), &request("later")).await.unwrap();
    let bystander = tw.issue(&principal(), &request("bystander")).await.unwrap();
    let conn = db(dir.path());
    let row: Vec<Value> = conn
        .query_row("SELECT * FROM tokens WHERE id = ?1", [victim.id().to_string()], |r| {
            (0..r.as_ref().column_count()).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    tw.revoke(victim.id()).await.unwrap();
    tw.revoke(later.id()).await.unwrap(); // the witness and the mark move past the victim's entry
    tw.shutdown().await.unwrap();
    drop(tw);

    conn.execute("DELETE FROM tokens WHERE id = ?1", [&row[0]]).unwrap();
    let marks = vec!["?"; row.len()].join(", ");
    conn.execute(&format!("INSERT INTO tokens VALUES ({marks})"), rusqlite::params_from_iter(&row)).unwrap();
    drop(conn);
    let path = dir.path().join("audit.jsonl");
    let log = std::fs::read_to_string(&path).unwrap();
    let (victim_id, bystander_id) = (victim.id().to_string(), bystander.id().to_string());
    let mut edited = 0;
    let lines: Vec<String> = log
        .lines()
        .map(|l| {
            if l.contains("\"revoke\"") && l.contains(&victim_id) {
                edited += 1;
                l.replace(&victim_id, &bystander_id)
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert_eq!(edited, 1, "one revocation entry names the victim");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    match witnessed(dir.path(), &w).open().await {
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("chain") || text.contains("hash"), "a broken chain: {text}");
        }
        Ok(tw) => {
            let d = tw.verifier().verify(victim.expose_secret(), &read());
            panic!("the edited log was accepted; the victim's token: {d}");
        }
    }
    // The read-only check (what `list`, `report` and `alerts check` run) refuses it too.
    let unaudited = tokenward::Tokenward::embedded(dir.path().join("tw.db"))
        .passphrase_with(
            PASSPHRASE.into(),
            tokenward::store::keys::KdfParams::generate_with(8, 1, 1).unwrap(),
        )
        .prefix("fd")
        .policy(policy())
        .open()
        .await
        .unwrap();
    let log = FileLog::open(&path).unwrap();
    assert!(unaudited.check_audit_log(&log, Some(w.as_ref())).await.is_err(), "the read-only check");
    assert!(
        unaudited.check_audit_log(&log, None).await.is_ok(),
        "without a witness only the binding is checked"
    );
}
