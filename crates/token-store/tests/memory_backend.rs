//! The in-memory backend through the conformance kit, and key-provider inputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use token_store::keys::KdfParams;
use token_store::secrecy::{ExposeSecret, SecretString};
use token_store::*;

#[tokio::test]
async fn memory_backend_passes_the_conformance_kit() {
    testing::run_backend_suite(async || Arc::new(MemoryBackend::new()) as Arc<dyn Backend>).await;
}

#[tokio::test]
async fn raw_keys_from_files_and_environment() {
    let dir = std::env::temp_dir().join(format!("tokenward-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let cases: [(&str, Vec<u8>); 3] = [
        ("raw", (0u8..32).collect()),
        ("hex", format!("{hex}\n").into_bytes()),
        ("b64", b"  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n".to_vec()),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let kek = LocalKek::from_file("k", &path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(kek.id(), "k");
    }
    // raw and base64 hold the same bytes 0..32: they open each other's stores.
    let a = Arc::new(MemoryBackend::new()) as Arc<dyn Backend>;
    SecretStore::open(Arc::clone(&a), Arc::new(LocalKek::from_file("k", &dir.join("raw")).unwrap()))
        .await
        .unwrap();
    SecretStore::open(Arc::clone(&a), Arc::new(LocalKek::from_file("k", &dir.join("b64")).unwrap()))
        .await
        .unwrap();
    assert!(matches!(
        SecretStore::open(a, Arc::new(LocalKek::from_file("k", &dir.join("hex")).unwrap())).await,
        Err(StoreError::WrongKey { .. })
    ));
    for bad in [&b"short"[..], &[b'z'; 64][..], b"not base64 at all, clearly not base64!!!!!!!"] {
        std::fs::write(dir.join("bad"), bad).unwrap();
        let e = LocalKek::from_file("k", &dir.join("bad")).unwrap_err();
        assert!(matches!(e, StoreError::KeyProvider(_)), "{e}");
    }
    assert!(matches!(LocalKek::from_file("k", &dir.join("missing")), Err(StoreError::KeyProvider(_))));
    assert!(matches!(LocalKek::from_file("bad id!", &dir.join("raw")), Err(StoreError::Invalid(_))));
    assert!(matches!(
        LocalKek::from_env("k", "TOKENWARD_SURELY_UNSET_VARIABLE"),
        Err(StoreError::KeyProvider(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn planted_secrets_stay_out_of_debug_errors_and_stored_bytes() {
    let planted = "PLANTED-SECRET-7f3a9c";
    let pass = SecretString::from("PLANTED-PASSPHRASE-41d2");
    let backend = Arc::new(MemoryBackend::new());
    let params = KdfParams::generate_with(64, 1, 1).unwrap();
    let store = SecretStore::open_with_passphrase(backend.clone(), &pass, Some(params)).await.unwrap();
    let name = SecretName::new("svc/key").unwrap();
    store.put(&name, planted.as_bytes()).await.unwrap();
    let got = store.get(&name, 1).await.unwrap();
    assert_eq!(got.expose_secret().as_slice(), planted.as_bytes());
    let stored = backend.version(&name, 1).await.unwrap().unwrap();
    let mut outputs = vec![
        format!("{store:?}"),
        format!("{got:?}"),
        format!("{stored:?}"),
        serde_json::to_string(&stored).unwrap(),
        format!("{:?}", backend.meta("kdf").await.unwrap()),
        format!("{:?}", backend.meta("key-check").await.unwrap()),
    ];
    let wrong = SecretStore::open_with_passphrase(backend.clone(), &SecretString::from("nope"), None).await;
    outputs.push(format!("{wrong:?}"));
    for out in &outputs {
        assert!(!out.contains(planted) && !out.contains("PLANTED"), "leak in {out}");
    }
    let raw = [&stored.ciphertext.0[..], &stored.wrapped_key.0[..]].concat();
    assert!(!raw.windows(planted.len()).any(|w| w == planted.as_bytes()));
}
