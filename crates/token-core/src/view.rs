//! The compact, verification-only view of a token that a lookup keeps inline, with its use counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::binding::Thumbprint;
use crate::decision::{Bearer, DenyReason};
use crate::format::TokenId;
use crate::record::{TokenRecord, UseLimits};
use crate::role::PrincipalId;
use crate::scope::ScopeSet;
use crate::secret::TokenDigest;

const NEVER: i64 = i64::MIN;
const NONE: i64 = i64::MAX;

/// What few tokens have — a use limit, an idle timeout, a parent — kept out of line, so the view
/// of every other token stays small and pays one null check for all three.
#[derive(Debug)]
struct Rare {
    /// `u64::MAX`: no limit.
    max_uses: u64,
    /// [`NONE`]: no idle timeout.
    idle_ms: i64,
    parent: Option<TokenId>,
}

impl Rare {
    fn of(limits: UseLimits, parent: Option<TokenId>) -> Option<Box<Self>> {
        (limits.max_uses.is_some() || limits.idle_timeout.is_some() || parent.is_some()).then(|| {
            Box::new(Self {
                max_uses: limits.max_uses.unwrap_or(u64::MAX),
                idle_ms: limits.idle_timeout.map_or(NONE, |d| d.num_milliseconds()),
                parent,
            })
        })
    }
}

/// What the verifier needs of a token, in 96 bytes, so a lookup can keep millions inline
/// (no pointer to chase on the hot path but the shared scope set). Built from a [`TokenRecord`];
/// times are whole milliseconds, rounded so that a token is never valid for longer than its record
/// says.
#[derive(Debug)]
pub struct TokenView {
    digest: TokenDigest,
    not_before_ms: i64,
    expires_ms: i64,
    revoked_ms: i64,
    /// Use limits and the parent, for the tokens that have any.
    rare: Option<Box<Rare>>,
    bearer: Arc<Bearer>,
    uses: AtomicU64,
    /// The low 32 bits of the use count already handed to the store (the count it was loaded
    /// with, then each flush): a flush hands over `uses - flushed` in wrapping arithmetic, exact
    /// while fewer than 2^32 uses fall between two flushes. 32 bits fill the padding after the
    /// digest, so the view stays 96 bytes.
    flushed: AtomicU32,
    last_used_ms: AtomicI64,
}

fn ceil_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis() + i64::from(t.timestamp_subsec_nanos() % 1_000_000 != 0)
}

impl TokenView {
    /// The view of `record`, with no recorded use.
    pub fn from_record(record: &TokenRecord) -> Self {
        Self::with_usage(record, 0, None)
    }

    /// The view of `record`, with counters carried over (say, from a store or a previous view).
    pub fn with_usage(record: &TokenRecord, uses: u64, last_used: Option<DateTime<Utc>>) -> Self {
        Self {
            digest: record.digest,
            not_before_ms: ceil_ms(record.not_before),
            expires_ms: record.expires_at.timestamp_millis(),
            revoked_ms: record.revoked_at.map_or(NONE, |t| t.timestamp_millis()),
            rare: Rare::of(record.limits, record.parent),
            bearer: Arc::new(Bearer {
                principal: record.principal.clone(),
                scopes: record.scopes.clone(),
                bound_to: record.bound_to,
            }),
            uses: AtomicU64::new(uses),
            flushed: AtomicU32::new(uses as u32),
            last_used_ms: AtomicI64::new(last_used.map_or(NEVER, |t| t.timestamp_millis())),
        }
    }

    /// The not-before time in milliseconds, rounded up (what [`TokenView::from_record`] keeps).
    pub fn not_before_ms_of(record: &TokenRecord) -> i64 {
        ceil_ms(record.not_before)
    }

    /// Marks the view revoked at `at` (a lookup does this on revocation).
    pub fn revoke(&mut self, at: DateTime<Utc>) {
        self.revoked_ms = self.revoked_ms.min(at.timestamp_millis());
    }

    /// The token it was minted from, if any.
    #[inline]
    pub fn parent(&self) -> Option<TokenId> {
        self.rare.as_ref().and_then(|r| r.parent)
    }

    /// The stored digest.
    #[inline]
    pub fn digest(&self) -> &TokenDigest {
        &self.digest
    }

    /// The token's scopes.
    #[inline]
    pub fn scopes(&self) -> &ScopeSet {
        &self.bearer.scopes
    }

    /// The key it is bound to, if any.
    #[inline]
    pub fn bound_to(&self) -> Option<&Thumbprint> {
        self.bearer.bound_to.as_ref()
    }

    /// Its holder.
    #[inline]
    pub fn principal(&self) -> &PrincipalId {
        &self.bearer.principal
    }

    /// What a grant of it carries (one reference count).
    #[inline]
    pub(crate) fn bearer(&self) -> &Arc<Bearer> {
        &self.bearer
    }

    /// Its use limits.
    pub fn limits(&self) -> UseLimits {
        UseLimits {
            max_uses: self.rare.as_ref().and_then(|r| (r.max_uses != u64::MAX).then_some(r.max_uses)),
            idle_timeout: self
                .rare
                .as_ref()
                .and_then(|r| (r.idle_ms != NONE).then(|| chrono::TimeDelta::milliseconds(r.idle_ms))),
        }
    }

    /// Successful uses so far: exact for a token with `max_uses`, otherwise a statistic that may
    /// miss uses made in the same instant on several threads.
    pub fn uses(&self) -> u64 {
        self.uses.load(Ordering::Relaxed)
    }

    /// Uses counted here since the store last heard (the count a view is built with is the
    /// store's): returns them and marks them handed over, so a flush adds each use once.
    pub fn take_unflushed_uses(&self) -> u64 {
        let now = self.uses.load(Ordering::Relaxed) as u32;
        let before = self.flushed.swap(now, Ordering::Relaxed);
        u64::from(now.wrapping_sub(before))
    }

    /// The last successful use.
    pub fn last_used(&self) -> Option<DateTime<Utc>> {
        match self.last_used_ms.load(Ordering::Relaxed) {
            NEVER => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// Whether it has expired at `now_ms` (milliseconds since the epoch).
    #[inline]
    pub fn is_expired_at(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_ms
    }

    /// Revoked, not yet valid or expired at `now_ms`: the reason; active: `None`.
    /// Revocation wins over everything.
    #[inline]
    pub(crate) fn lifecycle_at(&self, now_ms: i64) -> Option<DenyReason> {
        if self.revoked_ms <= now_ms {
            Some(DenyReason::Revoked { at: ms_time(self.revoked_ms) })
        } else if now_ms < self.not_before_ms {
            Some(DenyReason::NotYetValid { from: ms_time(self.not_before_ms) })
        } else if now_ms >= self.expires_ms {
            Some(DenyReason::Expired { at: ms_time(self.expires_ms) })
        } else {
            None
        }
    }

    /// Why its use limits would refuse a use at `now_ms` — idle too long, or its uses spent —
    /// without counting one; `None` when a use would be allowed. (Says nothing of its lifecycle,
    /// secret or scopes.)
    pub fn limits_deny_at(&self, now_ms: i64) -> Option<DenyReason> {
        let (max_uses, idle_ms) = self.rare.as_ref().map_or((u64::MAX, NONE), |r| (r.max_uses, r.idle_ms));
        if let Some(idle) = self.idle_denies(idle_ms, now_ms) {
            return Some(idle);
        }
        (max_uses != u64::MAX && self.uses.load(Ordering::Acquire) >= max_uses)
            .then_some(DenyReason::UsesExhausted { max_uses })
    }

    /// Unused for longer than `idle_ms` at `now_ms` (counted from its not-before time when never
    /// used): the denial.
    #[inline]
    fn idle_denies(&self, idle_ms: i64, now_ms: i64) -> Option<DenyReason> {
        if idle_ms == NONE {
            return None;
        }
        let last = self.last_used_ms.load(Ordering::Acquire);
        let since = if last == NEVER { self.not_before_ms } else { last };
        (now_ms.saturating_sub(since) > idle_ms).then(|| DenyReason::IdleTimeout { since: ms_time(since) })
    }

    /// Counts a use at `now_ms`: refuses (without counting) a token idle too long, and refuses
    /// once `max_uses` is spent.
    #[inline]
    pub(crate) fn try_use(&self, now_ms: i64) -> Result<(), DenyReason> {
        let (max_uses, idle_ms) = self.rare.as_ref().map_or((u64::MAX, NONE), |r| (r.max_uses, r.idle_ms));
        if let Some(idle) = self.idle_denies(idle_ms, now_ms) {
            return Err(idle);
        }
        if max_uses != u64::MAX {
            if self.uses.fetch_add(1, Ordering::AcqRel) >= max_uses {
                return Err(DenyReason::UsesExhausted { max_uses });
            }
        } else {
            // Statistics only: a plain load and store, which may miss a concurrent use.
            self.uses.store(self.uses.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        }
        // Skip the write when the stored value is already as recent: readers are many. Only an
        // idle timeout needs the exact maximum; otherwise the time is a statistic, and a plain
        // store (no locked instruction) may at worst keep a use a millisecond older.
        if self.last_used_ms.load(Ordering::Relaxed) < now_ms {
            if idle_ms != NONE {
                self.last_used_ms.fetch_max(now_ms, Ordering::AcqRel);
            } else {
                self.last_used_ms.store(now_ms, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

#[cold]
fn ms_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_is_compact() {
        assert!(std::mem::size_of::<TokenView>() <= 96, "{}", std::mem::size_of::<TokenView>());
    }
}
