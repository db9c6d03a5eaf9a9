//! The [`SecretStore`] on the backend: sealing and opening, wrong keys and tampering, KEK rotation.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::fail_after::FailAfter;
use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::error::StoreError;
use crate::keys::{KdfParams, LocalKek, LocalKeyring};
use crate::model::{Label, LabelChange, SecretName};
use crate::store::SecretStore;

fn fast_kdf() -> KdfParams {
    KdfParams::generate_with(64, 1, 1).expect("params")
}

/// Sealing and opening through [`SecretStore`] on this backend.
pub async fn envelope_through_store(b: Arc<dyn Backend>) {
    let pass = secrecy::SecretString::from("correct horse battery staple");
    let store =
        SecretStore::open_with_passphrase(Arc::clone(&b), &pass, Some(fast_kdf())).await.expect("open");
    let name = SecretName::new("svc/aws").expect("name");
    let v1 = store.put(&name, b"AKIA-first").await.expect("put");
    let v2 = store.put(&name, b"AKIA-second").await.expect("put");
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(store.get(&name, 1).await.expect("get").expose_secret().as_slice(), b"AKIA-first");
    store
        .update_labels(&name, &[LabelChange { label: Label::Current, expect: None, set: Some(2) }])
        .await
        .expect("label");
    let (v, s) = store.get_labeled(&name, Label::Current).await.expect("get").expect("labelled");
    assert_eq!((v, s.expose_secret().as_slice()), (2, &b"AKIA-second"[..]));
    // Reopening with the passphrase alone finds the parameters in the store.
    let again = SecretStore::open_with_passphrase(b, &pass, None).await.expect("reopen");
    assert_eq!(again.get(&name, 2).await.expect("get").expose_secret().as_slice(), b"AKIA-second");
}

/// Wrong passphrase, wrong key, moved and flipped ciphertexts are distinct typed errors.
pub async fn wrong_keys_and_tampering(b: Arc<dyn Backend>, b2: Arc<dyn Backend>) {
    let pass = secrecy::SecretString::from("right");
    let store =
        SecretStore::open_with_passphrase(Arc::clone(&b), &pass, Some(fast_kdf())).await.expect("open");
    let wrong =
        SecretStore::open_with_passphrase(Arc::clone(&b), &secrecy::SecretString::from("wrong"), None).await;
    assert!(matches!(wrong, Err(StoreError::WrongPassphrase)), "{wrong:?}");

    let key = LocalKek::from_key("k1", secrecy::SecretBox::new(Box::new([1u8; 32]))).expect("kek");
    let _raw = SecretStore::open(Arc::clone(&b2), Arc::new(key)).await.expect("raw key store");
    let other = LocalKek::from_key("k1", secrecy::SecretBox::new(Box::new([2u8; 32]))).expect("kek");
    assert!(matches!(
        SecretStore::open(Arc::clone(&b2), Arc::new(other)).await,
        Err(StoreError::WrongKey { .. })
    ));

    let a = SecretName::new("svc/a").expect("name");
    let c = SecretName::new("svc/c").expect("name");
    store.put(&a, b"alpha-secret").await.expect("put");
    store.put(&c, b"gamma-secret").await.expect("put");
    // Flip every byte of the wrapped key in place (through the backend's re-wrap), one at a time.
    let good = b.version(&a, 1).await.expect("read").expect("there");
    let kek = good.kek_id.clone();
    for i in 0..good.wrapped_key.0.len() {
        let mut flipped = good.wrapped_key.clone();
        flipped.0[i] ^= 0x01;
        b.rewrap_version(&a, 1, &kek, &kek, &flipped).await.expect("replace in place");
        let r = store.get(&a, 1).await;
        assert!(matches!(r, Err(StoreError::Corrupted { .. })), "wrapped key byte {i}: {r:?}");
    }
    b.rewrap_version(&a, 1, &kek, &kek, &good.wrapped_key).await.expect("restore");
    // Every flipped ciphertext byte, in a copy at the next version of the same secret: fails.
    for i in 0..good.ciphertext.0.len() {
        let mut v = good.clone();
        v.version = b.latest_version(&a).await.expect("latest").unwrap_or(0) + 1;
        v.ciphertext.0[i] ^= 0x01;
        b.insert_version(&v).await.expect("insert tampered copy");
        let r = store.get(&a, v.version).await;
        assert!(matches!(r, Err(StoreError::Corrupted { .. })), "ciphertext byte {i}: {r:?}");
    }
    // An untouched ciphertext moved to another secret fails too.
    let mut moved = b.version(&c, 1).await.expect("read").expect("there");
    moved.name = a.clone();
    moved.version = b.latest_version(&a).await.expect("latest").unwrap_or(0) + 1;
    b.insert_version(&moved).await.expect("insert moved");
    assert!(
        matches!(store.get(&a, moved.version).await, Err(StoreError::Corrupted { .. })),
        "moved ciphertext opened"
    );
    assert_eq!(store.get(&a, 1).await.expect("still fine").expose_secret().as_slice(), b"alpha-secret");
}

/// Rotating the KEK re-wraps every data key, resumably, and leaves plaintext unchanged.
pub async fn kek_rotation(b: Arc<dyn Backend>) {
    let k1 = || LocalKek::from_key("k1", secrecy::SecretBox::new(Box::new([1u8; 32]))).expect("kek");
    let k2 = || LocalKek::from_key("k2", secrecy::SecretBox::new(Box::new([2u8; 32]))).expect("kek");
    let s1 = SecretStore::open(Arc::clone(&b), Arc::new(k1())).await.expect("open");
    let names: Vec<SecretName> =
        (0..5).map(|i| SecretName::new(&format!("svc/s{i}")).expect("name")).collect();
    for (i, n) in names.iter().enumerate() {
        s1.put(n, format!("value-{i}").as_bytes()).await.expect("put");
    }
    let before: Vec<Sealed> = {
        let mut v = Vec::new();
        for n in &names {
            v.push(b.version(n, 1).await.expect("read").expect("there").ciphertext);
        }
        v
    };
    let both = || Arc::new(LocalKeyring::new(k2()).with_older(k1()));
    // The five secrets, and the store's own sealed keys (its record key).
    let total = b.versions_not_under("k2", 100).await.expect("list").len();
    assert!(total >= 5, "every version starts under k1");
    // Interrupt the rotation after two re-wraps: the error surfaces, two versions are done.
    let flaky = Arc::new(FailAfter { inner: Arc::clone(&b), rewraps_left: std::sync::Mutex::new(2) });
    let interrupted = SecretStore::open(flaky, both()).await.expect("open with both");
    assert!(
        matches!(interrupted.rotate_kek(1).await, Err(StoreError::Backend(_))),
        "the interruption surfaces"
    );
    assert_eq!(b.versions_not_under("k2", 100).await.expect("list").len(), total - 2, "two re-wrapped");
    // Resuming finishes the others.
    let s2 = SecretStore::open(Arc::clone(&b), both()).await.expect("open with both");
    let report = s2.rotate_kek(2).await.expect("rotate");
    assert_eq!(report.rewrapped, total - 2);
    assert_eq!(
        s2.rotate_kek(2).await.expect("again").rewrapped,
        0,
        "resuming a finished rotation does nothing"
    );
    for (i, n) in names.iter().enumerate() {
        let v = b.version(n, 1).await.expect("read").expect("there");
        assert_eq!(v.kek_id, "k2");
        assert_eq!(v.ciphertext, before[i], "ciphertext untouched");
    }
    // The new key alone now opens the store and every secret; the old one alone does not.
    let only_new = SecretStore::open(Arc::clone(&b), Arc::new(k2())).await.expect("new key alone");
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            only_new.get(n, 1).await.expect("get").expose_secret().as_slice(),
            format!("value-{i}").as_bytes()
        );
    }
    assert!(SecretStore::open(b, Arc::new(k1())).await.is_err(), "the old KEK no longer opens the store");
}
