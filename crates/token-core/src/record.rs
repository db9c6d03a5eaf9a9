//! What the issuer stores about a token, and its lifecycle.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::binding::Thumbprint;
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
    /// The key it is bound to, if it is: then it is accepted only with a proof of possession of
    /// that key ([`crate::Verifier::verify_with_proof_at`]), never as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_to: Option<Thumbprint>,
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
