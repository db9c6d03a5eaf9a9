//! The store's sealed mark of its log's tree ([`TreeMark`]): a witness check from the last pushed
//! position, reading only the entries after it.

use serde::{Deserialize, Serialize};

use super::check::extend;
use super::{Witness, WitnessError, WitnessedHead};
use crate::chain::{ChainHash, ChainHead, GENESIS, entry_hash};
use crate::checkpoint::CheckpointKey;
use crate::error::AuditError;
use crate::merkle::CompactTree;
use crate::storage::LogStorage;

/// The largest encoded [`TreeMark`] read back (64 hashes and a head in hex, with room to spare).
const MAX_MARK: usize = 8 * 1024;

/// What a store keeps, sealed, about its log's tree at one position (the last head it pushed to
/// the witness): the epoch, the size, the chain hash of the entry at `size - 1` and the RFC 6962
/// compact range of the first `size` entries. The chain hash commits to every earlier entry, so a
/// log whose entry `size - 1` carries it (and hashes to it) has exactly those first `size` entries
/// — a chain that still verifies — and this compact range: the tree of a later size is then the
/// range extended with the entries after it, read and checked link by link, without reading the
/// earlier ones ([`check_log_marked`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeMark {
    /// The log's epoch.
    pub epoch: u64,
    /// Entries covered.
    pub size: u64,
    /// The hash of the last of them ([`GENESIS`] when none).
    pub head: ChainHash,
    /// The compact range's subtree roots, left to right (hex, as chain hashes are).
    frontier: Vec<ChainHash>,
}

impl TreeMark {
    /// The mark of `tree`, whose last entry (number `tree.size() - 1`) hashes to `head`.
    pub fn new(epoch: u64, head: ChainHead, tree: &CompactTree) -> Option<Self> {
        (head.len == tree.size()).then(|| Self {
            epoch,
            size: head.len,
            head: head.head,
            frontier: tree.hashes().iter().map(|h| ChainHash(*h)).collect(),
        })
    }

    /// The position marked.
    pub fn chain_head(&self) -> ChainHead {
        ChainHead { len: self.size, head: self.head }
    }

    /// The compact range marked.
    pub fn tree(&self) -> Option<CompactTree> {
        CompactTree::from_parts(self.size, self.frontier.iter().map(|h| h.0).collect())
    }

    /// The stored form (JSON, at most a few kilobytes).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the stored form back, strictly: `None` for anything but a well-formed mark.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_MARK {
            return None;
        }
        let m: Self = serde_json::from_slice(bytes).ok()?;
        let consistent =
            m.frontier.len() == m.size.count_ones() as usize && (m.size > 0 || m.head == GENESIS);
        consistent.then_some(m)
    }
}

/// What [`check_log_marked`] established.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MarkedCheck {
    /// The newest record, if the witness held one.
    pub newest: Option<WitnessedHead>,
    /// The compact tree of the log's first `at.len` entries (empty when nothing was established),
    /// to extend for the next push.
    pub tree: CompactTree,
    /// Where `tree` ends.
    pub at: ChainHead,
    /// Entries read and hashed to reach `at` (0 when the mark was at the witnessed size).
    pub entries_read: u64,
    /// Whether the mark was used (it held for this log); otherwise the tree was built from the
    /// first entry.
    pub from_mark: bool,
}

/// Whether `storage` (standing at `log_head`) holds `mark`'s position: its entry `size - 1` is
/// stored with the marked hash and hashes to it. Reads one entry.
async fn mark_holds(
    storage: &dyn LogStorage,
    mark: &TreeMark,
    log_head: ChainHead,
) -> Result<bool, AuditError> {
    if mark.size == 0 {
        return Ok(true);
    }
    if mark.size > log_head.len {
        return Ok(false);
    }
    if mark.size == log_head.len {
        // Where the log stands: its last entry was checked to hash to itself when it was opened.
        return Ok(log_head.head == mark.head);
    }
    let seq = mark.size - 1;
    let page = storage.read(seq, 1).await?;
    Ok(match page.first() {
        Some(e) => e.seq == seq && e.hash == mark.head && entry_hash(e.seq, &e.prev, &e.event) == e.hash,
        None => false,
    })
}

/// [`check_log`](super::check_log) from a position the store sealed ([`TreeMark`]), for a cost in the entries after
/// it rather than in the log's size. Proves the same: the newest record verifies, is not of a later
/// epoch, covers no more entries than the log holds, and its root is the root of the log's first
/// `size` entries. When `mark` is of this epoch, at or before the witnessed size, and the log's
/// entry at its position carries (and hashes to) its chain hash, the tree is the mark's compact
/// range extended with the entries from there to the witnessed size (each link checked); when the
/// mark is at the witnessed size that is one entry read. Otherwise — no mark, a mark the witness
/// is behind, or one this log does not hold — the whole prefix is read, as [`check_log`](super::check_log) does. A
/// log rewritten at or before the witnessed size fails with [`WitnessError::Forked`] either way:
/// a rewrite that keeps a valid chain changes the chain hash of every later entry, and one that
/// does not is a broken chain (found by a full verification, `verify_file`).
pub async fn check_log_marked(
    witness: &dyn Witness,
    key: &CheckpointKey,
    log: &str,
    epoch: u64,
    storage: &dyn LogStorage,
    log_head: ChainHead,
    mark: Option<&TreeMark>,
) -> Result<MarkedCheck, WitnessError> {
    let newest = witness.newest().await?;
    let mut start = None;
    if let Some(m) = mark.filter(|m| m.epoch == epoch)
        && let Some(tree) = m.tree()
        && mark_holds(storage, m, log_head).await?
    {
        start = Some((tree, m.chain_head()));
    }
    let none = |newest, start: Option<(CompactTree, ChainHead)>| {
        let from_mark = start.is_some();
        let (tree, at) = start.unwrap_or((CompactTree::new(), ChainHead::EMPTY));
        MarkedCheck { newest, tree, at, entries_read: 0, from_mark }
    };
    let Some(newest) = newest else { return Ok(none(None, start)) };
    let head = newest.verify(log, key, &witness.location())?;
    if newest.epoch > epoch {
        return Err(WitnessError::StaleEpoch { witnessed: newest.epoch, store: epoch });
    }
    if newest.epoch < epoch {
        // A new log not yet witnessed: nothing of it to compare.
        return Ok(none(Some(newest), start));
    }
    if head.size > log_head.len {
        return Err(WitnessError::RolledBack { witnessed: head.size, log: log_head.len });
    }
    // A mark past the witnessed size cannot give an earlier root: read from the start.
    let start = start.filter(|(_, at)| at.len <= head.size);
    let from_mark = start.is_some();
    let (tree, at) = start.unwrap_or((CompactTree::new(), ChainHead::EMPTY));
    let from = at.len;
    let (tree, at) = extend_compact(storage, tree, at, head.size).await?;
    if tree.root() != head.root {
        return Err(WitnessError::Forked { size: head.size });
    }
    Ok(MarkedCheck { newest: Some(newest), tree, at, entries_read: head.size - from, from_mark })
}

/// [`extend_tree`](super::extend_tree) for a compact tree: extends `tree` (of the entries up to `at`) with the entries
/// of `storage` up to `len`, checking each link from `at`; returns the tree and the head reached.
pub async fn extend_compact(
    storage: &dyn LogStorage,
    tree: CompactTree,
    at: ChainHead,
    len: u64,
) -> Result<(CompactTree, ChainHead), AuditError> {
    if tree.size() != at.len {
        return Err(AuditError::Corrupt {
            line: at.len,
            detail: format!("a tree of {} entries does not end at entry {}", tree.size(), at.len),
        });
    }
    extend(storage, tree, at, len).await
}
