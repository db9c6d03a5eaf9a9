//! Witnesses: the conformance kit on each backend (a directory; an object-locked S3 bucket on a
//! real S3 API, moto, with the `s3` feature), and `check_log` failing closed on every way a log
//! can disagree with the newest witnessed head.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use token_audit::chains::{ChainHead, Entry};
use token_audit::merkle::CompactTree;
use token_audit::witnesses::tree_of;
use token_audit::witnesses::{
    FileWitness, TreeMark, Witness, WitnessError, WitnessedHead, check_log, check_log_marked,
};
use token_audit::*;
use token_core::chrono::Utc;

#[tokio::test]
async fn a_directory_witness_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let w = FileWitness::open(dir.path().join("w")).unwrap();
    testing::witness_conformance(&w, || Box::new(FileWitness::open(dir.path().join("w")).unwrap())).await;
    // Records are the owner's alone, and never rewritten in place.
    for e in std::fs::read_dir(dir.path().join("w")).unwrap() {
        let mode = std::os::unix::fs::PermissionsExt::mode(&e.unwrap().metadata().unwrap().permissions());
        assert_eq!(mode & 0o077, 0);
    }
}

async fn log_of(n: usize) -> MemoryLog {
    log_tagged(n, "a").await
}

/// `n` events tagged `history`: two logs with different tags never share an entry, even when
/// their events carry the same timestamp (the clock's resolution made two histories equal once).
async fn log_tagged(n: usize, history: &str) -> MemoryLog {
    let log = MemoryLog::new();
    let events: Vec<AuditEvent> = (0..n)
        .map(|i| {
            AuditEvent::new(Utc::now(), Actor::System, Action::Issue)
                .attr("n", i.to_string())
                .attr("history", history)
        })
        .collect();
    log.append(&events).await.unwrap();
    log
}

async fn witnessed(w: &dyn Witness, signer: &CheckpointSigner, epoch: u64, log: &MemoryLog, size: u64) {
    let tree = tree_of(log, size).await.unwrap();
    w.push(&WitnessedHead::sign(signer, "tokenward", epoch, &tree, size).unwrap()).await.unwrap();
}

#[tokio::test]
async fn a_log_behind_forked_from_or_older_than_the_witness_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    let w = FileWitness::open(dir.path()).unwrap();
    let signer = CheckpointSigner::generate().unwrap();
    let key = signer.public_key();
    let log = log_of(10).await;
    let check = async |log: &MemoryLog, epoch| {
        check_log(&w, &key, "tokenward", epoch, log, log.head().await.unwrap()).await.map(|c| c.newest)
    };
    // Nothing witnessed yet: nothing to hold the log to.
    assert_eq!(check(&log, 0).await.unwrap(), None);
    witnessed(&w, &signer, 0, &log, 8).await;
    assert_eq!(check(&log, 0).await.unwrap().unwrap().size, 8, "the log extends the witnessed head");

    // Rolled back below the witnessed head.
    let old = log_of(0).await;
    old.append(&log.read(0, 6).await.unwrap().into_iter().map(|e| e.event).collect::<Vec<_>>())
        .await
        .unwrap();
    let e = check(&old, 0).await.unwrap_err();
    assert!(matches!(e, WitnessError::RolledBack { witnessed: 8, log: 6 }), "{e}");

    // As long, but another history.
    let other = log_tagged(12, "b").await;
    assert!(matches!(check(&other, 0).await.unwrap_err(), WitnessError::Forked { size: 8 }));

    // A store bound to an epoch before the witnessed one (restored from before a new log).
    witnessed(&w, &signer, 1, &log, 3).await;
    assert!(matches!(check(&log, 0).await.unwrap_err(), WitnessError::StaleEpoch { witnessed: 1, store: 0 }));
    assert_eq!(check(&log, 2).await.unwrap().unwrap().epoch, 1, "a new epoch not yet witnessed");

    // A record signed by another key, or moved to another position, does not verify.
    let forger = CheckpointSigner::generate().unwrap();
    let tree = tree_of(&log, 10).await.unwrap();
    w.push(&WitnessedHead::sign(&forger, "tokenward", 1, &tree, 4).unwrap()).await.unwrap();
    assert!(matches!(check(&log, 1).await.unwrap_err(), WitnessError::BadRecord { .. }));
    let mut moved = WitnessedHead::sign(&signer, "tokenward", 1, &tree, 4).unwrap();
    moved.size = 5;
    w.push(&moved).await.unwrap();
    let e = check(&log, 1).await.unwrap_err();
    assert!(matches!(e, WitnessError::BadRecord { .. }), "{e}");
}

/// A log storage that counts the entries read through it.
struct Counting {
    inner: MemoryLog,
    read: std::sync::atomic::AtomicU64,
}

impl Counting {
    fn new(inner: MemoryLog) -> Self {
        Self { inner, read: Default::default() }
    }
    fn take(&self) -> u64 {
        self.read.swap(0, std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl LogStorage for Counting {
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
}

/// The mark of `log`'s first `size` entries, as the store seals it after pushing that head.
async fn mark_of(log: &dyn LogStorage, epoch: u64, size: u64) -> TreeMark {
    let (tree, at) =
        witnesses::extend_compact(log, CompactTree::new(), ChainHead::EMPTY, size).await.unwrap();
    TreeMark::new(epoch, at, &tree).unwrap()
}

/// `log`'s first `keep` entries, then `more` of its own (a valid chain: rewritten and regrown).
async fn fork_of(log: &MemoryLog, keep: usize, more: usize) -> MemoryLog {
    let fork = MemoryLog::new();
    let events: Vec<AuditEvent> = log.read(0, keep).await.unwrap().into_iter().map(|e| e.event).collect();
    if !events.is_empty() {
        fork.append(&events).await.unwrap();
    }
    let own: Vec<AuditEvent> = (0..more)
        .map(|i| AuditEvent::new(Utc::now(), Actor::System, Action::Revoke).attr("forged", i.to_string()))
        .collect();
    fork.append(&own).await.unwrap();
    fork
}

#[tokio::test]
async fn a_sealed_mark_makes_the_check_read_only_what_follows_it_and_proves_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let w = FileWitness::open(dir.path()).unwrap();
    let signer = CheckpointSigner::generate().unwrap();
    let key = signer.public_key();
    let log = Counting::new(log_of(5000).await);
    witnessed(&w, &signer, 0, &log.inner, 4000).await;
    let at_witness = mark_of(&log, 0, 4000).await;
    let earlier = mark_of(&log, 0, 3000).await;
    log.take();
    let check = async |storage: &Counting, mark: Option<&TreeMark>| {
        let head = storage.head().await.unwrap();
        check_log_marked(&w, &key, "tokenward", 0, storage, head, mark).await
    };

    // The mark at the witnessed size: one entry read (the marked one), nothing hashed into a tree.
    let c = check(&log, Some(&at_witness)).await.unwrap();
    assert_eq!((c.entries_read, c.from_mark, c.at), (0, true, at_witness.chain_head()));
    assert_eq!(log.take(), 1);
    // An earlier mark (a push whose mark was not sealed): the entries from it to the witness.
    let c = check(&log, Some(&earlier)).await.unwrap();
    assert_eq!((c.entries_read, c.from_mark), (1000, true));
    assert_eq!(log.take(), 1001);
    assert_eq!(c.tree, mark_of(&log, 0, 4000).await.tree().unwrap(), "the same tree as from the start");
    log.take();
    // No mark, a mark of another epoch, or one past the witnessed size: the whole prefix, as before.
    let later = mark_of(&log, 0, 4500).await;
    let other_epoch = mark_of(&log, 1, 4000).await;
    log.take();
    for m in [None, Some(&other_epoch), Some(&later)] {
        let c = check(&log, m).await.unwrap();
        assert_eq!((c.entries_read, c.from_mark), (4000, false));
        assert!(log.take() >= 4000);
    }

    // Only the log is edited — the store's mark is current — and rewritten at or before the
    // witnessed position with a valid chain: refused, wherever the fork is.
    for keep in [0, 1, 2999, 3000, 3500, 3999] {
        let fork = Counting::new(fork_of(&log.inner, keep, 5000 - keep).await);
        for m in [&at_witness, &earlier] {
            let e = check(&fork, Some(m)).await.unwrap_err();
            assert!(matches!(e, WitnessError::Forked { size: 4000 }), "fork at {keep}, mark {}: {e}", m.size);
        }
    }
    // Forked after the witnessed position: not the witness's to refuse (the binding's).
    let fork = Counting::new(fork_of(&log.inner, 4000, 1000).await);
    check(&fork, Some(&at_witness)).await.unwrap();
    // A log rolled back below the witness, mark or not.
    let short = Counting::new(fork_of(&log.inner, 3000, 10).await);
    let e = check(&short, Some(&earlier)).await.unwrap_err();
    assert!(matches!(e, WitnessError::RolledBack { witnessed: 4000, log: 3010 }), "{e}");

    // A mark whose compact range is not its position's (it cannot be forged when sealed; still,
    // it is never a pass): the root differs, refused.
    let other = Counting::new(fork_of(&log.inner, 0, 4000).await);
    let mut lying = mark_of(&other, 0, 4000).await;
    lying.head = at_witness.head;
    let e = check(&log, Some(&lying)).await.unwrap_err();
    assert!(matches!(e, WitnessError::Forked { size: 4000 }), "{e}");
    // Decoded strictly: a range of the wrong length for its size is no mark.
    assert_eq!(TreeMark::decode(&at_witness.encode()), Some(at_witness.clone()));
    let mut wrong = at_witness.clone();
    wrong.size = 4001;
    assert_eq!(TreeMark::decode(&wrong.encode()), None);
    assert_eq!(TreeMark::decode(b"{}"), None);
}

#[cfg(feature = "s3")]
mod s3 {
    use token_http::Method;
    use token_http::aws::AwsClient;
    use tokenward_test_support::{ALLOW_ALL, Moto};

    use super::*;
    use token_audit::witnesses::S3Witness;

    async fn bucket(client: &AwsClient, name: &str, locked: bool) {
        let headers: &[(&str, &str)] =
            if locked { &[("x-amz-bucket-object-lock-enabled", "true")] } else { &[] };
        let r = client.rest("s3", Method::Put, &format!("/{name}"), &[], headers, Vec::new()).await.unwrap();
        assert!(r.is_success(), "create bucket {name}: {}", r.status);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_object_locked_bucket_conforms_and_keeps_its_records() {
        let Some(moto) = Moto::start(3) else { return };
        let creds = moto.setup_user("witness", ALLOW_ALL).await;
        let client = moto.client(creds);
        bucket(&client, "tokenward-witness", true).await;
        bucket(&client, "plain-bucket", false).await;

        // A bucket without object lock is no witness.
        let e = S3Witness::connect(client.clone(), "plain-bucket", "heads/", 1).await.unwrap_err();
        assert!(e.to_string().contains("object lock"), "{e}");
        for (b, p) in
            [("Bad_Bucket", "heads/"), ("tokenward-witness", "../x/"), ("tokenward-witness", "no-slash")]
        {
            assert!(S3Witness::connect(client.clone(), b, p, 1).await.is_err(), "{b} {p}");
        }

        // The whole bucket (no prefix): moto 5's signature check mis-encodes `/` in query values
        // (a prefix such as `heads/` works against AWS itself, not against moto).
        let w = S3Witness::connect(client.clone(), "tokenward-witness", "", 1).await.unwrap();
        let again = w.clone();
        testing::witness_conformance(&w, move || Box::new(again.clone())).await;

        // The store's writer holds these credentials too: it still cannot delete a record.
        let (_, listing) =
            client.rest_get("s3", "/tokenward-witness", &[("versions", String::new())]).await.unwrap();
        let key = token_http::aws::xml::tag(&listing, "Key").unwrap();
        let version = token_http::aws::xml::tag(&listing, "VersionId").unwrap();
        let r = client
            .rest(
                "s3",
                Method::Delete,
                &format!("/tokenward-witness/{key}"),
                &[("versionId", version)],
                &[],
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 403, "a locked record cannot be deleted");
        assert!(w.newest().await.unwrap().is_some());
    }
}
