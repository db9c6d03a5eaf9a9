//! Witnesses: signed tree heads of the log kept somewhere the store's writer cannot rewrite, so
//! that rolling back the store *and* its log together — which no local file can reveal — is
//! caught: the witness holds a newer head than the restored log.
//!
//! A [`Witness`] keeps opaque signed notes by position (log epoch, tree size), never overwriting
//! one, and answers with the newest. [`WitnessedHead::sign`] makes a record from the log's RFC
//! 6962 tree head (a C2SP signed note whose origin names the log and its epoch, so a record cannot
//! be moved to another position); [`check_log`] proves that a log is consistent with the newest
//! record — it holds at least that many entries and its first `size` of them hash to the signed
//! root — and fails closed otherwise. [`check_log_marked`] proves the same from a [`TreeMark`]
//! the store sealed at its last push, reading only the entries after it.
//!
//! Backends: [`FileWitness`] (a directory on another mount: files created once, never rewritten)
//! and, with the `s3` feature, [`crate::witnesses::S3Witness`] (an S3 bucket with object lock: each record a
//! retained object no credential can delete or overwrite before its retention ends). Run a
//! backend of your own through [`crate::testing::witness_conformance`].

use std::fmt::Debug;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use crate::chain::{ChainHash, ChainHead, ChainVerifier, Entry, GENESIS, entry_hash};
use crate::checkpoint::{CheckpointKey, CheckpointSigner};
use crate::error::AuditError;
use crate::merkle::{CompactTree, MerkleHash, MerkleTree, NoteError, TreeHead};
use crate::storage::LogStorage;

/// The largest record a witness hands back (a signed note is a few hundred bytes).
pub const MAX_RECORD: usize = 16 * 1024;

/// One witnessed record: the signed tree head (a C2SP signed note) of a log's first `size`
/// entries in `epoch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessedHead {
    /// The log's epoch (see [`crate::witnesses::LogBinding::epoch`]).
    pub epoch: u64,
    /// Entries covered.
    pub size: u64,
    /// The signed note.
    pub note: String,
}

/// Why a witness call failed, or why a log is not consistent with what the witness holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The witness could not be reached, or refused the call (its message; never a credential).
    #[error("witness {location}: {detail}")]
    Unavailable {
        /// Where the witness is.
        location: String,
        /// What failed.
        detail: String,
    },
    /// The witness already holds another record at this position (records are never replaced).
    #[error("the witness already holds another tree head for epoch {epoch}, size {size}")]
    Conflict {
        /// The epoch.
        epoch: u64,
        /// The size.
        size: u64,
    },
    /// A record the witness holds is not a tree head signed by the trusted key for its own
    /// position (forged, moved, or malformed): fail closed.
    #[error("the witness holds a record that does not verify ({location}): {detail}")]
    BadRecord {
        /// Which record.
        location: String,
        /// Why.
        detail: String,
    },
    /// The witness holds a head of more entries than the log has: the store and its log were
    /// rolled back (or the log was cut) after that head was witnessed.
    #[error(
        "rollback: the witness holds a signed tree head of {witnessed} entries, the audit log has {log} \
         (the store and its log were restored from an older copy, or the log was cut)"
    )]
    RolledBack {
        /// Entries the witness saw.
        witnessed: u64,
        /// Entries the log holds.
        log: u64,
    },
    /// The witness holds a head of a later log epoch than the store is bound to: the store was
    /// rolled back to before a deliberate new log.
    #[error(
        "rollback: the witness holds a tree head of log epoch {witnessed}, the store is bound to epoch {store} \
         (restored from before a new log was started)"
    )]
    StaleEpoch {
        /// The epoch witnessed.
        witnessed: u64,
        /// The store's.
        store: u64,
    },
    /// The log's first `size` entries do not hash to the witnessed root: rewritten after it was
    /// witnessed.
    #[error("fork: the audit log's first {size} entries do not match the witnessed tree head")]
    Forked {
        /// The witnessed size.
        size: u64,
    },
    /// The log could not be read (or its chain does not verify).
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Somewhere tree heads are kept out of the store writer's reach.
///
/// Contract (checked by [`crate::testing::witness_conformance`]):
/// - [`Witness::push`] keeps a record for good; pushing the same record again is not an error, a
///   different note at a position already held is [`WitnessError::Conflict`], and nothing pushed
///   is ever replaced or removed through this trait;
/// - [`Witness::newest`] returns the record with the greatest `(epoch, size)` — by position, not
///   by the order of pushes — or `None` when there is none.
#[async_trait]
pub trait Witness: Send + Sync + Debug {
    /// Where it is, for messages (`dir:/mnt/witness`, `s3://bucket/prefix`); never a credential.
    fn location(&self) -> String;

    /// Keeps `head`.
    async fn push(&self, head: &WitnessedHead) -> Result<(), WitnessError>;

    /// The newest record.
    async fn newest(&self) -> Result<Option<WitnessedHead>, WitnessError>;
}

/// The origin line of the tree heads of log `log` in `epoch`.
pub fn witness_origin(log: &str, epoch: u64) -> String {
    format!("{log}/epoch/{epoch}")
}

impl WitnessedHead {
    /// Signs the tree head of `tree`'s first `size` entries, of log `log` in `epoch`, under the
    /// key name `log`.
    pub fn sign(
        signer: &CheckpointSigner,
        log: &str,
        epoch: u64,
        tree: &MerkleTree,
        size: u64,
    ) -> Result<Self, WitnessError> {
        let root = tree
            .root_at(size)
            .map_err(|e| WitnessError::BadRecord { location: "(signing)".into(), detail: e.to_string() })?;
        let head = TreeHead { origin: witness_origin(log, epoch), size, root };
        let note = head.sign(signer, log).map_err(|e: NoteError| WitnessError::BadRecord {
            location: "(signing)".into(),
            detail: e.to_string(),
        })?;
        Ok(Self { epoch, size, note })
    }

    /// Signs the tree head of `size` entries whose root is `root`, of log `log` in `epoch`, under
    /// the key name `log`.
    pub fn sign_root(
        signer: &CheckpointSigner,
        log: &str,
        epoch: u64,
        size: u64,
        root: MerkleHash,
    ) -> Result<Self, WitnessError> {
        let head = TreeHead { origin: witness_origin(log, epoch), size, root };
        let note = head.sign(signer, log).map_err(|e: NoteError| WitnessError::BadRecord {
            location: "(signing)".into(),
            detail: e.to_string(),
        })?;
        Ok(Self { epoch, size, note })
    }

    /// Checks the note is signed by `key` (key name `log`) for this record's own epoch and size;
    /// returns the tree head.
    pub fn verify(&self, log: &str, key: &CheckpointKey, location: &str) -> Result<TreeHead, WitnessError> {
        let bad = |detail: String| WitnessError::BadRecord { location: location.to_owned(), detail };
        let head = TreeHead::verify_note(&self.note, log, key, Some(&witness_origin(log, self.epoch)))
            .map_err(|e| bad(e.to_string()))?;
        if head.size != self.size {
            return Err(bad(format!("kept as size {}, signed for size {}", self.size, head.size)));
        }
        Ok(head)
    }
}

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

/// [`check_log`] from a position the store sealed ([`TreeMark`]), for a cost in the entries after
/// it rather than in the log's size. Proves the same: the newest record verifies, is not of a later
/// epoch, covers no more entries than the log holds, and its root is the root of the log's first
/// `size` entries. When `mark` is of this epoch, at or before the witnessed size, and the log's
/// entry at its position carries (and hashes to) its chain hash, the tree is the mark's compact
/// range extended with the entries from there to the witnessed size (each link checked); when the
/// mark is at the witnessed size that is one entry read. Otherwise — no mark, a mark the witness
/// is behind, or one this log does not hold — the whole prefix is read, as [`check_log`] does. A
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

/// [`extend_tree`] for a compact tree: extends `tree` (of the entries up to `at`) with the entries
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
trait Leaves {
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
async fn extend<T: Leaves>(
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

/// The name a record is kept under: the epoch and size each subtracted from `u64::MAX`, 20 digits
/// apiece, so that the newest record sorts *first* (one listing call of one key finds it).
pub fn record_name(epoch: u64, size: u64) -> String {
    format!("{:020}-{:020}.note", u64::MAX - epoch, u64::MAX - size)
}

/// The `(epoch, size)` of a record's name, if it is one.
pub fn parse_record_name(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".note")?;
    let (e, s) = stem.split_once('-')?;
    if e.len() != 20 || s.len() != 20 || !e.bytes().chain(s.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((u64::MAX.checked_sub(e.parse().ok()?)?, u64::MAX.checked_sub(s.parse().ok()?)?))
}

/// A witness in a directory — on another mount, another host's export, a WORM share — that the
/// store's writer cannot rewrite. Each record is a file created once (`0600`, never opened for
/// writing again), synced with its directory; the newest is found by name.
#[derive(Debug, Clone)]
pub struct FileWitness {
    dir: PathBuf,
}

impl FileWitness {
    /// The witness in `dir` (created `0700` if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, WitnessError> {
        let dir = dir.into();
        token_core::private_fs::create_dir_all(&dir).map_err(|e| WitnessError::Unavailable {
            location: format!("dir:{}", dir.display()),
            detail: format!("creating the directory: {e}"),
        })?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn unavailable(&self, what: &str, e: impl std::fmt::Display) -> WitnessError {
        WitnessError::Unavailable { location: self.location(), detail: format!("{what}: {e}") }
    }

    fn read_record(&self, path: &Path) -> Result<String, WitnessError> {
        let f = std::fs::File::open(path).map_err(|e| self.unavailable("reading a record", e))?;
        let mut text = String::new();
        f.take(MAX_RECORD as u64 + 1).read_to_string(&mut text).map_err(|e| WitnessError::BadRecord {
            location: path.display().to_string(),
            detail: e.to_string(),
        })?;
        if text.len() > MAX_RECORD {
            return Err(WitnessError::BadRecord {
                location: path.display().to_string(),
                detail: format!("larger than {MAX_RECORD} bytes"),
            });
        }
        Ok(text)
    }
}

#[async_trait]
impl Witness for FileWitness {
    fn location(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    async fn push(&self, head: &WitnessedHead) -> Result<(), WitnessError> {
        let path = self.dir.join(record_name(head.epoch, head.size));
        match token_core::private_fs::options().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                let written = f.write_all(head.note.as_bytes()).and_then(|()| f.sync_all());
                if let Err(e) = written {
                    drop(f);
                    let _ = std::fs::remove_file(&path);
                    return Err(self.unavailable("writing a record", e));
                }
                // The record's name is durable too.
                std::fs::File::open(&self.dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| self.unavailable("syncing the directory", e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if self.read_record(&path)? == head.note {
                    Ok(())
                } else {
                    Err(WitnessError::Conflict { epoch: head.epoch, size: head.size })
                }
            }
            Err(e) => Err(self.unavailable("creating a record", e)),
        }
    }

    async fn newest(&self) -> Result<Option<WitnessedHead>, WitnessError> {
        let mut best: Option<(String, (u64, u64))> = None;
        for e in std::fs::read_dir(&self.dir).map_err(|e| self.unavailable("listing", e))? {
            let e = e.map_err(|e| self.unavailable("listing", e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pos) = parse_record_name(&name) else { continue };
            if best.as_ref().is_none_or(|(_, b)| pos > *b) {
                best = Some((name, pos));
            }
        }
        let Some((name, (epoch, size))) = best else { return Ok(None) };
        let note = self.read_record(&self.dir.join(name))?;
        Ok(Some(WitnessedHead { epoch, size, note }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn record_names_sort_newest_first_and_parse_back() {
        let positions = [(0, 0), (0, 1), (0, 9), (0, 10), (1, 0), (1, 5), (u64::MAX, u64::MAX)];
        let mut names: Vec<String> = positions.iter().map(|&(e, s)| record_name(e, s)).collect();
        for (n, p) in names.iter().zip(positions) {
            assert_eq!(parse_record_name(n), Some(p));
        }
        names.sort();
        let parsed: Vec<_> = names.iter().map(|n| parse_record_name(n).unwrap()).collect();
        let mut want = positions.to_vec();
        want.reverse();
        assert_eq!(parsed, want);
        for bad in
            ["x.note", "1-2.note", &record_name(1, 2).replace(".note", ".txt"), "-00000000000000000001.note"]
        {
            assert_eq!(parse_record_name(bad), None, "{bad}");
        }
    }
}
