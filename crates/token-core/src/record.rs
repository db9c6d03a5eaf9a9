//! What the issuer stores about a token, and its lifecycle.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::format::TokenId;
use crate::role::{PrincipalId, Purpose};
use crate::scope::ScopeSet;
use crate::secret::TokenDigest;

/// Optional limits on how a token may be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UseLimits {
    /// At most this many successful verifications.
    pub max_uses: Option<u64>,
    /// Denied once unused for this long (measured from issue when never used).
    #[serde(with = "opt_delta_secs", default)]
    pub idle_timeout: Option<TimeDelta>,
}

/// The stored record of one token: everything but the token itself.
///
/// Holds only a keyed digest of the secret, so its `Debug` and serialisation are safe to log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The public id.
    pub id: TokenId,
    /// Who holds it.
    pub principal: PrincipalId,
    /// What it is for.
    pub purpose: Purpose,
    /// What it may do.
    pub scopes: ScopeSet,
    /// HMAC of the secret under the issuer's digest key.
    pub digest: TokenDigest,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// Not valid before.
    pub not_before: DateTime<Utc>,
    /// Not valid from this instant on. Every token has one.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The token it was minted from; revoking the parent revokes it.
    pub parent: Option<TokenId>,
    /// The token it replaces during a rotation overlap.
    pub replaces: Option<TokenId>,
    /// Use limits.
    pub limits: UseLimits,
}

/// Where a token is in its life at some instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TokenStatus {
    /// Not valid yet.
    NotYetValid,
    /// Valid.
    Active,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
}

impl TokenRecord {
    /// Its status at `now`. Revocation wins over everything; then validity window.
    #[must_use]
    pub fn status_at(&self, now: DateTime<Utc>) -> TokenStatus {
        if self.revoked_at.is_some_and(|r| r <= now) {
            TokenStatus::Revoked
        } else if now < self.not_before {
            TokenStatus::NotYetValid
        } else if now >= self.expires_at {
            TokenStatus::Expired
        } else {
            TokenStatus::Active
        }
    }
}

pub(crate) mod delta_secs {
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &TimeDelta, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
        let secs = i64::deserialize(d)?;
        TimeDelta::try_seconds(secs).ok_or_else(|| serde::de::Error::custom("duration out of range"))
    }
}

pub(crate) mod opt_delta_secs {
    use chrono::TimeDelta;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Option<TimeDelta>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.num_seconds()),
            None => s.serialize_none(),
        }
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimeDelta>, D::Error> {
        match Option::<i64>::deserialize(d)? {
            None => Ok(None),
            Some(secs) => TimeDelta::try_seconds(secs)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("duration out of range")),
        }
    }
}

const NEVER: i64 = i64::MIN;

/// In-memory use counters of one token: successful uses and the last use, updated atomically on
/// the verification path without any I/O. A store persists them coarsely in the background.
#[derive(Debug)]
pub struct UseCounter {
    uses: std::sync::atomic::AtomicU64,
    last_used_ms: std::sync::atomic::AtomicI64,
}

impl UseCounter {
    /// Counters starting from `uses` uses, last at `last_used`.
    pub fn new(uses: u64, last_used: Option<DateTime<Utc>>) -> Self {
        Self { uses: uses.into(), last_used_ms: last_used.map_or(NEVER, |t| t.timestamp_millis()).into() }
    }

    /// Successful uses so far: exact for a token with `max_uses`, otherwise a statistic that may
    /// miss uses made at the same instant on several threads.
    pub fn uses(&self) -> u64 {
        self.uses.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The last successful use.
    pub fn last_used(&self) -> Option<DateTime<Utc>> {
        match self.last_used_ms.load(std::sync::atomic::Ordering::Relaxed) {
            NEVER => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// Counts a use at `at` under `limits`: refuses (without counting) a token idle too long, and
    /// refuses once `max_uses` is spent.
    #[inline]
    pub(crate) fn try_use(
        &self,
        limits: &UseLimits,
        idle_since_default: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<(), crate::DenyReason> {
        use std::sync::atomic::Ordering;
        if let Some(idle) = limits.idle_timeout {
            let since = self.last_used().unwrap_or(idle_since_default);
            if at - since > idle {
                return Err(crate::DenyReason::IdleTimeout { since });
            }
        }
        if let Some(max_uses) = limits.max_uses {
            if self.uses.fetch_add(1, Ordering::AcqRel) >= max_uses {
                return Err(crate::DenyReason::UsesExhausted { max_uses });
            }
        } else {
            // Statistics only: a plain load and store, which may miss a concurrent use.
            self.uses.store(self.uses.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
        let at_ms = at.timestamp_millis();
        // Skip the write when the stored value is already as recent: readers are many.
        if self.last_used_ms.load(Ordering::Relaxed) < at_ms {
            self.last_used_ms.fetch_max(at_ms, Ordering::AcqRel);
        }
        Ok(())
    }
}

/// What a [`crate::TokenLookup`] hands the verifier: the record and its use counters.
#[derive(Debug)]
pub struct TokenEntry {
    record: TokenRecord,
    usage: UseCounter,
}

impl TokenEntry {
    /// An entry for a record that has not been used.
    pub fn new(record: TokenRecord) -> Self {
        Self { record, usage: UseCounter::new(0, None) }
    }

    /// An entry with counters carried over (say, from a store or a previous entry).
    pub fn with_usage(record: TokenRecord, usage: UseCounter) -> Self {
        Self { record, usage }
    }

    /// The record.
    pub fn record(&self) -> &TokenRecord {
        &self.record
    }

    /// The use counters.
    pub fn usage(&self) -> &UseCounter {
        &self.usage
    }
}
