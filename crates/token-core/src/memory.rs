//! An in-memory token registry: for tests, examples and single-process services.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use crate::format::TokenId;
use crate::issue::{IssueError, Issuer};
use crate::policy::{ChildRequest, IssueRequest, PolicyViolation};
use crate::record::{TokenEntry, TokenRecord, TokenStatus, UseCounter};
use crate::role::{Principal, PrincipalId, Purpose};
use crate::secret::IssuedToken;
use crate::verify::TokenLookup;

#[derive(Default)]
struct Inner {
    tokens: HashMap<TokenId, Arc<TokenEntry>>,
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
            .map(|e| e.record().clone())
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
    pub fn get(&self, id: TokenId) -> Option<TokenRecord> {
        self.read().tokens.get(&id).map(|e| e.record().clone())
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
                if entry.record().revoked_at.is_none() {
                    let mut r = entry.record().clone();
                    r.revoked_at = Some(now);
                    let usage = UseCounter::new(entry.usage().uses(), entry.usage().last_used());
                    *entry = Arc::new(TokenEntry::with_usage(r, usage));
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
        self.read().tokens.get(&id).map_or(0, |e| e.usage().uses())
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
                    matches!(e.record().status_at(now), TokenStatus::Active | TokenStatus::NotYetValid)
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
        self.tokens.insert(id, Arc::new(TokenEntry::new(record)));
    }
}

impl TokenLookup for MemoryTokens {
    #[inline]
    fn lookup(&self, id: TokenId) -> Option<Arc<TokenEntry>> {
        self.read().tokens.get(&id).cloned()
    }
}
