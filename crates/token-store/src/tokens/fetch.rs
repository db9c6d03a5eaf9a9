//! A bounded cache's misses: read from the backend by id when presented, one read per id however
//! many ask, within the lookup budget.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use token_core::TokenId;

use super::{LOG_TARGET, TokenService};
use crate::error::{Result, StoreError};

impl TokenService {
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
                tracing::error!(target: LOG_TARGET, token = %id, "a token record fails its integrity check and was refused");
                self.cache.note_unknown(id);
            }
            // Unknown, or expired (denied as unknown, as a full cache that evicted it would).
            _ => self.cache.note_unknown(id),
        }
        Ok(())
    }
}
