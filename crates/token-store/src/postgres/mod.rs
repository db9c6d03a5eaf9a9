//! The PostgreSQL backend, for a service with many instances: a connection pool, the same schema
//! ideas as the embedded store, advisory locks for the per-purpose and per-secret rules, and
//! revocations announced with `NOTIFY` so other instances' verifier caches drop them.
//!
//! Every write is one transaction; PostgreSQL's default `synchronous_commit = on` makes each
//! acknowledged write durable (the server group-commits concurrent ones).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use token_core::{TokenId, lookup::TokenRecord};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::error::{BackendError, Result, StoreError};
use crate::integrity::RecordKey;
use crate::model::{LabelChange, Labels, SecretName, SecretVersion, TokenQuery, TokenRow};

mod notify;
mod schema;
mod secrets;
mod tokens;

/// The channel revocations are announced on; the payload is `id@millis` items, comma-separated.
pub const REVOCATION_CHANNEL: &str = "tokenward_revocations";

/// The `NOTIFY` channel on which every issue is announced (payload: the token id), so other
/// instances' verifier caches take new tokens at once rather than at their next resync.
pub const ISSUE_CHANNEL: &str = "tokenward_issues";

/// A store in a PostgreSQL database (or schema: set `search_path` in the connection string's
/// `options`).
#[derive(Clone)]
pub struct PostgresBackend {
    pool: Pool,
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend").field("pool", &self.pool.status()).finish_non_exhaustive()
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(BackendError::new("postgres", e))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(BackendError::new("postgres pool", e))
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

impl PostgresBackend {
    /// Connects with a libpq-style connection string (`host=… port=… user=… dbname=…`), with a
    /// pool of at most `max_connections`, and brings the schema up to date.
    pub async fn connect(conn_str: &str, max_connections: usize) -> Result<Self> {
        let config: tokio_postgres::Config =
            conn_str.parse().map_err(|e| StoreError::Invalid(format!("postgres connection string: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| StoreError::Backend(BackendError::new("postgres pool", e)))?;
        let backend = Self { pool, config };
        schema::migrate(&backend.pool).await?;
        // Never the connection string: it may hold a password.
        tracing::debug!(max_connections, "connected to the PostgreSQL store");
        Ok(backend)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_err)
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn insert_token(
        &self,
        record: &TokenRecord,
        key: &RecordKey,
        expected_active: &[TokenId],
    ) -> Result<()> {
        tokens::insert(&mut self.client().await?, record, key, expected_active).await
    }

    async fn token(&self, id: TokenId) -> Result<Option<TokenRow>> {
        tokens::get(&self.client().await?, id).await
    }

    async fn token_ids(&self, query: &TokenQuery) -> Result<Vec<TokenId>> {
        tokens::ids(&self.client().await?, query).await
    }

    async fn tokens_by_id(&self, ids: &[TokenId]) -> Result<Vec<TokenRow>> {
        tokens::get_many(&self.client().await?, ids).await
    }

    async fn tokens(&self, query: &TokenQuery) -> Result<Vec<TokenRow>> {
        tokens::query(&self.client().await?, query).await
    }

    async fn count_tokens(&self, query: &TokenQuery) -> Result<Option<usize>> {
        tokens::count(&self.client().await?, query).await.map(Some)
    }

    async fn revoke_tree(&self, id: TokenId, at: DateTime<Utc>, key: &RecordKey) -> Result<Vec<TokenId>> {
        tokens::revoke_tree(&mut self.client().await?, id, at, key).await
    }

    async fn upgrade_token_records(&self, key: &RecordKey) -> Result<usize> {
        tokens::upgrade(&mut self.client().await?, key).await
    }

    async fn record_uses(&self, uses: &[(TokenId, DateTime<Utc>, u64)]) -> Result<()> {
        tokens::record_uses(&mut self.client().await?, uses).await
    }

    async fn insert_version(&self, v: &SecretVersion) -> Result<()> {
        secrets::insert_version(&mut self.client().await?, v).await
    }

    async fn version(&self, name: &SecretName, version: u64) -> Result<Option<SecretVersion>> {
        secrets::version(&self.client().await?, name, version).await
    }

    async fn secret_names(&self) -> Result<Vec<(SecretName, u64)>> {
        secrets::names(&**self.client().await?).await
    }

    async fn latest_version(&self, name: &SecretName) -> Result<Option<u64>> {
        secrets::latest(&**self.client().await?, name).await
    }

    async fn labels(&self, name: &SecretName) -> Result<Labels> {
        secrets::read_labels(&**self.client().await?, name).await
    }

    async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> Result<()> {
        secrets::update_labels(&mut self.client().await?, name, changes).await
    }

    async fn versions_not_under(&self, kek_id: &str, limit: usize) -> Result<Vec<(SecretName, u64)>> {
        secrets::versions_not_under(&self.client().await?, kek_id, limit).await
    }

    async fn rewrap_version(
        &self,
        name: &SecretName,
        version: u64,
        expect_kek: &str,
        new_kek: &str,
        wrapped_key: &Sealed,
    ) -> Result<()> {
        secrets::rewrap_version(&self.client().await?, name, version, expect_kek, new_kek, wrapped_key).await
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        secrets::meta(&self.client().await?, key).await
    }

    async fn set_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> Result<()> {
        secrets::set_meta(&self.client().await?, key, expect, value).await
    }

    async fn listen_revocations(&self) -> Result<Box<dyn crate::RevocationFeed>> {
        Ok(Box::new(self.listen().await?))
    }
}
