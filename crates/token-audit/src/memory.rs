//! A log in memory: for tests, for benchmarks, and as a bounded in-process trail.

use std::sync::Mutex;

use async_trait::async_trait;

use crate::chain::{ChainHead, Entry};
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::storage::LogStorage;

/// Entries in memory (lost with the process).
#[derive(Debug, Default)]
pub struct MemoryLog {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    head: ChainHead,
    entries: Vec<Entry>,
    scratch: Vec<u8>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends without going through async (what [`LogStorage::append`] does).
    pub fn append_now(&self, events: &[AuditEvent]) -> ChainHead {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        inner.entries.reserve(events.len());
        for e in events {
            let entry = inner.head.append_with(e.clone(), &mut inner.scratch);
            inner.entries.push(entry);
        }
        inner.head
    }

    /// A copy of every entry.
    pub fn entries(&self) -> Vec<Entry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).entries.clone()
    }
}

#[async_trait]
impl LogStorage for MemoryLog {
    async fn append(&self, events: &[AuditEvent]) -> Result<ChainHead, AuditError> {
        Ok(self.append_now(events))
    }

    async fn head(&self) -> Result<ChainHead, AuditError> {
        Ok(self.inner.lock().unwrap_or_else(|p| p.into_inner()).head)
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Entry>, AuditError> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(g.entries.len());
        let end = start.saturating_add(limit).min(g.entries.len());
        Ok(g.entries[start..end].to_vec())
    }
}
