//! # token-audit
//!
//! Tokenward's tamper-evident audit trail.
//!
//! - **Events** ([`AuditEvent`]) hold ids and keyed HMACs ([`SubjectKey`]), never a secret.
//! - **A SHA-256 hash chain** over a canonical encoding (`docs/audit-format.md`, vectors in
//!   `tests/vectors/audit-chain.json`): gap-free sequence numbers, each entry committing to the one
//!   before it. [`chains::ChainVerifier`] reports the first bad entry and why.
//! - **Signed checkpoints** ([`CheckpointSigner`], Ed25519) of `(length, head)`, exported and kept
//!   elsewhere, so that truncation and rollback are detected, not only edits.
//! - **Storage** ([`LogStorage`]): an append-only file of JSON lines ([`FileLog`]: fsynced batches,
//!   torn tails cut on open, one writer at a time), PostgreSQL (feature `postgres`: many processes,
//!   one chain), memory; a streaming [`JsonlExporter`] for SIEM pipelines; [`AuditQuery`] for "what did
//!   this token do?".
//! - **Binding and witnesses**: [`witnesses::LogBinding`] (which log a store writes to and how far it had
//!   come, checked at open: [`witnesses::BindingError`]), and [`witnesses::Witness`] — signed tree heads kept out of the
//!   writer's reach ([`witnesses::FileWitness`], `S3Witness` with feature `s3`), [`witnesses::check_log`] failing closed
//!   on a log behind or forked from the newest one ([`witnesses::WitnessError`]).
//! - **Emitting** through one [`AuditSink`] trait: the batched [`AuditWriter`] (group commit) and an
//!   [`Auditor`] applying a [`FailureMode`]; [`AuditedVerifier`] records every verification.
//!
//! ```
//! use std::sync::Arc;
//! use token_audit::*;
//! use token_core::chrono::Utc;
//!
//! # fn main() -> Result<(), AuditError> {
//! let dir = tempfile::tempdir().map_err(|e| AuditError::Io { what: "tempdir", source: e })?;
//! let log = Arc::new(FileLog::open(dir.path().join("audit.jsonl"))?);
//! let writer = AuditWriter::start(log.clone(), WriterConfig::default())?;
//! for i in 0..3 {
//!     writer.record(AuditEvent::new(Utc::now(), Actor::System, Action::Issue).attr("n", i.to_string()))?;
//! }
//! writer.flush_blocking()?;
//!
//! // A checkpoint, signed and kept elsewhere, pins the log's length and head.
//! let signer = CheckpointSigner::generate()?;
//! let checkpoint = signer.sign("example", writer.head(), Utc::now());
//! let trusted = signer.public_key();
//! let pinned = trusted.verify_for(&checkpoint, "example")?.chain_head();
//! assert_eq!(verify_file(log.path(), &[pinned])?.len, 3);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod audited;
mod binding;
mod chain;
mod checkpoint;
mod error;
mod event;
mod export;
pub mod file;
use token_core::hex;
mod json;
mod memory;
pub mod merkle;
#[cfg(feature = "postgres")]
mod postgres;
mod query;
#[cfg(feature = "s3")]
mod s3;
mod sink;
mod storage;
mod subject;
pub mod summary;
#[cfg(feature = "testing")]
pub mod testing;
mod verification;
mod witness;
mod writer;

pub use audited::AuditedVerifier;
pub use checkpoint::CheckpointSigner;
pub use error::AuditError;
pub use event::{Action, Actor, AuditEvent, Outcome};
pub use export::JsonlExporter;
pub use file::{FileLog, verify_file};
pub use memory::MemoryLog;
#[cfg(feature = "postgres")]
pub use postgres::PostgresLog;
pub use query::AuditQuery;
pub use sink::{AuditSink, Auditor, FailureMode, Ticket};
pub use storage::LogStorage;
pub use subject::SubjectKey;
pub use summary::VerifyAuditMode;
pub use verification::AllowedVerification;
pub use writer::{AuditWriter, WriterConfig};

/// Binding and witnesses: which log a store writes to and how far it had come
/// ([`witnesses::LogBinding`]), and signed tree heads kept out of the writer's reach
/// ([`witnesses::Witness`]: [`witnesses::FileWitness`], `S3Witness` with feature `s3`), checked
/// against a log by [`witnesses::check_log`] — and what they are built from (record names,
/// origins, reading a log into its tree), for witness backends and tools of your own.
pub mod witnesses {
    pub use crate::binding::{BindingError, LogBinding, entry_hash_at};
    #[cfg(feature = "s3")]
    pub use crate::s3::{LockMode, S3Witness};
    pub use crate::witness::{
        FileWitness, MAX_RECORD, MarkedCheck, TreeMark, Witness, WitnessCheck, WitnessError, WitnessedHead,
        check_log, check_log_marked, extend_compact, extend_tree, parse_record_name, read_chain, record_name,
        tree_of, witness_origin,
    };
}

/// The hash chain underneath: its entries, each entry's hash, the head a log ends at, incremental
/// verification, and what a broken chain reports — for tools that check logs themselves.
pub mod chains {
    pub use crate::chain::{
        ChainError, ChainHash, ChainHead, ChainVerifier, Entry, GENESIS, entry_hash, verify, verify_against,
    };
    pub use crate::event::SCHEMA_VERSION;
    /// Parses one stored entry (a line of a [`crate::FileLog`], with or without its newline) strictly: it
    /// must be exactly the bytes this crate writes for the entry it holds. For tools and fuzzing.
    pub fn parse_entry(line: &[u8]) -> Result<Entry, crate::AuditError> {
        crate::file::parse_line(line, 1)
    }
}

/// Signed checkpoints: what a signer ([`crate::CheckpointSigner`]) attests to (a chain head at a
/// time), the signed form kept elsewhere, the public key that checks it, and why one was refused.
pub mod checkpoints {
    pub use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointKey, SignedCheckpoint};
}

/// Parser entry points for the fuzz targets (`cargo fuzz` builds with `--cfg fuzzing`).
#[cfg(fuzzing)]
pub mod fuzzing {
    pub use crate::chains::parse_entry;
}
