//! When an inventory's entries need attention ([`Finding`]s): a pure function of the entries, the time and the
//! thresholds (a source adds what only it can know: a managed credential's drift).

use std::collections::HashMap;

use token_core::chrono::{DateTime, TimeDelta, Utc};

use super::entry::{CredentialStatus, Finding, InventoryEntry, Managed, SourceKind};

/// When an entry is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InventoryThresholds {
    /// Unused for longer than this (default 90 days).
    pub unused: TimeDelta,
    /// Older than this (default 90 days: AWS's and CIS's recommended key rotation).
    pub max_age: TimeDelta,
    /// Never used, and created longer ago than this (default 1 day: a key just made is not yet
    /// suspicious).
    pub never_used_grace: TimeDelta,
}

impl Default for InventoryThresholds {
    fn default() -> Self {
        Self {
            unused: TimeDelta::days(90),
            max_age: TimeDelta::days(90),
            never_used_grace: TimeDelta::days(1),
        }
    }
}

impl InventoryThresholds {
    /// Flags unused for longer than `unused`, older than `max_age`, never used after
    /// `never_used_grace`.
    #[must_use]
    pub fn new(unused: TimeDelta, max_age: TimeDelta, never_used_grace: TimeDelta) -> Self {
        Self { unused, max_age, never_used_grace }
    }
}

/// Adds the findings every source shares to `entries` (active ones only: a disabled key is no
/// risk of use).
pub(super) fn assess(entries: &mut [InventoryEntry], now: DateTime<Utc>, t: &InventoryThresholds) {
    // Active keys per IAM user, and how many of them are not a declared credential's current or
    // previous version (two keys that are exactly those are a rotation's overlap, not a finding).
    let mut active_keys: HashMap<&str, (usize, usize)> = HashMap::new();
    for e in entries.iter() {
        if e.source == SourceKind::AwsIam && e.status == CredentialStatus::Active {
            let n = active_keys.entry(e.owner.as_str()).or_default();
            n.0 += 1;
            if !matches!(e.managed, Some(Managed::Current { .. } | Managed::Previous { .. })) {
                n.1 += 1;
            }
        }
    }
    let several: HashMap<String, usize> = active_keys
        .into_iter()
        .filter(|(_, (n, other))| *n > 1 && *other > 0)
        .map(|(o, (n, _))| (o.to_owned(), n))
        .collect();
    for e in entries.iter_mut() {
        if e.status != CredentialStatus::Active {
            continue;
        }
        let age = e.created.map(|c| now - c);
        match &e.last_used {
            _ if !e.usage_reported => {}
            None if age.is_none_or(|a| a > t.never_used_grace) => e.findings.push(Finding::NeverUsed),
            None => {}
            Some(u) if now - u.at > t.unused => {
                e.findings.push(Finding::Unused { days: (now - u.at).num_days() });
            }
            Some(_) => {}
        }
        if let Some(a) = age.filter(|a| *a > t.max_age) {
            e.findings.push(Finding::TooOld { days: a.num_days() });
        }
        if e.expires.is_none()
            && !matches!(e.managed, Some(Managed::Current { .. } | Managed::Previous { .. }))
        {
            e.findings.push(Finding::NoExpiry);
        }
        if e.source == SourceKind::AwsIam
            && let Some(n) = several.get(&e.owner)
        {
            e.findings.push(Finding::SeveralActiveKeys { count: *n });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::inventory::entry::LastUse;

    fn days(n: i64) -> TimeDelta {
        TimeDelta::days(n)
    }

    fn key(
        owner: &str,
        id: &str,
        created_days_ago: i64,
        used_days_ago: Option<i64>,
        now: DateTime<Utc>,
    ) -> InventoryEntry {
        let mut e =
            InventoryEntry::new(SourceKind::AwsIam, id.into(), owner.into(), CredentialStatus::Active);
        e.created = Some(now - days(created_days_ago));
        e.last_used = used_days_ago.map(|d| LastUse { at: now - days(d), service: None, region: None });
        e
    }

    fn kinds(e: &InventoryEntry) -> Vec<&'static str> {
        e.findings.iter().map(Finding::kind).collect()
    }

    #[test]
    fn each_finding_is_raised_and_only_when_due() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let mut es = vec![
            key("alice", "AKIA1", 10, Some(1), now),
            key("bob", "AKIA2", 200, Some(120), now),
            key("bob", "AKIA3", 5, None, now),
            key("carol", "AKIA4", 0, None, now),
        ];
        es[0].expires = Some(now + days(1));
        let mut inactive = key("carol", "AKIA5", 400, None, now);
        inactive.status = CredentialStatus::Inactive;
        es.push(inactive);
        // A source that does not report use (OpenBao): no use-based finding, the rest as ever.
        let mut unreported = key("dave", "hvs-accessor", 400, None, now);
        unreported.source = SourceKind::Openbao;
        unreported.usage_reported = false;
        es.push(unreported);
        assess(&mut es, now, &InventoryThresholds::default());
        assert_eq!(kinds(&es[0]), Vec::<&str>::new());
        assert_eq!(
            es[1].findings,
            vec![
                Finding::Unused { days: 120 },
                Finding::TooOld { days: 200 },
                Finding::NoExpiry,
                Finding::SeveralActiveKeys { count: 2 }
            ]
        );
        assert_eq!(kinds(&es[2]), ["never-used", "no-expiry", "several-active-keys"]);
        // Just made: not yet "never used"; carol's inactive key is no second active key.
        assert_eq!(kinds(&es[3]), ["no-expiry"]);
        assert!(es[4].findings.is_empty());
        assert_eq!(kinds(&es[5]), ["too-old", "no-expiry"]);
    }
}
