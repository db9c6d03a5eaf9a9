//! Summarized auditing of allowed verifications, as cloud providers log data events: per token,
//! request and source, one entry per interval with the count and the first and last time.
//!
//! See [`VerificationSummary`] for what it promises.
//!
//! This module holds the summary, its flusher thread and the entries it writes; `shard` is the
//! sharded table counts gather in.

mod shard;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use token_core::{Grant, Request};

use crate::error::AuditError;
use crate::event::{Action, Actor, AuditEvent};
use crate::sink::{Auditor, FailureMode};

use self::shard::{Cold, Shard, ShardLock, Slot};

/// The default summary interval.
pub const DEFAULT_SUMMARY_INTERVAL: Duration = Duration::from_secs(1);
/// The longest summary interval: what a crash may lose is bounded by it.
pub const MAX_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

const SHARDS: usize = 16;

/// How an audited verifier records decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyAuditMode {
    /// Every decision is an entry of its own (the default).
    #[default]
    EveryDecision,
    /// Denials are entries of their own; allowed verifications are summarized per token, request
    /// and source every `interval` (clamped to 1 ms ..= 60 s).
    Summarized {
        /// How long counts gather before they are recorded.
        interval: Duration,
    },
}

struct Inner {
    shards: Vec<ShardLock>,
    keyed: std::collections::hash_map::RandomState,
    auditor: Auditor,
    interval: Duration,
    /// A summary could not be recorded (fail-closed verifiers deny until one is).
    failing: AtomicBool,
    /// Summaries taken from the shards but not yet recorded (retried first).
    unrecorded: Mutex<Vec<Slot>>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The shared summary of allowed verifications: one per deployment, cloned into every verifier
/// that summarizes. Cheap to clone; `Send + Sync`.
///
/// Denials are never summarized: each stays an entry of its own, recorded at once. An allowed
/// verification costs a lock of one of 16 shards and a counter; a thread of the summary's own
/// hands the interval's entries to the [`Auditor`] every `interval` (default 1 s, at most 60 s).
///
/// What it promises, and what it does not:
/// - Every allowed verification is counted in exactly one `verify_allowed` entry, whose attributes
///   `count`, `first` and `last` say how many and when (`time` is `last`); `request`, `source`,
///   `token` and the principal are the entry's as in every-decision mode.
/// - [`VerificationSummary::flush`] records what is pending now; [`VerificationSummary::close`]
///   (and dropping the last handle) records it and stops. The front door closes it on shutdown
///   before the audit log.
/// - **A crash loses at most one interval of counts** (those not yet handed to the writer, plus
///   what the writer itself had not yet made durable, as for any entry).
/// - Fail-closed: when a summary could not be recorded, it is kept and retried at the next
///   interval, and allowed verifications are denied (`audit_unavailable`) until one is recorded.
#[derive(Clone)]
pub struct VerificationSummary {
    inner: Arc<Inner>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl std::fmt::Debug for VerificationSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationSummary")
            .field("interval", &self.inner.interval)
            .field("failing", &self.inner.failing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl VerificationSummary {
    /// Starts a summary recording through `auditor` every `interval` (clamped to 1 ms ..= 60 s)
    /// on a thread of its own.
    pub fn start(auditor: Auditor, interval: Duration) -> Result<Self, AuditError> {
        let interval = interval.clamp(Duration::from_millis(1), MAX_SUMMARY_INTERVAL);
        let inner = Arc::new(Inner {
            shards: (0..SHARDS).map(|_| ShardLock(spin::mutex::SpinMutex::new(Shard::default()))).collect(),
            keyed: std::collections::hash_map::RandomState::new(),
            auditor,
            interval,
            failing: AtomicBool::new(false),
            unrecorded: Mutex::new(Vec::new()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let thread = std::thread::Builder::new()
            .name("tokenward-audit-summary".into())
            .spawn(move || run(&weak, interval))
            .map_err(AuditError::io("start the summary thread"))?;
        Ok(Self { inner, thread: Arc::new(Mutex::new(Some(thread))) })
    }

    /// The interval.
    pub fn interval(&self) -> Duration {
        self.inner.interval
    }

    /// The auditor summaries are recorded through.
    pub fn auditor(&self) -> &Auditor {
        &self.inner.auditor
    }

    /// Counts one allowed verification. Returns `false` when a fail-closed verifier must deny it
    /// instead (the last summary could not be recorded).
    #[must_use]
    pub fn count(&self, grant: &Grant, request: &Request, source: Option<&str>, now: DateTime<Utc>) -> bool {
        self.count_at_millis(grant, request, source, now.timestamp_millis())
    }

    /// [`VerificationSummary::count`] at `ms` milliseconds since the Unix epoch.
    #[must_use]
    pub(crate) fn count_at_millis(
        &self,
        grant: &Grant,
        request: &Request,
        source: Option<&str>,
        ms: i64,
    ) -> bool {
        let inner = &*self.inner;
        if inner.failing.load(Ordering::Relaxed) && inner.auditor.mode() == FailureMode::FailClosed {
            return false;
        }
        let mut h = inner.keyed.build_hasher();
        h.write(request.as_str().as_bytes());
        match source {
            Some(s) => {
                h.write_u8(1);
                h.write(s.as_bytes());
            }
            None => h.write_u8(0),
        }
        let t = grant.id().to_u128();
        let token = [t as u64, (t >> 64) as u64];
        let hash = h.finish();
        inner.shards[(hash >> 59) as usize % SHARDS].lock().count(token, hash, ms, || Cold {
            token: grant.id(),
            principal: grant.principal().clone(),
            request: request.clone(),
            source: source.map(Into::into),
            first_ms: ms,
            spilled: 0,
        });
        true
    }

    /// Records every pending summary now (waits for nothing durable; see
    /// [`crate::AuditWriter::flush`] for that). `Err` when one could not be recorded (it is kept
    /// and retried).
    pub fn flush(&self) -> Result<(), AuditError> {
        flush(&self.inner)
    }

    /// Records what is pending and stops the thread. Later counts are recorded by the next
    /// `flush` (or by dropping the last handle).
    pub fn close(&self) -> Result<(), AuditError> {
        *lock(&self.inner.stop) = true;
        self.inner.wake.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        flush(&self.inner)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = flush(self) {
            tracing::error!(error = %e, "verification summaries could not be recorded as the summary closed: they are lost");
        }
    }
}

fn run(inner: &Weak<Inner>, interval: Duration) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let stop = {
            let guard = lock(&strong.stop);
            if *guard {
                return;
            }
            let (guard, _) = strong.wake.wait_timeout(guard, interval).unwrap_or_else(|p| p.into_inner());
            *guard
        };
        // The summaries that could not be recorded are kept and retried at the next pass; a
        // fail-closed verifier denies meanwhile. Said when it starts failing and when it recovers.
        let was_failing = strong.failing.load(Ordering::Relaxed);
        match flush(&strong) {
            Err(e) if !was_failing => tracing::warn!(
                mode = ?strong.auditor.mode(),
                error = %e,
                "recording verification summaries failed; they are kept and retried"
            ),
            Err(e) => tracing::debug!(error = %e, "recording verification summaries failed again"),
            Ok(()) if was_failing => tracing::info!("verification summaries are recorded again"),
            Ok(()) => {}
        }
        if stop {
            return;
        }
    }
}

fn event(s: &Slot) -> AuditEvent {
    let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let time = |ms: i64| at(ms).to_rfc3339_opts(SecondsFormat::Millis, true);
    let c = &s.cold;
    let mut e = AuditEvent::new(
        at(s.last_ms),
        Actor::Principal(c.principal.as_str().to_owned()),
        Action::VerifyAllowed,
    )
    .token(c.token)
    .attr("request", c.request.as_str())
    .attr("count", s.count.to_string())
    .attr("first", time(c.first_ms))
    .attr("last", time(s.last_ms));
    if let Some(src) = &c.source {
        e = e.source(src.to_string());
    }
    e
}

fn flush(inner: &Inner) -> Result<(), AuditError> {
    let mut pending = std::mem::take(&mut *lock(&inner.unrecorded));
    for shard in &inner.shards {
        // The fresh table is made outside the lock; verifications wait only for the swap.
        let len = shard.lock().len;
        if len == 0 {
            continue;
        }
        let taken = std::mem::replace(&mut *shard.lock(), Shard::with_capacity(len));
        pending.extend(taken.into_slots());
    }
    let mut result = Ok(());
    let mut kept = Vec::new();
    for slot in pending {
        if result.is_err() {
            kept.push(slot);
            continue;
        }
        if let Err(e) = inner.auditor.emit(event(&slot)) {
            result = Err(e);
            kept.push(slot);
        }
    }
    inner.failing.store(result.is_err(), Ordering::Relaxed);
    if !kept.is_empty() {
        // Merged back in front of anything a concurrent flush left.
        let mut u = lock(&inner.unrecorded);
        kept.append(&mut u);
        *u = kept;
    }
    result
}
