//! The verifier cache: every unexpired token's compact [`TokenView`] in memory, so verification never
//! touches the database and needs no async runtime.
//!
//! **Revocation guarantee.** [`crate::TokenService::revoke_at`] returns only after the backend has made
//! the revocation durable (fsynced) *and* this process's cache has dropped the tokens, so from
//! then on this process denies them. Other processes drop them when they hear of it: through
//! PostgreSQL's `NOTIFY` (milliseconds, see the README), and in any case at their next
//! [`VerifierCache::resync`] (call it every few seconds as a backstop for lost notifications). A
//! token unknown to the cache is denied as unknown, never looked up on the hot path; a revoked one
//! stays in the cache, marked, until it expires, so it is denied as revoked.

use std::sync::RwLock;

use chrono::{DateTime, Utc};
use token_core::{TokenId, TokenLookup, TokenRecord, TokenView};

use crate::error::{Result, StoreError};
use crate::table::ViewTable;

/// Views of unexpired tokens (revoked ones included, marked), bounded by a capacity.
pub struct VerifierCache {
    views: RwLock<ViewTable>,
    capacity: usize,
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
        Ok(Self { views: RwLock::new(ViewTable::with_capacity(capacity.min(1024))?), capacity })
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
        if views.len() >= self.capacity && views.get(record.id).is_none() {
            return Err(StoreError::Invalid(format!("verifier cache is full ({} tokens)", self.capacity)));
        }
        views.insert(record.id, TokenView::with_usage(record, uses, last_used));
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
        *self.write() = fresh;
        Ok(())
    }

    /// Replaces the whole content with `table`, in one swap.
    pub(crate) fn swap_table(&self, table: ViewTable) {
        *self.write() = table;
    }

    /// At most this many tokens.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Marks tokens revoked at `at`: from now on they are denied as revoked.
    pub fn revoke(&self, ids: &[TokenId], at: DateTime<Utc>) {
        let mut views = self.write();
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
        self.read()
            .iter()
            .filter_map(|(id, v)| {
                v.last_used().filter(|t| *t >= since).map(|t| (*id, t, v.take_unflushed_uses()))
            })
            .collect()
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
