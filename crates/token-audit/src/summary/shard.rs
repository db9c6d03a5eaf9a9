//! The table counts gather in: per shard, open addressing with linear probing, the hot fields of
//! a slot in one cache line, behind a spin lock.

use token_core::names::PrincipalId;
use token_core::{Request, TokenId};

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
pub(super) struct Cold {
    pub(super) token: TokenId,
    pub(super) principal: PrincipalId,
    pub(super) request: Request,
    pub(super) source: Option<Box<str>>,
    pub(super) first_ms: i64,
    /// Counts beyond the hot slot's `u32` (it starts again at 1 each time it would overflow).
    pub(super) spilled: u64,
}

/// A slot taken from a shard: what one entry records.
pub(super) struct Slot {
    pub(super) count: u64,
    pub(super) last_ms: i64,
    pub(super) cold: Cold,
}

/// One shard's open-addressed table (linear probing, at most half full): one cache line read per
/// verification, no control bytes. `cold[i]` belongs to `hot[i]`. Written here rather than a
/// `HashMap` because of a measurement: with `std`'s map (its control bytes and 48-byte entries)
/// the count took 3,648 profile samples of a paired run, with this table 2,006
/// (docs/performance.md, issue 13's second pass).
pub(super) struct Shard {
    hot: Vec<Hot>,
    cold: Vec<Option<Box<Cold>>>,
    pub(super) len: usize,
    /// Times are kept as offsets from here (set by the first count: ±24 days of it fit).
    base_ms: i64,
}

impl Default for Shard {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl Shard {
    pub(super) fn with_capacity(entries: usize) -> Self {
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
    pub(super) fn count(&mut self, token: [u64; 2], hash: u64, ms: i64, make: impl FnOnce() -> Cold) {
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
    pub(super) fn into_slots(self) -> Vec<Slot> {
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
pub(super) struct ShardLock(pub(super) spin::mutex::SpinMutex<Shard>);

impl ShardLock {
    #[inline]
    pub(super) fn lock(&self) -> spin::mutex::SpinMutexGuard<'_, Shard> {
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
