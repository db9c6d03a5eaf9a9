//! Whose keys are beside the current one, when a deactivated key may be deleted, and whether a
//! key in its grace fills IAM's second slot.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use token_core::clocks::Clock;

use super::iam::key_tag;
use super::{AccessKeyInfo, AwsAccessKeyTarget, CREATING_TAG, ORPHAN_WINDOW_MS};
use crate::error::TargetError;

/// Who a key belongs to, as far as Tokenward can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    /// Tagged as Tokenward's; deactivated by Tokenward at this time (Unix ms), if it was.
    Ours { inactive_since: Option<i64> },
    /// Made by a create of ours that crashed before tagging it (see [`ORPHAN_WINDOW_MS`]).
    Orphan,
    /// Not Tokenward's: never deactivated or deleted, and a rotation refuses while it exists.
    Unknown,
}

impl AwsAccessKeyTarget {
    /// Who `key` belongs to.
    pub(super) fn owner(
        key: &AccessKeyInfo,
        tags: &HashMap<String, String>,
        last_used: Option<DateTime<Utc>>,
    ) -> Owner {
        if let Some(v) = tags.get(&key_tag(&key.id)) {
            let inactive_since = v.strip_prefix("inactive:").and_then(|ms| ms.parse().ok());
            return Owner::Ours { inactive_since };
        }
        let marker = tags.get(CREATING_TAG).and_then(|v| {
            let (_, t) = v.split_once(':')?;
            t.parse::<i64>().ok()
        });
        match (marker, key.created) {
            (Some(at_ms), Some(created))
                if (at_ms - 1_000..=at_ms + ORPHAN_WINDOW_MS).contains(&created.timestamp_millis())
                    && last_used.is_none() =>
            {
                Owner::Orphan
            }
            _ => Owner::Unknown,
        }
    }

    /// Deletes the keys Tokenward deactivated more than the deletion grace ago (and still
    /// inactive: a key reactivated by hand is left alone); returns how many.
    pub async fn purge_inactive(&self) -> Result<usize, TargetError> {
        self.purge_inactive_at(self.clock.now()).await
    }

    /// [`AwsAccessKeyTarget::purge_inactive`] at `now`.
    pub async fn purge_inactive_at(&self, now: DateTime<Utc>) -> Result<usize, TargetError> {
        Ok(self.purge_at(now).await?.0)
    }

    /// Deletes the keys whose grace is over at `now`; returns how many, and when the next one's
    /// grace ends (Unix ms).
    pub(super) async fn purge_at(&self, now: DateTime<Utc>) -> Result<(usize, Option<i64>), TargetError> {
        let keys = self.list_keys("revoke").await?;
        let tags = self.user_tags("revoke").await?;
        let mut n = 0;
        let mut next: Option<i64> = None;
        for k in keys.iter().filter(|k| !k.active) {
            if let Owner::Ours { inactive_since: Some(ms) } = Self::owner(k, &tags, Some(now)) {
                let until = ms.saturating_add(self.grace.num_milliseconds());
                if now.timestamp_millis() >= until {
                    self.delete("revoke", k).await?;
                    n += 1;
                } else {
                    next = Some(next.map_or(until, |t| t.min(until)));
                }
            }
        }
        Ok((n, next))
    }

    /// The user's keys other than `current_id`, sorted: keys of ours that may go now (made for a
    /// rotation that never finished, a crashed create's orphan, a deactivated key whose grace is
    /// over), keys of ours deactivated and still in their grace (with when it ends, Unix ms), and
    /// keys that are not ours (named, with their state).
    pub(super) async fn beside<'k>(
        &self,
        keys: &'k [AccessKeyInfo],
        tags: &HashMap<String, String>,
        current_id: Option<&str>,
    ) -> Result<Beside<'k>, TargetError> {
        let now_ms = self.clock.now().timestamp_millis();
        let mut out = Beside { remove: Vec::new(), kept: Vec::new(), unknown: Vec::new() };
        for k in keys.iter().filter(|k| Some(k.id.as_str()) != current_id) {
            let used = if tags.contains_key(&key_tag(&k.id)) { None } else { self.last_used(&k.id).await? };
            match Self::owner(k, tags, used) {
                Owner::Unknown => {
                    out.unknown.push(format!("{} ({})", k.id, if k.active { "active" } else { "inactive" }))
                }
                Owner::Ours { inactive_since: Some(ms) }
                    if !k.active && now_ms < ms.saturating_add(self.grace.num_milliseconds()) =>
                {
                    out.kept.push((k, ms.saturating_add(self.grace.num_milliseconds())));
                }
                _ => out.remove.push(k),
            }
        }
        Ok(out)
    }

    /// Whether a key in its grace fills IAM's second slot: until when, and why.
    pub(super) fn blocked(&self, keys: &[AccessKeyInfo], b: &Beside<'_>) -> Option<(DateTime<Utc>, String)> {
        // IAM allows two keys per user: after the removable ones go, is there room for one more?
        if b.kept.is_empty() || keys.len() - b.remove.len() < 2 {
            return None;
        }
        let (key, until_ms) = b.kept.iter().min_by_key(|(_, t)| *t)?;
        let until = DateTime::from_timestamp_millis(*until_ms)?;
        Some((
            until,
            format!(
                "IAM user {} has no room for a new access key: {} was deactivated by Tokenward and is kept for its \
                 deletion grace ({}) until {} (it is not deleted early)",
                self.user,
                key.id,
                token_core::duration::format(self.grace),
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ))
    }
}

/// Keys beside the current one (see [`AwsAccessKeyTarget::beside`]).
pub(super) struct Beside<'k> {
    pub(super) remove: Vec<&'k AccessKeyInfo>,
    pub(super) kept: Vec<(&'k AccessKeyInfo, i64)>,
    pub(super) unknown: Vec<String>,
}
