//! Verification: parse → look up by id → constant-time digest check → lifecycle → scope → limits.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::clock::{Clock, SystemClock};
use crate::decision::{Decision, DenyReason, Grant};
use crate::format::{TokenFormat, TokenId};
use crate::record::{TokenEntry, TokenStatus};
use crate::scope::Request;
use crate::secret::DigestKey;

/// Where a verifier finds token records: the small trait a store implements.
///
/// Implementations must be cheap and must not block on I/O: the verifier calls `lookup` once per
/// request. A store puts a cache in front of its database. Use limits are enforced on the entry's
/// in-memory [`crate::UseCounter`], so `max_uses` is counted per process.
pub trait TokenLookup: Send + Sync {
    /// The entry with this id, if any.
    fn lookup(&self, id: TokenId) -> Option<Arc<TokenEntry>>;
}

impl<T: TokenLookup + ?Sized> TokenLookup for Arc<T> {
    #[inline]
    fn lookup(&self, id: TokenId) -> Option<Arc<TokenEntry>> {
        (**self).lookup(id)
    }
}

impl<T: TokenLookup + ?Sized> TokenLookup for &T {
    #[inline]
    fn lookup(&self, id: TokenId) -> Option<Arc<TokenEntry>> {
        (**self).lookup(id)
    }
}

/// The digest keys a deployment holds: the current one digests new tokens; older ones still verify
/// the tokens they digested until those expire.
#[derive(Clone, Debug)]
pub struct DigestKeyring {
    current: DigestKey,
    older: Vec<DigestKey>,
}

impl DigestKeyring {
    /// A keyring holding only `current`.
    pub fn new(current: DigestKey) -> Self {
        Self { current, older: Vec::new() }
    }

    /// Keeps `key` for verifying what it digested.
    pub fn with_older(mut self, key: DigestKey) -> Self {
        self.older.push(key);
        self
    }

    /// The key that digests new tokens.
    pub fn current(&self) -> &DigestKey {
        &self.current
    }

    /// A key by id.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&DigestKey> {
        if self.current.id() == id {
            return Some(&self.current);
        }
        self.older.iter().find(|k| k.id() == id)
    }
}

/// Verifies presented tokens against stored digests.
pub struct Verifier<L> {
    format: TokenFormat,
    keys: DigestKeyring,
    lookup: L,
    clock: Arc<dyn Clock>,
}

impl<L: TokenLookup> Verifier<L> {
    /// A verifier of `format` tokens using `keys`, finding records through `lookup`, on the system
    /// clock.
    pub fn new(format: TokenFormat, keys: DigestKeyring, lookup: L) -> Self {
        Self { format, keys, lookup, clock: Arc::new(SystemClock) }
    }

    /// Uses `clock` for [`Verifier::verify`].
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The lookup it uses.
    pub fn lookup(&self) -> &L {
        &self.lookup
    }

    /// Verifies `token` for `request` now.
    #[inline]
    pub fn verify(&self, token: &str, request: &Request) -> Decision {
        self.verify_at(token, request, self.clock.now())
    }

    /// Verifies `token` for `request` at `now`.
    ///
    /// The secret is checked (in constant time) before anything about the token's state is told,
    /// so only its holder learns that it is revoked, expired or out of scope.
    pub fn verify_at(&self, token: &str, request: &Request, now: DateTime<Utc>) -> Decision {
        match self.authenticate_at(token, now) {
            Err(reason) => Decision::Denied(reason),
            Ok(entry) => {
                let record = entry.record();
                if !record.scopes.allows(request) {
                    return Decision::Denied(DenyReason::OutOfScope);
                }
                if let Err(reason) = entry.usage().try_use(&record.limits, record.not_before, now) {
                    return Decision::Denied(reason);
                }
                Decision::Allowed(Grant::new(entry))
            }
        }
    }

    /// Checks that `token` is genuine and active at `now`, whatever it may do; returns its entry.
    /// Does not count as a use.
    pub fn authenticate_at(&self, token: &str, now: DateTime<Utc>) -> Result<Arc<TokenEntry>, DenyReason> {
        let parsed = self.format.parse(token).map_err(DenyReason::Malformed)?;
        let entry = self.lookup.lookup(parsed.id()).ok_or(DenyReason::Unknown)?;
        let record = entry.record();
        let key_id = record.digest.key_id();
        let key = self.keys.get(key_id).ok_or(DenyReason::UnknownDigestKey { key_id })?;
        if !bool::from(key.digest(parsed.secret_chars()).ct_eq(&record.digest)) {
            return Err(DenyReason::BadSecret);
        }
        match record.status_at(now) {
            TokenStatus::Active => Ok(entry),
            TokenStatus::Revoked => Err(DenyReason::Revoked { at: record.revoked_at.unwrap_or(now) }),
            TokenStatus::NotYetValid => Err(DenyReason::NotYetValid { from: record.not_before }),
            TokenStatus::Expired => Err(DenyReason::Expired { at: record.expires_at }),
        }
    }
}

impl<L> fmt::Debug for Verifier<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("format", &self.format)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}
