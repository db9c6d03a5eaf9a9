//! A bounded replay cache: each identifier (a JWT's `jti`, a DPoP proof's `jti`) is kept until
//! the moment its token could no longer be accepted anyway, then dropped. When it is full of
//! live entries it refuses new ones rather than forgetting one — forgetting would let that one
//! be replayed.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use sha2::{Digest, Sha256};
use token_core::chrono::{DateTime, Utc};

use crate::limits::DEFAULT_REPLAY_CAPACITY as DEFAULT_CAPACITY;

/// Identifiers seen, each until its expiry, at most `capacity` at once (about 100 bytes each).
/// Shared (`Arc`) by validators that must not accept each other's replays.
pub struct ReplayCache {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    seen: HashMap<[u8; 32], i64>,
    by_expiry: BinaryHeap<Reverse<(i64, [u8; 32])>>,
}

/// Why an identifier was not recorded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    Replayed,
    Full,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache").field("capacity", &self.capacity).field("len", &self.len()).finish()
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ReplayCache {
    /// A cache holding at most `capacity` live identifiers (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), state: Mutex::new(State::default()) }
    }

    /// How many identifiers it holds (live or not yet swept).
    pub fn len(&self) -> usize {
        self.state.lock().map_or(0, |s| s.seen.len())
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `id` within `scope` until `expires`, or refuses it: seen before and still live,
    /// or the cache full of live entries. Expired entries are swept first.
    pub(crate) fn check_and_record(
        &self,
        scope: &[u8],
        id: &str,
        expires: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), Refused> {
        let mut h = Sha256::new();
        h.update((scope.len() as u64).to_be_bytes());
        h.update(scope);
        h.update(id.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let now_ms = now.timestamp_millis();
        // A poisoned lock (a panic elsewhere while holding it) refuses: never accept blindly.
        let mut guard = self.state.lock().map_err(|_| Refused::Full)?;
        let state = &mut *guard;
        while let Some(Reverse((exp, k))) = state.by_expiry.peek().copied() {
            if exp > now_ms {
                break;
            }
            state.by_expiry.pop();
            if state.seen.get(&k) == Some(&exp) {
                state.seen.remove(&k);
            }
        }
        if state.seen.contains_key(&key) {
            return Err(Refused::Replayed);
        }
        if state.seen.len() >= self.capacity {
            return Err(Refused::Full);
        }
        let exp = expires.timestamp_millis().max(now_ms + 1);
        state.seen.insert(key, exp);
        state.by_expiry.push(Reverse((exp, key)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use token_core::chrono::TimeDelta;

    #[test]
    fn an_id_is_refused_while_live_and_forgotten_after() {
        let c = ReplayCache::new(10);
        let now = Utc::now();
        let exp = now + TimeDelta::seconds(60);
        assert_eq!(c.check_and_record(b"a", "j1", exp, now), Ok(()));
        assert_eq!(c.check_and_record(b"a", "j1", exp, now), Err(Refused::Replayed));
        assert_eq!(c.check_and_record(b"b", "j1", exp, now), Ok(()), "another scope");
        let later = exp + TimeDelta::seconds(1);
        assert_eq!(c.check_and_record(b"a", "j1", later + TimeDelta::seconds(60), later), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let c = ReplayCache::new(2);
        let now = Utc::now();
        let exp = now + TimeDelta::seconds(60);
        assert_eq!(c.check_and_record(b"", "1", exp, now), Ok(()));
        assert_eq!(c.check_and_record(b"", "2", exp, now), Ok(()));
        assert_eq!(c.check_and_record(b"", "3", exp, now), Err(Refused::Full));
        assert_eq!(c.check_and_record(b"", "1", exp, now), Err(Refused::Replayed), "1 is still remembered");
        let later = exp + TimeDelta::milliseconds(1);
        assert_eq!(c.check_and_record(b"", "3", later + TimeDelta::seconds(1), later), Ok(()), "swept");
        assert_eq!(c.len(), 1);
    }
}
