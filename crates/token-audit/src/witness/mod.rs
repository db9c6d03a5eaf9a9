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
//!
//! This module holds the witness interface, its records and their names; `check` proves a log
//! consistent with a witness's newest record, `mark` does so from a position the store sealed,
//! `file` is the directory backend.

mod check;
mod file;
mod mark;

use std::fmt::Debug;

use async_trait::async_trait;

use crate::checkpoint::{CheckpointKey, CheckpointSigner};
use crate::error::AuditError;
use crate::merkle::{MerkleHash, MerkleTree, NoteError, TreeHead};

pub use self::check::{WitnessCheck, check_log, extend_tree, read_chain, tree_of};
pub use self::file::FileWitness;
pub use self::mark::{MarkedCheck, TreeMark, check_log_marked, extend_compact};

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
