//! Where entries live: the [`LogStorage`] trait that the file, memory and PostgreSQL logs
//! implement, and that the batched writer drives.

use async_trait::async_trait;

use crate::chain::{ChainHead, Entry};
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::query::AuditQuery;

/// An append-only, hash-chained log.
///
/// `append` links the events as the next entries (the storage knows its head; with several
/// processes on one database it reads the head under a lock) and returns only when they are
/// stored as durably as the storage promises. On error nothing of the batch is visible.
#[async_trait]
pub trait LogStorage: Send + Sync {
    /// Called once by the writer that closes it ([`crate::AuditWriter::close`]): give up whatever
    /// excludes other writers (a file lock), even while references to the storage remain. Later
    /// appends may be refused. The default does nothing.
    fn release(&self) {}

    /// Appends `events`, in order, as the next entries; returns the head after them.
    async fn append(&self, events: &[AuditEvent]) -> Result<ChainHead, AuditError>;

    /// Where the log stands now.
    async fn head(&self) -> Result<ChainHead, AuditError>;

    /// Up to `limit` entries from sequence number `from`, in order (as stored: not verified).
    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Entry>, AuditError>;

    /// The entries matching `query`, in order. The default scans [`LogStorage::read`] pages.
    async fn query(&self, query: &AuditQuery) -> Result<Vec<Entry>, AuditError> {
        let mut out = Vec::new();
        let mut from = 0;
        loop {
            let page = self.read(from, 4096).await?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            out.extend(page.into_iter().filter(|e| query.matches(e)));
            if query.limit_value().is_some_and(|l| out.len() >= l) {
                out.truncate(query.limit_value().unwrap_or(usize::MAX));
                break;
            }
        }
        Ok(out)
    }
}
