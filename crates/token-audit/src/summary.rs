//! Summarized auditing of allowed verifications, as cloud providers log data events: per token,
//! request and source, one entry per interval with the count and the first and last time.
//!
//! See [`VerificationSummary`] for what it promises.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use token_core::{Grant, PrincipalId, Request, TokenId};

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

/// FxHash (rustc's), for the map's keys: a token id and a keyed hash, nothing an attacker picks.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Fx {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// Gathers a request's many small writes (each segment, its terminator, lengths) and feeds the
/// SipHash state in one go: the same digest (SipHash is a streaming hash: writes concatenate),
/// one pass instead of a dozen calls.
struct Buffered {
    buf: [u8; 128],
    len: usize,
    sip: std::collections::hash_map::DefaultHasher,
}

impl Hasher for Buffered {
    fn write(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.buf.len() {
            self.sip.write(&self.buf[..self.len]);
            self.len = 0;
            if bytes.len() > self.buf.len() {
                self.sip.write(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn finish(&self) -> u64 {
        let mut sip = self.sip.clone();
        sip.write(&self.buf[..self.len]);
        sip.finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    token: TokenId,
    /// The request's and source's keyed hash: SipHash-1-3 under a per-summary random key, a PRF,
    /// so two different requests of one token share a slot with probability 2⁻⁶⁴, and a caller
    /// choosing request paths cannot steer them together. No value comparison on the hot path
    /// (it would chase the slot's pointers: a cache miss each).
    hash: u64,
}

struct Slot {
    principal: PrincipalId,
    request: Request,
    source: Option<Box<str>>,
    count: u64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

type Map = HashMap<Key, Slot, BuildHasherDefault<Fx>>;

struct Inner {
    shards: Vec<Mutex<Map>>,
    keyed: std::collections::hash_map::RandomState,
    auditor: Auditor,
    interval: Duration,
    /// A summary could not be recorded (fail-closed verifiers deny until one is).
    failing: AtomicBool,
    /// Summaries taken from the shards but not yet recorded (retried first).
    unrecorded: Mutex<Vec<(TokenId, Slot)>>,
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
            shards: (0..SHARDS).map(|_| Mutex::new(Map::default())).collect(),
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
        let inner = &*self.inner;
        if inner.failing.load(Ordering::Relaxed) && inner.auditor.mode() == FailureMode::FailClosed {
            return false;
        }
        let mut h = Buffered { buf: [0; 128], len: 0, sip: inner.keyed.build_hasher() };
        request.hash(&mut h);
        source.hash(&mut h);
        let key = Key { token: grant.id(), hash: h.finish() };
        let shard = (key.hash ^ (key.token.to_u128() as u64)) as usize % SHARDS;
        let mut map = lock(&inner.shards[shard]);
        let slot = map.entry(key).or_insert_with(|| Slot {
            principal: grant.principal().clone(),
            request: request.clone(),
            source: source.map(Into::into),
            count: 0,
            first: now,
            last: now,
        });
        slot.count += 1;
        if now > slot.last {
            slot.last = now;
        }
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
        let _ = flush(self);
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
        let _ = flush(&strong);
        if stop {
            return;
        }
    }
}

fn event(token: TokenId, s: &Slot) -> AuditEvent {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut e =
        AuditEvent::new(s.last, Actor::Principal(s.principal.as_str().to_owned()), Action::VerifyAllowed)
            .token(token)
            .attr("request", s.request.to_string())
            .attr("count", s.count.to_string())
            .attr("first", time(s.first))
            .attr("last", time(s.last));
    if let Some(src) = &s.source {
        e = e.source(src.to_string());
    }
    e
}

fn flush(inner: &Inner) -> Result<(), AuditError> {
    let mut pending = std::mem::take(&mut *lock(&inner.unrecorded));
    for shard in &inner.shards {
        let taken = {
            let mut map = lock(shard);
            let cap = map.len();
            std::mem::replace(&mut *map, Map::with_capacity_and_hasher(cap, Default::default()))
        };
        pending.extend(taken.into_iter().map(|(k, s)| (k.token, s)));
    }
    let mut result = Ok(());
    let mut kept = Vec::new();
    for (token, slot) in pending {
        if result.is_err() {
            kept.push((token, slot));
            continue;
        }
        if let Err(e) = inner.auditor.emit(event(token, &slot)) {
            result = Err(e);
            kept.push((token, slot));
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
