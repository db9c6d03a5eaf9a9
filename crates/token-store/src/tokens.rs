//! `TokenService`: issuing, revoking and verifying tokens kept in a [`Backend`], through a verifier cache.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use token_core::{
    ChildRequest, IssueRequest, IssuedToken, Issuer, Policy, Principal, TokenFormat, TokenId, Verifier,
    digest::DigestKey, digest::DigestKeyring, lookup::TokenView,
};

use token_audit::{Action, Actor, AuditEvent, AuditedVerifier, Auditor};

use crate::backend::Backend;
use crate::cache::{BoundedCache, VerifierCache};
use crate::error::{Result, StoreError};
use crate::follow::{Change, Followed, RevocationFeed};
use crate::integrity::RecordKey;
use crate::model::{TokenQuery, TokenRow};
use crate::store::SecretStore;
use crate::table::ViewTable;

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

/// A stored token as listed ([`TokenService::tokens`]): its row, and why it is refused if it fails
/// its integrity check (its fields then are not to be believed).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ListedToken {
    /// The row as stored.
    pub row: TokenRow,
    /// Why the record is refused (edited outside Tokenward, or unreadable), if it is.
    pub tampered: Option<String>,
}

/// What a cache (re)load found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadReport {
    /// Valid records loaded.
    pub loaded: usize,
    /// Records refused: they fail their integrity check (edited outside Tokenward) — their tokens
    /// are denied as unknown.
    pub refused: Vec<TokenId>,
}

/// What a catch-up ([`TokenService::catch_up_at`]) applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CatchUp {
    /// Revocations applied to the cache.
    pub revocations: usize,
    /// Tokens loaded that the cache did not hold.
    pub loaded: usize,
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

    /// Reloads the cache from the backend: every record not expired at `now` that passes its
    /// integrity check (the backstop for missed revocation notices). Refused records are
    /// reported and logged, never loaded.
    ///
    /// A bounded cache instead re-reads the records of the tokens it holds (in batches), marks
    /// the revoked, and drops those expired, gone or refused.
    pub async fn resync_at(&self, now: DateTime<Utc>) -> Result<LoadReport> {
        if self.cache.bounded_config().is_some() {
            return self.refresh_held_at(now).await;
        }
        let mut report = LoadReport::default();
        // Built aside and swapped in whole; sized for what the backend counts (or, if it cannot,
        // for what the cache holds now), growing if there are more.
        let query = TokenQuery::Unexpired { at: now };
        let capacity = self.cache.capacity();
        let expected = self.backend.count_tokens(&query).await?.unwrap_or_else(|| self.cache.len());
        let mut table = ViewTable::with_capacity(expected.min(capacity).max(16))?;
        let key = &self.record_key;
        let mut visit = |chunk: Vec<TokenRow>| -> Result<()> {
            for t in chunk {
                // Scope sets and principals come from the backend already shared between the
                // records of one load (the decoder interns them), so the cache stays compact.
                if key.check_token(&t).is_err() {
                    report.refused.push(t.record.id);
                    continue;
                }
                if table.len() >= capacity {
                    return Err(StoreError::Invalid(format!("verifier cache is full ({capacity} tokens)")));
                }
                table.insert(t.record.id, TokenView::with_usage(&t.record, t.uses, t.last_used));
            }
            Ok(())
        };
        self.backend.visit_tokens(&query, &mut visit).await?;
        if !report.refused.is_empty() {
            self.refused_seen.fetch_add(report.refused.len() as u64, Ordering::Relaxed);
            tracing::error!(
                refused = report.refused.len(),
                first = %report.refused[0],
                "token records fail their integrity check and were refused (edited outside Tokenward?)"
            );
        }
        report.loaded = table.len();
        self.cache.swap_table(table);
        Ok(report)
    }

    async fn refresh_held_at(&self, now: DateTime<Utc>) -> Result<LoadReport> {
        let mut report = LoadReport::default();
        for chunk in self.cache.ids().chunks(4096) {
            let rows = self.backend.tokens_by_id(chunk).await?;
            let mut seen = std::collections::HashSet::with_capacity(rows.len());
            for t in rows {
                let id = t.record.id;
                seen.insert(id);
                if self.record_key.check_token(&t).is_err() {
                    report.refused.push(id);
                    self.cache.remove(id);
                } else if t.record.expires_at <= now {
                    self.cache.remove(id);
                } else if let Some(at) = t.record.revoked_at {
                    self.cache.revoke(&[id], at);
                    report.loaded += 1;
                } else {
                    report.loaded += 1;
                }
            }
            for id in chunk.iter().filter(|id| !seen.contains(id)) {
                self.cache.remove(*id);
            }
        }
        if !report.refused.is_empty() {
            self.refused_seen.fetch_add(report.refused.len() as u64, Ordering::Relaxed);
            tracing::error!(
                refused = report.refused.len(),
                first = %report.refused[0],
                "token records fail their integrity check and were refused (edited outside Tokenward?)"
            );
        }
        Ok(report)
    }

    /// Applies every revocation stored at or after `since` to the cache (one indexed query): what
    /// a follower that lost its connection at `since` missed, in milliseconds rather than a full
    /// resync's seconds. Returns how many it applied. Allow for clock skew between instances in
    /// `since` (revocation times are the revoker's). A revoked record whose integrity tag fails
    /// is denied all the same (a full resync would refuse it: it can only deny), and logged; it
    /// is not counted.
    pub async fn catch_up_revocations(&self, since: DateTime<Utc>) -> Result<usize> {
        let rows = self.backend.tokens(&TokenQuery::RevokedSince { since }).await?;
        let mut applied = 0;
        for t in rows {
            let Some(mut at) = t.record.revoked_at else { continue };
            if self.record_key.check_token(&t).is_ok() {
                applied += 1;
            } else {
                self.refused_seen.fetch_add(1, Ordering::Relaxed);
                tracing::error!(token = %t.record.id, "a revoked token record fails its integrity check; denied");
                at = at.min(Utc::now());
            }
            self.cache.revoke(&[t.record.id], at);
        }
        Ok(applied)
    }

    /// Loads the tokens the backend holds unexpired at `now` and a full cache does not (issued
    /// while this instance was not listening), without reloading the rest: one scan of ids, then a
    /// read by id of the missing ones. What a follower does after reconnecting, beside
    /// [`TokenService::catch_up_revocations`] — milliseconds where a full resync of a million
    /// records takes seconds of CPU. A bounded cache reads misses when presented: nothing to do.
    /// Returns how many it loaded.
    pub async fn load_missing_at(&self, now: DateTime<Utc>) -> Result<usize> {
        if self.cache.bounded_config().is_some() {
            return Ok(0);
        }
        let ids = self.backend.token_ids(&TokenQuery::Unexpired { at: now }).await?;
        let missing: Vec<TokenId> = ids.into_iter().filter(|id| !self.cache.contains(*id)).collect();
        let mut loaded = 0;
        for chunk in missing.chunks(1000) {
            for t in self.backend.tokens_by_id(chunk).await? {
                if self.record_key.check_token(&t).is_err() {
                    self.refused_seen.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(token = %t.record.id, "a token record fails its integrity check and was refused");
                    continue;
                }
                self.cache.insert(&t.record, t.uses, t.last_used)?;
                loaded += 1;
            }
        }
        Ok(loaded)
    }

    /// Catches up with changes made since `since` without a full resync: the revocations stored
    /// since a minute before it (slack for the revokers' clocks;
    /// [`TokenService::catch_up_revocations`]) and, for a full cache, the tokens it does not hold
    /// ([`TokenService::load_missing_at`]). What a follower does after (re)connecting, and the
    /// periodic backstop between full resyncs.
    pub async fn catch_up_at(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<CatchUp> {
        let revocations = self.catch_up_revocations(since - chrono::TimeDelta::minutes(1)).await?;
        let loaded = self.load_missing_at(now).await?;
        Ok(CatchUp { revocations, loaded })
    }

    /// Bounded mode: makes sure the cache can answer for `token` — it is held, or read now from
    /// the backend (one indexed read by id, shared by everyone asking for the same id meanwhile),
    /// or known not to exist (remembered for the negative TTL). Then verify as usual. Full mode
    /// and malformed tokens: nothing to do. [`StoreError::LookupUnavailable`] when the read
    /// cannot be made: the budget is spent, or the backend fails or is too slow — deny the
    /// presentation as [`token_core::DenyReason::LookupUnavailable`].
    ///
    /// A child token's ancestors are made present the same way (the verifier denies a child
    /// whose ancestor it cannot see), at most [`token_core::limits::MAX_ANCESTRY`] of them.
    pub async fn fetch_missing(&self, token: &str) -> Result<()> {
        let Some(config) = self.cache.bounded_config() else { return Ok(()) };
        let Ok(parsed) = self.issuer.format().parse(token) else { return Ok(()) };
        let mut id = parsed.id();
        if !self.cache.presented(id) && !self.cache.known_unknown(id) {
            self.read_shared(id, config.lookup_timeout).await?;
        }
        for _ in 0..token_core::limits::MAX_ANCESTRY {
            let Some(parent) = self.cache.parent_of(id) else { break };
            if !self.cache.contains(parent) && !self.cache.remembers_unknown(parent) {
                self.read_shared(parent, config.lookup_timeout).await?;
            }
            id = parent;
        }
        Ok(())
    }

    /// Reads `id`'s record into the cache (or remembers it as unknown), one read shared by
    /// everyone asking for the same id meanwhile.
    async fn read_shared(&self, id: TokenId, timeout: std::time::Duration) -> Result<()> {
        let cell = {
            let mut inflight = self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(inflight.entry(id).or_default())
        };
        let failed: Mutex<Option<StoreError>> = Mutex::new(None);
        cell.get_or_init(|| async {
            if let Err(e) = self.read_missing(id, timeout).await {
                *failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
            }
            self.inflight.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
        })
        .await;
        let outcome = match failed.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(e) => Err(e),
            None => Ok(()),
        };
        match outcome {
            Err(e) => {
                self.cache.note_unavailable();
                Err(e)
            }
            // Answered if the read (this caller's or the one it waited on) cached the token or
            // its absence; otherwise the read it waited on failed.
            Ok(()) if self.cache.contains(id) || self.cache.remembers_unknown(id) => Ok(()),
            Ok(()) => {
                self.cache.note_unavailable();
                Err(StoreError::LookupUnavailable { reason: "the shared read failed", source: None })
            }
        }
    }

    /// Whether [`TokenService::fetch_missing`] would read `token`'s record (a bounded cache that
    /// neither holds it nor remembers it as unknown).
    pub fn needs_fetch(&self, token: &str) -> bool {
        let missing = |id| !self.cache.contains(id) && !self.cache.remembers_unknown(id);
        self.cache.bounded_config().is_some()
            && self.issuer.format().parse(token).is_ok_and(|p| {
                let mut id = p.id();
                if missing(id) {
                    return true;
                }
                for _ in 0..token_core::limits::MAX_ANCESTRY {
                    let Some(parent) = self.cache.parent_of(id) else { return false };
                    if missing(parent) {
                        return true;
                    }
                    id = parent;
                }
                false
            })
    }

    async fn read_missing(&self, id: TokenId, timeout: std::time::Duration) -> Result<()> {
        if !self.cache.take_lookup() {
            return Err(StoreError::LookupUnavailable {
                reason: "this instance's budget of backend lookups is spent",
                source: None,
            });
        }
        let read = tokio::time::timeout(timeout, self.backend.token(id)).await;
        let row = match read {
            Err(_) => {
                return Err(StoreError::LookupUnavailable {
                    reason: "the backend did not answer in time",
                    source: None,
                });
            }
            Ok(Err(e)) => {
                return Err(StoreError::LookupUnavailable {
                    reason: "the backend failed",
                    source: Some(Box::new(e)),
                });
            }
            Ok(Ok(row)) => row,
        };
        match row.map(|t| (self.record_key.check_token(&t).is_ok(), t)) {
            Some((true, t)) if t.record.expires_at > Utc::now() => {
                self.cache.insert_read(&t.record, t.uses, t.last_used);
            }
            Some((false, _)) => {
                self.refused_seen.fetch_add(1, Ordering::Relaxed);
                tracing::error!(token = %id, "a token record fails its integrity check and was refused");
                self.cache.note_unknown(id);
            }
            // Unknown, or expired (denied as unknown, as a full cache that evicted it would).
            _ => self.cache.note_unknown(id),
        }
        Ok(())
    }

    /// A token's stored record, checked: one that fails its integrity check is
    /// [`StoreError::Corrupted`] with its id.
    pub async fn token(&self, id: TokenId) -> Result<Option<TokenRow>> {
        match self.backend.token(id).await? {
            None => Ok(None),
            Some(t) => {
                self.record_key.check_token(&t)?;
                Ok(Some(t))
            }
        }
    }

    /// Stored records answering `query`, each with its integrity: one that fails its check is
    /// listed as tampered (and never used), the rest as they are — one bad record does not hide
    /// the others.
    pub async fn tokens(&self, query: &TokenQuery) -> Result<Vec<ListedToken>> {
        let found = self.backend.tokens(query).await?;
        Ok(found
            .into_iter()
            .map(|row| {
                let tampered = self.record_key.check_token(&row).err().map(|e| match e {
                    StoreError::Corrupted { detail, .. } => detail,
                    other => other.to_string(),
                });
                ListedToken { row, tampered }
            })
            .collect())
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

    /// Records an issue; in fail-closed mode, withdraws the token if that fails.
    async fn audit_issue(&self, record: &token_core::lookup::TokenRecord, now: DateTime<Utc>) -> Result<()> {
        let Some(audit) = &self.audit else { return Ok(()) };
        let mut event =
            AuditEvent::new(now, Actor::Principal(record.principal.as_str().to_owned()), Action::Issue)
                .token(record.id)
                .attr("purpose", record.purpose.as_str())
                .attr("scopes", record.scopes.to_string())
                .attr("expires", record.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        if let Some(p) = record.parent {
            event = event.attr("parent", p.to_string());
        }
        if let Some(r) = record.replaces {
            event = event.attr("replaces", r.to_string());
        }
        if let Err(e) = audit.emit_durable(event).await {
            tracing::error!(token = %record.id, error = %e, "the issue could not be audited; the token is withdrawn");
            // Nobody has seen the token's text; revoke its record so it can never be used and does
            // not hold the purpose's one active slot.
            let revoked = self.backend.revoke_tree(record.id, now, &self.record_key).await?;
            self.cache.revoke(&revoked, now);
            return Err(e.into());
        }
        Ok(())
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

    /// Issues a token at `now` and stores its record; returns the token text, once. The one-active
    /// rule is checked by the policy and again, atomically, by the backend; a lost race is retried.
    pub async fn issue_at(
        &self,
        principal: &Principal,
        request: &IssueRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        let query = TokenQuery::Active {
            principal: principal.id().clone(),
            purpose: request.purpose().clone(),
            at: now,
        };
        // Optimistic first try: assume the purpose's active set is what the request implies (none,
        // or the token it replaces); the backend's atomic check corrects us, and then we ask.
        let mut active: Vec<TokenId> = request.replaces().into_iter().collect();
        let mut attempt = 0;
        loop {
            let (token, record) = self.issuer.issue_at(principal, request, &active, now)?;
            match self.backend.insert_token(&record, &self.record_key, &active).await {
                Ok(()) => {
                    self.cache.insert(&record, 0, None)?;
                    self.audit_issue(&record, now).await?;
                    tracing::info!(token = %record.id, principal = %record.principal, purpose = %record.purpose, "issued");
                    return Ok(token);
                }
                Err(StoreError::TokenRejected(_)) if attempt < 3 => {
                    attempt += 1;
                    active = self.backend.tokens(&query).await?.into_iter().map(|t| t.record.id).collect();
                    tracing::debug!(attempt, "the purpose's active tokens changed meanwhile; issuing again");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Mints a child of the token `parent_token` (which proves possession) and stores it.
    pub async fn issue_child_at(
        &self,
        parent_token: &str,
        request: &ChildRequest,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken> {
        let parent_id = self.issuer.format().parse(parent_token).map_err(token_core::IssueError::from)?.id();
        let parent = self
            .token(parent_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("parent token {parent_id}")))?;
        let (token, record) = self.issuer.issue_child_at(parent_token, &parent.record, request, now)?;
        self.backend.insert_token(&record, &self.record_key, &[]).await?;
        self.cache.insert(&record, 0, None)?;
        self.audit_issue(&record, now).await?;
        Ok(token)
    }

    /// Revokes `id` and its descendants: durable in the backend first, then out of this process's
    /// cache, then (with an auditor) one durable `revoke` entry per token, then returns. Other
    /// processes follow through notices or their next resync. A revocation is never held back by
    /// the audit log: if its entries cannot be written (fail-closed), the tokens are revoked all
    /// the same and [`StoreError::Audit`] says the record is missing.
    pub async fn revoke_at(&self, id: TokenId, now: DateTime<Utc>) -> Result<Vec<TokenId>> {
        self.revoke_by_at(id, now, Actor::System, None).await
    }

    /// [`TokenService::revoke_at`] on behalf of `actor` (an operator, an automation), with the
    /// reason recorded in each `revoke` entry.
    pub async fn revoke_by_at(
        &self,
        id: TokenId,
        now: DateTime<Utc>,
        actor: Actor,
        reason: Option<&str>,
    ) -> Result<Vec<TokenId>> {
        let revoked = self.backend.revoke_tree(id, now, &self.record_key).await?;
        self.cache.revoke(&revoked, now);
        tracing::info!(token = %id, revoked = revoked.len(), "revoked");
        if let Some(audit) = &self.audit {
            let root = id.to_string();
            let mut last = None;
            for r in &revoked {
                let mut event =
                    AuditEvent::new(now, actor.clone(), Action::Revoke).token(*r).attr("root", root.clone());
                if let Some(reason) = reason {
                    event = event.attr("reason", reason);
                }
                last = audit.emit(event)?.or(last);
            }
            if let Some(t) = last
                && let Err(e) = audit.sink().committed(t).await
                && audit.mode() == token_audit::FailureMode::FailClosed
            {
                return Err(e.into());
            }
        }
        Ok(revoked)
    }

    /// Persists use counters gathered in the cache since `since` (call it every few seconds, not
    /// per verification). Returns how many tokens it updated.
    pub async fn flush_usage(&self, since: DateTime<Utc>) -> Result<usize> {
        let usage = self.cache.usage_since(since);
        self.backend.record_uses(&usage).await?;
        Ok(usage.len())
    }
}

impl TokenService {
    /// Applies changes announced by other instances (a [`RevocationFeed`], e.g. PostgreSQL's
    /// `NOTIFY`) to this cache, on a task of its own, until the feed ends: revocations are denied
    /// at once, and new tokens are loaded at once (so a replacement issued elsewhere works here
    /// without waiting for a resync). A new token whose record cannot be read is left to the next
    /// catch-up, one that fails its integrity check is refused; both are logged, and counted in
    /// what the task returns.
    pub fn follow_revocations(&self, mut feed: Box<dyn RevocationFeed>) -> tokio::task::JoinHandle<Followed> {
        let cache = Arc::clone(&self.cache);
        let backend = Arc::clone(&self.backend);
        let key = self.record_key.clone();
        let refused_seen = Arc::clone(&self.refused_seen);
        tokio::spawn(async move {
            let mut done = Followed::default();
            while let Some(change) = feed.recv_change().await {
                match change {
                    Change::Revoked(id, at) => {
                        // Deny from now on even if this host's clock is behind the revoker's.
                        cache.revoke(&[id], at.min(Utc::now()));
                        done.revocations += 1;
                        tracing::debug!(token = %id, "revocation announced; denied");
                    }
                    Change::Issued(id) if cache.bounded_config().is_some() => {
                        // Bounded: not hot yet; read when first presented (here it is no longer
                        // unknown).
                        cache.forget_unknown(id);
                    }
                    Change::Issued(id) => match backend.token(id).await {
                        Ok(Some(t)) if key.check_token(&t).is_err() => {
                            done.refused += 1;
                            refused_seen.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(
                                token = %id,
                                "a token announced as issued fails its integrity check and was refused (edited outside Tokenward?)"
                            );
                        }
                        Ok(Some(t)) if t.record.revoked_at.is_none() && t.record.expires_at > Utc::now() => {
                            match cache.insert(&t.record, t.uses, t.last_used) {
                                Ok(_) => done.loaded += 1,
                                Err(e) => {
                                    tracing::warn!(token = %id, error = %e, "a token announced as issued was not cached; the next catch-up retries")
                                }
                            }
                        }
                        Ok(_) => {}
                        // A failed read leaves it to the next catch-up.
                        Err(e) => {
                            done.unreadable += 1;
                            tracing::warn!(token = %id, error = %e, "reading a token announced as issued failed; the next catch-up loads it");
                        }
                    },
                }
            }
            done
        })
    }
}
