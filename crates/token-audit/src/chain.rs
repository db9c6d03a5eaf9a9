//! The hash chain: each entry commits to its sequence number, the previous entry's hash and the
//! canonical bytes of its event.
//!
//! `hash = SHA-256("tokenward-audit-v1\n" ‖ seq as 8 bytes big-endian ‖ previous hash ‖ canonical event)`,
//! the first entry's previous hash being 32 zero bytes. Sequence numbers start at 0 and have no gaps.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::{AuditEvent, Formatted};

const DOMAIN: &[u8] = b"tokenward-audit-v1\n";

/// A SHA-256 hash, shown and serialised as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainHash(pub [u8; 32]);

/// The previous hash of the first entry.
pub const GENESIS: ChainHash = ChainHash([0; 32]);

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
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
        crate::hex::decode(&s).map(Self).ok_or_else(|| "a chain hash is 64 lowercase hex characters".into())
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
    let mut scratch = Vec::with_capacity(256);
    entry_hash_with(seq, prev, event, &mut scratch)
}

/// [`entry_hash`] with a caller's scratch buffer (no allocation once it has grown).
pub(crate) fn entry_hash_with(
    seq: u64,
    prev: &ChainHash,
    event: &AuditEvent,
    scratch: &mut Vec<u8>,
) -> ChainHash {
    hash_formatted(seq, prev, event, &Formatted::of(event), scratch)
}

fn hash_formatted(
    seq: u64,
    prev: &ChainHash,
    event: &AuditEvent,
    pre: &Formatted,
    scratch: &mut Vec<u8>,
) -> ChainHash {
    scratch.clear();
    scratch.extend_from_slice(DOMAIN);
    scratch.extend_from_slice(&seq.to_be_bytes());
    scratch.extend_from_slice(&prev.0);
    event.canonical_with(pre, scratch);
    ChainHash(Sha256::digest(&scratch[..]).into())
}

impl Entry {
    /// Appends the entry's stored form, one JSON object and a newline, to `out`: the bytes
    /// `serde_json` writes for it, produced without serde.
    pub fn json_line_into(&self, out: &mut Vec<u8>) {
        write_json_line(out, self.seq, &self.prev, &self.hash, &self.event);
    }
}

pub(crate) fn write_json_line(
    out: &mut Vec<u8>,
    seq: u64,
    prev: &ChainHash,
    hash: &ChainHash,
    event: &AuditEvent,
) {
    write_json_line_with(out, seq, prev, hash, event, &Formatted::of(event));
}

fn write_json_line_with(
    out: &mut Vec<u8>,
    seq: u64,
    prev: &ChainHash,
    hash: &ChainHash,
    event: &AuditEvent,
    pre: &Formatted,
) {
    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    out.extend_from_slice(b",\"prev\":\"");
    crate::hex::encode_into(out, &prev.0);
    out.extend_from_slice(b"\",\"hash\":\"");
    crate::hex::encode_into(out, &hash.0);
    out.extend_from_slice(b"\",\"event\":");
    event.json_with(pre, out);
    out.extend_from_slice(b"}\n");
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

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead::EMPTY
    }
}

impl ChainHead {
    /// An empty chain.
    pub const EMPTY: ChainHead = ChainHead { len: 0, head: GENESIS };

    /// Links `event` as the next entry and advances.
    pub fn append(&mut self, event: AuditEvent) -> Entry {
        let hash = entry_hash(self.len, &self.head, &event);
        self.link(event, hash)
    }

    /// Links `event` as the next entry and appends its stored line (`docs/audit-format.md`) to
    /// `out`, without taking the event: what a log storage of your own writes. `scratch` is reused
    /// for the hashed bytes.
    pub fn append_line(&mut self, event: &AuditEvent, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> ChainHash {
        let pre = Formatted::of(event);
        let hash = hash_formatted(self.len, &self.head, event, &pre, scratch);
        write_json_line_with(out, self.len, &self.head, &hash, event, &pre);
        self.len += 1;
        self.head = hash;
        hash
    }

    /// [`ChainHead::append`] with a caller's scratch buffer.
    pub(crate) fn append_with(&mut self, event: AuditEvent, scratch: &mut Vec<u8>) -> Entry {
        let hash = entry_hash_with(self.len, &self.head, &event, scratch);
        self.link(event, hash)
    }

    /// Advances over an event whose hash was computed (and returns the entry).
    fn link(&mut self, event: AuditEvent, hash: ChainHash) -> Entry {
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

/// Verifies a log one entry at a time (so a log of any size streams through it), optionally
/// against checkpoints taken earlier and kept elsewhere.
///
/// Each entry must carry the next sequence number, link to the previous entry's hash and hash to
/// its own; at each checkpoint's position the entry must be the one the checkpoint saw; and at the
/// end the log must reach every checkpoint (else it was truncated).
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    at: ChainHead,
    index: usize,
    checkpoints: Vec<ChainHead>,
    next_checkpoint: usize,
    scratch: Vec<u8>,
}

impl ChainVerifier {
    /// Verifies entries that start after `from` ([`ChainHead::EMPTY`] for a whole log).
    pub fn new(from: ChainHead) -> Self {
        Self {
            at: from,
            index: 0,
            checkpoints: Vec::new(),
            next_checkpoint: 0,
            scratch: Vec::with_capacity(256),
        }
    }

    /// Also checks these checkpoints (any order). One at `from`'s own position must equal it;
    /// earlier ones cannot be checked from here and are ignored.
    pub fn with_checkpoints(mut self, checkpoints: impl IntoIterator<Item = ChainHead>) -> Self {
        self.checkpoints.extend(checkpoints.into_iter().filter(|c| c.len >= self.at.len));
        self.checkpoints.sort_by_key(|c| c.len);
        self.checkpoints.dedup();
        self
    }

    /// Where the verified prefix ends.
    pub fn head(&self) -> ChainHead {
        self.at
    }

    /// Checks the next entry.
    pub fn push(&mut self, e: &Entry) -> Result<(), ChainError> {
        self.check_checkpoints()?;
        let index = self.index;
        if e.seq != self.at.len {
            return Err(ChainError::SequenceGap { index, expected: self.at.len, found: e.seq });
        }
        if e.prev != self.at.head {
            return Err(ChainError::BrokenLink { seq: e.seq });
        }
        if entry_hash_with(e.seq, &e.prev, &e.event, &mut self.scratch) != e.hash {
            return Err(ChainError::HashMismatch { seq: e.seq });
        }
        self.at = ChainHead { len: self.at.len + 1, head: e.hash };
        self.index += 1;
        self.check_checkpoints()
    }

    fn check_checkpoints(&mut self) -> Result<(), ChainError> {
        while let Some(c) = self.checkpoints.get(self.next_checkpoint) {
            if c.len != self.at.len {
                break;
            }
            if c.head != self.at.head {
                return Err(ChainError::CheckpointMismatch { seq: c.len.saturating_sub(1) });
            }
            self.next_checkpoint += 1;
        }
        Ok(())
    }

    /// Ends verification: every checkpoint must have been reached.
    pub fn finish(mut self) -> Result<ChainHead, ChainError> {
        self.check_checkpoints()?;
        if let Some(c) = self.checkpoints.last()
            && c.len > self.at.len
        {
            return Err(ChainError::Truncated { expected: c.len, found: self.at.len });
        }
        Ok(self.at)
    }
}

/// Verifies entries that start at `from` (use [`ChainHead::EMPTY`] for a whole log) and returns
/// where they end. Reports the first bad entry and why.
pub fn verify<'a>(
    from: ChainHead,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> Result<ChainHead, ChainError> {
    let mut v = ChainVerifier::new(from);
    for e in entries {
        v.push(e)?;
    }
    v.finish()
}

/// Verifies a whole log and checks it against a checkpoint taken earlier (and kept elsewhere): the
/// log must be at least as long, and its entry at the checkpoint's position must be the one the
/// checkpoint saw.
pub fn verify_against(entries: &[Entry], checkpoint: &ChainHead) -> Result<ChainHead, ChainError> {
    let mut v = ChainVerifier::new(ChainHead::EMPTY).with_checkpoints([*checkpoint]);
    for e in entries {
        v.push(e)?;
    }
    v.finish()
}
