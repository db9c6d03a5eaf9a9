//! A store's binding to its audit log: which log it writes to and how far that log had come, so
//! that an open against a log that is missing, shorter, another one or a fork of it fails instead
//! of carrying on with a log that does not hold what the store did.
//!
//! The binding is a small value the store keeps authenticated (the front door seals it under the
//! store's record key): the log's *epoch* (0 for the first log, one more for each deliberate new
//! log), the hash of its first entry (which log), and a position in it (`len` entries, the last
//! hashing to `head`). A position only moves forward ([`LogBinding::advanced`]), and only to one a
//! writer saw committed, so any number of writers appending to one log can advance it without
//! ever making each other's check fail: a committed entry stays in an append-only log.

use serde::{Deserialize, Serialize};

use crate::chain::{ChainHash, ChainHead};
use crate::error::AuditError;
use crate::storage::LogStorage;

/// The largest encoded binding read back (anything larger is refused unread).
const MAX_ENCODED: usize = 1024;

/// Which log a store writes to, and how far that log had come when last bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogBinding {
    /// The log's epoch: 0 for a store's first log, one more for each deliberate new log.
    pub epoch: u64,
    /// The hash of the log's first entry (`None` while the log is empty).
    pub first: Option<ChainHash>,
    /// Entries in the log when last bound.
    pub len: u64,
    /// The hash of the last of them ([`crate::chains::GENESIS`] when empty).
    pub head: ChainHash,
}

/// Why a log is not the one a store is bound to, or a binding cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The store has no binding: written before bindings existed, or the value was removed. Never
    /// taken as permission: bind it deliberately (`tokenward migrate`, or `tokenward audit
    /// rebind`, both audited).
    #[error(
        "the store is bound to no audit log (a store from before log bindings, or its binding was removed); \
         bind it deliberately: `tokenward migrate` (the log it is opened with) or `tokenward audit rebind` (audited)"
    )]
    Unbound,
    /// The log holds no entry; the store is bound to a log of `bound` entries (deleted, emptied,
    /// or a new file given in its place).
    #[error("the audit log is missing: it is empty, the store is bound to a log of {bound} entries")]
    MissingLog {
        /// Entries in the bound log.
        bound: u64,
    },
    /// The log is shorter than the store's binding: entries were cut from it (or it was rolled
    /// back).
    #[error("the audit log is shorter than the store's binding: {found} entries, bound at {bound}")]
    ShorterLog {
        /// Entries bound.
        bound: u64,
        /// Entries found.
        found: u64,
    },
    /// The log begins with another first entry: another log entirely.
    #[error("this is another audit log: its first entry is {found}, the store's log begins with {bound}")]
    OtherLog {
        /// The bound log's first entry hash.
        bound: ChainHash,
        /// This log's.
        found: ChainHash,
    },
    /// The log begins like the bound one but differs at the bound position: a fork (rewritten,
    /// or a copy that went its own way).
    #[error("the audit log forks from the store's: entry {seq} is {found}, the store is bound to {bound}")]
    ForkedLog {
        /// The sequence number where it was checked.
        seq: u64,
        /// The hash bound.
        bound: ChainHash,
        /// The hash found.
        found: ChainHash,
    },
    /// The stored binding does not decode.
    #[error("the store's audit-log binding is malformed: {0}")]
    Malformed(String),
    /// The log could not be read.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

impl LogBinding {
    /// The binding of a log at `head` whose first entry hashes to `first`, in `epoch`.
    pub fn new(epoch: u64, first: Option<ChainHash>, head: ChainHead) -> Self {
        Self { epoch, first, len: head.len, head: head.head }
    }

    /// The bound position.
    pub fn chain_head(&self) -> ChainHead {
        ChainHead { len: self.len, head: self.head }
    }

    /// The stored form (JSON, a few hundred bytes).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the stored form back, strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, BindingError> {
        if bytes.len() > MAX_ENCODED {
            return Err(BindingError::Malformed(format!("{} bytes", bytes.len())));
        }
        let b: Self = serde_json::from_slice(bytes).map_err(|e| BindingError::Malformed(e.to_string()))?;
        if (b.len == 0) != b.first.is_none() || (b.len == 0 && b.head != crate::chain::GENESIS) {
            return Err(BindingError::Malformed("an empty log has no first entry and no head".into()));
        }
        Ok(b)
    }

    /// This binding moved forward to `head` of the same log (whose first entry is `first`), or
    /// `None` if `head` is not past it. Never moves back: the newer of two positions wins.
    pub fn advanced(&self, first: Option<ChainHash>, head: ChainHead) -> Option<Self> {
        (head.len > self.len).then(|| Self::new(self.epoch, self.first.or(first), head))
    }

    /// Checks that `storage` is the bound log and holds the bound position: its first entry is
    /// the bound first entry and its entry `len - 1` hashes to the bound head. `log_head` is
    /// where the log stands now. Reads two entries.
    pub async fn check(&self, storage: &dyn LogStorage, log_head: ChainHead) -> Result<(), BindingError> {
        if self.len == 0 {
            return Ok(());
        }
        if log_head.len == 0 {
            return Err(BindingError::MissingLog { bound: self.len });
        }
        let first = entry_hash_at(storage, 0).await?;
        if let Some(bound) = self.first
            && bound != first
        {
            return Err(BindingError::OtherLog { bound, found: first });
        }
        if log_head.len < self.len {
            return Err(BindingError::ShorterLog { bound: self.len, found: log_head.len });
        }
        let seq = self.len - 1;
        let found =
            if log_head.len == self.len { log_head.head } else { entry_hash_at(storage, seq).await? };
        if found != self.head {
            return Err(BindingError::ForkedLog { seq, bound: self.head, found });
        }
        Ok(())
    }
}

/// The hash of entry `seq` of `storage` (as stored; the open of a file log checks its last one).
pub async fn entry_hash_at(storage: &dyn LogStorage, seq: u64) -> Result<ChainHash, AuditError> {
    let page = storage.read(seq, 1).await?;
    match page.first() {
        Some(e) if e.seq == seq => Ok(e.hash),
        _ => Err(AuditError::Corrupt { line: seq + 1, detail: "the entry is not in the log".into() }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::event::{Action, Actor, AuditEvent};
    use crate::memory::MemoryLog;

    async fn log_of(n: usize, tag: &str) -> MemoryLog {
        let log = MemoryLog::new();
        let events: Vec<AuditEvent> = (0..n)
            .map(|i| {
                AuditEvent::new(chrono::DateTime::UNIX_EPOCH, Actor::System, Action::Issue)
                    .attr("n", i.to_string())
                    .attr("log", tag)
            })
            .collect();
        if n > 0 {
            log.append(&events).await.unwrap();
        }
        log
    }

    async fn bind(log: &MemoryLog) -> LogBinding {
        let head = log.head().await.unwrap();
        let first = if head.len > 0 { Some(entry_hash_at(log, 0).await.unwrap()) } else { None };
        LogBinding::new(0, first, head)
    }

    #[tokio::test]
    async fn each_mismatch_is_named() {
        let log = log_of(5, "a").await;
        let b = bind(&log).await;
        b.check(&log, log.head().await.unwrap()).await.unwrap();
        // Grown: still the same log.
        let more = AuditEvent::new(chrono::DateTime::UNIX_EPOCH, Actor::System, Action::Revoke);
        log.append(&[more]).await.unwrap();
        b.check(&log, log.head().await.unwrap()).await.unwrap();

        let empty = MemoryLog::new();
        let e = b.check(&empty, empty.head().await.unwrap()).await.unwrap_err();
        assert!(matches!(e, BindingError::MissingLog { bound: 5 }), "{e}");

        let short = log_of(3, "a").await;
        let e = b.check(&short, short.head().await.unwrap()).await.unwrap_err();
        assert!(matches!(e, BindingError::ShorterLog { bound: 5, found: 3 }), "{e}");

        let other = log_of(9, "b").await;
        let e = b.check(&other, other.head().await.unwrap()).await.unwrap_err();
        assert!(matches!(e, BindingError::OtherLog { .. }), "{e}");

        // The same first three entries, then its own.
        let fork = log_of(3, "a").await;
        let own = AuditEvent::new(chrono::DateTime::UNIX_EPOCH, Actor::System, Action::Revoke);
        fork.append(&[own.clone(), own.clone(), own]).await.unwrap();
        let e = b.check(&fork, fork.head().await.unwrap()).await.unwrap_err();
        assert!(matches!(e, BindingError::ForkedLog { seq: 4, .. }), "{e}");
    }

    #[tokio::test]
    async fn a_binding_only_moves_forward_and_round_trips_strictly() {
        let log = log_of(4, "a").await;
        let b = bind(&log).await;
        let two = ChainHead { len: 2, head: entry_hash_at(&log, 1).await.unwrap() };
        assert_eq!(b.advanced(b.first, two), None, "an older position never replaces a newer one");
        assert_eq!(b.advanced(b.first, b.chain_head()), None);
        let more = AuditEvent::new(chrono::DateTime::UNIX_EPOCH, Actor::System, Action::Revoke);
        let head = log.append(&[more]).await.unwrap();
        let moved = b.advanced(b.first, head).unwrap();
        assert_eq!((moved.len, moved.epoch, moved.first), (5, 0, b.first));

        assert_eq!(LogBinding::decode(&moved.encode()).unwrap(), moved);
        for bad in [&b"{}"[..], b"[1]", &[b'x'; 2000], br#"{"epoch":0,"first":null,"len":3,"head":"00"}"#] {
            assert!(matches!(LogBinding::decode(bad), Err(BindingError::Malformed(_))));
        }
        let empty = LogBinding::new(0, None, ChainHead::EMPTY);
        assert_eq!(LogBinding::decode(&empty.encode()).unwrap(), empty);
        let mut lying = moved;
        lying.first = None;
        assert!(LogBinding::decode(&lying.encode()).is_err(), "a non-empty log has a first entry");
        // Nothing is bound of an empty log: any log holds it.
        empty.check(&MemoryLog::new(), ChainHead::EMPTY).await.unwrap();
    }
}
