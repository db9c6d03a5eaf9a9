//! The one trait every emitter (verifier, store, rotation) records events through, and the
//! fail-closed / fail-open policy around it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;

use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::verification::AllowedVerification;

/// A receipt for a recorded event: its place in the sink's order. Wait on it with
/// [`AuditSink::committed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(pub(crate) u64);

/// Where events go. Implemented by the batched [`AuditWriter`](crate::AuditWriter); implement it
/// to send events elsewhere.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Hands over `event` without waiting for storage. `Err` means it will not be recorded.
    fn record(&self, event: AuditEvent) -> Result<Ticket, AuditError>;

    /// Hands over an allowed verification (the commonest event by far). The default records
    /// [`AllowedVerification::to_event`]; the batched writer queues the compact form and builds
    /// the event on its own thread.
    fn record_allowed(&self, v: AllowedVerification) -> Result<Ticket, AuditError> {
        self.record(v.to_event())
    }

    /// Waits until the event behind `ticket`, and every event recorded before it, is stored as
    /// durably as the sink promises. `Err` if that cannot happen (the sink failed or shut down).
    async fn committed(&self, ticket: Ticket) -> Result<(), AuditError>;
}

/// What an operation does when its audit entry cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureMode {
    /// The operation fails (a verification is denied; an issue is undone and refused). Vault's
    /// audit devices behave so. A busy log slows operations down (bounded backpressure); a log
    /// that fails, or makes no progress for the writer's `full_queue_wait`, refuses them instead of
    /// stalling them.
    FailClosed,
    /// The operation proceeds; the lost event is counted ([`Auditor::dropped`]).
    FailOpen,
}

/// A sink and the failure mode emitters apply to it. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    sink: Arc<dyn AuditSink>,
    mode: FailureMode,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").field("mode", &self.mode).field("dropped", &self.dropped()).finish()
    }
}

impl Auditor {
    /// Emitters will record into `sink` and apply `mode`.
    pub fn new(sink: Arc<dyn AuditSink>, mode: FailureMode) -> Self {
        Self { sink, mode, dropped: Arc::new(AtomicU64::new(0)) }
    }

    /// The failure mode.
    pub fn mode(&self) -> FailureMode {
        self.mode
    }

    /// The sink.
    pub fn sink(&self) -> &Arc<dyn AuditSink> {
        &self.sink
    }

    /// Events lost in fail-open mode.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records `event` without waiting for storage. Fail-closed: `Err` means the operation must not
    /// proceed. Fail-open: never `Err`; a lost event is counted and `None` returned.
    pub fn emit(&self, event: AuditEvent) -> Result<Option<Ticket>, AuditError> {
        match self.sink.record(event) {
            Ok(t) => Ok(Some(t)),
            Err(e) => self.failed(e).map(|()| None),
        }
    }

    /// Records an allowed verification, as [`Auditor::emit`] does an event.
    pub fn emit_allowed(&self, v: AllowedVerification) -> Result<Option<Ticket>, AuditError> {
        match self.sink.record_allowed(v) {
            Ok(t) => Ok(Some(t)),
            Err(e) => self.failed(e).map(|()| None),
        }
    }

    /// Records `event` and waits until it is durable: for operations whose record must exist
    /// before they are acknowledged (issue, revoke, rotation steps).
    pub async fn emit_durable(&self, event: AuditEvent) -> Result<(), AuditError> {
        let Some(ticket) = self.emit(event)? else { return Ok(()) };
        match self.sink.committed(ticket).await {
            Ok(()) => Ok(()),
            Err(e) => self.failed(e),
        }
    }

    fn failed(&self, e: AuditError) -> Result<(), AuditError> {
        match self.mode {
            FailureMode::FailClosed => Err(e),
            FailureMode::FailOpen => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }
}
