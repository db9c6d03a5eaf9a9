//! What is asked of the policy: an issue (expiry mandatory), or a child of a token.

use chrono::{DateTime, TimeDelta, Utc};

use super::PolicyError;
use crate::binding::Thumbprint;
use crate::format::TokenId;
use crate::role::Purpose;
use crate::scope::ScopeSet;

/// A request to issue a token. Expiry is mandatory: there is no constructor without a TTL.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    pub(super) purpose: Purpose,
    pub(super) scopes: ScopeSet,
    pub(super) ttl: TimeDelta,
    pub(super) not_before: Option<DateTime<Utc>>,
    pub(super) max_uses: Option<u64>,
    pub(super) idle_timeout: Option<TimeDelta>,
    pub(super) replaces: Option<TokenId>,
    pub(super) bound_to: Option<Thumbprint>,
}

impl IssueRequest {
    /// A token for `purpose`, with `scopes`, living `ttl`.
    pub fn new(purpose: Purpose, scopes: ScopeSet, ttl: TimeDelta) -> Self {
        Self {
            purpose,
            scopes,
            ttl,
            not_before: None,
            max_uses: None,
            idle_timeout: None,
            replaces: None,
            bound_to: None,
        }
    }

    /// Parses the purpose and scopes from text.
    pub fn parse(purpose: &str, scopes: &str, ttl: TimeDelta) -> Result<Self, PolicyError> {
        Ok(Self::new(Purpose::new(purpose)?, ScopeSet::parse(scopes)?, ttl))
    }

    /// Valid only from `at` (its expiry counts from then).
    pub fn not_before(mut self, at: DateTime<Utc>) -> Self {
        self.not_before = Some(at);
        self
    }

    /// Allows at most `n` successful verifications.
    pub fn max_uses(mut self, n: u64) -> Self {
        self.max_uses = Some(n);
        self
    }

    /// Denied once unused for `idle`.
    pub fn idle_timeout(mut self, idle: TimeDelta) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// Issued as the replacement of `old` during a rotation: both may be active until `old` is
    /// revoked or expires.
    pub fn replacing(mut self, old: TokenId) -> Self {
        self.replaces = Some(old);
        self
    }

    /// Bound to the key whose thumbprint is `key`: accepted only with a proof of possession of
    /// that key (a DPoP proof), so a leaked copy alone is useless.
    pub fn bound_to(mut self, key: Thumbprint) -> Self {
        self.bound_to = Some(key);
        self
    }

    /// The purpose.
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    /// The scopes.
    pub fn scopes(&self) -> &ScopeSet {
        &self.scopes
    }

    /// The token it replaces, if any.
    pub fn replaces(&self) -> Option<TokenId> {
        self.replaces
    }

    /// The key it is to be bound to, if any.
    pub fn binding(&self) -> Option<Thumbprint> {
        self.bound_to
    }
}

/// A request to mint a child of a token: narrower scopes, no later expiry.
#[derive(Clone, Debug)]
pub struct ChildRequest {
    pub(super) purpose: Purpose,
    pub(super) scopes: ScopeSet,
    pub(super) ttl: TimeDelta,
    pub(super) max_uses: Option<u64>,
    pub(super) idle_timeout: Option<TimeDelta>,
}

impl ChildRequest {
    /// A child for `purpose` with `scopes`, living `ttl` (but never past its parent).
    pub fn new(purpose: Purpose, scopes: ScopeSet, ttl: TimeDelta) -> Self {
        Self { purpose, scopes, ttl, max_uses: None, idle_timeout: None }
    }

    /// Parses the purpose and scopes from text.
    pub fn parse(purpose: &str, scopes: &str, ttl: TimeDelta) -> Result<Self, PolicyError> {
        Ok(Self::new(Purpose::new(purpose)?, ScopeSet::parse(scopes)?, ttl))
    }

    /// Allows at most `n` successful verifications.
    pub fn max_uses(mut self, n: u64) -> Self {
        self.max_uses = Some(n);
        self
    }

    /// Denied once unused for `idle`.
    pub fn idle_timeout(mut self, idle: TimeDelta) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    /// The purpose.
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    /// The scopes.
    pub fn scopes(&self) -> &ScopeSet {
        &self.scopes
    }
}
