//! A backend that interrupts a KEK rotation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use token_core::{TokenId, lookup::TokenRecord};

use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::error::StoreError;
use crate::model::{LabelChange, SecretName, SecretVersion, TokenQuery};

/// A backend that fails every re-wrap after the first `rewraps_left`: an interrupted rotation.
pub(super) struct FailAfter {
    pub(super) inner: Arc<dyn Backend>,
    pub(super) rewraps_left: std::sync::Mutex<usize>,
}

#[async_trait::async_trait]
impl Backend for FailAfter {
    async fn insert_token(
        &self,
        record: &TokenRecord,
        key: &crate::backend::RecordKey,
        expected_active: &[TokenId],
    ) -> crate::Result<()> {
        self.inner.insert_token(record, key, expected_active).await
    }
    async fn token(&self, id: TokenId) -> crate::Result<Option<crate::TokenRow>> {
        self.inner.token(id).await
    }
    async fn tokens(&self, query: &TokenQuery) -> crate::Result<Vec<crate::TokenRow>> {
        self.inner.tokens(query).await
    }
    async fn revoke_tree(
        &self,
        id: TokenId,
        at: DateTime<Utc>,
        key: &crate::backend::RecordKey,
    ) -> crate::Result<Vec<TokenId>> {
        self.inner.revoke_tree(id, at, key).await
    }
    async fn upgrade_token_records(&self, key: &crate::backend::RecordKey) -> crate::Result<usize> {
        self.inner.upgrade_token_records(key).await
    }
    async fn record_uses(&self, uses: &[(TokenId, DateTime<Utc>, u64)]) -> crate::Result<()> {
        self.inner.record_uses(uses).await
    }
    async fn insert_version(&self, version: &SecretVersion) -> crate::Result<()> {
        self.inner.insert_version(version).await
    }
    async fn version(&self, name: &SecretName, version: u64) -> crate::Result<Option<SecretVersion>> {
        self.inner.version(name, version).await
    }
    async fn latest_version(&self, name: &SecretName) -> crate::Result<Option<u64>> {
        self.inner.latest_version(name).await
    }
    async fn secret_names(&self) -> crate::Result<Vec<(SecretName, u64)>> {
        self.inner.secret_names().await
    }
    async fn labels(&self, name: &SecretName) -> crate::Result<crate::Labels> {
        self.inner.labels(name).await
    }
    async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> crate::Result<()> {
        self.inner.update_labels(name, changes).await
    }
    async fn versions_not_under(&self, kek_id: &str, limit: usize) -> crate::Result<Vec<(SecretName, u64)>> {
        self.inner.versions_not_under(kek_id, limit).await
    }
    async fn rewrap_version(
        &self,
        name: &SecretName,
        version: u64,
        expect_kek: &str,
        new_kek: &str,
        wrapped_key: &Sealed,
    ) -> crate::Result<()> {
        {
            let mut left = self.rewraps_left.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *left == 0 {
                return Err(StoreError::Backend("injected failure: the process died mid-rotation".into()));
            }
            *left -= 1;
        }
        self.inner.rewrap_version(name, version, expect_kek, new_kek, wrapped_key).await
    }
    async fn meta(&self, key: &str) -> crate::Result<Option<Vec<u8>>> {
        self.inner.meta(key).await
    }
    async fn set_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> crate::Result<()> {
        self.inner.set_meta(key, expect, value).await
    }
}
