//! What the witness check costs at open as the log grows: a store whose log holds N entries
//! (10k, 100k), its newest head witnessed, opened again and again with and without the witness.
//!
//! `flock /tmp/tokenward-build.lock cargo test --release -p tokenward --test witness_open_cost -- --ignored --nocapture`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenward::audit::{
    Action, Actor, AuditEvent, FileLog, LogStorage, file::FileSync, witnesses::FileWitness,
    witnesses::Witness,
};

mod common;

use common::*;
use tokenward_test_support::stats::median_duration;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A store in `dir` whose log holds about `n` entries, the newest head pushed to `w`.
async fn grown(dir: &Path, w: &Arc<dyn Witness>, n: usize, kdf: &tokenward::store::keys::KdfParams) {
    let b = || builder_with(dir, Some(kdf.clone())).witness(w.clone());
    let tw = b().open().await.unwrap();
    tw.issue(&principal(), &request("seed")).await.unwrap();
    tw.shutdown().await.unwrap();
    // The bulk of the log, appended directly (what N issues would leave, minus the store rows).
    let log = FileLog::open_with(dir.join("audit.jsonl"), FileSync::Os).unwrap();
    let now = tokenward::core::chrono::Utc::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch
            .push(AuditEvent::new(now, Actor::System, Action::Store("bulk".into())).attr("n", i.to_string()));
        if batch.len() == 1000 {
            log.append(&batch).await.unwrap();
            batch.clear();
        }
    }
    if !batch.is_empty() {
        log.append(&batch).await.unwrap();
    }
    drop(log);
    let tw = b().open().await.unwrap();
    let t = tw.issue(&principal(), &request("last")).await.unwrap();
    tw.revoke(t.id()).await.unwrap(); // bound and witnessed
    for i in 0..3 {
        tw.issue(&principal(), &request(&format!("after{i}"))).await.unwrap(); // past the witnessed head
    }
    tw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
async fn open_with_a_witness_as_the_log_grows() {
    const ROUNDS: usize = 7;
    let kdf = tokenward::store::keys::KdfParams::generate_with(8, 1, 1).unwrap();
    for n in [10_000usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let mount = tempfile::tempdir().unwrap();
        let w: Arc<dyn Witness> = Arc::new(FileWitness::open(mount.path()).unwrap());
        grown(dir.path(), &w, n, &kdf).await;
        let size = w.newest().await.unwrap().unwrap().size;
        let mut m: std::collections::BTreeMap<&str, Vec<Duration>> = Default::default();
        for _ in 0..ROUNDS {
            for witness in [true, false] {
                let b = builder_with(dir.path(), Some(kdf.clone()));
                let b = if witness { b.witness(w.clone()) } else { b };
                let t0 = Instant::now();
                let tw = b.open().await.unwrap();
                m.entry(if witness { "open+witness" } else { "open" }).or_default().push(t0.elapsed());
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
        eprintln!(
            "log of {n} entries (witnessed at {size}), medians of {ROUNDS}: open with witness {:.1} ms, \
             without {:.1} ms; check: binding {:.2} ms, binding + witness {:.2} ms (witness part {:.2} ms)",
            ms(md("open+witness")),
            ms(md("open")),
            ms(md("check-binding")),
            ms(md("check-both")),
            ms(md("check-both").saturating_sub(md("check-binding"))),
        );
    }
}
