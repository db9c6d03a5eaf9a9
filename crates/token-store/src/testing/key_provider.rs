//! The key-provider conformance kit.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::fail_after::FailAfter;
use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::keys::KeyProvider;
use crate::model::SecretName;
use crate::store::SecretStore;

/// The key-provider conformance kit: what every [`KeyProvider`] must do, for a tool author's
/// provider and for ours. `before` is the provider as it is; `after` the same KEK source after a
/// key rotation (a keyring with the new key and the old, a KMS key rotated and reconnected), whose
/// `current_kek` differs and which still unwraps what `before` wrapped.
///
/// Checks: a wrap round-trips; the wrap is bound to its aad (another aad is refused) and to its KEK
/// id (an unknown id is [`StoreError::UnknownKey`](crate::StoreError::UnknownKey) or refused); tampered bytes are refused; a store
/// opened with `before` holds secrets that `after` opens; `rotate_kek` under `after` rewraps every
/// version, resumes after an interruption, and leaves the ciphertexts untouched.
pub async fn run_key_provider_suite(before: Arc<dyn KeyProvider>, after: Arc<dyn KeyProvider>) {
    use crate::envelope::SecretKey;
    assert_ne!(before.current_kek(), after.current_kek(), "the rotated provider has a new current KEK");
    let dek = SecretKey::generate().expect("a key");
    let wrapped = before.wrap(&dek, b"svc/a@1").await.expect("wrap");
    assert!(!format!("{wrapped:?}").contains(&format!("{:?}", dek.expose_secret())), "Debug shows no key");
    let back = before.unwrap(before.current_kek(), &wrapped, b"svc/a@1").await.expect("unwrap");
    assert_eq!(back.expose_secret(), dek.expose_secret(), "a wrap round-trips");
    assert!(before.unwrap(before.current_kek(), &wrapped, b"svc/b@1").await.is_err(), "bound to its aad");
    assert!(
        before.unwrap("no-such-kek", &wrapped, b"svc/a@1").await.is_err(),
        "an unknown KEK id is refused"
    );
    // A byte in the middle (the ends of a text ciphertext can be padding or unused base64 bits).
    let mut tampered = wrapped.clone();
    let mid = tampered.0.len() / 2;
    tampered.0[mid] ^= 0x01;
    assert!(
        before.unwrap(before.current_kek(), &tampered, b"svc/a@1").await.is_err(),
        "tampering is refused"
    );
    // The rotated provider still opens what the old one wrapped.
    let again =
        after.unwrap(before.current_kek(), &wrapped, b"svc/a@1").await.expect("after unwraps before's wrap");
    assert_eq!(again.expose_secret(), dek.expose_secret());

    // Through a store: secrets under `before`, read and rewrapped under `after`, resumably.
    let b: Arc<dyn Backend> = Arc::new(crate::MemoryBackend::new());
    let s1 = SecretStore::open(Arc::clone(&b), Arc::clone(&before)).await.expect("open under before");
    let names: Vec<SecretName> =
        (0..4).map(|i| SecretName::new(&format!("svc/k{i}")).expect("name")).collect();
    for (i, n) in names.iter().enumerate() {
        s1.put(n, format!("value-{i}").as_bytes()).await.expect("put");
    }
    let before_ct: Vec<Sealed> = {
        let mut v = Vec::new();
        for n in &names {
            v.push(b.version(n, 1).await.expect("read").expect("there").ciphertext);
        }
        v
    };
    let total = b.versions_not_under(after.current_kek(), 100).await.expect("list").len();
    assert!(total >= names.len());
    let flaky = Arc::new(FailAfter { inner: Arc::clone(&b), rewraps_left: std::sync::Mutex::new(1) });
    let interrupted = SecretStore::open(flaky, Arc::clone(&after)).await.expect("open under after");
    assert!(interrupted.rotate_kek(1).await.is_err(), "the interruption surfaces");
    let s2 = SecretStore::open(Arc::clone(&b), Arc::clone(&after)).await.expect("reopen under after");
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            s2.get(n, 1).await.expect("get").expose_secret().as_slice(),
            format!("value-{i}").as_bytes()
        );
    }
    let report = s2.rotate_kek(2).await.expect("resume");
    assert_eq!(report.rewrapped, total - 1, "the rest rewrapped");
    assert_eq!(b.versions_not_under(after.current_kek(), 100).await.expect("list").len(), 0);
    for (i, n) in names.iter().enumerate() {
        let v = b.version(n, 1).await.expect("read").expect("there");
        assert_eq!(v.kek_id, after.current_kek());
        assert_eq!(v.ciphertext, before_ct[i], "ciphertext untouched by a rewrap");
        assert_eq!(
            s2.get(n, 1).await.expect("get").expose_secret().as_slice(),
            format!("value-{i}").as_bytes()
        );
    }
}
