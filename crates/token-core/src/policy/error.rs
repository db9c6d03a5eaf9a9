//! Why a policy cannot be built, and why it refuses an issue.

use chrono::{DateTime, Utc};

use super::{MAX_NOT_BEFORE_AHEAD, MAX_TTL_CEILING};
use crate::error::ScopeError;
use crate::format::TokenId;
use crate::role::{NameError, Purpose, RoleName};
use crate::scope::Scope;

/// A policy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A TTL above the ceiling no policy can raise ([`MAX_TTL_CEILING`], 90 days).
    #[error("{what} is above Tokenward's ceiling of {} days, which no policy can raise", MAX_TTL_CEILING.num_days())]
    AboveCeiling {
        /// Which TTL.
        what: String,
    },
    /// A malformed name.
    #[error(transparent)]
    Name(#[from] NameError),
    /// A malformed scope.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// Two roles share a name.
    #[error("role `{0}` is defined twice")]
    DuplicateRole(RoleName),
    /// A role grants a bare wildcard while the policy forbids them.
    #[error("role `{role}` grants `{scope}`, a bare wildcard, and the policy forbids them")]
    RoleGrantsBareWildcard {
        /// The role.
        role: RoleName,
        /// The grant.
        scope: Scope,
    },
    /// A TTL that is zero or negative.
    #[error("{what} must be positive")]
    NotPositive {
        /// Which setting.
        what: &'static str,
    },
}

/// A rule of the policy refused an issue. Each variant names the rule and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Mandatory expiry: the TTL must be positive.
    #[error("mandatory expiry: the requested TTL must be positive")]
    TtlNotPositive,
    /// The token would start too far ahead (or its times do not fit the calendar).
    #[error("not before: a token starts at most {} days ahead", MAX_NOT_BEFORE_AHEAD.num_days())]
    StartsTooLate,
    /// The TTL is above what the justifying roles (or the policy) allow.
    #[error(
        "max TTL: requested {} but at most {} is allowed ({limited_by})",
        crate::duration::format(chrono::TimeDelta::seconds(*requested_secs)),
        crate::duration::format(chrono::TimeDelta::seconds(*max_secs))
    )]
    TtlTooLong {
        /// Requested, in seconds.
        requested_secs: i64,
        /// Allowed, in seconds.
        max_secs: i64,
        /// What sets the cap: a role, or the policy.
        limited_by: String,
    },
    /// Least privilege: a token must name at least one scope.
    #[error("least privilege: a token needs at least one scope")]
    NoScopes,
    /// A scope is a bare wildcard.
    #[error("no bare wildcards: `{scope}` puts a wildcard alone in a position, and this policy forbids that")]
    BareWildcard {
        /// The scope.
        scope: Scope,
    },
    /// No role of the principal grants a scope.
    #[error("RBAC: no role of principal `{principal}` grants `{scope}`")]
    ScopeNotGranted {
        /// The principal.
        principal: String,
        /// The scope.
        scope: Scope,
    },
    /// The principal holds a role the policy does not define.
    #[error("RBAC: principal holds role `{0}`, which this policy does not define")]
    UnknownRole(RoleName),
    /// One active token per (principal, purpose), except while rotating the one that is.
    #[error(
        "one active token per purpose: `{purpose}` already has active token {existing}; issue its replacement with `replacing` during a rotation"
    )]
    ActiveTokenExists {
        /// The purpose.
        purpose: Purpose,
        /// The active token.
        existing: TokenId,
    },
    /// A use limit of zero, or an idle timeout that is not positive or exceeds the policy's.
    #[error("use limits: {0}")]
    BadLimit(&'static str),
    /// Attenuation: a child may only narrow its parent's scopes.
    #[error("attenuation: child scope `{scope}` is not within the parent's scopes")]
    ChildScopeNotSubset {
        /// The scope.
        scope: Scope,
    },
    /// Attenuation: a child may not outlive its parent.
    #[error("attenuation: a child may not expire after its parent ({parent_expires})")]
    ChildOutlivesParent {
        /// The parent's expiry.
        parent_expires: DateTime<Utc>,
    },
    /// The parent is not active, or the presented parent token is not it.
    #[error("attenuation: the parent token is not active or was not proven ({0})")]
    ParentNotUsable(String),
}
