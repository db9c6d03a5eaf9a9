//! The hash chain: each entry commits to its sequence number, the previous entry's hash and the
//! canonical bytes of its event.
//!
//! `hash = SHA-256("tokenward-audit-v1\n" ‖ seq as 8 bytes big-endian ‖ previous hash ‖ canonical event)`,
//! the first entry's previous hash being 32 zero bytes. Sequence numbers start at 0 and have no gaps.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::AuditEvent;

const DOMAIN: &[u8] = b"tokenward-audit-v1\n";

/// A SHA-256 hash, shown and serialised as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainHash(pub [u8; 32]);

/// The previous hash of the first entry.
pub const GENESIS: ChainHash = ChainHash([0; 32]);

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainHash({self})")
    }
}

impl TryFrom<String> for ChainHash {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        // Canonical form only: 64 lowercase hex characters, so no byte of a stored hash can change
        // without changing its value.
        if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
            return Err("a chain hash is 64 lowercase hex characters".into());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or("bad hex")?, 16).map_err(|_| "bad hex")?;
        }
        Ok(Self(out))
    }
}

impl From<ChainHash> for String {
    fn from(h: ChainHash) -> String {
        h.to_string()
    }
}

/// One link of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position, from 0, gap-free.
    pub seq: u64,
    /// The previous entry's hash ([`GENESIS`] for the first).
    pub prev: ChainHash,
    /// This entry's hash.
    pub hash: ChainHash,
    /// The event.
    pub event: AuditEvent,
}

/// The hash an entry must carry.
pub fn entry_hash(seq: u64, prev: &ChainHash, event: &AuditEvent) -> ChainHash {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(seq.to_be_bytes());
    h.update(prev.0);
    h.update(event.canonical());
    ChainHash(h.finalize().into())
}

/// Where a chain stands: how many entries, and the last one's hash. Exported and kept elsewhere, it
/// lets a verifier detect truncation and rollback, not only edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Entries so far (the next sequence number).
    pub len: u64,
    /// The last entry's hash ([`GENESIS`] when empty).
    pub head: ChainHash,
}

impl ChainHead {
    /// An empty chain.
    pub const EMPTY: ChainHead = ChainHead { len: 0, head: GENESIS };

    /// Links `event` as the next entry and advances.
    pub fn append(&mut self, event: AuditEvent) -> Entry {
        let hash = entry_hash(self.len, &self.head, &event);
        let entry = Entry { seq: self.len, prev: self.head, hash, event };
        self.len += 1;
        self.head = hash;
        entry
    }
}

/// Why a chain failed verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// An entry's sequence number is not the next one (a deleted, inserted or reordered entry).
    #[error("entry {index}: sequence {found}, expected {expected} (an entry was deleted, inserted or moved)")]
    SequenceGap {
        /// Position in what was verified.
        index: usize,
        /// Sequence expected.
        expected: u64,
        /// Sequence found.
        found: u64,
    },
    /// An entry does not link to the one before it.
    #[error("entry {seq}: its previous-hash does not match the entry before it")]
    BrokenLink {
        /// Sequence number.
        seq: u64,
    },
    /// An entry's content does not hash to its hash (edited).
    #[error("entry {seq}: its content does not match its hash (edited)")]
    HashMismatch {
        /// Sequence number.
        seq: u64,
    },
    /// The log is shorter than a checkpoint says it was (truncated).
    #[error("the log has {found} entries but a checkpoint saw {expected} (truncated)")]
    Truncated {
        /// Entries the checkpoint saw.
        expected: u64,
        /// Entries found.
        found: u64,
    },
    /// The log's entry at a checkpoint's position differs from the checkpoint (rolled back or rewritten).
    #[error("entry {seq} differs from the checkpoint taken after it (rolled back or rewritten)")]
    CheckpointMismatch {
        /// Sequence number.
        seq: u64,
    },
}

/// Verifies entries that start at `from` (use [`ChainHead::EMPTY`] for a whole log) and returns
/// where they end. Reports the first bad entry and why.
pub fn verify<'a>(
    from: ChainHead,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> Result<ChainHead, ChainError> {
    let mut at = from;
    for (index, e) in entries.into_iter().enumerate() {
        if e.seq != at.len {
            return Err(ChainError::SequenceGap { index, expected: at.len, found: e.seq });
        }
        if e.prev != at.head {
            return Err(ChainError::BrokenLink { seq: e.seq });
        }
        if entry_hash(e.seq, &e.prev, &e.event) != e.hash {
            return Err(ChainError::HashMismatch { seq: e.seq });
        }
        at = ChainHead { len: at.len + 1, head: e.hash };
    }
    Ok(at)
}

/// Verifies a whole log and checks it against a checkpoint taken earlier (and kept elsewhere): the
/// log must be at least as long, and its entry at the checkpoint's position must be the one the
/// checkpoint saw.
pub fn verify_against(entries: &[Entry], checkpoint: &ChainHead) -> Result<ChainHead, ChainError> {
    let end = verify(ChainHead::EMPTY, entries)?;
    if end.len < checkpoint.len {
        return Err(ChainError::Truncated { expected: checkpoint.len, found: end.len });
    }
    if checkpoint.len > 0 {
        let idx = usize::try_from(checkpoint.len - 1).unwrap_or(usize::MAX);
        if entries.get(idx).map(|e| e.hash) != Some(checkpoint.head) {
            return Err(ChainError::CheckpointMismatch { seq: checkpoint.len - 1 });
        }
    }
    Ok(end)
}
