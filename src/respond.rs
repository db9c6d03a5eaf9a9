//! Leak response (feature `scan`): what a scan found that is one of this deployment's own tokens
//! is revoked — or, when it is the current credential of a rotation this handle runs, revoked and
//! replaced in an emergency — and every finding is recorded in the audit log (`scan_finding`,
//! with its location and fingerprint, never the token).

use std::time::{Duration, Instant};

use token_audit::{Action, Actor, AuditEvent};
use token_core::{Decision, DenyReason, TokenId};
use token_rotate::EmergencyOrder;
use token_scan::{Report, TOKENWARD_RULE};
use token_store::SecretName;

use crate::deployment::Tokenward;
use crate::error::Result;

/// What the response did about one finding.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeakOutcome {
    /// Ours and active, the current credential of `name`: revoked and replaced, in the
    /// credential's emergency order ([`Tokenward::set_emergency_order`]; a declared credential's
    /// `emergency`; revoke first unless said).
    Replaced {
        /// The leaked token.
        id: TokenId,
        /// The rotated credential it was.
        name: SecretName,
        /// The order it was replaced in.
        order: EmergencyOrder,
    },
    /// Ours and not revoked (active, or not valid yet, or expired, or used up: anything of ours a
    /// leak exposes is revoked): revoked, with its children.
    Revoked {
        /// The leaked token.
        id: TokenId,
        /// Every token revoked with it.
        revoked: Vec<TokenId>,
    },
    /// Ours, but revoked already.
    AlreadyRevoked {
        /// The token.
        id: TokenId,
    },
    /// Ours, but its record fails its integrity check: it is refused already (quarantined), and
    /// nothing is written to a record that cannot be trusted.
    Quarantined {
        /// The token.
        id: TokenId,
    },
    /// Not a token of this deployment (another prefix, an unknown id, or a secret that does not
    /// match: never revoke on a forged id).
    NotOurs,
}

/// One finding and what was done.
#[derive(Debug)]
#[non_exhaustive]
pub struct LeakAction {
    /// Where it was found (`path:line:column`, or `commit:path:line:column`).
    pub location: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// What was done.
    pub outcome: LeakOutcome,
    /// From the response's start to the token's revocation being durable (for revoked ones).
    pub time_to_revoke: Option<Duration>,
    /// For a token an allow comment or the baseline kept out of the report, which
    /// (`allow comment`, `baseline`): it is answered all the same.
    pub suppressed: Option<String>,
}

/// A reported token's context, as audited.
struct Seen<'a> {
    rule: &'a str,
    location: String,
    fingerprint: String,
    suppressed: Option<String>,
}

/// What a leak response did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct LeakResponse {
    /// One per Tokenward finding of the report.
    pub actions: Vec<LeakAction>,
}

impl LeakResponse {
    /// How many of ours were revoked (replaced or not).
    pub fn revoked(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| matches!(a.outcome, LeakOutcome::Replaced { .. } | LeakOutcome::Revoked { .. }))
            .count()
    }
}

impl Tokenward {
    /// Responds to a scan: every Tokenward token found that is this deployment's and active is
    /// revoked at once — if it is the current credential of a rotation this handle runs
    /// ([`Tokenward::rotate`], [`Tokenward::schedule`], [`Tokenward::manage_declared`]), revoked
    /// and replaced in that credential's emergency order ([`Tokenward::set_emergency_order`]; a
    /// declared credential's `emergency`; [`EmergencyOrder::RevokeFirst`] unless said) — and
    /// each such finding is audited (`scan_finding`).
    /// A token is treated as ours only if its secret matches its record (checked in constant
    /// time), so a forged token naming a real id revokes nothing.
    pub async fn respond_to_leaks(&self, report: &Report) -> Result<LeakResponse> {
        let start = Instant::now();
        let mut response = LeakResponse::default();
        // Suppressed tokens too: a comment or a baseline entry never keeps one of ours alive.
        let found = report.findings.iter().chain(&report.suppressed_tokens);
        for finding in found.filter(|f| f.rule == TOKENWARD_RULE) {
            use token_core::secrecy::ExposeSecret;
            let seen = Seen {
                rule: &finding.rule,
                location: finding.location.to_string(),
                fingerprint: finding.fingerprint.to_string(),
                suppressed: finding.suppressed.clone(),
            };
            response
                .actions
                .push(self.respond_to_token(finding.secret().expose_secret(), seen, start).await?);
        }
        Ok(response)
    }

    /// Revokes (or replaces) one reported token if it is ours and active, and audits it.
    async fn respond_to_token(&self, text: &str, seen: Seen<'_>, start: Instant) -> Result<LeakAction> {
        let (outcome, id) = self.judge_and_revoke(text).await?;
        let time_to_revoke = matches!(outcome, LeakOutcome::Replaced { .. } | LeakOutcome::Revoked { .. })
            .then(|| start.elapsed());
        self.audit_finding(&seen, id, &outcome).await?;
        Ok(LeakAction {
            location: seen.location,
            fingerprint: seen.fingerprint,
            outcome,
            time_to_revoke,
            suppressed: seen.suppressed,
        })
    }

    /// Whether `text` is one of ours — judged against its record read from the store, not the
    /// cache (a bounded cache may not hold it; a token not valid yet is ours all the same) — and
    /// if it is and is not revoked, revokes (or replaces) it.
    async fn judge_and_revoke(&self, text: &str) -> Result<(LeakOutcome, Option<TokenId>)> {
        let verifier = self.tokens().verifier();
        let Ok(parsed) = verifier.format().parse(text) else { return Ok((LeakOutcome::NotOurs, None)) };
        let id = parsed.id();
        let row = match self.tokens().token(id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Ok((LeakOutcome::NotOurs, None)),
            Err(token_store::StoreError::Corrupted { .. }) => {
                return Ok((LeakOutcome::Quarantined { id }, Some(id)));
            }
            Err(e) => return Err(e.into()),
        };
        let one = token_core::lookup::InMemoryLookup::new();
        one.insert(row.record);
        let outcome = match verifier.over(one).authenticate_at(text, self.clock().now()) {
            Decision::Denied(DenyReason::Revoked { .. }) => LeakOutcome::AlreadyRevoked { id },
            Decision::Denied(
                DenyReason::UnknownToken
                | DenyReason::BadSecret
                | DenyReason::Malformed(_)
                | DenyReason::UnknownDigestKey { .. },
            ) => return Ok((LeakOutcome::NotOurs, None)),
            // Its secret matches its record: ours, whether active, not valid yet, expired or used up.
            _ => match self.rotated_credential_for(id).await? {
                Some((name, target)) => {
                    let order = self.emergency_order(&name);
                    self.revoke_and_replace(&name, target, order).await?;
                    LeakOutcome::Replaced { id, name, order }
                }
                None => LeakOutcome::Revoked { id, revoked: self.revoke(id).await? },
            },
        };
        Ok((outcome, Some(id)))
    }

    /// The rotation (run through this handle) whose current credential is token `id`.
    async fn rotated_credential_for(
        &self,
        id: TokenId,
    ) -> Result<Option<(SecretName, std::sync::Arc<dyn token_rotate::RotationTarget>)>> {
        let watched: Vec<_> =
            self.inner.watched.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let handle = id.to_string();
        for (name, target) in watched {
            if self.current_credential(&name).await?.is_some_and(|c| c.handle == handle) {
                return Ok(Some((name, target)));
            }
        }
        Ok(None)
    }

    async fn audit_finding(
        &self,
        finding: &Seen<'_>,
        id: Option<TokenId>,
        outcome: &LeakOutcome,
    ) -> Result<()> {
        let Some(auditor) = self.auditor() else { return Ok(()) };
        let what = match outcome {
            LeakOutcome::Replaced { .. } => "replaced",
            LeakOutcome::Revoked { .. } => "revoked",
            LeakOutcome::AlreadyRevoked { .. } => "already_revoked",
            LeakOutcome::Quarantined { .. } => "quarantined",
            LeakOutcome::NotOurs => "not_ours",
        };
        let mut event = AuditEvent::new(self.clock().now(), Actor::System, Action::ScanFinding)
            .attr("location", finding.location.clone())
            .attr("fingerprint", finding.fingerprint.clone())
            .attr("rule", finding.rule.to_owned())
            .attr("outcome", what);
        if let Some(why) = &finding.suppressed {
            event = event.attr("suppressed", why.clone());
        }
        if let Some(id) = id {
            event = event.token(id);
        }
        auditor.emit_durable(event).await?;
        Ok(())
    }
}

#[cfg(feature = "github-alerts")]
impl Tokenward {
    /// Handles a GitHub secret-scanning partner alert delivery: `verifier` checks the signature
    /// over the raw `body` (headers [`token_scan::alerts::KEY_ID_HEADER`] and
    /// [`token_scan::alerts::SIGNATURE_HEADER`]) before anything is parsed; every reported token that
    /// is ours and active is revoked (or replaced, as in [`Tokenward::respond_to_leaks`]) and
    /// audited; the answer is the partner response body GitHub expects (token hashes only).
    pub async fn respond_to_github_alerts(
        &self,
        verifier: &token_scan::alerts::AlertVerifier,
        body: &[u8],
        key_id: Option<&str>,
        signature: Option<&str>,
    ) -> Result<(String, LeakResponse)> {
        use token_core::secrecy::ExposeSecret;
        use token_scan::alerts::{Verdict, partner_response};
        let start = Instant::now();
        let alerts = verifier.verify(body, key_id, signature)?;
        let mut response = LeakResponse::default();
        let mut verdicts = Vec::with_capacity(alerts.len());
        for alert in &alerts {
            let text = alert.token.expose_secret();
            let seen = Seen {
                rule: "github-partner-alert",
                location: if alert.url.is_empty() {
                    format!("github:{}", alert.source)
                } else {
                    alert.url.clone()
                },
                fingerprint: token_scan::Fingerprint::sha256(text.as_bytes()).to_string(),
                suppressed: None,
            };
            let action = self.respond_to_token(text, seen, start).await?;
            let verdict = match action.outcome {
                LeakOutcome::Replaced { .. }
                | LeakOutcome::Revoked { .. }
                | LeakOutcome::AlreadyRevoked { .. }
                | LeakOutcome::Quarantined { .. } => Verdict::TruePositive,
                _ => Verdict::FalsePositive,
            };
            verdicts.push((alert, verdict));
            response.actions.push(action);
        }
        Ok((partner_response(&verdicts), response))
    }
}
