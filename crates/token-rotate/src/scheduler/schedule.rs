//! When a credential is due: every N, or at a fraction of its lifetime, with jitter, never past
//! its expiry.

use chrono::{DateTime, TimeDelta, Utc};
use rand::TryRng;

/// When a credential is rotated. Build with [`Schedule::every`] or
/// [`Schedule::at_lifetime_fraction`]; both may be combined (the earlier wins). Jitter only ever
/// moves a rotation earlier, and a rotation is never later than `expiry − min_remaining`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    every: Option<TimeDelta>,
    fraction: Option<f64>,
    jitter: TimeDelta,
    min_remaining: TimeDelta,
}

impl Schedule {
    /// Every `period` after the last promotion.
    pub fn every(period: TimeDelta) -> Self {
        Self {
            every: Some(period),
            fraction: None,
            jitter: TimeDelta::zero(),
            min_remaining: TimeDelta::zero(),
        }
    }

    /// When `fraction` (clamped to 0.05–0.95) of the credential's lifetime has passed.
    pub fn at_lifetime_fraction(fraction: f64) -> Self {
        Self {
            every: None,
            fraction: Some(fraction.clamp(0.05, 0.95)),
            jitter: TimeDelta::zero(),
            min_remaining: TimeDelta::zero(),
        }
    }

    /// Also every `period`.
    pub fn or_every(mut self, period: TimeDelta) -> Self {
        self.every = Some(period);
        self
    }

    /// Up to `jitter` earlier, at random (spreads rotations of many credentials).
    pub fn jitter(mut self, jitter: TimeDelta) -> Self {
        self.jitter = jitter;
        self
    }

    /// Never later than `margin` before the credential expires.
    pub fn min_remaining(mut self, margin: TimeDelta) -> Self {
        self.min_remaining = margin;
        self
    }

    /// The next rotation of a credential promoted at `promoted` and expiring at `expires`, with
    /// `jitter01` ∈ [0, 1) of the jitter applied.
    pub fn next_after(
        &self,
        promoted: DateTime<Utc>,
        expires: DateTime<Utc>,
        jitter01: f64,
    ) -> DateTime<Utc> {
        let mut due = expires - self.min_remaining;
        if let Some(e) = self.every {
            due = due.min(promoted + e);
        }
        if let Some(f) = self.fraction {
            let life = (expires - promoted).num_milliseconds().max(0) as f64;
            due = due.min(promoted + TimeDelta::milliseconds((life * f) as i64));
        }
        let j = (self.jitter.num_milliseconds() as f64 * jitter01.clamp(0.0, 1.0)) as i64;
        (due - TimeDelta::milliseconds(j)).max(promoted)
    }
}

pub(super) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = rand::rngs::SysRng.try_fill_bytes(&mut b);
    u64::from_le_bytes(b)
}

pub(super) fn jitter01() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
}
