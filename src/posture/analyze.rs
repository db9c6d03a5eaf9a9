//! The analysis: the findings, ages and volumes of a [`Posture`] from what was read.

use std::collections::{BTreeMap, BTreeSet};

use token_audit::{Action, Outcome, chains::Entry};
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_core::duration::approx;
use token_core::lookup::TokenStatus;
use token_core::{Scope, lookup::TokenRecord};
use token_store::{ListedToken, TokenRow};

use super::model::{
    Binding, CredentialAge, Finding, FindingKind, HISTORY_STEPS, Inputs, Posture, RotationStep, SCHEMA,
    Severity, Thresholds, TokenLabel, TokenPoint, Volume, status_name,
};

/// A scope is over-broad if a wildcard stands alone in a position, or `**` takes a whole service
/// or its first level (`s3:**:read`, `s3:bucket/**:read`).
fn over_broad(scope: &Scope) -> bool {
    if scope.has_bare_wildcard() {
        return true;
    }
    let text = scope.to_string();
    let mut parts = text.splitn(3, ':');
    let _service = parts.next();
    let resource = parts.next().unwrap_or_default();
    resource.split('/').take(2).any(|s| s == "**")
}

fn ids(rows: &[&TokenRow]) -> Vec<String> {
    rows.iter().map(|r| r.record.id.to_string()).collect()
}

fn finding(kind: FindingKind, severity: Severity, summary: String, tokens: Vec<String>) -> Finding {
    Finding { kind, severity, summary, tokens, credential: None }
}

fn days(d: TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 86_400_000.0
}

/// The findings about token records alone: tampered, close to expiry, unused, over-broad, several
/// for one purpose.
fn token_findings(
    now: DateTime<Utc>,
    tampered: &[&ListedToken],
    active: &[&TokenRow],
    t: &Thresholds,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if !tampered.is_empty() {
        findings.push(finding(
            FindingKind::TamperedRecords,
            Severity::High,
            format!(
                "{} token record(s) fail their integrity check (edited outside Tokenward): refused, never used",
                tampered.len()
            ),
            tampered.iter().map(|t| t.row.record.id.to_string()).collect(),
        ));
    }
    // Close to expiry: a token that lives longer than the window and ends within it (a consumer
    // about to break). Short-lived tokens expire by design and are not flagged.
    let expiring: Vec<&TokenRow> = active
        .iter()
        .copied()
        .filter(|r| {
            r.record.expires_at <= now + t.expiring_within
                && r.record.expires_at - r.record.not_before > t.expiring_within
        })
        .collect();
    if !expiring.is_empty() {
        findings.push(finding(
            FindingKind::ExpiringSoon,
            Severity::Medium,
            format!("{} long-lived token(s) expire within {}", expiring.len(), approx(t.expiring_within)),
            ids(&expiring),
        ));
    }
    let unused: Vec<&TokenRow> = active
        .iter()
        .copied()
        .filter(|r| {
            r.record.created_at <= now - t.unused_for && r.last_used.is_none_or(|u| u <= now - t.unused_for)
        })
        .collect();
    if !unused.is_empty() {
        findings.push(finding(
            FindingKind::Unused,
            Severity::Medium,
            format!(
                "{} active token(s) unused for {} or more: revoke them",
                unused.len(),
                approx(t.unused_for)
            ),
            ids(&unused),
        ));
    }
    let broad: Vec<&TokenRow> =
        active.iter().copied().filter(|r| r.record.scopes.iter().any(over_broad)).collect();
    if !broad.is_empty() {
        findings.push(finding(
            FindingKind::OverBroadScope,
            Severity::High,
            format!("{} active token(s) hold a wildcard or whole-service scope", broad.len()),
            ids(&broad),
        ));
    }
    let mut by_purpose: BTreeMap<(&str, &str), Vec<&TokenRow>> = BTreeMap::new();
    for r in active.iter().copied().filter(|r| r.record.parent.is_none()) {
        by_purpose.entry((r.record.principal.as_str(), r.record.purpose.as_str())).or_default().push(r);
    }
    for ((p, purpose), rows) in &by_purpose {
        if rows.len() > 1 {
            findings.push(finding(
                FindingKind::SeveralTokensForPurpose,
                Severity::Medium,
                format!(
                    "{p} holds {} active tokens for {purpose} (one per purpose; a rotation overlap ends soon)",
                    rows.len()
                ),
                ids(rows),
            ));
        }
    }
    findings
}

/// What the audit log says about uses and rotations.
#[derive(Default)]
struct Uses {
    sources: BTreeMap<String, BTreeSet<String>>,
    dead_presented: BTreeMap<String, u64>,
    volume: BTreeMap<String, Volume>,
    rotations: BTreeMap<String, Vec<RotationStep>>,
}

fn uses(entries: &[Entry], by_id: &BTreeMap<String, &TokenRecord>) -> Uses {
    let mut u = Uses::default();
    for e in entries {
        let ev = &e.event;
        match &ev.action {
            Action::VerifyAllowed | Action::VerifyDenied(_) => {
                let token = ev.token.map(|t| t.to_string());
                let principal = token
                    .as_ref()
                    .and_then(|t| by_id.get(t))
                    .map_or_else(|| "(unknown token)".to_owned(), |r| r.principal.as_str().to_owned());
                let v = u.volume.entry(principal).or_default();
                if matches!(ev.action, Action::VerifyAllowed) {
                    v.allowed += 1;
                } else {
                    v.denied += 1;
                }
                if let (Some(t), Some(s)) = (&token, &ev.source) {
                    u.sources.entry(t.clone()).or_default().insert(s.clone());
                }
                if let (Action::VerifyDenied(reason), Some(t)) = (&ev.action, &token)
                    && reason == "revoked"
                {
                    *u.dead_presented.entry(t.clone()).or_default() += 1;
                }
            }
            Action::Rotate(step) => {
                if let Some(c) = ev.attrs.get("credential") {
                    u.rotations.entry(c.clone()).or_default().push(RotationStep {
                        at: ev.time,
                        step: step.clone(),
                        ok: matches!(ev.outcome, Outcome::Success),
                        after_ms: ev.attrs.get("after_ms").and_then(|v| v.parse().ok()),
                        handle: ev.attrs.get("handle").cloned(),
                    });
                }
            }
            _ => {}
        }
    }
    u
}

/// The posture: every finding, the audit status, the expiry timeline, each credential's rotation
/// age and history and the verification volume per principal.
#[must_use]
pub fn analyze(inputs: Inputs<'_>, t: &Thresholds) -> Posture {
    let now = inputs.now;
    let (tampered, all): (Vec<&ListedToken>, Vec<&ListedToken>) =
        inputs.tokens.iter().partition(|t| t.tampered.is_some());
    let all: Vec<&TokenRow> = all.into_iter().map(|t| &t.row).collect();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    if !tampered.is_empty() {
        counts.insert("tampered", tampered.len() as u64);
    }
    for r in &all {
        *counts.entry(status_name(r.record.status_at(now))).or_default() += 1;
    }
    let active: Vec<&TokenRow> =
        all.iter().copied().filter(|r| r.record.status_at(now) == TokenStatus::Active).collect();
    let mut findings = token_findings(now, &tampered, &active, t);
    let bound = active.iter().filter(|r| r.record.bound_to.is_some()).count() as u64;
    let binding = Binding { bound, bearer: active.len() as u64 - bound };

    let audit = inputs.audit_status.clone();
    if !audit.verified {
        findings.push(finding(
            FindingKind::AuditChainBroken,
            Severity::High,
            format!("the audit log fails verification: {}", audit.error.clone().unwrap_or_default()),
            Vec::new(),
        ));
    }
    let by_id: BTreeMap<String, &TokenRecord> =
        all.iter().map(|r| (r.record.id.to_string(), &r.record)).collect();
    let mut u = uses(inputs.audit, &by_id);
    let shared: Vec<String> = u.sources.iter().filter(|(_, s)| s.len() > 1).map(|(t, _)| t.clone()).collect();
    if !shared.is_empty() {
        findings.push(finding(
            FindingKind::SharedToken,
            Severity::High,
            format!(
                "{} token(s) presented from more than one source: one credential, several holders",
                shared.len()
            ),
            shared,
        ));
    }
    if !u.dead_presented.is_empty() {
        findings.push(finding(
            FindingKind::RevokedStillPresented,
            Severity::High,
            format!(
                "{} revoked token(s) still presented ({} denied calls): someone still uses a dead credential",
                u.dead_presented.len(),
                u.dead_presented.values().sum::<u64>()
            ),
            u.dead_presented.keys().cloned().collect(),
        ));
    }

    let mut rotation = Vec::new();
    for c in inputs.credentials {
        let mut history = u.rotations.remove(&c.name).unwrap_or_default();
        // Still accepted when probing stopped, and never confirmed since.
        let confirmed_later = |s: &RotationStep| {
            history.iter().any(|c| c.step == "revocation_confirmed" && c.handle == s.handle && c.at >= s.at)
        };
        for s in history.iter().filter(|s| s.step == "revocation_unconfirmed" && !confirmed_later(s)) {
            findings.push(Finding {
                kind: FindingKind::RevocationUnconfirmed,
                severity: Severity::High,
                summary: format!(
                    "{}'s revoked version {} was still accepted by its provider when probing stopped ({})",
                    c.name,
                    s.handle.as_deref().unwrap_or("?"),
                    s.at.to_rfc3339()
                ),
                tokens: Vec::new(),
                credential: Some(c.name.clone()),
            });
        }
        rotation.push(CredentialAge {
            name: c.name.clone(),
            days_since_rotation: c.promoted_at.map(|p| days(now - p)),
            period_days: c.period.map(days),
            history: history.split_off(history.len().saturating_sub(HISTORY_STEPS)),
        });
        if let Some(period) = c.period
            && c.promoted_at.is_none_or(|p| p + period < now)
        {
            findings.push(Finding {
                kind: FindingKind::RotationOverdue,
                severity: Severity::High,
                summary: match c.promoted_at {
                    Some(p) => format!(
                        "{} was last rotated {} ago; it rotates every {}",
                        c.name,
                        approx(now - p),
                        approx(period)
                    ),
                    None => format!("{} has never been rotated; it rotates every {}", c.name, approx(period)),
                },
                tokens: Vec::new(),
                credential: Some(c.name.clone()),
            });
        }
        if let Some(last) = rotation.last().and_then(|r| r.history.iter().rev().find(|s| !s.is_aftercare()))
            && (last.step == "rollback" || !last.ok)
        {
            findings.push(Finding {
                kind: FindingKind::RotationRolledBack,
                severity: Severity::High,
                summary: format!("the last rotation of {} ended in {}", c.name, last.step),
                tokens: Vec::new(),
                credential: Some(c.name.clone()),
            });
        }
    }
    let expiry = active
        .iter()
        .map(|r| TokenPoint {
            id: r.record.id.to_string(),
            principal: r.record.principal.as_str().to_owned(),
            purpose: r.record.purpose.as_str().to_owned(),
            expires_at: r.record.expires_at,
        })
        .collect();
    let named_tokens = findings
        .iter()
        .flat_map(|f| f.tokens.iter())
        .filter_map(|id| {
            let r = by_id.get(id)?;
            Some((
                id.clone(),
                TokenLabel {
                    principal: r.principal.as_str().to_owned(),
                    purpose: r.purpose.as_str().to_owned(),
                },
            ))
        })
        .collect();
    Posture {
        schema: SCHEMA,
        generated_at: now,
        policy_version: inputs.policy_version,
        tokens: counts,
        binding,
        findings,
        audit,
        expiry,
        rotation,
        verifications: u.volume,
        named_tokens,
        inventory: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::{AuditStatus, CredentialState, read_audit};

    fn status() -> AuditStatus {
        read_audit(Ok::<_, String>(Vec::<Result<Entry, String>>::new()), |_| {}).1
    }

    #[test]
    fn an_overdue_credential_is_an_alert_with_its_age_in_durations() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let audit = status();
        let credentials = [
            CredentialState::new("never", None, Some(TimeDelta::days(7))),
            CredentialState::new("late", Some(now - TimeDelta::hours(200)), Some(TimeDelta::days(7))),
            CredentialState::new("fresh", Some(now - TimeDelta::hours(1)), Some(TimeDelta::days(7))),
        ];
        let inputs = Inputs {
            now,
            policy_version: 2,
            tokens: &[],
            audit: &[],
            audit_status: &audit,
            credentials: &credentials,
        };
        let p = analyze(inputs, &Thresholds::default());
        assert!(audit.verified && p.tokens.is_empty());
        assert_eq!((p.binding.bound, p.binding.bearer), (0, 0));
        let overdue: Vec<&Finding> =
            p.findings.iter().filter(|f| f.kind == FindingKind::RotationOverdue).collect();
        assert_eq!(overdue.len(), 2);
        assert!(overdue.iter().all(|f| f.kind.is_alert() && f.severity == Severity::High));
        assert_eq!(overdue[1].summary, "late was last rotated 8d8h ago; it rotates every 7d");
        assert!(!FindingKind::OverBroadScope.is_alert());
        let json = serde_json::to_value(&p).unwrap_or_default();
        assert_eq!(json["findings"][0]["kind"], "rotation_overdue");
        assert_eq!(json["findings"][0]["severity"], "high");
        assert_eq!(json["rotation"][2]["history"], serde_json::json!([]));
        assert_eq!(json["binding"], serde_json::json!({"bound": 0, "bearer": 0}));
    }

    /// A revoked credential still accepted when probing stopped is an alert of its own; a proof
    /// or a retirement's reason after a promotion is not taken for the rotation's outcome.
    #[test]
    fn an_unconfirmed_revocation_is_an_alert_and_aftercare_is_not_a_rollback() {
        use token_audit::chains::{Entry, GENESIS};
        use token_audit::{Actor, AuditEvent};
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let step = |i: u64, step: &str, outcome: Outcome, after: &str| Entry {
            seq: i,
            prev: GENESIS,
            hash: GENESIS,
            event: AuditEvent::new(now, Actor::System, Action::Rotate(step.to_owned()))
                .outcome(outcome)
                .attr("credential", "aws/key")
                .attr("handle", "AKIAOLD")
                .attr("after_ms", after),
        };
        let audit = status();
        let credentials = [CredentialState::new("aws/key", Some(now), None)];
        let run = |entries: &[Entry]| {
            analyze(
                Inputs {
                    now,
                    policy_version: 1,
                    tokens: &[],
                    audit: entries,
                    audit_status: &audit,
                    credentials: &credentials,
                },
                &Thresholds::default(),
            )
        };
        let kinds = |p: &Posture| p.findings.iter().map(|f| f.kind).collect::<Vec<_>>();
        let confirmed = run(&[
            step(0, "promote", Outcome::Success, "0"),
            step(1, "revocation_confirmed", Outcome::Success, "240"),
        ]);
        assert_eq!(kinds(&confirmed), []);
        assert_eq!(confirmed.rotation[0].history[1].after_ms, Some(240));
        let still = run(&[
            step(0, "promote", Outcome::Success, "0"),
            step(1, "revocation_unconfirmed", Outcome::Failure("still accepted 15m".into()), "900000"),
        ]);
        assert_eq!(kinds(&still), [FindingKind::RevocationUnconfirmed]);
        assert!(still.findings[0].kind.is_alert() && still.findings[0].summary.contains("AKIAOLD"));
    }
}
