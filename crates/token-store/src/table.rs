//! A compact open-addressing table of token views (Robin Hood hashing, linear probing).
//!
//! Why not `std::collections::HashMap`: its bucket count is a power of two, so at some sizes (one
//! million tokens is one) it holds twice the slots it needs, and its SipHash costs more than the
//! rest of a lookup. Here the slot count is exactly what the load factor asks for, a slot is the id
//! and the view inline (128 bytes, `None` costing nothing thanks to the view's pointers), and the
//! hash is a keyed multiply-mix with per-table random keys: ids are uniformly random already, and
//! the keys keep a caller who presents chosen ids from aiming at long probe runs. Robin Hood
//! ordering bounds how far a lookup of an unknown id scans.

use rand::TryRng;
use token_core::{TokenId, lookup::TokenView};

use crate::error::{Result, StoreError};

/// A table is sized for a load factor of 7/8 and grows (by half) only past 15/16: Robin Hood
/// ordering keeps probes short even there, and a freshly loaded table takes a good many inserts
/// before it must rebuild (which it does under its owner's write lock).
const LOAD_NUM: usize = 7;
const LOAD_DEN: usize = 8;
const GROW_NUM: usize = 15;
const GROW_DEN: usize = 16;

/// One slot: the id and the view inline, on a 64-byte boundary so that a slot spans exactly two
/// cache lines (a large allocation's start is 16 bytes past a page boundary, which without this
/// would put every slot across three).
#[repr(C, align(64))]
struct Slot(Option<(TokenId, TokenView)>);

pub(crate) struct ViewTable {
    slots: Vec<Slot>,
    len: usize,
    k0: u64,
    k1: u64,
}

fn slots_for(entries: usize) -> usize {
    (entries * LOAD_DEN).div_ceil(LOAD_NUM).max(8)
}

impl ViewTable {
    /// A table with room for `entries` without growing.
    pub(crate) fn with_capacity(entries: usize) -> Result<Self> {
        let mut k = [0u8; 16];
        rand::rngs::SysRng.try_fill_bytes(&mut k).map_err(|_| {
            StoreError::KeyProvider("the operating system's random number generator failed".into())
        })?;
        let (a, b) = k.split_at(8);
        let k0 = u64::from_le_bytes(a.try_into().unwrap_or([0; 8]));
        let k1 = u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) | 1;
        let mut slots = Vec::new();
        slots.resize_with(slots_for(entries), || Slot(None));
        Ok(Self { slots, len: 0, k0, k1 })
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of the slot array.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Slot>()
    }

    #[inline]
    fn home(&self, id: TokenId) -> usize {
        let v = id.to_u128();
        let x = (v as u64) ^ ((v >> 64) as u64).rotate_left(29) ^ self.k0;
        let m = u128::from(x) * u128::from(self.k1);
        let h = (m as u64) ^ ((m >> 64) as u64);
        ((u128::from(h) * self.slots.len() as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() { 0 } else { i + 1 }
    }

    /// How far slot `i`, holding `id`, is from its home.
    #[inline]
    fn distance(&self, i: usize, id: TokenId) -> usize {
        let home = self.home(id);
        if i >= home { i - home } else { i + self.slots.len() - home }
    }

    fn find(&self, id: TokenId) -> Option<usize> {
        let mut i = self.home(id);
        let mut d = 0;
        loop {
            match &self.slots[i].0 {
                None => return None,
                Some((k, _)) if *k == id => return Some(i),
                Some((k, _)) => {
                    if self.distance(i, *k) < d {
                        return None;
                    }
                }
            }
            i = self.next(i);
            d += 1;
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: TokenId) -> Option<&TokenView> {
        self.find(id).and_then(|i| self.slots[i].0.as_ref().map(|(_, v)| v))
    }

    pub(crate) fn get_mut(&mut self, id: TokenId) -> Option<&mut TokenView> {
        self.find(id).and_then(|i| self.slots[i].0.as_mut().map(|(_, v)| v))
    }

    /// Inserts or replaces. Grows by half when past the load factor.
    pub(crate) fn insert(&mut self, id: TokenId, view: TokenView) {
        if let Some(v) = self.get_mut(id) {
            *v = view;
            return;
        }
        if (self.len + 1) * GROW_DEN > self.slots.len() * GROW_NUM {
            self.grow(slots_for(self.len + self.len / 2 + 1));
        }
        self.place(id, view);
        self.len += 1;
    }

    fn place(&mut self, id: TokenId, view: TokenView) {
        let mut carry = (id, view);
        let mut i = self.home(carry.0);
        let mut d = 0;
        loop {
            let Some(resident_id) = self.slots[i].0.as_ref().map(|(k, _)| *k) else {
                self.slots[i] = Slot(Some(carry));
                return;
            };
            // Robin Hood: the entry nearer its home gives its place to the one further from its own.
            let rd = self.distance(i, resident_id);
            if rd < d {
                if let Some(resident) = self.slots[i].0.as_mut() {
                    std::mem::swap(resident, &mut carry);
                }
                d = rd;
            }
            i = self.next(i);
            d += 1;
        }
    }

    fn grow(&mut self, slots: usize) {
        let old = std::mem::take(&mut self.slots);
        self.slots.resize_with(slots, || Slot(None));
        for (id, view) in old.into_iter().filter_map(|s| s.0) {
            self.place(id, view);
        }
    }

    /// Removes `id`, shifting the run after it back (no tombstones).
    pub(crate) fn remove(&mut self, id: TokenId) -> bool {
        let Some(mut i) = self.find(id) else { return false };
        self.slots[i] = Slot(None);
        loop {
            let j = self.next(i);
            let shift = match &self.slots[j].0 {
                Some((k, _)) => self.distance(j, *k) > 0,
                None => false,
            };
            if !shift {
                break;
            }
            self.slots[i] = Slot(self.slots[j].0.take());
            i = j;
        }
        self.len -= 1;
        true
    }

    /// Keeps the entries for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&TokenView) -> bool) -> usize {
        let gone: Vec<TokenId> = self
            .slots
            .iter()
            .filter_map(|s| s.0.as_ref())
            .filter(|(_, v)| !keep(v))
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove(*id);
        }
        gone.len()
    }

    /// The least recently used of the entries found at (or just after) the slots `samples`
    /// point at: an approximate LRU victim (Redis's way), never used ranking oldest.
    pub(crate) fn sample_victim(&self, samples: impl IntoIterator<Item = u64>) -> Option<TokenId> {
        let n = self.slots.len();
        let mut best: Option<(Option<chrono::DateTime<chrono::Utc>>, TokenId)> = None;
        for sample in samples {
            let start = ((u128::from(sample) * n as u128) >> 64) as usize;
            // Look a little way on for an occupied slot (at 7/8 load one is near).
            for k in 0..64 {
                let i = (start + k) % n;
                if let Some((id, v)) = &self.slots[i].0 {
                    let used = v.last_used();
                    if best.as_ref().is_none_or(|(b, _)| used < *b) {
                        best = Some((used, *id));
                    }
                    break;
                }
            }
        }
        best.map(|(_, id)| id)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&TokenId, &TokenView)> {
        self.slots.iter().filter_map(|s| s.0.as_ref()).map(|(id, v)| (id, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use token_core::chrono::{TimeDelta, Utc};
    use token_core::digest::TokenDigest;
    use token_core::lookup::{TokenRecord, UseLimits};
    use token_core::names::{PrincipalId, Purpose};
    use token_core::*;

    fn view() -> TokenView {
        let r = TokenRecord {
            id: TokenId::from_u128(1).expect("id"),
            principal: PrincipalId::new("p").expect("p"),
            purpose: Purpose::new("u").expect("u"),
            scopes: ScopeSet::parse("s:a:b").expect("scopes"),
            digest: TokenDigest::from_parts(1, [0; 32]),
            created_at: Utc::now(),
            not_before: Utc::now(),
            expires_at: Utc::now() + TimeDelta::hours(1),
            revoked_at: None,
            parent: None,
            replaces: None,
            limits: UseLimits::default(),
            bound_to: None,
        };
        TokenView::from_record(&r)
    }

    #[test]
    fn slots_are_128_bytes_on_cache_lines() {
        assert_eq!(std::mem::size_of::<Slot>(), 128);
        assert_eq!(std::mem::align_of::<Slot>(), 64);
    }

    #[test]
    fn behaves_like_a_map_under_random_operations() {
        let mut t = ViewTable::with_capacity(4).expect("rng");
        let mut model: HashMap<TokenId, u64> = HashMap::new();
        let mut x = 0x1234_5678_9abc_def0u64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct ids so that inserts, replaces and removes collide.
            let id = TokenId::from_u128(u128::from(x % 3000)).expect("id");
            match x % 5 {
                0..=2 => {
                    t.insert(id, view());
                    model.insert(id, step);
                }
                3 => assert_eq!(t.remove(id), model.remove(&id).is_some(), "remove {step}"),
                _ => assert_eq!(t.get(id).is_some(), model.contains_key(&id), "get {step}"),
            }
            assert_eq!(t.len(), model.len());
        }
        for id in model.keys() {
            assert!(t.get(*id).is_some());
        }
        let absent = TokenId::from_u128(999_999).expect("id");
        assert!(t.get(absent).is_none());
        let kept = t.retain(|_| false);
        assert_eq!((kept, t.len()), (model.len(), 0));
    }

    #[test]
    fn memory_per_entry_at_a_million_is_under_150_bytes() {
        // Sized by `with_capacity`, as a cache load does.
        let t = ViewTable::with_capacity(1_000_000).expect("rng");
        assert!(t.memory_bytes() / 1_000_000 <= 150, "{}", t.memory_bytes() / 1_000_000);
    }
}
