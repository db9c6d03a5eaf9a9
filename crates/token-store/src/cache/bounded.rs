//! The bounded mode: at most a capacity of hot tokens, a miss read from the backend by id within a
//! lookup budget, ids the backend does not know remembered for a while, the least recently used
//! evicted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use token_core::{TokenId, lookup::TokenRecord};

use crate::error::{Result, StoreError};
use crate::table::ViewTable;

use super::{VerifierCache, lock};

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

pub(super) struct Bounded {
    config: BoundedCache,
    negative: Mutex<Negative>,
    /// Use counts of evicted tokens, for the next usage flush.
    pub(super) evicted_usage: Mutex<Vec<(TokenId, DateTime<Utc>, u64)>>,
    budget: Mutex<Bucket>,
    counters: Counters,
    rng: AtomicU64,
}

impl VerifierCache {
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

    /// Bounded mode: evicts until there is room for one more.
    pub(super) fn make_room(&self, views: &mut ViewTable) {
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
}
