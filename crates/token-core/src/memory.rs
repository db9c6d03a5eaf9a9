//! An in-memory token registry: for tests, examples and single-process services.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::RwLock;

use chrono::{DateTime, Utc};

use crate::format::TokenId;
use crate::issue::{IssueError, Issuer};
use crate::policy::{ChildRequest, IssueRequest, PolicyViolation};
use crate::record::{TokenRecord, TokenStatus};
use crate::role::{Principal, PrincipalId, Purpose};
use crate::secret::IssuedToken;
use crate::verify::TokenLookup;
use crate::view::TokenView;

/// A view with its id, on a 64-byte boundary: a lookup touches two cache lines (a 128-byte
/// pair the prefetcher fetches together), never three as a view straddling lines would.
#[repr(C, align(64))]
struct Held {
    id: TokenId,
    view: TokenView,
}

impl Hash for Held {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Held {}

impl Borrow<TokenId> for Held {
    fn borrow(&self) -> &TokenId {
        &self.id
    }
}

/// Hashes token ids with a folded multiply under two per-registry random keys: ids are uniformly
/// random already (issued from the OS CSPRNG), and inserts are only of issued ids, so a presenter
/// who chooses ids cannot lengthen probes; SipHash would cost more than the rest of a lookup.
#[derive(Clone)]
struct IdHasher {
    k0: u64,
    k1: u64,
}

impl Default for IdHasher {
    fn default() -> Self {
        // Two random words from std's per-process random hash keys (no RNG dependency here).
        use std::hash::BuildHasher;
        let r = std::collections::hash_map::RandomState::new();
        Self { k0: r.hash_one(0x243F_6A88_85A3_08D3_u64), k1: r.hash_one(0x1319_8A2E_0370_7344_u64) | 1 }
    }
}

impl std::hash::BuildHasher for IdHasher {
    type Hasher = IdHash;
    fn build_hasher(&self) -> IdHash {
        IdHash { k0: self.k0, k1: self.k1, h: 0 }
    }
}

struct IdHash {
    k0: u64,
    k1: u64,
    h: u64,
}

impl Hasher for IdHash {
    #[inline]
    fn write_u128(&mut self, v: u128) {
        let m = u128::from((v as u64) ^ self.k0) * u128::from(((v >> 64) as u64) ^ self.k1);
        self.h ^= (m as u64) ^ ((m >> 64) as u64);
    }

    /// Anything else (not used: ids hash as one `u128`), folded eight bytes at a time.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u128(u128::from(u64::from_le_bytes(word)) | (u128::from(self.h) << 64));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.h
    }
}

#[derive(Default)]
struct Inner {
    tokens: HashSet<Held, IdHasher>,
    /// Full records, apart from the views so the hot path touches only views.
    records: HashMap<TokenId, TokenRecord>,
    by_purpose: HashMap<(PrincipalId, Purpose), Vec<TokenId>>,
    children: HashMap<TokenId, Vec<TokenId>>,
}

/// Token records in memory, behind a reader-writer lock. Implements [`TokenLookup`]; issuing
/// checks the one-active-per-purpose rule and inserts under one write lock, so two concurrent
/// issues cannot both pass it.
#[derive(Default)]
pub struct InMemoryLookup {
    inner: RwLock<Inner>,
}

impl std::fmt::Debug for InMemoryLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryLookup").field("tokens", &self.len()).finish()
    }
}

impl InMemoryLookup {
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
            .records
            .get(&parent_id)
            .cloned()
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
        self.read().records.get(&id).cloned()
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
            let Inner { tokens, records, .. } = &mut *inner;
            if let Some(record) = records.get_mut(&next)
                && record.revoked_at.is_none()
                && let Some(mut held) = tokens.take(&next)
            {
                record.revoked_at = Some(now);
                held.view.revoke(now);
                tokens.insert(held);
                revoked.push(next);
            }
            if let Some(kids) = inner.children.get(&next) {
                stack.extend_from_slice(kids);
            }
        }
        revoked
    }

    /// Successful uses recorded for `id`.
    pub fn uses(&self, id: TokenId) -> u64 {
        self.read().tokens.get(&id).map_or(0, |h| h.view.uses())
    }
}

impl Inner {
    fn active_for(&self, principal: &PrincipalId, purpose: &Purpose, now: DateTime<Utc>) -> Vec<TokenId> {
        self.by_purpose
            .get(&(principal.clone(), purpose.clone()))
            .into_iter()
            .flatten()
            .filter(|id| {
                self.records.get(id).is_some_and(|r| {
                    matches!(r.status_at(now), TokenStatus::Active | TokenStatus::NotYetValid)
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
        self.tokens.replace(Held { id, view: TokenView::from_record(&record) });
        self.records.insert(id, record);
    }
}

impl TokenLookup for InMemoryLookup {
    #[inline]
    fn with_token(&self, id: TokenId, visit: &mut dyn FnMut(&TokenView)) -> bool {
        match self.read().tokens.get(&id) {
            Some(held) => {
                visit(&held.view);
                true
            }
            None => false,
        }
    }
}
