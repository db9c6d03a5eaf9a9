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
//!
//! This module holds the cache and what both modes share; `bounded` is the bounded mode: its
//! settings and counters, misses, the lookup budget, unknown ids remembered, eviction.

mod bounded;

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use token_core::{TokenId, lookup::TokenLookup, lookup::TokenRecord, lookup::TokenView};

use crate::error::{Result, StoreError};
use crate::table::ViewTable;
pub use crate::tokens::{CatchUp, LoadReport};

use self::bounded::Bounded;
pub use self::bounded::{BoundedCache, CacheStats};

/// How long a revocation is remembered, for a resync or a read that got the record just before it
/// (longer than any resync or read takes).
const RECENT_REVOCATIONS: Duration = Duration::from_secs(60);

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

    /// Whether `id` is held.
    pub fn contains(&self, id: TokenId) -> bool {
        self.read().get(id).is_some()
    }

    /// The parent of held token `id`, if it is held and has one.
    pub(crate) fn parent_of(&self, id: TokenId) -> Option<TokenId> {
        self.read().get(id).and_then(TokenView::parent)
    }

    /// A record's view, with a revocation applied lately (a record read just before it) applied.
    fn view_of(&self, record: &TokenRecord, uses: u64, last_used: Option<DateTime<Utc>>) -> TokenView {
        let mut view = TokenView::with_usage(record, uses, last_used);
        if let Some((at, _)) = lock(&self.recent).get(&record.id) {
            view.revoke(*at);
        }
        view
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
