//! For backend authors: the storage trait a backend implements (small, async, object-safe; it
//! sees only sealed data), what it stores and returns, and the rules every backend applies inside
//! its transactions — written once here, so a backend keeps only transactions and queries. Prove
//! an implementation with [`crate::testing::run_backend_suite`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use token_core::{TokenId, lookup::TokenRecord};

pub use crate::encoding::{RecordDecoder, encode_token_record, encode_token_record_into};
pub use crate::envelope::{NONCE_LEN, Sealed, SecretKey, TAG_LEN};
use crate::error::{Result, StoreError};
pub use crate::follow::{Change, RevocationFeed};
pub use crate::integrity::{RecordKey, RecordMac};
pub use crate::keys::KeyCheck;
pub use crate::model::{LabelChange, Labels, SecretName, TokenQuery, TokenRow};
pub use crate::model::{SecretVersion, apply_label_changes, check_active, check_next_version};

/// Durable storage for token records, sealed secret versions with staging labels, and store
/// metadata. Every method is one atomic, durable step: when it returns `Ok`, what it wrote survives
/// a crash. Run `token_store::testing` against an implementation to check it.
#[async_trait]
pub trait Backend: Send + Sync {
    // --- tokens ---

    /// Inserts a new token record, atomically checking the one-active-per-purpose rule: for a root
    /// token (no parent), the ids of the principal's active tokens for the purpose at
    /// `record.created_at` must be exactly `expected_active` (in any order), else
    /// [`crate::StoreError::TokenRejected`]. A reused id is also rejected. The record is stored
    /// with its MAC under `key` ([`RecordKey::seal_token`]).
    async fn insert_token(
        &self,
        record: &TokenRecord,
        key: &RecordKey,
        expected_active: &[TokenId],
    ) -> Result<()>;

    /// A token by id.
    async fn token(&self, id: TokenId) -> Result<Option<TokenRow>>;

    /// The tokens of these ids that exist, in no particular order (a bounded cache re-reads what
    /// it holds with it). The default reads them one by one with [`Backend::token`]; a backend
    /// that can read many in one query overrides it.
    async fn tokens_by_id(&self, ids: &[TokenId]) -> Result<Vec<TokenRow>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(t) = self.token(*id).await? {
                found.push(t);
            }
        }
        Ok(found)
    }

    /// The ids of the tokens answering a query (a follower that reconnects compares them with
    /// what it holds, instead of reloading every record). The default reads the records with
    /// [`Backend::tokens`]; a backend that can list ids alone overrides it.
    async fn token_ids(&self, query: &TokenQuery) -> Result<Vec<TokenId>> {
        Ok(self.tokens(query).await?.into_iter().map(|t| t.record.id).collect())
    }

    /// Tokens answering a query, in no particular order.
    async fn tokens(&self, query: &TokenQuery) -> Result<Vec<TokenRow>>;

    /// How many tokens answer a query, if the backend can count them cheaply (a hint to size a
    /// cache load; `None` by default).
    async fn count_tokens(&self, query: &TokenQuery) -> Result<Option<usize>> {
        let _ = query;
        Ok(None)
    }

    /// Tokens answering a query, handed to `visit` in chunks as they are read (a cache load of a
    /// million records need not hold them all at once). The default reads them with
    /// [`Backend::tokens`] and makes one call; a backend that can stream overrides it.
    async fn visit_tokens(
        &self,
        query: &TokenQuery,
        visit: &mut (dyn FnMut(Vec<TokenRow>) -> Result<()> + Send),
    ) -> Result<()> {
        visit(self.tokens(query).await?)
    }

    /// Revokes `id` and all its descendants at `at`, in one durable step. Returns the ids newly
    /// revoked (already-revoked ones keep their time). Unknown id: [`crate::StoreError::NotFound`].
    /// Each revoked record is stored with its new MAC under `key`, in the same step.
    async fn revoke_tree(&self, id: TokenId, at: DateTime<Utc>, key: &RecordKey) -> Result<Vec<TokenId>>;

    /// An explicit migration's step ([`crate::SecretStore::migrate`], never an open): rewrites
    /// each record stored in the older JSON form whose tag holds ([`RecordKey::may_upgrade`]) in
    /// the current encoding ([`encode_token_record`]) with its tag under `key`, in one durable
    /// step; returns how many. Anything else (no tag, a failing tag) is left as it is, refused. A
    /// backend that only ever stored the current form returns 0.
    async fn upgrade_token_records(&self, key: &RecordKey) -> Result<usize>;

    /// Records uses in bulk: for each token, last use becomes the later of the stored and given
    /// times, and `uses` grows by the given count. Called coarsely, never per verification.
    async fn record_uses(&self, uses: &[(TokenId, DateTime<Utc>, u64)]) -> Result<()>;

    // --- secrets ---

    /// Adds a version. It must be `latest + 1` (1 for a new secret), else
    /// [`crate::StoreError::Conflict`].
    async fn insert_version(&self, version: &SecretVersion) -> Result<()>;

    /// A version of a secret.
    async fn version(&self, name: &SecretName, version: u64) -> Result<Option<SecretVersion>>;

    /// The highest version of a secret, if any.
    async fn latest_version(&self, name: &SecretName) -> Result<Option<u64>>;

    /// Every secret's name and highest version, in name order (reserved names included).
    async fn secret_names(&self) -> Result<Vec<(SecretName, u64)>>;

    /// Where the secret's labels point.
    async fn labels(&self, name: &SecretName) -> Result<Labels>;

    /// Applies all label changes or none: each label must point where `expect` says, and every
    /// `set` version must exist; else [`crate::StoreError::Conflict`].
    async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> Result<()>;

    /// Up to `limit` versions whose data key is not wrapped under `kek_id` (for KEK rotation).
    async fn versions_not_under(&self, kek_id: &str, limit: usize) -> Result<Vec<(SecretName, u64)>>;

    /// Replaces a version's wrapped data key if it is still under `expect_kek`; else
    /// [`crate::StoreError::Conflict`]. The ciphertext is untouched.
    async fn rewrap_version(
        &self,
        name: &SecretName,
        version: u64,
        expect_kek: &str,
        new_kek: &str,
        wrapped_key: &crate::backend::Sealed,
    ) -> Result<()>;

    // --- metadata ---

    /// A metadata value.
    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>>;

    /// Sets a metadata value if it is currently `expect`; else [`crate::StoreError::Conflict`].
    async fn set_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> Result<()>;

    /// Listens, on a connection of its own, for the changes every instance sharing this backend
    /// announces (revocations and issues, see [`RevocationFeed`]). The default,
    /// [`StoreError::NoRevocationFeed`], is for a backend that cannot announce changes: its
    /// instances learn of each other's through the catch-up alone.
    async fn listen_revocations(&self) -> Result<Box<dyn RevocationFeed>> {
        Err(StoreError::NoRevocationFeed)
    }
}
