//! An in-memory token registry: for tests, examples and single-process services.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use crate::decision::DenyReason;
use crate::format::TokenId;
use crate::issue::{IssueError, Issuer};
use crate::policy::{ChildRequest, IssueRequest, PolicyViolation};
use crate::record::{TokenRecord, TokenStatus};
use crate::role::{Principal, PrincipalId, Purpose};
use crate::secret::IssuedToken;
use crate::verify::TokenLookup;

const NEVER: i64 = i64::MIN;

struct Entry {
    record: Arc<TokenRecord>,
    uses: AtomicU64,
    last_used_ms: AtomicI64,
}

#[derive(Default)]
struct Inner {
    tokens: HashMap<TokenId, Entry>,
    by_purpose: HashMap<(PrincipalId, Purpose), Vec<TokenId>>,
    children: HashMap<TokenId, Vec<TokenId>>,
}

/// Token records in memory, behind a reader-writer lock. Implements [`TokenLookup`]; issuing
/// checks the one-active-per-purpose rule and inserts under one write lock, so two concurrent
/// issues cannot both pass it.
#[derive(Default)]
pub struct MemoryTokens {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for MemoryTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTokens").field("tokens", &self.len()).finish()
    }
}

impl MemoryTokens {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.read().tokens.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Issues a token through `issuer` and keeps its record.
    pub fn issue_at(
        &self,
        issuer: &Issuer,
        principal: &Principal,
        request: &IssueRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, IssueError> {
        let mut inner = self.write();
        let active = inner.active_for(principal.id(), request.purpose(), now);
        let (token, record) = issuer.issue_at(principal, request, &active, now)?;
        inner.insert(record);
        Ok(token)
    }

    /// Mints a child of the token `parent_token` through `issuer` and keeps its record.
    pub fn issue_child_at(
        &self,
        issuer: &Issuer,
        parent_token: &str,
        request: &ChildRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, IssueError> {
        let parent_id = issuer.format().parse(parent_token)?.id();
        let mut inner = self.write();
        let parent = inner
            .tokens
            .get(&parent_id)
            .map(|e| Arc::clone(&e.record))
            .ok_or_else(|| PolicyViolation::ParentNotUsable("unknown parent".into()))?;
        let (token, record) = issuer.issue_child_at(parent_token, &parent, request, now)?;
        inner.insert(record);
        Ok(token)
    }

    /// Adds a record as it is (for loading from elsewhere). Replaces one with the same id.
    pub fn insert(&self, record: TokenRecord) {
        self.write().insert(record);
    }

    /// The record with this id.
    pub fn get(&self, id: TokenId) -> Option<Arc<TokenRecord>> {
        self.read().tokens.get(&id).map(|e| Arc::clone(&e.record))
    }

    /// Ids of the principal's tokens for `purpose` that are active at `now`.
    pub fn active_for(&self, principal: &PrincipalId, purpose: &Purpose, now: DateTime<Utc>) -> Vec<TokenId> {
        self.read().active_for(principal, purpose, now)
    }

    /// Revokes `id` and every token minted from it, transitively, at `now`. Returns the ids newly
    /// revoked (already revoked ones are left with their original time).
    pub fn revoke_at(&self, id: TokenId, now: DateTime<Utc>) -> Vec<TokenId> {
        let mut inner = self.write();
        let mut revoked = Vec::new();
        let mut stack = vec![id];
        while let Some(next) = stack.pop() {
            if let Some(entry) = inner.tokens.get_mut(&next) {
                if entry.record.revoked_at.is_none() {
                    let mut r = (*entry.record).clone();
                    r.revoked_at = Some(now);
                    entry.record = Arc::new(r);
                    revoked.push(next);
                }
            }
            if let Some(kids) = inner.children.get(&next) {
                stack.extend_from_slice(kids);
            }
        }
        revoked
    }

    /// Successful uses recorded for `id`.
    pub fn uses(&self, id: TokenId) -> u64 {
        self.read().tokens.get(&id).map_or(0, |e| e.uses.load(Ordering::Relaxed))
    }
}

impl Inner {
    fn active_for(&self, principal: &PrincipalId, purpose: &Purpose, now: DateTime<Utc>) -> Vec<TokenId> {
        self.by_purpose
            .get(&(principal.clone(), purpose.clone()))
            .into_iter()
            .flatten()
            .filter(|id| {
                self.tokens.get(id).is_some_and(|e| {
                    matches!(e.record.status_at(now), TokenStatus::Active | TokenStatus::NotYetValid)
                })
            })
            .copied()
            .collect()
    }

    fn insert(&mut self, record: TokenRecord) {
        let id = record.id;
        if record.parent.is_none() {
            self.by_purpose.entry((record.principal.clone(), record.purpose.clone())).or_default().push(id);
        }
        if let Some(parent) = record.parent {
            self.children.entry(parent).or_default().push(id);
        }
        self.tokens.insert(
            id,
            Entry { record: Arc::new(record), uses: AtomicU64::new(0), last_used_ms: AtomicI64::new(NEVER) },
        );
    }
}

impl TokenLookup for MemoryTokens {
    #[inline]
    fn lookup(&self, id: TokenId) -> Option<Arc<TokenRecord>> {
        self.get(id)
    }

    fn record_use(&self, record: &TokenRecord, at: DateTime<Utc>) -> Result<(), DenyReason> {
        let inner = self.read();
        let Some(entry) = inner.tokens.get(&record.id) else {
            return Err(DenyReason::Unknown);
        };
        let at_ms = at.timestamp_millis();
        if let Some(idle) = record.limits.idle_timeout {
            let last = entry.last_used_ms.load(Ordering::Acquire);
            let since = if last == NEVER {
                record.not_before
            } else {
                DateTime::from_timestamp_millis(last).unwrap_or(record.not_before)
            };
            if at - since > idle {
                return Err(DenyReason::IdleTimeout { since });
            }
        }
        if let Some(max_uses) = record.limits.max_uses {
            if entry.uses.fetch_add(1, Ordering::AcqRel) >= max_uses {
                return Err(DenyReason::UsesExhausted { max_uses });
            }
        } else {
            entry.uses.fetch_add(1, Ordering::Relaxed);
        }
        entry.last_used_ms.fetch_max(at_ms, Ordering::AcqRel);
        Ok(())
    }
}
