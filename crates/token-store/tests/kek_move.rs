//! A KEK move killed at every point resumes: `SecretStore::move_kek` (passphrase → key file, the
//! two local key providers) is interrupted at its Nth write for every N until it completes — and
//! its rerun interrupted again at its Mth write for every M — by a backend that fails that write
//! and every later one (the process died before it). After each interruption an ordinary open with
//! the old KEK or the new one either works with every secret reading back identical, or is refused
//! with `StoreError::KekMoveUnfinished` (never a wrong secret, never a panic, never lost data); a
//! rerun of the move finishes it; afterwards the old KEK is refused and every secret reads back
//! identical under the new one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use token_core::chrono::{DateTime, Utc};
use token_core::{TokenId, lookup::TokenRecord};
use token_store::backend::{RecordKey, Sealed, SecretVersion};
use token_store::keys::{KdfParams, KekMove};
use token_store::reserved::KEK_MOVE_META;
use token_store::secrecy::{ExposeSecret, SecretBox, SecretString};
use token_store::*;

const NEW_ID: &str = "keyfile";
const PASSPHRASE: &str = "the old passphrase";

/// What a process that dies before its `fail_at`th write does: every write from that one on fails
/// and leaves nothing behind; reads pass through. `fail_at: None` never fails (counts only);
/// `Some(1)` is read-only.
struct Interrupt {
    inner: Arc<dyn Backend>,
    fail_at: Option<usize>,
    writes: AtomicUsize,
}

impl Interrupt {
    fn new(inner: &Arc<dyn Backend>, fail_at: Option<usize>) -> Arc<Self> {
        Arc::new(Self { inner: Arc::clone(inner), fail_at, writes: AtomicUsize::new(0) })
    }

    fn write(&self) -> token_store::Result<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        match self.fail_at {
            Some(at) if n >= at => {
                Err(StoreError::Backend(format!("injected: the process died before write {n}").into()))
            }
            _ => Ok(()),
        }
    }

    /// The writes attempted (the failed one included).
    fn attempted(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Backend for Interrupt {
    async fn insert_token(
        &self,
        record: &TokenRecord,
        key: &RecordKey,
        expected_active: &[TokenId],
    ) -> token_store::Result<()> {
        self.write()?;
        self.inner.insert_token(record, key, expected_active).await
    }
    async fn token(&self, id: TokenId) -> token_store::Result<Option<TokenRow>> {
        self.inner.token(id).await
    }
    async fn token_ids(&self, query: &TokenQuery) -> token_store::Result<Vec<TokenId>> {
        self.inner.token_ids(query).await
    }
    async fn tokens(&self, query: &TokenQuery) -> token_store::Result<Vec<TokenRow>> {
        self.inner.tokens(query).await
    }
    async fn revoke_tree(
        &self,
        id: TokenId,
        at: DateTime<Utc>,
        key: &RecordKey,
    ) -> token_store::Result<Vec<TokenId>> {
        self.write()?;
        self.inner.revoke_tree(id, at, key).await
    }
    async fn upgrade_token_records(&self, key: &RecordKey) -> token_store::Result<usize> {
        self.write()?;
        self.inner.upgrade_token_records(key).await
    }
    async fn record_uses(&self, uses: &[(TokenId, DateTime<Utc>, u64)]) -> token_store::Result<()> {
        self.write()?;
        self.inner.record_uses(uses).await
    }
    async fn insert_version(&self, version: &SecretVersion) -> token_store::Result<()> {
        self.write()?;
        self.inner.insert_version(version).await
    }
    async fn version(&self, name: &SecretName, version: u64) -> token_store::Result<Option<SecretVersion>> {
        self.inner.version(name, version).await
    }
    async fn latest_version(&self, name: &SecretName) -> token_store::Result<Option<u64>> {
        self.inner.latest_version(name).await
    }
    async fn secret_names(&self) -> token_store::Result<Vec<(SecretName, u64)>> {
        self.inner.secret_names().await
    }
    async fn labels(&self, name: &SecretName) -> token_store::Result<Labels> {
        self.inner.labels(name).await
    }
    async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> token_store::Result<()> {
        self.write()?;
        self.inner.update_labels(name, changes).await
    }
    async fn versions_not_under(
        &self,
        kek_id: &str,
        limit: usize,
    ) -> token_store::Result<Vec<(SecretName, u64)>> {
        self.inner.versions_not_under(kek_id, limit).await
    }
    async fn rewrap_version(
        &self,
        name: &SecretName,
        version: u64,
        expect_kek: &str,
        new_kek: &str,
        wrapped_key: &Sealed,
    ) -> token_store::Result<()> {
        self.write()?;
        self.inner.rewrap_version(name, version, expect_kek, new_kek, wrapped_key).await
    }
    async fn meta(&self, key: &str) -> token_store::Result<Option<Vec<u8>>> {
        self.inner.meta(key).await
    }
    async fn set_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> token_store::Result<()> {
        self.write()?;
        self.inner.set_meta(key, expect, value).await
    }
}

/// Every secret version in the store and its plaintext, and where `current` points.
#[derive(Clone, Default)]
struct Expected {
    versions: Vec<(SecretName, u64, Vec<u8>)>,
    current: Vec<(SecretName, u64)>,
}

struct Fixture {
    backend: Arc<dyn Backend>,
    key_file: tempfile::NamedTempFile,
    expected: Expected,
    /// Distinct values for the secrets written while the store is being moved.
    puts: usize,
}

fn passphrase() -> SecretString {
    SecretString::from(PASSPHRASE)
}

impl Fixture {
    /// A passphrase store holding three secrets of two versions each (`current` on the second) and
    /// its own sealed keys; every plaintext recorded through the store before any move.
    async fn new() -> Self {
        use std::io::Write;
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let params = KdfParams::generate_with(8, 1, 1).unwrap();
        let store = SecretStore::open_with_passphrase(Arc::clone(&backend), &passphrase(), Some(params))
            .await
            .unwrap();
        for i in 0..3 {
            let name = SecretName::new(&format!("svc/s{i}")).unwrap();
            store.put(&name, format!("first value of s{i}").as_bytes()).await.unwrap();
            let v = store.put(&name, format!("second value of s{i}").as_bytes()).await.unwrap();
            store
                .update_labels(&name, &[LabelChange { label: Label::Current, expect: None, set: Some(v) }])
                .await
                .unwrap();
        }
        let mut expected = Expected::default();
        for (name, latest) in backend.secret_names().await.unwrap() {
            for v in 1..=latest {
                expected.versions.push((
                    name.clone(),
                    v,
                    store.get(&name, v).await.unwrap().expose_secret().clone(),
                ));
            }
            if let Some(&c) = store.labels(&name).await.unwrap().get(&Label::Current) {
                expected.current.push((name, c));
            }
        }
        assert!(expected.versions.len() >= 8, "three secrets of two versions and the store's own keys");
        let mut key_file = tempfile::NamedTempFile::new().unwrap();
        key_file.write_all(b"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n").unwrap();
        Self { backend, key_file, expected, puts: 0 }
    }

    async fn old(&self) -> Arc<dyn KeyProvider> {
        SecretStore::passphrase_key(&self.backend, &passphrase(), None).await.unwrap()
    }

    fn new_kek(&self) -> Arc<dyn KeyProvider> {
        Arc::new(LocalKek::from_file(NEW_ID, self.key_file.path()).unwrap())
    }

    async fn moving(&self) -> Arc<dyn KeyProvider> {
        Arc::new(KekMove::new(self.old().await, self.new_kek()))
    }

    /// One run of the move as a process would do it, dying before its `fail_at`th write: open the
    /// store to move it, write a secret through it (as the front door may while it opens), move.
    /// Returns whether the move completed, and the writes it attempted.
    async fn run_move(&mut self, fail_at: Option<usize>) -> (bool, usize) {
        let flaky = Interrupt::new(&self.backend, fail_at);
        let done = match SecretStore::open(flaky.clone(), self.moving().await).await {
            Err(e) => {
                assert!(matches!(e, StoreError::Backend(_)), "only the injected failure stops the open: {e}");
                false
            }
            Ok(store) => {
                self.puts += 1;
                let name = SecretName::new("svc/written-during-the-move").unwrap();
                let value = format!("value {} written while moving", self.puts).into_bytes();
                match store.put(&name, &value).await {
                    Ok(v) => self.expected.versions.push((name, v, value)),
                    Err(e) => assert!(matches!(e, StoreError::Backend(_)), "{e}"),
                }
                match store.move_kek(2).await {
                    Ok(_) => true,
                    Err(e) => {
                        assert!(
                            matches!(e, StoreError::Backend(_)),
                            "only the injected failure stops it: {e}"
                        );
                        false
                    }
                }
            }
        };
        assert_eq!(done, fail_at.is_none_or(|n| flaky.attempted() < n), "it completes exactly when not cut");
        (done, flaky.attempted())
    }

    /// Every expected version and label reads back identical through `store`.
    async fn assert_all_readable(&self, store: &SecretStore, what: &str) {
        for (name, v, value) in &self.expected.versions {
            let got = store.get(name, *v).await.unwrap_or_else(|e| panic!("{what}: {name} v{v}: {e}"));
            assert_eq!(got.expose_secret(), value, "{what}: {name} v{v} reads back another value");
        }
        for (name, v) in &self.expected.current {
            let (at, got) = store.get_labeled(name, Label::Current).await.unwrap().expect("labelled");
            assert_eq!(at, *v, "{what}: {name}'s current label moved");
            let value = &self.expected.versions.iter().find(|(n, w, _)| n == name && w == v).unwrap().2;
            assert_eq!(got.expose_secret(), value, "{what}: {name} current");
        }
    }

    /// An ordinary open (through a read-only backend: checking writes nothing) with `keys`: `Ok`
    /// with every secret readable, or its error.
    async fn ordinary_open(&self, keys: Arc<dyn KeyProvider>, what: &str) -> Result<(), StoreError> {
        let read_only = Interrupt::new(&self.backend, Some(1));
        let store = SecretStore::open(read_only.clone(), keys).await?;
        self.assert_all_readable(&store, what).await;
        assert_eq!(read_only.attempted(), 0, "{what}: an open and reads write nothing");
        Ok(())
    }

    fn move_recorded(meta: Option<Vec<u8>>) -> bool {
        meta.is_some_and(|v| !v.is_empty())
    }

    /// The state after an interrupted run: either nothing happened (the first write, recording the
    /// move, was cut: the old KEK opens it with everything readable, the new one is refused as a
    /// wrong key), or the move is recorded and both ordinary opens are refused as unfinished —
    /// while the move itself opens it with everything readable.
    async fn assert_interrupted(&self, started: bool, what: &str) {
        let recorded = Self::move_recorded(self.backend.meta(KEK_MOVE_META).await.unwrap());
        assert_eq!(recorded, started, "{what}: the move is recorded once anything was written");
        let old = self.ordinary_open(self.old().await, &format!("{what}, old KEK")).await;
        let new = self.ordinary_open(self.new_kek(), &format!("{what}, new KEK")).await;
        if recorded {
            for (r, which) in [(old, "old"), (new, "new")] {
                match r {
                    Err(StoreError::KekMoveUnfinished { to }) => assert_eq!(to, NEW_ID, "{what}"),
                    other => panic!(
                        "{what}: an ordinary open with the {which} KEK of a half-moved store: {other:?}"
                    ),
                }
            }
            let read_only = Interrupt::new(&self.backend, Some(1));
            let store = SecretStore::open(read_only.clone(), self.moving().await)
                .await
                .unwrap_or_else(|e| panic!("{what}: the move opens a half-moved store: {e}"));
            self.assert_all_readable(&store, &format!("{what}, opened to move")).await;
            assert_eq!(read_only.attempted(), 0, "{what}: reopening a recorded move writes nothing");
            // A move to another KEK is refused while this one is unfinished.
            let other: Arc<dyn KeyProvider> =
                Arc::new(LocalKek::from_key("elsewhere", SecretBox::new(Box::new([9u8; 32]))).unwrap());
            match SecretStore::open(
                Arc::clone(&self.backend),
                Arc::new(KekMove::new(self.old().await, other)),
            )
            .await
            {
                Err(StoreError::KekMoveUnfinished { to }) => assert_eq!(to, NEW_ID),
                other => panic!("{what}: a move elsewhere opened a half-moved store: {other:?}"),
            }
        } else {
            old.unwrap_or_else(|e| panic!("{what}: the old KEK no longer opens an unmoved store: {e}"));
            assert!(
                matches!(new, Err(StoreError::UnknownKey { .. } | StoreError::WrongKey { .. })),
                "{what}: the new KEK opened an unmoved store: {new:?}"
            );
        }
    }

    /// The move is complete: nothing recorded, every data key under the new KEK, the new KEK
    /// alone opens it with every secret identical, the old one is refused as a wrong key.
    async fn assert_moved(&self, what: &str) {
        assert!(
            !Self::move_recorded(self.backend.meta(KEK_MOVE_META).await.unwrap()),
            "{what}: move cleared"
        );
        assert!(
            self.backend.versions_not_under(NEW_ID, 100).await.unwrap().is_empty(),
            "{what}: all rewrapped"
        );
        self.ordinary_open(self.new_kek(), &format!("{what}, new KEK"))
            .await
            .unwrap_or_else(|e| panic!("{what}: the new KEK does not open the moved store: {e}"));
        let old = self.ordinary_open(self.old().await, &format!("{what}, old KEK")).await;
        assert!(
            matches!(old, Err(StoreError::UnknownKey { .. } | StoreError::WrongPassphrase)),
            "{what}: the old KEK still opens the moved store: {old:?}"
        );
    }
}

/// The move cut before its Nth write for every N, its rerun cut before its Mth write for every M,
/// then a last rerun: every state in between is a safe one, and every run ends moved.
#[tokio::test]
async fn a_kek_move_killed_at_every_write_is_refused_by_ordinary_opens_and_finished_by_a_rerun() {
    // The uninterrupted move, to know how many writes it makes.
    let mut whole = Fixture::new().await;
    let versions = whole.expected.versions.len();
    let (done, writes) = whole.run_move(None).await;
    assert!(done);
    whole.assert_moved("uninterrupted").await;
    // Record the move, the secret written meanwhile (already under the new KEK), each older data
    // key rewrapped, the key check, clear the record.
    assert_eq!(writes, 1 + 1 + versions + 1 + 1);

    let mut cut_points = 0;
    for n in 1.. {
        let mut f = Fixture::new().await;
        let (done, _) = f.run_move(Some(n)).await;
        if done {
            assert_eq!(n, writes + 1, "the cut lands on every write before the move completes");
            break;
        }
        cut_points += 1;
        let what = format!("cut before write {n}");
        f.assert_interrupted(n > 1, &what).await;
        // The rerun, cut before each of its own writes in turn: each from a fresh store cut at the
        // same N (the same state: the runs are deterministic).
        for m in 1.. {
            let mut g = Fixture::new().await;
            assert!(!g.run_move(Some(n)).await.0);
            let (done, _) = g.run_move(Some(m)).await;
            let what = format!("cut before write {n}, rerun cut before write {m}");
            if done {
                g.assert_moved(&what).await;
                break;
            }
            g.assert_interrupted(n > 1 || m > 1, &what).await;
            let (done, _) = g.run_move(None).await;
            assert!(done, "{what}: a last rerun finishes it");
            g.assert_moved(&format!("{what}, then finished")).await;
            assert!(m <= writes + 1, "{what}: the rerun never completes");
        }
        let (done, _) = f.run_move(None).await;
        assert!(done, "{what}: the rerun finishes it");
        f.assert_moved(&format!("{what}, then finished")).await;
        // Rerunning a finished move changes nothing that matters.
        assert!(f.run_move(None).await.0);
        f.assert_moved(&format!("{what}, then run once more")).await;
    }
    assert_eq!(cut_points, writes, "every write was a cut point");
}

/// Opening to move with the wrong old key records nothing: the store still opens as before.
#[tokio::test]
async fn a_move_opened_with_the_wrong_old_key_records_nothing() {
    let f = Fixture::new().await;
    let wrong = SecretStore::passphrase_key(&f.backend, &SecretString::from("not it"), None).await.unwrap();
    let r = SecretStore::open(Arc::clone(&f.backend), Arc::new(KekMove::new(wrong, f.new_kek()))).await;
    assert!(matches!(r, Err(StoreError::WrongPassphrase)), "{r:?}");
    assert!(!Fixture::move_recorded(f.backend.meta(KEK_MOVE_META).await.unwrap()));
    f.ordinary_open(f.old().await, "after a refused move").await.unwrap();
    // A move from a KEK to itself is refused before anything.
    let r =
        SecretStore::open(Arc::clone(&f.backend), Arc::new(KekMove::new(f.old().await, f.old().await))).await;
    assert!(matches!(r, Err(StoreError::Invalid(_))), "{r:?}");
    assert!(!Fixture::move_recorded(f.backend.meta(KEK_MOVE_META).await.unwrap()));
}
