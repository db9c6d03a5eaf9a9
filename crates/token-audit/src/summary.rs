//! Summarized auditing of allowed verifications, as cloud providers log data events: per token,
//! request and source, one entry per interval with the count and the first and last time.
//!
//! See [`VerificationSummary`] for what it promises.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use token_core::names::PrincipalId;
use token_core::{Grant, Request, TokenId};

use crate::error::AuditError;
use crate::event::{Action, Actor, AuditEvent};
use crate::sink::{Auditor, FailureMode};

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

/// Folded multiply: the full 128-bit product's halves xored (foldhash's and aHash's mixer).
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Where a slot's probe starts: the token and the keyed hash folded together.
#[inline]
fn home(token: [u64; 2], hash: u64, mask: usize) -> usize {
    (fold(hash ^ token[0], token[1] | 1) as usize) & mask
}

/// What a verification touches, 32 bytes, aligned so one cache line holds it whole: the token
/// (as two words), the request's and source's keyed hash — SipHash-1-3 under a per-summary random
/// key, a PRF, so two different requests of one token share a slot with probability 2⁻⁶⁴ and a
/// caller choosing request paths cannot steer them together — the count and the last time.
/// Nothing else is read on a hit: the slot's request and source text stay in [`Cold`], read only
/// to make an entry. An empty slot has count 0.
#[derive(Clone, Copy, Default)]
#[repr(align(32))]
struct Hot {
    token: [u64; 2],
    hash: u64,
    count: u32,
    /// Milliseconds after the table's `base_ms`.
    last: u32,
}

/// What only an entry needs.
struct Cold {
    token: TokenId,
    principal: PrincipalId,
    request: Request,
    source: Option<Box<str>>,
    first_ms: i64,
    /// Counts beyond the hot slot's `u32` (it starts again at 1 each time it would overflow).
    spilled: u64,
}

/// A slot taken from a shard: what one entry records.
struct Slot {
    count: u64,
    last_ms: i64,
    cold: Cold,
}

/// One shard's open-addressed table (linear probing, at most half full): one cache line read per
/// verification, no control bytes. `cold[i]` belongs to `hot[i]`. Written here rather than a
/// `HashMap` because of a measurement: with `std`'s map (its control bytes and 48-byte entries)
/// the count took 3,648 profile samples of a paired run, with this table 2,006
/// (docs/performance.md, issue 13's second pass).
struct Shard {
    hot: Vec<Hot>,
    cold: Vec<Option<Box<Cold>>>,
    len: usize,
    /// Times are kept as offsets from here (set by the first count: ±24 days of it fit).
    base_ms: i64,
}

impl Default for Shard {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Shard {
    fn with_capacity(entries: usize) -> Self {
        let slots = (entries * 2).next_power_of_two().max(64);
        Self {
            hot: vec![Hot::default(); slots],
            cold: (0..slots).map(|_| None).collect(),
            len: 0,
            base_ms: 0,
        }
    }

    /// Counts one verification of `token` for the request and source hashed to `hash`; `make`
    /// gives the slot's cold part when it is new.
    #[inline]
    fn count(&mut self, token: [u64; 2], hash: u64, ms: i64, make: impl FnOnce() -> Cold) {
        if self.len == 0 {
            self.base_ms = ms - (1 << 31);
        }
        let off = u32::try_from((ms - self.base_ms).max(0)).unwrap_or(u32::MAX);
        let mask = self.hot.len() - 1;
        let mut i = home(token, hash, mask);
        loop {
            let e = &mut self.hot[i];
            if e.count == 0 {
                break;
            }
            if e.hash == hash && e.token == token {
                if e.count == u32::MAX {
                    if let Some(c) = &mut self.cold[i] {
                        c.spilled += u64::from(u32::MAX);
                    }
                    e.count = 1;
                } else {
                    e.count += 1;
                }
                e.last = e.last.max(off);
                return;
            }
            i = (i + 1) & mask;
        }
        if (self.len + 1) * 2 > self.hot.len() {
            self.grow();
            return self.count(token, hash, ms, make);
        }
        self.hot[i] = Hot { token, hash, count: 1, last: off };
        self.cold[i] = Some(Box::new(make()));
        self.len += 1;
    }

    fn grow(&mut self) {
        let mut bigger = Shard::with_capacity(self.hot.len());
        bigger.base_ms = self.base_ms;
        let mask = bigger.hot.len() - 1;
        for (h, c) in self.hot.iter().zip(self.cold.iter_mut()) {
            if h.count == 0 {
                continue;
            }
            let mut i = home(h.token, h.hash, mask);
            while bigger.hot[i].count != 0 {
                i = (i + 1) & mask;
            }
            bigger.hot[i] = *h;
            bigger.cold[i] = c.take();
            bigger.len += 1;
        }
        *self = bigger;
    }

    /// The shard's slots, oldest first.
    fn into_slots(self) -> Vec<Slot> {
        let (old, base) = (self.hot.into_iter().zip(self.cold), self.base_ms);
        // A slot holds a cold part exactly when it is taken (count ≥ 1).
        let mut slots: Vec<Slot> = old
            .filter_map(|(h, c)| {
                let c = *c?;
                Some(Slot {
                    count: c.spilled + u64::from(h.count),
                    last_ms: base + i64::from(h.last),
                    cold: c,
                })
            })
            .collect();
        slots.sort_by_key(|s| s.cold.first_ms);
        slots
    }
}

/// A shard's lock: a spin lock whose unlock is a plain release store (one atomic read-modify-write
/// per verification instead of the two of `std`'s mutex: a profile gave the pair ≈ 16 ns of the
/// summary's ≈ 45). Held only to count, insert or swap the table (the fresh table is made
/// outside); a waiter spins briefly, then yields its time slice, so a holder that was preempted
/// is not starved by spinners.
struct ShardLock(spin::mutex::SpinMutex<Shard>);

impl ShardLock {
    #[inline]
    fn lock(&self) -> spin::mutex::SpinMutexGuard<'_, Shard> {
        if let Some(g) = self.0.try_lock() {
            return g;
        }
        self.lock_contended()
    }

    #[cold]
    fn lock_contended(&self) -> spin::mutex::SpinMutexGuard<'_, Shard> {
        loop {
            for _ in 0..64 {
                std::hint::spin_loop();
                if !self.0.is_locked()
                    && let Some(g) = self.0.try_lock_weak()
                {
                    return g;
                }
            }
            std::thread::yield_now();
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cold(ms: i64) -> Cold {
        Cold {
            token: TokenId::from_u128(7).unwrap_or_else(|| unreachable!()),
            principal: PrincipalId::new("p").unwrap_or_else(|_| unreachable!()),
            request: Request::parse("s3:b/k:read").unwrap_or_else(|_| unreachable!()),
            source: None,
            first_ms: ms,
            spilled: 0,
        }
    }

    #[test]
    fn the_table_grows_keeps_every_count_and_keeps_times() {
        let mut shard = Shard::default();
        let base = 1_800_000_000_000;
        // 10,000 slots (the table starts at 64), each counted i % 7 + 1 times.
        for round in 0..7u64 {
            for i in 0..10_000u64 {
                if round <= i % 7 {
                    let ms = base + i64::try_from(round * 10 + i % 3).unwrap_or(0);
                    shard.count([i, i ^ 0xabc], i.wrapping_mul(0x9e37_79b9_7f4a_7c15), ms, || cold(ms));
                }
            }
        }
        assert_eq!(shard.len, 10_000);
        assert!(shard.hot.len() >= 20_000, "at most half full");
        let slots = shard.into_slots();
        assert_eq!(slots.len(), 10_000);
        let total: u64 = slots.iter().map(|s| s.count).sum();
        assert_eq!(total, (0..10_000u64).map(|i| i % 7 + 1).sum::<u64>());
        for s in &slots {
            assert!(s.last_ms >= s.cold.first_ms, "last {} before first {}", s.last_ms, s.cold.first_ms);
        }
        assert!(slots.windows(2).all(|w| w[0].cold.first_ms <= w[1].cold.first_ms), "oldest first");
    }

    #[test]
    fn a_count_past_u32_spills_instead_of_wrapping() {
        let mut shard = Shard::default();
        shard.count([1, 2], 3, 1_000, || cold(1_000));
        let i = shard.hot.iter().position(|h| h.count != 0).unwrap_or_else(|| unreachable!());
        shard.hot[i].count = u32::MAX - 1;
        for _ in 0..3 {
            shard.count([1, 2], 3, 1_001, || cold(1_001));
        }
        let slots = shard.into_slots();
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].count, u64::from(u32::MAX) + 2);
        assert_eq!(slots[0].last_ms, 1_001);
    }

    #[test]
    fn one_token_two_requests_are_two_slots_and_a_clock_going_back_keeps_the_last() {
        let mut shard = Shard::default();
        shard.count([1, 2], 10, 5_000, || cold(5_000));
        shard.count([1, 2], 11, 5_000, || cold(5_000));
        shard.count([1, 2], 10, 4_000, || cold(4_000));
        let slots = shard.into_slots();
        assert_eq!(slots.len(), 2);
        assert_eq!(slots.iter().map(|s| s.count).sum::<u64>(), 3);
        assert!(slots.iter().all(|s| s.last_ms == 5_000));
    }
}
