//! The store's trust boundary, attacked the way someone who can write its file but holds no key
//! would (rows edited with SQL between two opens): nothing missing is ever taken as permission,
//! one bad row never takes the store down, and stored parameters cannot hang an open.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Duration, Instant};

use tokenward::core::chrono::TimeDelta;
use tokenward::core::{DenyReason, Request, ScopeSet};
use tokenward::store::{StoreError, TokenQuery};
use tokenward::{Error, TokenwardBuilder};

mod common;

use common::*;

fn builder(dir: &Path) -> TokenwardBuilder {
    builder_with(dir, Some(tokenward::store::keys::KdfParams::generate_with(8, 1, 1).unwrap()))
}

fn wide() -> Request {
    Request::parse("kv:app/secret:write").unwrap()
}

/// A store with two tokens; returns their texts and ids.
async fn store_with_tokens(dir: &Path) -> Vec<(String, String)> {
    let tw = builder(dir).open().await.unwrap();
    let mut out = Vec::new();
    for purpose in ["a", "b"] {
        let t = tw.issue(&principal(), &request(purpose)).await.unwrap();
        out.push((t.expose_secret().to_owned(), t.id().to_string()));
    }
    tw.shutdown().await.unwrap();
    out
}

fn missing(e: &Error) -> bool {
    matches!(e, Error::Store(StoreError::Missing { .. }))
}

fn count(dir: &Path, sql: &str) -> i64 {
    db(dir).query_row(sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn deleting_the_integrity_markers_and_forging_a_legacy_record_grants_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = store_with_tokens(dir.path()).await;
    let (text, id) = &tokens[0];
    // The forged record: the real one as JSON, with every scope and a far expiry.
    let tw = builder(dir.path()).open().await.unwrap();
    let mut record = tw.tokens().token(id.parse().unwrap()).await.unwrap().unwrap().record;
    tw.shutdown().await.unwrap();
    record.scopes = ScopeSet::parse("kv:**:*").unwrap();
    record.expires_at += TimeDelta::days(3000);
    let json = serde_json::to_string(&record).unwrap();
    let conn = db(dir.path());
    conn.execute("DELETE FROM meta WHERE key IN ('tokenward/tokens-encoded', 'tokenward/tokens-tagged')", [])
        .unwrap();
    conn.execute("UPDATE tokens SET body = NULL, mac = NULL, record = ?2 WHERE id = ?1", [id, &json])
        .unwrap();
    drop(conn);

    // An open refuses, naming what is missing, and writes nothing.
    let e = builder(dir.path()).open().await.unwrap_err();
    assert!(missing(&e), "{e}");
    assert!(e.to_string().contains("tokenward/tokens-encoded"), "{e}");
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM meta WHERE key LIKE 'tokenward/tokens-%'"), 0);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM tokens WHERE mac IS NULL"), 1, "nothing re-tagged");

    // The operator's explicit migration writes the markers, audited, and still refuses the
    // untagged record: the token verifies for nothing, the other one still works.
    let tw = builder(dir.path()).migrate().open().await.unwrap();
    let done = tw.migration().unwrap();
    assert_eq!(done.records_rewritten, 0);
    assert_eq!(done.markers_written.len(), 2);
    assert!(!tw.verifier().verify(text, &wide()).is_allowed());
    assert!(!tw.verifier().verify(text, &read()).is_allowed());
    assert!(tw.verifier().verify(&tokens[1].0, &read()).is_allowed());
    assert!(tw.tokens().opened().refused.iter().any(|r| r.to_string() == *id));
    tw.shutdown().await.unwrap();
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(log.contains("\"store\"") && log.contains("migrate"), "the migration is audited");
    // And a plain open now works, the forged row still refused.
    let tw = builder(dir.path()).open().await.unwrap();
    assert!(!tw.verifier().verify(text, &wide()).is_allowed());
    tw.shutdown().await.unwrap();
}

#[tokio::test]
async fn deleting_a_sealed_keys_label_is_tampering_not_a_new_key() {
    for name in ["tokenward/record-key", "tokenward/digest-key"] {
        let dir = tempfile::tempdir().unwrap();
        store_with_tokens(dir.path()).await;
        let versions = count(dir.path(), "SELECT COUNT(*) FROM versions");
        db(dir.path()).execute("DELETE FROM labels WHERE name = ?1", [name]).unwrap();
        for _ in 0..2 {
            let e = builder(dir.path()).open().await.unwrap_err();
            assert!(missing(&e), "{name}: {e}");
            assert!(e.to_string().contains(name), "{e}");
            // Not even a migration re-creates it.
            let e = builder(dir.path()).migrate().open().await.unwrap_err();
            assert!(missing(&e), "{name}: {e}");
        }
        assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM versions"), versions, "no key written");
        assert_eq!(
            count(dir.path(), "SELECT COUNT(*) FROM meta WHERE key = 'tokenward/integrity-legacy'"),
            0,
            "no legacy mode"
        );
    }
}

#[tokio::test]
async fn deleting_the_key_check_or_the_kdf_parameters_of_a_store_in_use_is_tampering() {
    for key in ["key-check", "kdf"] {
        let dir = tempfile::tempdir().unwrap();
        store_with_tokens(dir.path()).await;
        db(dir.path()).execute("DELETE FROM meta WHERE key = ?1", [key]).unwrap();
        let e = builder(dir.path()).open().await.unwrap_err();
        assert!(missing(&e), "{key}: {e}");
        assert_eq!(
            count(
                dir.path(),
                "SELECT COUNT(*) FROM meta WHERE key = ?1".replace("?1", &format!("'{key}'")).as_str()
            ),
            0
        );
    }
}

#[tokio::test]
async fn unsealed_metadata_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    store_with_tokens(dir.path()).await;
    db(dir.path())
        .execute("UPDATE meta SET value = CAST('v1' AS BLOB) WHERE key = 'tokenward/tokens-tagged'", [])
        .unwrap();
    let e = builder(dir.path()).open().await.unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::Corrupted { .. })), "{e}");
}

#[tokio::test]
async fn one_bad_row_is_quarantined_and_named_while_the_rest_works() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = store_with_tokens(dir.path()).await;
    let (bad_text, bad_id) = &tokens[0];
    // One flipped byte at the start of the body (where the id is encoded).
    let conn = db(dir.path());
    let mut body: Vec<u8> =
        conn.query_row("SELECT body FROM tokens WHERE id = ?1", [bad_id], |r| r.get(0)).unwrap();
    body[1] ^= 0xff;
    conn.execute("UPDATE tokens SET body = ?2 WHERE id = ?1", rusqlite::params![bad_id, body]).unwrap();
    drop(conn);

    let tw = builder(dir.path()).open().await.unwrap();
    assert_eq!(
        tw.tokens().opened().refused.iter().map(ToString::to_string).collect::<Vec<_>>(),
        std::slice::from_ref(bad_id)
    );
    assert!(!tw.verifier().verify(bad_text, &read()).is_allowed());
    assert!(tw.verifier().verify(&tokens[1].0, &read()).is_allowed());
    tw.issue(&principal(), &request("c")).await.unwrap();
    let listed = tw.tokens().tokens(&TokenQuery::Principal(principal().id().clone())).await.unwrap();
    assert_eq!(listed.len(), 3);
    let tampered: Vec<_> = listed.iter().filter(|t| t.tampered.is_some()).collect();
    assert_eq!(tampered.len(), 1);
    assert_eq!(tampered[0].row.record.id.to_string(), *bad_id);
    tw.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_row_whose_columns_contradict_its_record_is_refused() {
    let edits = [
        // A record moved under another id (the first token's record and tag on the second's row).
        "UPDATE tokens SET body = (SELECT body FROM tokens WHERE id = ?2), mac = (SELECT mac FROM tokens WHERE id = ?2) WHERE id = ?1",
        // A revocation hidden from the queries that look for revocations.
        "UPDATE tokens SET revoked_ms = NULL WHERE id = ?1",
        "UPDATE tokens SET principal = 'other' WHERE id = ?1",
        "UPDATE tokens SET expires_ms = expires_ms + 1 WHERE id = ?1",
    ];
    for edit in edits {
        let dir = tempfile::tempdir().unwrap();
        let tokens = store_with_tokens(dir.path()).await;
        let (first, (text, id)) = (&tokens[0], &tokens[1]);
        if edit.contains("revoked_ms") {
            let tw = builder(dir.path()).open().await.unwrap();
            tw.revoke(id.parse().unwrap()).await.unwrap();
            tw.shutdown().await.unwrap();
        }
        db(dir.path())
            .execute(
                edit,
                rusqlite::params_from_iter([id, &first.1][..edit.matches('?').count().min(2)].iter()),
            )
            .unwrap();
        let tw = builder(dir.path()).open().await.unwrap();
        assert!(!tw.verifier().verify(text, &read()).is_allowed(), "{edit}");
        assert!(tw.verifier().verify(&first.0, &read()).is_allowed(), "{edit}");
        let listed = tw.tokens().tokens(&TokenQuery::Unexpired { at: tw.clock().now() }).await.unwrap();
        let row = listed.iter().find(|t| t.row.record.id.to_string() == *id).expect("listed");
        assert!(
            row.tampered.as_deref().is_some_and(|d| d.contains("contradict")),
            "{edit}: {:?}",
            row.tampered
        );
        tw.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_child_cut_from_its_parent_dies_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let parent = tw.issue(&principal(), &request("a")).await.unwrap();
    let child = tw
        .issue_child(
            parent.expose_secret(),
            &tokenward::core::ChildRequest::parse("c", "kv:app/x:read", TimeDelta::minutes(5)).unwrap(),
        )
        .await
        .unwrap();
    tw.shutdown().await.unwrap();
    db(dir.path())
        .execute("UPDATE tokens SET parent = NULL WHERE id = ?1", [child.id().to_string()])
        .unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    assert!(tw.tokens().opened().refused.contains(&child.id()));
    tw.revoke(parent.id()).await.unwrap();
    assert!(!tw.verifier().verify(child.expose_secret(), &read()).is_allowed());
    tw.shutdown().await.unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    assert!(!tw.verifier().verify(child.expose_secret(), &read()).is_allowed());
    tw.shutdown().await.unwrap();
}

#[tokio::test]
async fn kdf_parameters_out_of_bounds_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    store_with_tokens(dir.path()).await;
    let conn = db(dir.path());
    let kdf: Vec<u8> = conn.query_row("SELECT value FROM meta WHERE key = 'kdf'", [], |r| r.get(0)).unwrap();
    let mut params: serde_json::Value = serde_json::from_slice(&kdf).unwrap();
    for (field, value) in [("t_cost", 4_294_967_295u64), ("m_cost", 4_000_000_000), ("p_cost", 0)] {
        let mut p = params.clone();
        p[field] = value.into();
        conn.execute("UPDATE meta SET value = ?1 WHERE key = 'kdf'", [serde_json::to_vec(&p).unwrap()])
            .unwrap();
        let started = Instant::now();
        let e = builder(dir.path()).open().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{field}: {:?}", started.elapsed());
        assert!(
            matches!(e, Error::Store(StoreError::Corrupted { what: "KDF parameters", .. })),
            "{field}: {e}"
        );
    }
    params["t_cost"] = 1.into();
    conn.execute("UPDATE meta SET value = ?1 WHERE key = 'kdf'", [serde_json::to_vec(&params).unwrap()])
        .unwrap();
    builder(dir.path()).open().await.unwrap().shutdown().await.unwrap();
}

#[tokio::test]
async fn times_from_callers_never_overflow() {
    use tokenward::core::ChildRequest;
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let parent = tw.issue(&principal(), &request("a")).await.unwrap();
    for ttl in [TimeDelta::MAX, TimeDelta::milliseconds(i64::MAX / 2), TimeDelta::days(91)] {
        let child = ChildRequest::parse("c", "kv:app/x:read", ttl).unwrap();
        assert!(tw.issue_child(parent.expose_secret(), &child).await.is_err());
        let root = tokenward::core::IssueRequest::parse("z", "kv:app/x:read", ttl).unwrap();
        assert!(tw.issue(&principal(), &root).await.is_err());
    }
    let far =
        tokenward::core::chrono::DateTime::<tokenward::core::chrono::Utc>::MAX_UTC - TimeDelta::hours(1);
    let late = request("late").not_before(far);
    assert!(tw.issue(&principal(), &late).await.is_err());
    assert!(
        tokenward::core::Policy::builder().max_ttl(TimeDelta::days(3650)).build().is_err(),
        "no policy raises the ceiling"
    );
    tw.shutdown().await.unwrap();
}

/// A child row rolled back to its validly tagged state from before its parent's revocation (no
/// audit log to re-revoke it): the verifier itself denies a token whose ancestor is revoked, in a
/// full cache and in a bounded one that must read the ancestor first.
#[tokio::test]
async fn a_child_whose_ancestor_is_revoked_is_denied_whatever_its_own_row_says() {
    use rusqlite::types::Value;
    use tokenward::store::cache::BoundedCache;
    let dir = tempfile::tempdir().unwrap();
    let unaudited = || {
        tokenward::Tokenward::embedded(dir.path().join("tw.db"))
            .passphrase_with(
                PASSPHRASE.into(),
                tokenward::store::keys::KdfParams::generate_with(8, 1, 1).unwrap(),
            )
            .prefix("fd")
            .policy(policy())
    };
    let tw = unaudited().open().await.unwrap();
    let root = tw.issue(&principal(), &request("a")).await.unwrap();
    // Each generation a minute shorter: a child may not outlive its parent.
    let child_of = |purpose: &str, minutes: i64| {
        tokenward::core::ChildRequest::parse(purpose, "kv:app/x:read", TimeDelta::minutes(minutes)).unwrap()
    };
    let parent = tw.issue_child(root.expose_secret(), &child_of("p", 5)).await.unwrap();
    let child = tw.issue_child(parent.expose_secret(), &child_of("c", 4)).await.unwrap();
    let conn = db(dir.path());
    let saved: Vec<Vec<Value>> = [parent.id(), child.id()]
        .iter()
        .map(|id| {
            conn.query_row("SELECT * FROM tokens WHERE id = ?1", [id.to_string()], |r| {
                (0..r.as_ref().column_count()).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>()
            })
            .unwrap()
        })
        .collect();
    tw.revoke(root.id()).await.unwrap();
    tw.shutdown().await.unwrap();
    drop(tw);
    // Both descendants put back as they were before the revocation: genuine, tagged, unrevoked.
    for row in &saved {
        conn.execute("DELETE FROM tokens WHERE id = ?1", [&row[0]]).unwrap();
        let marks = vec!["?"; row.len()].join(", ");
        conn.execute(&format!("INSERT INTO tokens VALUES ({marks})"), rusqlite::params_from_iter(row))
            .unwrap();
    }
    drop(conn);

    let tw = unaudited().open().await.unwrap();
    assert!(tw.tokens().opened().refused.is_empty(), "the rows are genuine: nothing to refuse");
    for (what, t) in [("child", &parent), ("grandchild", &child)] {
        let d = tw.verifier().verify(t.expose_secret(), &read());
        assert!(matches!(d.reason(), Some(DenyReason::Revoked { .. })), "{what}: {d}");
    }
    tw.shutdown().await.unwrap();
    drop(tw);

    let tw = unaudited().bounded_cache(BoundedCache::new(8)).open().await.unwrap();
    let d = tw.verifier().verify_async(child.expose_secret(), &read()).await;
    assert!(matches!(d.reason(), Some(DenyReason::Revoked { .. })), "bounded: {d}");
    tw.shutdown().await.unwrap();
    drop(tw);

    // An ancestor deleted outright: its descendants are refused, never taken for roots.
    db(dir.path()).execute("DELETE FROM tokens WHERE id = ?1", [root.id().to_string()]).unwrap();
    let tw = unaudited().open().await.unwrap();
    let d = tw.verifier().verify(parent.expose_secret(), &read());
    assert!(matches!(d.reason(), Some(DenyReason::AncestorMissing)), "{d}");
    tw.shutdown().await.unwrap();
}
