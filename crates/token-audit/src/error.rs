//! The crate's error type.

use crate::chain::ChainError;
use crate::checkpoint::CheckpointError;

/// Why an audit operation failed. Messages never quote a secret: the log holds none, and errors
/// name entries by sequence number or line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing the log failed.
    #[error("audit log {what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored entry could not be read back (not valid, or not canonical).
    #[error("audit log line {line}: {detail}")]
    Corrupt {
        /// 1-based line (file) or sequence number (database).
        line: u64,
        /// What is wrong.
        detail: String,
    },
    /// The chain does not verify.
    #[error("audit chain: {0}")]
    Chain(#[from] ChainError),
    /// A checkpoint was not accepted.
    #[error("audit checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The log is held by another writer.
    #[error("audit log is locked by another writer ({0})")]
    Locked(String),
    /// The writer cannot take events: it has failed, is retrying, or has shut down. An operation
    /// in fail-closed mode does not proceed.
    #[error("audit log unavailable: {0}")]
    Unavailable(String),
    /// The writer's queue stayed full for the writer's `full_queue_wait`: the log made no progress
    /// that long (stuck, not merely busy); in fail-closed mode the operation is refused rather
    /// than stalled further.
    #[error("audit queue is full ({capacity} events waiting)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The database failed.
    #[error("audit database: {context}")]
    Database {
        /// What was being done.
        context: String,
        /// The database's own error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl AuditError {
    #[cfg(feature = "postgres")]
    pub(crate) fn database(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::Database { context: context.into(), source: Some(source.into()) }
    }

    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { what, source }
    }
}
