//! The in-memory backend, for tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use token_core::{TokenId, lookup::TokenRecord};

use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::error::{Result, StoreError};
use crate::integrity::RecordKey;
use crate::model::{
    LabelChange, Labels, SecretName, SecretVersion, TokenQuery, TokenRow, apply_label_changes, check_active,
    check_next_version, id_text,
};

#[derive(Default)]
struct State {
    tokens: HashMap<TokenId, TokenRow>,
    children: HashMap<TokenId, Vec<TokenId>>,
    versions: BTreeMap<(SecretName, u64), SecretVersion>,
    labels: HashMap<SecretName, Labels>,
    meta: HashMap<String, Vec<u8>>,
}

/// Everything in one mutex-guarded map; durable only as long as the process.
#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<State>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend").finish_non_exhaustive()
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn insert_token(
        &self,
        record: &TokenRecord,
        key: &RecordKey,
        expected_active: &[TokenId],
    ) -> Result<()> {
        let mut s = self.lock();
        if s.tokens.contains_key(&record.id) {
            return Err(StoreError::TokenRejected(format!("token id {} already exists", id_text(record.id))));
        }
        if record.parent.is_none() {
            let q = TokenQuery::Active {
                principal: record.principal.clone(),
                purpose: record.purpose.clone(),
                at: record.created_at,
            };
            let found: Vec<TokenId> =
                s.tokens.values().filter(|t| q.matches(t)).map(|t| t.record.id).collect();
            check_active(&found, expected_active)?;
        }
        if let Some(parent) = record.parent {
            s.children.entry(parent).or_default().push(record.id);
        }
        let mac = Some(key.seal_token(record));
        s.tokens.insert(record.id, TokenRow::new(record.clone(), None, 0, mac));
        Ok(())
    }

    async fn token(&self, id: TokenId) -> Result<Option<TokenRow>> {
        Ok(self.lock().tokens.get(&id).cloned())
    }

    async fn tokens(&self, query: &TokenQuery) -> Result<Vec<TokenRow>> {
        Ok(self.lock().tokens.values().filter(|t| query.matches(t)).cloned().collect())
    }

    async fn revoke_tree(&self, id: TokenId, at: DateTime<Utc>, key: &RecordKey) -> Result<Vec<TokenId>> {
        // Kept to the millisecond, as the SQL backends store it (and as records' times are).
        let at = DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
        let mut s = self.lock();
        if !s.tokens.contains_key(&id) {
            return Err(StoreError::NotFound(format!("token {}", id_text(id))));
        }
        let mut out = Vec::new();
        let mut stack = vec![id];
        while let Some(next) = stack.pop() {
            if let Some(t) = s.tokens.get_mut(&next)
                && t.record.revoked_at.is_none()
            {
                t.record.revoked_at = Some(at);
                t.mac = Some(key.seal_token(&t.record));
                out.push(next);
            }
            if let Some(kids) = s.children.get(&next) {
                stack.extend_from_slice(kids);
            }
        }
        Ok(out)
    }

    async fn upgrade_token_records(&self, _key: &RecordKey) -> Result<usize> {
        // Records here are only ever held in the current form.
        Ok(0)
    }

    async fn record_uses(&self, uses: &[(TokenId, DateTime<Utc>, u64)]) -> Result<()> {
        let mut s = self.lock();
        for (id, at, n) in uses {
            if let Some(t) = s.tokens.get_mut(id) {
                t.last_used = Some(t.last_used.map_or(*at, |u| u.max(*at)));
                t.uses = t.uses.saturating_add(*n);
            }
        }
        Ok(())
    }

    async fn insert_version(&self, v: &SecretVersion) -> Result<()> {
        let mut s = self.lock();
        let latest =
            s.versions.range((v.name.clone(), 0)..=(v.name.clone(), u64::MAX)).next_back().map(|(k, _)| k.1);
        check_next_version(&v.name, v.version, latest)?;
        s.versions.insert((v.name.clone(), v.version), v.clone());
        Ok(())
    }

    async fn version(&self, name: &SecretName, version: u64) -> Result<Option<SecretVersion>> {
        Ok(self.lock().versions.get(&(name.clone(), version)).cloned())
    }

    async fn secret_names(&self) -> Result<Vec<(SecretName, u64)>> {
        let guard = self.lock();
        let mut out: Vec<(SecretName, u64)> = Vec::new();
        for (name, version) in guard.versions.keys() {
            match out.last_mut() {
                Some((n, v)) if n == name => *v = (*v).max(*version),
                _ => out.push((name.clone(), *version)),
            }
        }
        Ok(out)
    }

    async fn latest_version(&self, name: &SecretName) -> Result<Option<u64>> {
        Ok(self
            .lock()
            .versions
            .range((name.clone(), 0)..=(name.clone(), u64::MAX))
            .next_back()
            .map(|(k, _)| k.1))
    }

    async fn labels(&self, name: &SecretName) -> Result<Labels> {
        Ok(self.lock().labels.get(name).cloned().unwrap_or_default())
    }

    async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> Result<()> {
        let mut s = self.lock();
        let mut labels = s.labels.get(name).cloned().unwrap_or_default();
        apply_label_changes(name, &mut labels, changes, |v| Ok(s.versions.contains_key(&(name.clone(), v))))?;
        s.labels.insert(name.clone(), labels);
        Ok(())
    }

    async fn versions_not_under(&self, kek_id: &str, limit: usize) -> Result<Vec<(SecretName, u64)>> {
        Ok(self
            .lock()
            .versions
            .values()
            .filter(|v| v.kek_id != kek_id)
            .take(limit)
            .map(|v| (v.name.clone(), v.version))
            .collect())
    }

    async fn rewrap_version(
        &self,
        name: &SecretName,
        version: u64,
        expect_kek: &str,
        new_kek: &str,
        wrapped_key: &Sealed,
    ) -> Result<()> {
        let mut s = self.lock();
        let v = s
            .versions
            .get_mut(&(name.clone(), version))
            .ok_or_else(|| StoreError::NotFound(format!("{name} version {version}")))?;
        if v.kek_id != expect_kek {
            return Err(StoreError::Conflict(format!(
                "{name} version {version} is no longer under {expect_kek}"
            )));
        }
        v.kek_id = new_kek.to_owned();
        v.wrapped_key = wrapped_key.clone();
        Ok(())
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.lock().meta.get(key).cloned())
    }

    async fn set_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> Result<()> {
        let mut s = self.lock();
        if s.meta.get(key).map(Vec::as_slice) != expect {
            return Err(StoreError::Conflict(format!("metadata {key} changed")));
        }
        s.meta.insert(key.to_owned(), value.to_vec());
        Ok(())
    }
}
