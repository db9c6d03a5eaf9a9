//! # token-audit
//!
//! Tokenward's tamper-evident audit trail: an event model that holds ids and keyed HMACs but never a
//! secret, and a SHA-256 hash chain over a canonical encoding (`docs/audit-format.md`, vectors in
//! `tests/vectors/audit-chain.json`). A [`ChainHead`] exported elsewhere lets [`verify_against`]
//! detect truncation and rollback as well as edits.
//!
//! ```
//! use token_audit::*;
//! use token_core::chrono::Utc;
//!
//! let mut chain = ChainHead::EMPTY;
//! let log: Vec<Entry> = (0..3)
//!     .map(|i| chain.append(AuditEvent::new(Utc::now(), Actor::System, Action::Issue).attr("n", i.to_string())))
//!     .collect();
//! let checkpoint = chain; // keep this elsewhere
//! assert_eq!(verify_against(&log, &checkpoint), Ok(checkpoint));
//! assert!(matches!(verify_against(&log[..2], &checkpoint), Err(ChainError::Truncated { .. })));
//! ```

#![deny(missing_docs)]

mod chain;
mod event;

pub use chain::{ChainError, ChainHash, ChainHead, Entry, GENESIS, entry_hash, verify, verify_against};
pub use event::{Action, Actor, AuditEvent, Outcome, SCHEMA_VERSION};
