//! The issuing policy: roles, TTL caps, wildcard rule, one active token per purpose, use limits.
//!
//! This module holds the policy and its builder and what it approves; `error` is why a policy
//! cannot be built or refuses an issue, `request` what is asked of it (an issue, a child).

mod error;
mod request;

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::format::TokenId;
use crate::record::{TokenRecord, TokenStatus, UseLimits};
use crate::role::{Principal, Role, RoleName};
use crate::scope::ScopeSet;

pub use self::error::{PolicyError, PolicyViolation};
pub use self::request::{ChildRequest, IssueRequest};

/// The longest any token may live, whatever a policy says: no policy, role or request can raise
/// it (a policy may only lower it).
pub const MAX_TTL_CEILING: TimeDelta = TimeDelta::days(90);
/// The furthest ahead a token may start (`not_before`): as far as it may live.
pub const MAX_NOT_BEFORE_AHEAD: TimeDelta = TimeDelta::days(90);

/// The issuing policy. Build it with [`Policy::builder`].
#[derive(Clone, Debug)]
pub struct Policy {
    roles: BTreeMap<RoleName, Role>,
    max_ttl: TimeDelta,
    allow_bare_wildcards: bool,
    one_active_per_purpose: bool,
    idle_timeout: Option<TimeDelta>,
}

/// Builds a [`Policy`]. Defaults: a 90-day hard cap, no bare wildcards, one active token per
/// purpose, no idle timeout.
#[derive(Debug)]
pub struct PolicyBuilder {
    roles: Vec<Role>,
    max_ttl: TimeDelta,
    allow_bare_wildcards: bool,
    one_active_per_purpose: bool,
    idle_timeout: Option<TimeDelta>,
}

impl Policy {
    /// A builder with the defaults.
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            roles: Vec::new(),
            max_ttl: TimeDelta::days(90),
            allow_bare_wildcards: false,
            one_active_per_purpose: true,
            idle_timeout: None,
        }
    }

    /// A role by name.
    pub fn role(&self, name: &RoleName) -> Option<&Role> {
        self.roles.get(name)
    }

    /// The hard cap on any token's lifetime.
    pub fn max_ttl(&self) -> TimeDelta {
        self.max_ttl
    }

    /// Checks a request to issue a token to `principal` at `now`, given the ids of its currently
    /// active tokens for the same purpose. Returns the validity window and limits to record.
    ///
    /// TTL cap: each scope must be covered by a role of the principal; the cap for that scope is the
    /// largest `max_ttl` among the roles covering it, and the token's cap is the smallest over its
    /// scopes, and never above the policy's hard cap.
    pub fn check_issue(
        &self,
        principal: &Principal,
        request: &IssueRequest,
        active_for_purpose: &[TokenId],
        now: DateTime<Utc>,
    ) -> Result<Approval, PolicyViolation> {
        self.check_shape(&request.scopes, request.ttl)?;
        let mut held = Vec::new();
        for name in principal.roles() {
            held.push(self.roles.get(name).ok_or_else(|| PolicyViolation::UnknownRole(name.clone()))?);
        }
        let (mut cap, mut limited_by) = (self.max_ttl, String::from("the policy's hard cap"));
        for scope in &request.scopes {
            let best =
                held.iter().filter(|r| r.covers(scope)).max_by_key(|r| r.max_ttl()).ok_or_else(|| {
                    PolicyViolation::ScopeNotGranted {
                        principal: principal.id().to_string(),
                        scope: scope.clone(),
                    }
                })?;
            if best.max_ttl() < cap {
                cap = best.max_ttl();
                limited_by = format!("role `{}`", best.name());
            }
        }
        if request.ttl > cap {
            return Err(PolicyViolation::TtlTooLong {
                requested_secs: request.ttl.num_seconds(),
                max_secs: cap.num_seconds(),
                limited_by,
            });
        }
        if self.one_active_per_purpose {
            match (active_for_purpose, request.replaces) {
                ([], _) => {}
                ([only], Some(old)) if *only == old => {}
                ([first, ..], _) => {
                    return Err(PolicyViolation::ActiveTokenExists {
                        purpose: request.purpose.clone(),
                        existing: *first,
                    });
                }
            }
        }
        let limits = self.limits(request.max_uses, request.idle_timeout)?;
        let not_before = request.not_before.unwrap_or(now).max(now);
        if now.checked_add_signed(MAX_NOT_BEFORE_AHEAD).is_none_or(|latest| not_before > latest) {
            return Err(PolicyViolation::StartsTooLate);
        }
        let expires_at = not_before.checked_add_signed(request.ttl).ok_or(PolicyViolation::StartsTooLate)?;
        Ok(Approval { not_before, expires_at, limits })
    }

    /// Checks minting a child of `parent` at `now` (the caller has proven possession of the parent).
    pub fn check_child(
        &self,
        parent: &TokenRecord,
        request: &ChildRequest,
        now: DateTime<Utc>,
    ) -> Result<Approval, PolicyViolation> {
        if parent.status_at(now) != TokenStatus::Active {
            return Err(PolicyViolation::ParentNotUsable(format!("{:?}", parent.status_at(now))));
        }
        self.check_shape(&request.scopes, request.ttl)?;
        if let Some(scope) = request.scopes.iter().find(|s| !parent.scopes.iter().any(|p| s.is_subset(p))) {
            return Err(PolicyViolation::ChildScopeNotSubset { scope: scope.clone() });
        }
        // `check_shape` bounds the TTL by the ceiling; a clock at the end of the calendar still
        // gets an error, never an overflow.
        let expires_at = now.checked_add_signed(request.ttl).ok_or(PolicyViolation::StartsTooLate)?;
        if expires_at > parent.expires_at {
            return Err(PolicyViolation::ChildOutlivesParent { parent_expires: parent.expires_at });
        }
        let mut limits = self.limits(request.max_uses, request.idle_timeout)?;
        // A child is never less limited than its parent.
        limits.max_uses = match (limits.max_uses, parent.limits.max_uses) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        limits.idle_timeout = match (limits.idle_timeout, parent.limits.idle_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(Approval { not_before: now, expires_at, limits })
    }

    fn check_shape(&self, scopes: &ScopeSet, ttl: TimeDelta) -> Result<(), PolicyViolation> {
        if ttl <= TimeDelta::zero() {
            return Err(PolicyViolation::TtlNotPositive);
        }
        if ttl > MAX_TTL_CEILING {
            return Err(PolicyViolation::TtlTooLong {
                requested_secs: ttl.num_seconds(),
                max_secs: MAX_TTL_CEILING.num_seconds(),
                limited_by: "Tokenward's ceiling, which no policy can raise".into(),
            });
        }
        if scopes.is_empty() {
            return Err(PolicyViolation::NoScopes);
        }
        if !self.allow_bare_wildcards {
            if let Some(scope) = scopes.iter().find(|s| s.has_bare_wildcard()) {
                return Err(PolicyViolation::BareWildcard { scope: scope.clone() });
            }
        }
        Ok(())
    }

    fn limits(&self, max_uses: Option<u64>, idle: Option<TimeDelta>) -> Result<UseLimits, PolicyViolation> {
        if max_uses == Some(0) {
            return Err(PolicyViolation::BadLimit("max uses must be at least 1"));
        }
        if idle.is_some_and(|d| d <= TimeDelta::zero()) {
            return Err(PolicyViolation::BadLimit("idle timeout must be positive"));
        }
        if let (Some(req), Some(pol)) = (idle, self.idle_timeout) {
            if req > pol {
                return Err(PolicyViolation::BadLimit("idle timeout exceeds the policy's"));
            }
        }
        Ok(UseLimits { max_uses, idle_timeout: idle.or(self.idle_timeout) })
    }
}

impl PolicyBuilder {
    /// Adds a role.
    pub fn role(mut self, role: Role) -> Self {
        self.roles.push(role);
        self
    }

    /// The hard cap on every token's lifetime, whatever its roles allow (default 90 days).
    pub fn max_ttl(mut self, ttl: TimeDelta) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// Whether scopes with a wildcard alone in a position (`*:…`, `…:**:…`, `…:*`) may be granted
    /// and issued (default: no).
    pub fn allow_bare_wildcards(mut self, allow: bool) -> Self {
        self.allow_bare_wildcards = allow;
        self
    }

    /// Whether a principal may hold only one active token per purpose, except during a rotation
    /// overlap (default: yes).
    pub fn one_active_per_purpose(mut self, on: bool) -> Self {
        self.one_active_per_purpose = on;
        self
    }

    /// An idle timeout applied to every token (a request may ask for a shorter one).
    pub fn idle_timeout(mut self, idle: TimeDelta) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// Checks and builds the policy.
    pub fn build(self) -> Result<Policy, PolicyError> {
        if self.max_ttl <= TimeDelta::zero() {
            return Err(PolicyError::NotPositive { what: "the policy's max TTL" });
        }
        if self.max_ttl > MAX_TTL_CEILING {
            return Err(PolicyError::AboveCeiling { what: "the policy's max TTL".into() });
        }
        if self.idle_timeout.is_some_and(|d| d <= TimeDelta::zero()) {
            return Err(PolicyError::NotPositive { what: "the idle timeout" });
        }
        let mut roles = BTreeMap::new();
        for role in self.roles {
            if role.max_ttl() <= TimeDelta::zero() {
                return Err(PolicyError::NotPositive { what: "a role's max TTL" });
            }
            if role.max_ttl() > MAX_TTL_CEILING {
                return Err(PolicyError::AboveCeiling { what: format!("role {}'s max TTL", role.name()) });
            }
            if !self.allow_bare_wildcards {
                if let Some(scope) = role.grants().iter().find(|s| s.has_bare_wildcard()) {
                    return Err(PolicyError::RoleGrantsBareWildcard {
                        role: role.name().clone(),
                        scope: scope.clone(),
                    });
                }
            }
            let name = role.name().clone();
            if roles.insert(name.clone(), role).is_some() {
                return Err(PolicyError::DuplicateRole(name));
            }
        }
        Ok(Policy {
            roles,
            max_ttl: self.max_ttl,
            allow_bare_wildcards: self.allow_bare_wildcards,
            one_active_per_purpose: self.one_active_per_purpose,
            idle_timeout: self.idle_timeout,
        })
    }
}

/// What the policy approved: the validity window and limits to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Approval {
    /// Valid from.
    pub not_before: DateTime<Utc>,
    /// Valid until (exclusive).
    pub expires_at: DateTime<Utc>,
    /// Use limits.
    pub limits: UseLimits,
}
