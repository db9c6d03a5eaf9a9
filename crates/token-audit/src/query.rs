//! Queries over a log: "what did this token do?", by actor, action and time range.

use chrono::{DateTime, Utc};
use token_core::TokenId;

use crate::chain::Entry;
use crate::event::Actor;

/// A filter over entries; every criterion set must match. Build with the methods.
///
/// ```
/// use token_audit::AuditQuery;
/// let q = AuditQuery::new().action("revoke").limit(10);
/// # let _ = q;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub(crate) token: Option<TokenId>,
    pub(crate) actor: Option<Actor>,
    pub(crate) action: Option<String>,
    pub(crate) from: Option<DateTime<Utc>>,
    pub(crate) until: Option<DateTime<Utc>>,
    pub(crate) limit: Option<usize>,
}

impl AuditQuery {
    /// Every entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries about this token.
    pub fn token(mut self, id: TokenId) -> Self {
        self.token = Some(id);
        self
    }

    /// Entries by this actor.
    pub fn actor(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Entries of this action (its canonical name, e.g. `"verify_denied"`).
    pub fn action(mut self, name: impl Into<String>) -> Self {
        self.action = Some(name.into());
        self
    }

    /// Entries at or after `from` and before `until`.
    pub fn between(mut self, from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self.until = Some(until);
        self
    }

    /// At most `n` entries (the first `n` that match).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether `entry` matches.
    pub fn matches(&self, entry: &Entry) -> bool {
        let e = &entry.event;
        self.token.is_none_or(|t| e.token == Some(t))
            && self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.action.as_deref().is_none_or(|a| e.action.name() == a)
            && self.from.is_none_or(|f| e.time >= f)
            && self.until.is_none_or(|u| e.time < u)
    }

    pub(crate) fn limit_value(&self) -> Option<usize> {
        self.limit
    }
}
