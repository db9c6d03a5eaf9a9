//! The verifier cache: every unexpired token's compact [`TokenView`] in memory, so verification never
//! touches the database and needs no async runtime — or, in bounded mode ([`BoundedCache`]), the
//! hot tokens only, a miss read from the backend by id.
//!
//! **Revocation guarantee.** [`crate::TokenService::revoke_at`] returns only after the backend has made
//! the revocation durable (fsynced) *and* this process's cache has dropped the tokens, so from
//! then on this process denies them. Other processes drop them when they hear of it: through
//! PostgreSQL's `NOTIFY` (milliseconds, see the README), and in any case at their next
//! [`crate::TokenService::resync_at`] (call it every few seconds as a backstop for lost notifications). A
//! token unknown to the cache is denied as unknown, never looked up on the hot path; a revoked one
//! stays in the cache, marked, until it expires, so it is denied as revoked.
//!
//! **In bounded mode** the same holds for every token, cached or not: a miss reads the record
//! from the backend (where a revocation is durable before it is acknowledged), so an uncached
//! revoked token is denied as revoked; a cached one is marked by the notice, as in full mode; and a
//! notice that arrives while a miss is being read is remembered, so the record read just before
//! the revocation cannot be cached unrevoked. The backstop resync re-reads every cached record.
//!
//! What filling the cache found ([`LoadReport`]) and what a catch-up applied to it ([`CatchUp`])
//! are reported by [`crate::TokenService`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use token_core::{TokenId, lookup::TokenLookup, lookup::TokenRecord, lookup::TokenView};

use crate::error::{Result, StoreError};
use crate::table::ViewTable;
pub use crate::tokens::{CatchUp, LoadReport};

/// The bounded cache mode: at most `capacity` hot tokens in memory; a miss is one indexed read of
/// the backend by id; ids the backend does not know are remembered as unknown for
/// `negative_ttl`; and at most `max_lookups_per_sec` misses a second reach the backend (a flood of
/// made-up tokens is denied as [`token_core::DenyReason::LookupUnavailable`] past it, cached
/// tokens unaffected).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BoundedCache {
    /// Tokens held at most (the least recently used of a small sample is evicted past it).
    pub capacity: usize,
    /// How long an id the backend does not know is answered as unknown without asking again.
    pub negative_ttl: Duration,
    /// Unknown ids remembered at most (the oldest forgotten first).
    pub negative_capacity: usize,
    /// Backend reads a second this instance allows for misses (a token bucket; bursts of one
    /// second's worth).
    pub max_lookups_per_sec: u32,
    /// How long a miss waits for the backend before it is denied as unavailable.
    pub lookup_timeout: Duration,
}

impl BoundedCache {
    /// At most `capacity` tokens; unknown ids remembered for 2 s (up to 100,000 of them); 10,000
    /// backend reads a second; a read waits 1 s at most.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            negative_ttl: Duration::from_secs(2),
            negative_capacity: 100_000,
            max_lookups_per_sec: 10_000,
            lookup_timeout: Duration::from_secs(1),
        }
    }

    /// Sets [`BoundedCache::negative_ttl`].
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Sets [`BoundedCache::negative_capacity`].
    #[must_use]
    pub fn negative_capacity(mut self, n: usize) -> Self {
        self.negative_capacity = n;
        self
    }

    /// Sets [`BoundedCache::max_lookups_per_sec`].
    #[must_use]
    pub fn max_lookups_per_sec(mut self, n: u32) -> Self {
        self.max_lookups_per_sec = n.max(1);
        self
    }

    /// Sets [`BoundedCache::lookup_timeout`].
    #[must_use]
    pub fn lookup_timeout(mut self, d: Duration) -> Self {
        self.lookup_timeout = d;
        self
    }
}

/// What a bounded cache has done since it was made (all zero in full mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Presentations whose token was cached.
    pub hits: u64,
    /// Presentations whose token was not (each then answered by a read, the unknown-id memory, or
    /// refused for want of budget).
    pub misses: u64,
    /// Backend reads made for misses.
    pub lookups: u64,
    /// Misses answered from the unknown-id memory (no read).
    pub negative_hits: u64,
    /// Misses refused because the lookup budget was spent or the backend failed or was slow.
    pub unavailable: u64,
    /// Tokens evicted to make room.
    pub evictions: u64,
}

/// How long a revocation is remembered, for a resync or a read that got the record just before it
/// (longer than any resync or read takes).
const RECENT_REVOCATIONS: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    lookups: AtomicU64,
    negative_hits: AtomicU64,
    unavailable: AtomicU64,
    evictions: AtomicU64,
}

struct Negative {
    until: HashMap<TokenId, Instant>,
    order: VecDeque<(TokenId, Instant)>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Bounded {
    config: BoundedCache,
    negative: Mutex<Negative>,
    /// Use counts of evicted tokens, for the next usage flush.
    evicted_usage: Mutex<Vec<(TokenId, DateTime<Utc>, u64)>>,
    budget: Mutex<Bucket>,
    counters: Counters,
    rng: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Views of unexpired tokens (revoked ones included, marked), bounded by a capacity: all of them,
/// or in bounded mode the hot ones.
pub struct VerifierCache {
    views: RwLock<ViewTable>,
    capacity: usize,
    bounded: Option<Bounded>,
    /// Revocations applied lately, by id (taken only while holding the views' write lock): applied
    /// again to a table built while they arrived (a resync that read the record just before the
    /// revocation) and to a record read for a miss or a notice.
    recent: Mutex<HashMap<TokenId, (DateTime<Utc>, Instant)>>,
}

impl std::fmt::Debug for VerifierCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierCache")
            .field("tokens", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl VerifierCache {
    /// An empty cache holding at most `capacity` tokens. Fails only if the OS random number
    /// generator does (the table's hash keys come from it).
    pub fn new(capacity: usize) -> Result<Self> {
        Ok(Self {
            views: RwLock::new(ViewTable::with_capacity(capacity.min(1024))?),
            capacity,
            bounded: None,
            recent: Mutex::default(),
        })
    }

    /// An empty cache in bounded mode: it holds the hot tokens only and never refuses an insert
    /// (it evicts instead). Fails only if the OS random number generator does.
    pub fn bounded(config: BoundedCache) -> Result<Self> {
        let mut seed = [0u8; 8];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut seed).map_err(|_| {
            StoreError::KeyProvider("the operating system's random number generator failed".into())
        })?;
        let now = Instant::now();
        Ok(Self {
            views: RwLock::new(ViewTable::with_capacity(config.capacity.min(1 << 16))?),
            capacity: config.capacity,
            recent: Mutex::default(),
            bounded: Some(Bounded {
                negative: Mutex::new(Negative { until: HashMap::new(), order: VecDeque::new() }),
                evicted_usage: Mutex::default(),
                budget: Mutex::new(Bucket { tokens: f64::from(config.max_lookups_per_sec), at: now }),
                counters: Counters::default(),
                rng: AtomicU64::new(u64::from_le_bytes(seed) | 1),
                config,
            }),
        })
    }

    /// The bounded mode's settings, if the cache is bounded.
    pub fn bounded_config(&self) -> Option<&BoundedCache> {
        self.bounded.as_ref().map(|b| &b.config)
    }

    /// What the bounded cache has done (zeros in full mode).
    pub fn stats(&self) -> CacheStats {
        let Some(b) = &self.bounded else { return CacheStats::default() };
        let c = &b.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            lookups: c.lookups.load(Ordering::Relaxed),
            negative_hits: c.negative_hits.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
        }
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: TokenId) -> bool {
        self.read().get(id).is_some()
    }

    /// The parent of held token `id`, if it is held and has one.
    pub(crate) fn parent_of(&self, id: TokenId) -> Option<TokenId> {
        self.read().get(id).and_then(TokenView::parent)
    }

    /// Bounded mode: counts a presentation of `id`, and says whether it is held.
    pub(crate) fn presented(&self, id: TokenId) -> bool {
        let held = self.contains(id);
        if let Some(b) = &self.bounded {
            let c = if held { &b.counters.hits } else { &b.counters.misses };
            c.fetch_add(1, Ordering::Relaxed);
        }
        held
    }

    /// Bounded mode: whether `id` is remembered as unknown (a miss that needs no read).
    pub(crate) fn known_unknown(&self, id: TokenId) -> bool {
        let hit = self.remembers_unknown(id);
        if let (true, Some(b)) = (hit, &self.bounded) {
            b.counters.negative_hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Bounded mode: whether `id` is remembered as unknown (not counted).
    pub(crate) fn remembers_unknown(&self, id: TokenId) -> bool {
        let Some(b) = &self.bounded else { return false };
        let now = Instant::now();
        lock(&b.negative).until.get(&id).is_some_and(|until| *until > now)
    }

    /// Bounded mode: remembers `id` as unknown for the negative TTL.
    pub(crate) fn note_unknown(&self, id: TokenId) {
        let Some(b) = &self.bounded else { return };
        let now = Instant::now();
        let until = now + b.config.negative_ttl;
        let mut n = lock(&b.negative);
        while let Some((old, t)) = n.order.front().copied() {
            if t > now && n.order.len() < b.config.negative_capacity.max(1) {
                break;
            }
            n.order.pop_front();
            if n.until.get(&old).is_some_and(|u| *u == t) {
                n.until.remove(&old);
            }
        }
        n.until.insert(id, until);
        n.order.push_back((id, until));
    }

    /// Bounded mode: forgets that `id` was unknown (it has just been issued).
    pub(crate) fn forget_unknown(&self, id: TokenId) {
        if let Some(b) = &self.bounded {
            lock(&b.negative).until.remove(&id);
        }
    }

    /// Bounded mode: takes one backend read from the budget; `false` when it is spent.
    pub(crate) fn take_lookup(&self) -> bool {
        let Some(b) = &self.bounded else { return true };
        let rate = f64::from(b.config.max_lookups_per_sec);
        let mut bucket = lock(&b.budget);
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            b.counters.lookups.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Bounded mode: counts a miss that could not be answered.
    pub(crate) fn note_unavailable(&self) {
        if let Some(b) = &self.bounded {
            b.counters.unavailable.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bounded mode: caches a record read for a miss, evicting to make room, and applying a
    /// revocation noticed while it was being read.
    pub(crate) fn insert_read(&self, record: &TokenRecord, uses: u64, last_used: Option<DateTime<Utc>>) {
        let mut views = self.write();
        if views.get(record.id).is_some() {
            return;
        }
        let view = self.view_of(record, uses, last_used);
        self.make_room(&mut views);
        views.insert(record.id, view);
    }

    /// A record's view, with a revocation applied lately (a record read just before it) applied.
    fn view_of(&self, record: &TokenRecord, uses: u64, last_used: Option<DateTime<Utc>>) -> TokenView {
        let mut view = TokenView::with_usage(record, uses, last_used);
        if let Some((at, _)) = lock(&self.recent).get(&record.id) {
            view.revoke(*at);
        }
        view
    }

    /// Bounded mode: evicts until there is room for one more.
    fn make_room(&self, views: &mut ViewTable) {
        let Some(b) = &self.bounded else { return };
        while views.len() >= self.capacity {
            let samples = (0..5).map(|_| {
                // xorshift: cheap, and the table's own keys already spread the ids.
                let mut x = b.rng.load(Ordering::Relaxed);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.rng.store(x, Ordering::Relaxed);
                x
            });
            let Some(victim) = views.sample_victim(samples) else { return };
            if let Some(v) = views.get(victim) {
                let uses = v.take_unflushed_uses();
                if let (Some(t), true) = (v.last_used(), uses > 0) {
                    lock(&b.evicted_usage).push((victim, t, uses));
                }
            }
            views.remove(victim);
            b.counters.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bounded mode: drops `id` (its record is gone or expired).
    pub(crate) fn remove(&self, id: TokenId) {
        self.write().remove(id);
    }

    /// The ids held.
    pub(crate) fn ids(&self) -> Vec<TokenId> {
        self.read().iter().map(|(id, _)| *id).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, ViewTable> {
        self.views.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, ViewTable> {
        self.views.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes the cache's table takes (its slots: id and view inline). Scope sets and principal
    /// names are shared between tokens and not counted.
    pub fn memory_bytes(&self) -> usize {
        self.read().memory_bytes()
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds (or replaces) a token's view; a revoked token is kept (until it expires) so that it is
    /// denied as revoked. Refuses with [`StoreError::Invalid`] when full: evict expired tokens, or
    /// raise the capacity.
    pub fn insert(&self, record: &TokenRecord, uses: u64, last_used: Option<DateTime<Utc>>) -> Result<()> {
        let mut views = self.write();
        if self.bounded.is_some() && views.get(record.id).is_none() {
            self.forget_unknown(record.id);
            self.make_room(&mut views);
        }
        if views.len() >= self.capacity && views.get(record.id).is_none() {
            return Err(StoreError::Invalid(format!("verifier cache is full ({} tokens)", self.capacity)));
        }
        views.insert(record.id, self.view_of(record, uses, last_used));
        Ok(())
    }

    /// Replaces the whole content with `records`, in one swap.
    pub fn replace_all<'a>(
        &self,
        records: impl IntoIterator<Item = (&'a TokenRecord, u64, Option<DateTime<Utc>>)>,
    ) -> Result<()> {
        let views: Vec<(TokenId, TokenView)> =
            records.into_iter().map(|(r, uses, last)| (r.id, TokenView::with_usage(r, uses, last))).collect();
        self.swap_in(views)
    }

    pub(crate) fn swap_in(&self, views: Vec<(TokenId, TokenView)>) -> Result<()> {
        if views.len() > self.capacity {
            return Err(StoreError::Invalid(format!("verifier cache is full ({} tokens)", self.capacity)));
        }
        let mut fresh = ViewTable::with_capacity(views.len())?;
        for (id, view) in views {
            fresh.insert(id, view);
        }
        self.swap_table(fresh);
        Ok(())
    }

    /// Replaces the whole content with `table`, in one swap; revocations applied while it was
    /// being built are applied to it too (it may hold records read just before them).
    pub(crate) fn swap_table(&self, mut table: ViewTable) {
        let mut views = self.write();
        for (id, (at, _)) in lock(&self.recent).iter() {
            if let Some(v) = table.get_mut(*id) {
                v.revoke(*at);
            }
        }
        *views = table;
    }

    /// At most this many tokens.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Marks tokens revoked at `at`: from now on they are denied as revoked.
    pub fn revoke(&self, ids: &[TokenId], at: DateTime<Utc>) {
        let mut views = self.write();
        {
            let now = Instant::now();
            let mut recent = lock(&self.recent);
            if recent.len() > 1024 {
                recent.retain(|_, (_, noted)| now.duration_since(*noted) < RECENT_REVOCATIONS);
            }
            for id in ids {
                recent.insert(*id, (at, now));
            }
        }
        for id in ids {
            if let Some(v) = views.get_mut(*id) {
                v.revoke(at);
            }
        }
    }

    /// Drops tokens expired at `now`; returns how many.
    pub fn evict_expired(&self, now: DateTime<Utc>) -> usize {
        let now_ms = now.timestamp_millis();
        self.write().retain(|v| !v.is_expired_at(now_ms))
    }

    /// Use counters to persist: `(id, last use, uses since the last call)` for every token used
    /// since `since` (what [`crate::Backend::record_uses`] adds to the stored count; each use is
    /// handed over once).
    pub fn usage_since(&self, since: DateTime<Utc>) -> Vec<(TokenId, DateTime<Utc>, u64)> {
        let mut usage: Vec<_> = self
            .read()
            .iter()
            .filter_map(|(id, v)| {
                v.last_used().filter(|t| *t >= since).map(|t| (*id, t, v.take_unflushed_uses()))
            })
            .collect();
        if let Some(b) = &self.bounded {
            usage.append(&mut lock(&b.evicted_usage));
        }
        usage
    }
}

impl TokenLookup for VerifierCache {
    #[inline]
    fn with_token(&self, id: TokenId, visit: &mut dyn FnMut(&TokenView)) -> bool {
        match self.read().get(id) {
            Some(view) => {
                visit(view);
                true
            }
            None => false,
        }
    }
}
