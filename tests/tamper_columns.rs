//! Every column of every table of the embedded store tampered with boundary values (0, -1,
//! i64::MIN/MAX, empty, huge, wrong type, null), one at a time: opening and using the store gives a
//! typed error or a working store — never a panic, on any thread — and a tampered store never
//! revives a revoked token or widens one. (Its own test binary: the panic counter is process-wide.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokenward::core::Request;
use tokenward::core::chrono::TimeDelta;
use tokenward::store::SecretName;
use tokenward::{Error, TokenwardBuilder};

mod common;

use common::*;

/// Cheap Argon2id: this test opens the store a couple of hundred times.
fn builder(dir: &Path) -> TokenwardBuilder {
    builder_with(dir, Some(tokenward::store::keys::KdfParams::generate_with(8, 1, 1).unwrap()))
}

/// Counts panics on every thread of this test binary (the store's worker threads included).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default(info);
    }));
}

/// A store with one of everything: tokens (one revoked, one child), secrets with labels, a
/// rotation record, the key check and the KDF parameters.
async fn pristine(dir: &Path) -> (String, String) {
    let tw = builder(dir).open().await.unwrap();
    let token = tw.issue(&principal(), &request("p")).await.unwrap();
    let gone = tw.issue(&principal(), &request("gone")).await.unwrap();
    tw.issue_child(
        token.expose_secret(),
        &tokenward::core::ChildRequest::parse("c", "kv:app/x:read", TimeDelta::minutes(5)).unwrap(),
    )
    .await
    .unwrap();
    tw.revoke(gone.id()).await.unwrap();
    tw.seal_current(&SecretName::new("svc/key").unwrap(), b"value").await.unwrap();
    let target = tw.token_target(principal(), request("rot"));
    let _ = tw.rotate(&SecretName::new("svc/rot").unwrap(), target).await.unwrap();
    tw.shutdown().await.unwrap();
    (token.expose_secret().to_owned(), gone.expose_secret().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_column_tampered_gives_a_typed_error_or_a_working_store_never_a_panic() {
    count_panics();
    let base = tempfile::tempdir().unwrap();
    let (token, gone) = pristine(base.path()).await;
    let values: Vec<(&str, rusqlite::types::Value)> = {
        use rusqlite::types::Value::*;
        vec![
            ("0", Integer(0)),
            ("-1", Integer(-1)),
            ("i64::MIN", Integer(i64::MIN)),
            ("i64::MAX", Integer(i64::MAX)),
            ("empty text", Text(String::new())),
            ("huge text", Text("x".repeat(1 << 20))),
            ("a blob", Blob(vec![0xff, 0, 1])),
            ("empty blob", Blob(Vec::new())),
            ("a real", Real(1.5)),
            ("null", Null),
        ]
    };
    let tables: Vec<(String, Vec<String>)> = {
        let conn = db(base.path());
        let names: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        names
            .into_iter()
            .map(|t| {
                let cols = conn
                    .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                (t, cols)
            })
            .collect()
    };
    assert!(
        tables.iter().map(|(t, _)| t.as_str()).eq(["labels", "meta", "tokens", "versions"]),
        "{tables:?}"
    );
    let (mut working, mut typed, mut refused_by_sqlite) = (0, 0, 0);
    let mut errors = std::collections::BTreeSet::new();
    for (table, cols) in &tables {
        for col in cols {
            for (what, value) in &values {
                let dir = tempfile::tempdir().unwrap();
                for f in ["tw.db", "audit.jsonl"] {
                    std::fs::copy(base.path().join(f), dir.path().join(f)).unwrap();
                }
                let changed = db(dir.path()).execute(&format!("UPDATE {table} SET {col} = ?1"), [value]);
                if changed.is_err() {
                    refused_by_sqlite += 1; // STRICT tables refuse a wrong type, NOT NULL a null, keys a duplicate
                    continue;
                }
                let opened = builder(dir.path()).open().await;
                match opened {
                    Ok(tw) => {
                        // A working store: it issues and verifies; tampered tokens are denied, never widened.
                        let fresh = tw.issue(&principal(), &request("fresh")).await;
                        if let Ok(t) = &fresh {
                            assert!(tw.verifier().verify(t.expose_secret(), &read()).is_allowed());
                        }
                        let d = tw.verifier().verify(&gone, &read());
                        assert!(!d.is_allowed(), "{table}.{col} = {what}: the revoked token came back: {d}");
                        let wider = Request::parse("kv:other/x:write").unwrap();
                        assert!(!tw.verifier().verify(&token, &wider).is_allowed(), "{table}.{col} = {what}");
                        let _ = tw.read_current(&SecretName::new("svc/key").unwrap()).await;
                        let _ = tw
                            .rotate(
                                &SecretName::new("svc/rot").unwrap(),
                                tw.token_target(principal(), request("rot")),
                            )
                            .await;
                        let _ = tw.shutdown().await;
                        working += 1;
                    }
                    Err(e) => {
                        let text = e.to_string();
                        assert!(!text.is_empty());
                        assert!(
                            matches!(
                                e,
                                Error::Store(_) | Error::Audit(_) | Error::Rotate(_) | Error::Config(_)
                            ),
                            "{table}.{col} = {what}: {e:?}"
                        );
                        errors
                            .insert(format!("{table}.{col}: {}", text.chars().take(70).collect::<String>()));
                        typed += 1;
                    }
                }
            }
        }
    }
    eprintln!(
        "tampered {} columns × {} values: {working} opened and worked, {typed} typed errors, \
         {refused_by_sqlite} refused by SQLite itself; errors seen:\n  {}",
        tables.iter().map(|(_, c)| c.len()).sum::<usize>(),
        values.len(),
        errors.into_iter().collect::<Vec<_>>().join("\n  ")
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "no panic on any thread");
    assert!(working > 0 && typed > 0);
}
