//! The embedded SQLite backend: the conformance kit on real files, reopening, no plaintext on disk,
//! and tampering with the file's bytes.

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use token_store::keys::KdfParams;
use token_store::secrecy::{ExposeSecret, SecretString};
use token_store::*;

#[tokio::test]
async fn sqlite_backend_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    testing::run_backend_suite(async || {
        n += 1;
        Arc::new(SqliteBackend::open(&dir.path().join(format!("kit-{n}.db"))).unwrap()) as Arc<dyn Backend>
    })
    .await;
}

#[tokio::test]
async fn reopened_file_keeps_secrets_and_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let planted = "PLANTED-cloud-key-9d8c7b6a";
    let pass = SecretString::from("a long passphrase for the file");
    let name = SecretName::new("svc/aws").unwrap();
    {
        let b = Arc::new(SqliteBackend::open(&path).unwrap()) as Arc<dyn Backend>;
        let s =
            SecretStore::open_with_passphrase(b, &pass, Some(KdfParams::generate_with(256, 1, 1).unwrap()))
                .await
                .unwrap();
        let v = s.put(&name, planted.as_bytes()).await.unwrap();
        s.update_labels(&name, &[LabelChange { label: Label::Current, expect: None, set: Some(v) }])
            .await
            .unwrap();
    }
    let b = Arc::new(SqliteBackend::open(&path).unwrap()) as Arc<dyn Backend>;
    let s = SecretStore::open_with_passphrase(b.clone(), &pass, None).await.unwrap();
    let (_, got) = s.get_labeled(&name, Label::Current).await.unwrap().unwrap();
    assert_eq!(got.expose_secret().as_slice(), planted.as_bytes());
    drop(s);
    drop(b);
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(file.unwrap().path()).unwrap();
        assert!(!bytes.windows(planted.len()).any(|w| w == planted.as_bytes()), "plaintext on disk");
        assert!(!bytes.windows(13).any(|w| w == b"a long passph"), "passphrase on disk");
    }
}

#[tokio::test]
async fn flipped_bytes_in_the_file_fail_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let key = || LocalKek::from_key("k1", token_store::secrecy::SecretBox::new(Box::new([5u8; 32]))).unwrap();
    let name = SecretName::new("svc/token").unwrap();
    let (ct, wk) = {
        let b = Arc::new(SqliteBackend::open(&path).unwrap());
        let s = SecretStore::open(b.clone(), Arc::new(key())).await.unwrap();
        s.put(&name, b"secret-value-under-test").await.unwrap();
        let v = b.version(&name, 1).await.unwrap().unwrap();
        (v.ciphertext.0, v.wrapped_key.0)
    };
    // Opening and closing the store checkpoints the WAL into the main file, where the test looks.
    drop(SqliteBackend::open(&path).unwrap());
    let original = std::fs::read(&path).unwrap();
    let mut tried = 0;
    for (what, needle) in [("ciphertext", &ct), ("wrapped key", &wk)] {
        let at = original
            .windows(needle.len())
            .position(|w| w == needle.as_slice())
            .expect("sealed bytes in the file");
        for i in (0..needle.len()).step_by(3) {
            let mut bytes = original.clone();
            bytes[at + i] ^= 0x20;
            std::fs::write(&path, &bytes).unwrap();
            let b = Arc::new(SqliteBackend::open(&path).unwrap());
            let s = SecretStore::open(b, Arc::new(key())).await.unwrap();
            let r = s.get(&name, 1).await;
            assert!(matches!(r, Err(StoreError::Corrupted { .. })), "{what} byte {i}: {r:?}");
            tried += 1;
        }
    }
    assert!(tried > 30);
}

/// A store written by schema version 1 (untagged JSON records, no key check): its schema migrates
/// when the backend opens, but the store is refused — an untagged record is never trusted.
#[tokio::test]
async fn a_version_1_store_is_refused_never_tagged() {
    use token_core::chrono::{TimeDelta, Utc};
    use token_core::digest::{DigestKey, DigestKeyring};
    use token_core::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let policy = Policy::builder()
        .role(Role::parse("r", "svc:data/**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new("mig").unwrap()),
        DigestKeyring::new(DigestKey::generate(4).unwrap()),
        policy,
    );
    let principal = Principal::parse("p", ["r"]).unwrap();
    let now = Utc::now();
    let (token, record) = issuer
        .issue_at(
            &principal,
            &IssueRequest::parse("u", "svc:data/x:read", TimeDelta::hours(1)).unwrap(),
            &[],
            now,
        )
        .unwrap();
    {
        // The version-1 schema, as it shipped.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE tokens (id TEXT PRIMARY KEY, principal TEXT NOT NULL, purpose TEXT NOT NULL, parent TEXT,
                expires_ms INTEGER NOT NULL, revoked_ms INTEGER, last_used_ms INTEGER, uses INTEGER NOT NULL DEFAULT 0,
                record TEXT NOT NULL) STRICT;
             CREATE TABLE versions (name TEXT NOT NULL, version INTEGER NOT NULL, kek_id TEXT NOT NULL,
                wrapped_key BLOB NOT NULL, ciphertext BLOB NOT NULL, created_ms INTEGER NOT NULL,
                PRIMARY KEY (name, version)) STRICT;
             CREATE TABLE labels (name TEXT NOT NULL, label TEXT NOT NULL, version INTEGER NOT NULL,
                PRIMARY KEY (name, label)) STRICT;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
             PRAGMA user_version = 1;",
        )
        .unwrap();
        conn.execute(
            "INSERT INTO tokens (id, principal, purpose, parent, expires_ms, revoked_ms, record) VALUES (?1, ?2, ?3, NULL, ?4, NULL, ?5)",
            rusqlite::params![
                record.id.to_string(),
                record.principal.as_str(),
                record.purpose.as_str(),
                record.expires_at.timestamp_millis(),
                serde_json::to_string(&record).unwrap()
            ],
        )
        .unwrap();
    }
    // Opening the backend migrates the schema; the store itself refuses: it holds a token but no
    // key check, so nothing proves its records are ours. Not even an explicit migration tags an
    // untagged record (stores older than integrity tags are not supported).
    let backend = Arc::new(SqliteBackend::open(&path).unwrap()) as Arc<dyn Backend>;
    let kek = || {
        Arc::new(LocalKek::from_key("k", token_store::secrecy::SecretBox::new(Box::new([3; 32]))).unwrap())
    };
    let e = SecretStore::open(backend.clone(), kek()).await.unwrap_err();
    assert!(matches!(e, StoreError::Missing { .. }), "{e}");
    let e = SecretStore::migrate(backend.clone(), kek()).await.unwrap_err();
    assert!(matches!(e, StoreError::Missing { .. }), "{e}");
    drop(backend);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v, 5);
    let untagged: i64 =
        conn.query_row("SELECT COUNT(*) FROM tokens WHERE mac IS NULL", [], |r| r.get(0)).unwrap();
    let secrets: i64 = conn.query_row("SELECT COUNT(*) FROM versions", [], |r| r.get(0)).unwrap();
    assert_eq!((untagged, secrets), (1, 0), "nothing tagged, no key written");
    let _ = (token, now);
}
