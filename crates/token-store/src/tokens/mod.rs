//! `TokenService`: issuing, revoking and verifying tokens kept in a [`Backend`], through a verifier cache.
//!
//! This module holds the service, how it opens and what it hands out (verifiers, the cache); `sync`
//! keeps the cache in step with the backend (resyncs, catch-ups, following other instances),
//! `fetch` reads a bounded cache's misses, `records` reads stored records back, checked, and
//! `writes` issues, revokes and persists usage.

mod fetch;
mod records;
mod sync;
mod writes;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use token_audit::{AuditedVerifier, Auditor};
use token_core::{Issuer, Policy, TokenFormat, TokenId, Verifier, digest::DigestKey, digest::DigestKeyring};

pub use self::records::ListedToken;
pub use self::sync::{CatchUp, LoadReport};
use crate::backend::Backend;
use crate::cache::{BoundedCache, VerifierCache};
use crate::error::{Result, StoreError};
use crate::integrity::RecordKey;
use crate::store::SecretStore;

/// The target of this module's log lines, whichever file writes them: what an operator filters
/// on (`TOKENWARD_LOG=token_store::tokens=debug`) stays put when the code moves.
const LOG_TARGET: &str = "token_store::tokens";

/// TokenService in a backend: issue (durably, under the one-active rule), revoke trees (durably, then
/// out of the cache), and verify through the in-memory [`VerifierCache`].
pub struct TokenService {
    backend: Arc<dyn Backend>,
    issuer: Issuer,
    cache: Arc<VerifierCache>,
    audit: Option<Auditor>,
    record_key: RecordKey,
    opened: LoadReport,
    /// Records refused for failing their integrity check, every time one was met.
    refused_seen: Arc<AtomicU64>,
    /// Bounded mode: misses being read, one read per id however many ask.
    inflight: Arc<Mutex<HashMap<TokenId, Arc<tokio::sync::OnceCell<()>>>>>,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService")
            .field("issuer", &self.issuer)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

async fn digest_keys(secrets: &SecretStore) -> Result<DigestKeyring> {
    let (version, key) = crate::store::required_key(secrets, crate::store::DIGEST_KEY_SECRET).await?;
    let id = u32::try_from(version).map_err(|_| StoreError::Corrupted {
        id: Some(crate::store::DIGEST_KEY_SECRET.into()),
        what: "digest key",
        detail: "version out of range".into(),
    })?;
    Ok(DigestKeyring::new(DigestKey::from_bytes(id, &key)))
}

impl TokenService {
    /// Opens the token service on `backend`: the digest key and the record key come from `secrets`
    /// (created on first use, sealed like any secret), and the cache is loaded with every valid
    /// token whose record passes its integrity check. Records that fail it are refused, not
    /// loaded (their tokens are denied): [`TokenService::opened`] says which.
    pub async fn open(
        backend: Arc<dyn Backend>,
        secrets: &SecretStore,
        format: TokenFormat,
        policy: Policy,
        cache_capacity: usize,
    ) -> Result<Self> {
        Self::open_with_cache(backend, secrets, format, policy, VerifierCache::new(cache_capacity)?).await
    }

    /// Opens the token service with a bounded cache ([`BoundedCache`]): nothing is loaded up
    /// front; the tokens presented are read from the backend by id as they miss
    /// ([`TokenService::fetch_missing`]) and the least recently used are evicted past the
    /// capacity. For more tokens than an instance can hold. Revocation guarantees: see
    /// [`VerifierCache`].
    pub async fn open_bounded(
        backend: Arc<dyn Backend>,
        secrets: &SecretStore,
        format: TokenFormat,
        policy: Policy,
        config: BoundedCache,
    ) -> Result<Self> {
        Self::open_with_cache(backend, secrets, format, policy, VerifierCache::bounded(config)?).await
    }

    async fn open_with_cache(
        backend: Arc<dyn Backend>,
        secrets: &SecretStore,
        format: TokenFormat,
        policy: Policy,
        cache: VerifierCache,
    ) -> Result<Self> {
        let keys = digest_keys(secrets).await?;
        let record_key = secrets.record_key()?.clone();
        let cache = Arc::new(cache);
        let mut tokens = Self {
            backend,
            issuer: Issuer::new(format, keys, policy),
            cache,
            audit: None,
            record_key,
            opened: LoadReport::default(),
            refused_seen: Arc::default(),
            inflight: Arc::default(),
        };
        tokens.opened = tokens.resync_at(Utc::now()).await?;
        Ok(tokens)
    }

    /// How many times a record was refused for failing its integrity check since this service
    /// opened — at the opening load, resyncs, catch-ups, reads by id and announced issues (a
    /// record refused by every resync counts each time). A count that grows means someone edits
    /// the store outside Tokenward: each refusal is also an error log line, and a caller can
    /// raise an alert when it changes.
    pub fn refused_records(&self) -> u64 {
        self.refused_seen.load(Ordering::Relaxed)
    }

    /// What opening loaded and refused.
    pub fn opened(&self) -> &LoadReport {
        &self.opened
    }
    /// Records every issue and revocation through `auditor` (durably, before they are
    /// acknowledged), and lets [`TokenService::audited_verifier`] record verifications. In fail-closed
    /// mode an issue whose entry cannot be written is withdrawn and refused.
    pub fn with_audit(mut self, auditor: Auditor) -> Self {
        self.audit = Some(auditor);
        self
    }

    /// A verifier that records every decision through this service's auditor (`None` without one).
    pub fn audited_verifier(&self) -> Option<AuditedVerifier<Arc<VerifierCache>>> {
        self.audit.as_ref().map(|a| AuditedVerifier::new(self.verifier(), a.clone()))
    }
    /// A verifier reading this service's cache (on the system clock; see `Verifier::with_clock`).
    pub fn verifier(&self) -> Verifier<Arc<VerifierCache>> {
        Verifier::new(self.issuer.format().clone(), self.issuer.keys().clone(), Arc::clone(&self.cache))
    }

    /// The cache.
    pub fn cache(&self) -> &Arc<VerifierCache> {
        &self.cache
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The issuer (format, keys, policy).
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }
}
