//! Keeping the cache in step with the backend: full resyncs, catch-ups after a lost connection,
//! and following the changes other instances announce.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use token_core::TokenId;
use token_core::lookup::TokenView;

use super::{LOG_TARGET, TokenService};
use crate::error::{Result, StoreError};
use crate::follow::{Change, Followed, RevocationFeed};
use crate::model::{TokenQuery, TokenRow};
use crate::table::ViewTable;

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
                target: LOG_TARGET,
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
                target: LOG_TARGET,
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
                tracing::error!(target: LOG_TARGET, token = %t.record.id, "a revoked token record fails its integrity check; denied");
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
                    tracing::error!(target: LOG_TARGET, token = %t.record.id, "a token record fails its integrity check and was refused");
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
                        tracing::debug!(target: LOG_TARGET, token = %id, "revocation announced; denied");
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
                                target: LOG_TARGET,
                                token = %id,
                                "a token announced as issued fails its integrity check and was refused (edited outside Tokenward?)"
                            );
                        }
                        Ok(Some(t)) if t.record.revoked_at.is_none() && t.record.expires_at > Utc::now() => {
                            match cache.insert(&t.record, t.uses, t.last_used) {
                                Ok(_) => done.loaded += 1,
                                Err(e) => {
                                    tracing::warn!(target: LOG_TARGET, token = %id, error = %e, "a token announced as issued was not cached; the next catch-up retries")
                                }
                            }
                        }
                        Ok(_) => {}
                        // A failed read leaves it to the next catch-up.
                        Err(e) => {
                            done.unreadable += 1;
                            tracing::warn!(target: LOG_TARGET, token = %id, error = %e, "reading a token announced as issued failed; the next catch-up loads it");
                        }
                    },
                }
            }
            done
        })
    }
}
