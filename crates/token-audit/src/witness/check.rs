//! Proving a log consistent with a witness's newest record: the log read into its Merkle tree,
//! each link checked, and the tree's root at the record's size compared with the signed one.

use super::{Witness, WitnessError, WitnessedHead};
use crate::chain::{ChainHead, ChainVerifier, Entry};
use crate::checkpoint::CheckpointKey;
use crate::error::AuditError;
use crate::merkle::{CompactTree, MerkleTree};
use crate::storage::LogStorage;

/// What [`check_log`] established.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WitnessCheck {
    /// The newest record, if the witness held one.
    pub newest: Option<WitnessedHead>,
    /// The tree of the log's entries read (all of them when the witness held a record of this
    /// epoch; none otherwise), to extend for the next push.
    pub tree: MerkleTree,
}

/// Proves that `storage` (standing at `log_head`, bound in `epoch`) is consistent with the newest
/// record `witness` holds, signed by `key` for log `log`: the record verifies, is not of a later
/// epoch, covers no more entries than the log holds, and its root is the root of the log's first
/// `size` entries (each link of the chain checked as it is read). Fails closed on each of those.
/// Reads the whole log when the witness holds a record of this epoch.
pub async fn check_log(
    witness: &dyn Witness,
    key: &CheckpointKey,
    log: &str,
    epoch: u64,
    storage: &dyn LogStorage,
    log_head: ChainHead,
) -> Result<WitnessCheck, WitnessError> {
    let Some(newest) = witness.newest().await? else {
        return Ok(WitnessCheck { newest: None, tree: MerkleTree::new() });
    };
    let head = newest.verify(log, key, &witness.location())?;
    if newest.epoch > epoch {
        return Err(WitnessError::StaleEpoch { witnessed: newest.epoch, store: epoch });
    }
    if newest.epoch < epoch {
        // A new log not yet witnessed: nothing of it to compare.
        return Ok(WitnessCheck { newest: Some(newest), tree: MerkleTree::new() });
    }
    if head.size > log_head.len {
        return Err(WitnessError::RolledBack { witnessed: head.size, log: log_head.len });
    }
    let tree = tree_of(storage, log_head.len).await?;
    if tree.root_at(head.size).ok() != Some(head.root) {
        return Err(WitnessError::Forked { size: head.size });
    }
    Ok(WitnessCheck { newest: Some(newest), tree })
}

/// The tree of the first `len` entries of `storage`, each link checked; extends `tree` (which
/// holds a prefix of them) when given one.
pub async fn tree_of(storage: &dyn LogStorage, len: u64) -> Result<MerkleTree, AuditError> {
    extend_tree(storage, MerkleTree::new(), ChainHead::EMPTY, len).await.map(|(t, _)| t)
}

/// Extends `tree` (the tree of the entries up to `at`) with the entries of `storage` up to `len`,
/// checking each link from `at`; returns the tree and the head it reached.
pub async fn extend_tree(
    storage: &dyn LogStorage,
    tree: MerkleTree,
    at: ChainHead,
    len: u64,
) -> Result<(MerkleTree, ChainHead), AuditError> {
    extend(storage, tree, at, len).await
}

/// A tree that takes entries as leaves: the full one and the compact range.
pub(super) trait Leaves {
    fn size(&self) -> u64;
    fn push_entry(&mut self, entry: &Entry);
}

impl Leaves for MerkleTree {
    fn size(&self) -> u64 {
        MerkleTree::size(self)
    }
    fn push_entry(&mut self, entry: &Entry) {
        MerkleTree::push_entry(self, entry);
    }
}

impl Leaves for CompactTree {
    fn size(&self) -> u64 {
        CompactTree::size(self)
    }
    fn push_entry(&mut self, entry: &Entry) {
        CompactTree::push_entry(self, entry);
    }
}

/// Reads `storage` from `tree.size()` to `len`, each link checked from `at`, into `tree`.
pub(super) async fn extend<T: Leaves>(
    storage: &dyn LogStorage,
    mut tree: T,
    at: ChainHead,
    len: u64,
) -> Result<(T, ChainHead), AuditError> {
    let from = tree.size();
    let head = read_chain(storage, from, at, Some(len), |e| tree.push_entry(e)).await?;
    Ok((tree, head))
}

/// Reads `storage` from entry `from` on — `at` the head the entries before it end at — each link
/// checked, handing every entry to `each`, up to `len` entries in all (`None`: to the log's end);
/// returns the head reached. A log that ends before `len` is [`AuditError::Corrupt`], a broken
/// link [`AuditError::Chain`].
pub async fn read_chain(
    storage: &dyn LogStorage,
    from: u64,
    at: ChainHead,
    len: Option<u64>,
    mut each: impl FnMut(&Entry),
) -> Result<ChainHead, AuditError> {
    let mut chain = ChainVerifier::new(at);
    let (mut next, end) = (from, len.unwrap_or(u64::MAX));
    while next < end {
        let want = usize::try_from(end - next).unwrap_or(usize::MAX).min(4096);
        let page = storage.read(next, want).await?;
        if page.is_empty() {
            break;
        }
        next += page.len() as u64;
        for e in &page {
            chain.push(e)?;
            each(e);
        }
    }
    if let Some(len) = len
        && next < len
    {
        return Err(AuditError::Corrupt {
            line: next + 1,
            detail: format!("the log ends at {next} entries, {len} expected"),
        });
    }
    Ok(chain.finish()?)
}
