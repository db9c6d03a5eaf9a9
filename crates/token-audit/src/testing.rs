//! For tests of code that audits: a log storage that can be broken on demand (appends fail, as on
//! a full disk) or stuck (appends hang, as on a dead network mount), to see an operation fail
//! closed (or proceed, fail-open) and recover.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use token_audit::{testing::Breakable, *};
//!
//! let log = Arc::new(Breakable::new(MemoryLog::new()));
//! log.set_broken(true);
//! let event = AuditEvent::new(token_core::chrono::Utc::now(), Actor::System, Action::Issue);
//! assert!(log.append(&[event]).await.is_err());
//! # }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use crate::chain::{ChainHead, Entry};
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::storage::LogStorage;

/// Wraps a storage; while broken, appends fail as a full disk would; while stuck, they wait until
/// it is unstuck (reads still work either way).
#[derive(Debug)]
pub struct Breakable<S> {
    inner: S,
    broken: AtomicBool,
    stuck: tokio::sync::watch::Sender<bool>,
}

impl<S: Default> Default for Breakable<S> {
    fn default() -> Self {
        Self::new(S::default())
    }
}

impl<S> Breakable<S> {
    /// Wraps `inner`, working.
    pub fn new(inner: S) -> Self {
        Self { inner, broken: AtomicBool::new(false), stuck: tokio::sync::watch::Sender::new(false) }
    }

    /// Breaks (`true`) or repairs (`false`) it.
    pub fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::SeqCst);
    }

    /// Makes appends hang (`true`) until called with `false`, which lets the waiting ones through.
    pub fn set_stuck(&self, stuck: bool) {
        self.stuck.send_replace(stuck);
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: LogStorage> LogStorage for Breakable<S> {
    async fn append(&self, events: &[AuditEvent]) -> Result<ChainHead, AuditError> {
        let mut stuck = self.stuck.subscribe();
        let _ = stuck.wait_for(|s| !*s).await;
        if self.broken.load(Ordering::SeqCst) {
            return Err(AuditError::Io {
                what: "append",
                source: std::io::Error::other("no space left (injected)"),
            });
        }
        self.inner.append(events).await
    }

    async fn head(&self) -> Result<ChainHead, AuditError> {
        self.inner.head().await
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Entry>, AuditError> {
        self.inner.read(from, limit).await
    }
}
