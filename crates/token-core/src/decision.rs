//! The outcome of a verification.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::binding::Thumbprint;
use crate::error::TokenFormatError;
use crate::format::TokenId;
use crate::role::PrincipalId;
use crate::scope::ScopeSet;

/// Why a presented token was refused.
///
/// Reasons after [`DenyReason::BadSecret`] are only ever given to a presenter who holds the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// Not a well-formed token of this issuer.
    Malformed(TokenFormatError),
    /// Well formed, but no token has this id (or its record was refused as edited).
    UnknownToken,
    /// The id exists but the secret does not match.
    BadSecret,
    /// The digest was made under a key the verifier does not hold.
    UnknownDigestKey {
        /// The key id in the record.
        key_id: u32,
    },
    /// Revoked (directly, or one of its ancestors: the time is the ancestor's revocation).
    Revoked {
        /// When.
        at: DateTime<Utc>,
    },
    /// Not valid yet.
    NotYetValid {
        /// From when it is.
        from: DateTime<Utc>,
    },
    /// Past its expiry.
    Expired {
        /// When it expired.
        at: DateTime<Utc>,
    },
    /// Valid, but its scopes do not allow the request.
    OutOfScope,
    /// Its use limit is spent.
    UsesExhausted {
        /// The limit.
        max_uses: u64,
    },
    /// Unused for longer than its idle timeout.
    IdleTimeout {
        /// Last used (or issued, if never used).
        since: DateTime<Utc>,
    },
    /// The verification's audit entry could not be recorded, and auditing fails closed.
    AuditUnavailable,
    /// The token is not in a bounded cache and its record could not be read: the backend is
    /// unreachable or slow, or this instance's budget of backend lookups is spent (a flood of
    /// unknown tokens). Not a verdict on the token: the same token may be allowed a moment later.
    LookupUnavailable,
    /// A token minted from another whose ancestor is not there to vouch for it (a record
    /// deleted, or more than [`crate::limits::MAX_ANCESTRY`] generations): refused, since the
    /// absence of a record is never permission.
    AncestorMissing,
    /// Bound to a key, and presented without a proof of possession (as a bearer token): a leaked
    /// copy of a bound token is refused so.
    ProofRequired,
    /// Presented with a proof of possession of another key than the one it is bound to, or with a
    /// proof while it is bound to no key.
    WrongProofKey,
}

impl DenyReason {
    /// A stable, short name for the reason (`"expired"`, `"out_of_scope"`, ...), for audit
    /// entries and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownToken => "unknown",
            Self::BadSecret => "bad_secret",
            Self::UnknownDigestKey { .. } => "unknown_digest_key",
            Self::Revoked { .. } => "revoked",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Expired { .. } => "expired",
            Self::OutOfScope => "out_of_scope",
            Self::UsesExhausted { .. } => "uses_exhausted",
            Self::IdleTimeout { .. } => "idle_timeout",
            Self::AuditUnavailable => "audit_unavailable",
            Self::LookupUnavailable => "lookup_unavailable",
            Self::AncestorMissing => "ancestor_missing",
            Self::ProofRequired => "proof_required",
            Self::WrongProofKey => "wrong_proof_key",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(e) => write!(f, "malformed token: {e}"),
            Self::UnknownToken => f.write_str("unknown token"),
            Self::BadSecret => f.write_str("token secret does not match"),
            Self::UnknownDigestKey { key_id } => {
                write!(f, "token digest key {key_id} is not held by this verifier")
            }
            Self::Revoked { at } => write!(f, "token was revoked at {}", at.to_rfc3339()),
            Self::NotYetValid { from } => write!(f, "token is not valid before {}", from.to_rfc3339()),
            Self::Expired { at } => write!(f, "token expired at {}", at.to_rfc3339()),
            Self::OutOfScope => f.write_str("token scopes do not allow this request"),
            Self::UsesExhausted { max_uses } => {
                write!(f, "token has been used its maximum of {max_uses} times")
            }
            Self::IdleTimeout { since } => write!(f, "token has been idle since {}", since.to_rfc3339()),
            Self::AuditUnavailable => f.write_str("the audit log cannot record this verification"),
            Self::LookupUnavailable => f.write_str("the token's record cannot be read just now"),
            Self::AncestorMissing => f.write_str("a token it was minted from is missing"),
            Self::ProofRequired => f.write_str("the token is bound to a key and needs a proof of possession"),
            Self::WrongProofKey => f.write_str("the proof is not made with the key the token is bound to"),
        }
    }
}

/// What an allowed verification grants: the token, its holder and the scopes it carries. Cheap to
/// clone (reference counts).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    id: TokenId,
    bearer: Arc<Bearer>,
}

/// A token's holder and scopes, one allocation per token view: a grant takes one reference
/// count, never one shared by every token of a principal that all cores would contend for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Bearer {
    pub(crate) principal: PrincipalId,
    pub(crate) scopes: ScopeSet,
    pub(crate) bound_to: Option<Thumbprint>,
}

impl Grant {
    pub(crate) fn new(id: TokenId, bearer: Arc<Bearer>) -> Self {
        Self { id, bearer }
    }

    /// The scopes the token carries (all of them, not only the one the request needed).
    pub fn scopes(&self) -> &ScopeSet {
        &self.bearer.scopes
    }

    /// The token's id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// Its holder.
    pub fn principal(&self) -> &PrincipalId {
        &self.bearer.principal
    }

    /// The key it is bound to (and whose proof it was presented with), if it is bound.
    pub fn bound_to(&self) -> Option<&Thumbprint> {
        self.bearer.bound_to.as_ref()
    }
}

/// A verification's outcome. Check it: it is `#[must_use]`.
#[derive(Clone, Debug)]
#[must_use = "a verification decision must be checked"]
pub enum Decision {
    /// The request may proceed on behalf of this token's principal.
    Allowed(Grant),
    /// Refused, with the reason (for logs and audit; tell the caller less).
    Denied(DenyReason),
}

/// Two decisions are equal when both allow the same token or both deny for the same reason.
impl PartialEq for Decision {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Allowed(a), Self::Allowed(b)) => a.id() == b.id(),
            (Self::Denied(a), Self::Denied(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Decision {}

impl Decision {
    /// Whether the request may proceed.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed(_))
    }

    /// The grant, if allowed.
    #[must_use]
    pub fn grant(&self) -> Option<&Grant> {
        match self {
            Self::Allowed(g) => Some(g),
            Self::Denied(_) => None,
        }
    }

    /// The reason, if denied.
    #[must_use]
    pub fn reason(&self) -> Option<&DenyReason> {
        match self {
            Self::Denied(r) => Some(r),
            Self::Allowed(_) => None,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allowed(g) => write!(f, "allowed: token {} of {}", g.id(), g.principal()),
            Self::Denied(r) => write!(f, "denied: {r}"),
        }
    }
}
