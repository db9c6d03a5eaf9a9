//! The federations a handle trusts, made live ([`Federations`]): a leaf the handle's state holds.

use std::sync::{Arc, RwLock};

use token_core::chrono::TimeDelta;
use token_core::{Principal, ScopeSet};
use token_oidc::{ClaimRules, JwtValidator, ReplayCache};

use crate::policy::federation::FederationSpec;

/// How many `jti`s the handle's replay cache holds (it refuses, not forgets, when full).
const REPLAY_CAPACITY: usize = 100_000;

/// One federation made live: its spec, its principal, its claim rules and its issuer's validator.
pub(crate) struct Trust {
    pub(crate) spec: FederationSpec,
    pub(crate) principal: Principal,
    pub(crate) max_ttl: TimeDelta,
    pub(crate) scopes: Option<ScopeSet>,
    pub(crate) rules: ClaimRules,
    pub(crate) validator: Arc<JwtValidator>,
}

/// The federations a handle trusts.
pub(crate) struct Federations {
    pub(crate) trusts: RwLock<Arc<Vec<Arc<Trust>>>>,
    pub(crate) replay: Arc<ReplayCache>,
}

impl Federations {
    pub(crate) fn new() -> Self {
        Self { trusts: RwLock::default(), replay: Arc::new(ReplayCache::new(REPLAY_CAPACITY)) }
    }

    pub(crate) fn current(&self) -> Arc<Vec<Arc<Trust>>> {
        self.trusts.read().map_or_else(|p| Arc::clone(&p.into_inner()), |g| Arc::clone(&g))
    }
}
