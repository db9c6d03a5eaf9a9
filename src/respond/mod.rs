//! Leak response (feature `scan`): what a scan (or a GitHub partner alert) found that is one of
//! this deployment's own tokens is revoked — or, when it is the current credential of a rotation
//! this handle runs, revoked and replaced in an emergency — and what is the current secret of any
//! other credential this handle manages (an AWS access key, an OpenBao token, a sealed secret's
//! value; matched by keyed fingerprint, [`crate::managed`]) is revoked and replaced in its
//! emergency order, its previous secret revoked early. Every finding is recorded in the audit log
//! (`scan_finding`, with its location and fingerprint, never the secret). Nothing that matches
//! no managed credential is ever revoked or disabled.
//!
//! This module holds what a response reports and the response itself; `tokens` answers this
//! deployment's own tokens, `credentials` the managed credentials' secrets, `github` a GitHub
//! secret-scanning partner alert.

mod credentials;
#[cfg(feature = "github-alerts")]
mod github;
mod tokens;

use std::time::{Duration, Instant};

use token_audit::{Action, Actor, AuditEvent};
use token_core::{Thumbprint, TokenId};
use token_rotate::EmergencyOrder;
use token_scan::{Report, TOKENWARD_RULE};
use token_store::SecretName;

use crate::deployment::Tokenward;
use crate::error::Result;
use crate::managed::ManagedIndex;

/// The target of this module's log lines, whichever file writes them: what an operator filters
/// on (`TOKENWARD_LOG=tokenward::respond=info`) stays put when the code moves.
const LOG_TARGET: &str = "tokenward::respond";

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
    /// match: never revoke on a forged id), nor the current or previous secret of a credential
    /// this handle manages: reported, never touched.
    NotOurs,
    /// The current secret of a credential this handle manages that is not a Tokenward token (an
    /// AWS access key's secret key or its id, an OpenBao token, a sealed secret's value; matched
    /// by keyed fingerprint): revoked and replaced in its emergency order
    /// ([`Tokenward::revoke_and_replace`]; a declared credential's `emergency`).
    CredentialReplaced {
        /// The credential.
        name: SecretName,
        /// The leaked credential's public handle (an access key id, an accessor, a KV version).
        handle: String,
        /// The order it was replaced in.
        order: EmergencyOrder,
    },
    /// The previous secret of a credential this handle manages, still alive in its overlap:
    /// revoked at its target at once (not when the overlap ends); the current one is untouched.
    PreviousRevoked {
        /// The credential.
        name: SecretName,
        /// The leaked credential's public handle.
        handle: String,
    },
    /// A credential version this response has answered already (the same secret found in
    /// another place, or a token whose credential was replaced): nothing more to do.
    AlreadyAnswered {
        /// The credential.
        name: SecretName,
        /// The leaked credential's public handle.
        handle: String,
    },
    /// A credential this handle manages whose emergency did not finish (its provider refused or
    /// did not answer). The emergency stays recorded: the next response, `rotate` or the upkeep
    /// finishes it. The other findings are answered all the same.
    Failed {
        /// The credential.
        name: SecretName,
        /// The leaked credential's public handle.
        handle: String,
        /// Why (the rotator's error: never a secret).
        error: String,
    },
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
    /// The risk window, for what was revoked: from the response's start (the finding in hand) to
    /// the token's revocation being durable, or to the old credential being revoked at its
    /// provider (an access key deactivated, an OpenBao token revoked).
    pub time_to_revoke: Option<Duration>,
    /// For a token an allow comment or the baseline kept out of the report, which
    /// (`allow comment`, `baseline`): it is answered all the same.
    pub suppressed: Option<String>,
    /// For a token of ours bound to a key (DPoP), that key's thumbprint: a copy alone could not
    /// be used, so the leak is less severe — and it is answered all the same (revoked, or
    /// replaced), since the key may have leaked with it.
    pub bound_to: Option<Thumbprint>,
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
    /// One per Tokenward finding of the report, and one per other finding when this handle
    /// manages credentials.
    pub actions: Vec<LeakAction>,
}

impl LeakOutcome {
    /// Whether this response revoked something of ours (replaced or not).
    pub fn revoked(&self) -> bool {
        matches!(
            self,
            Self::Replaced { .. }
                | Self::Revoked { .. }
                | Self::CredentialReplaced { .. }
                | Self::PreviousRevoked { .. }
        )
    }

    /// What the audit entry's `outcome` says.
    fn name(&self) -> &'static str {
        match self {
            Self::Replaced { .. } | Self::CredentialReplaced { .. } => "replaced",
            Self::Revoked { .. } => "revoked",
            Self::AlreadyRevoked { .. } => "already_revoked",
            Self::Quarantined { .. } => "quarantined",
            Self::NotOurs => "not_ours",
            Self::PreviousRevoked { .. } => "previous_revoked",
            Self::AlreadyAnswered { .. } => "already_answered",
            Self::Failed { .. } => "failed",
        }
    }
}

impl LeakResponse {
    /// How many of ours were revoked (replaced or not).
    pub fn revoked(&self) -> usize {
        self.actions.iter().filter(|a| a.outcome.revoked()).count()
    }
}

/// One response's view of the managed credentials: built on the first finding that needs it, and
/// what it has answered so far (an answered version found again is not answered twice).
#[derive(Default)]
struct Answering {
    index: Option<ManagedIndex>,
    answered: Vec<(String, String)>,
}

impl Answering {
    fn answered(&self, name: &SecretName, handle: &str) -> bool {
        self.answered.iter().any(|(n, h)| n == name.as_str() && h == handle)
    }
}

impl Tokenward {
    /// Responds to a scan. Every Tokenward token found that is this deployment's and active is
    /// revoked at once — if it is the current credential of a rotation this handle runs
    /// ([`Tokenward::rotate`], [`Tokenward::schedule`], [`Tokenward::manage_declared`]), revoked
    /// and replaced in that credential's emergency order ([`Tokenward::set_emergency_order`]; a
    /// declared credential's `emergency`; [`EmergencyOrder::RevokeFirst`] unless said).
    /// Every other finding that is the current secret of a credential this handle manages (an
    /// AWS access key's secret key, or its access key id; an OpenBao token; a sealed secret's
    /// value) is answered the same way ([`LeakOutcome::CredentialReplaced`]), and its previous
    /// secret, still alive in its overlap, is revoked early ([`LeakOutcome::PreviousRevoked`]).
    /// Each finding is audited (`scan_finding`, with its outcome).
    ///
    /// A token is treated as ours only if its secret matches its record (checked in constant
    /// time), so a forged token naming a real id revokes nothing; another credential only if the
    /// finding's keyed fingerprint equals that of its current or previous secret (or, for an AWS
    /// key, of its id), compared in constant time. Nothing else is ever revoked or disabled.
    ///
    /// A token bound to a key (DPoP) is less severe — a copy alone cannot be used — but it is
    /// revoked all the same (the key may have leaked with it); its action names the key
    /// ([`LeakAction::bound_to`]).
    pub async fn respond_to_leaks(&self, report: &Report) -> Result<LeakResponse> {
        use token_core::secrecy::ExposeSecret;
        let start = Instant::now();
        let mut response = LeakResponse::default();
        let mut answering = Answering::default();
        // Suppressed tokens too: a comment or a baseline entry never keeps one of ours alive.
        for finding in report.findings.iter().chain(&report.suppressed_tokens) {
            let seen = Seen {
                rule: &finding.rule,
                location: finding.location.to_string(),
                fingerprint: finding.fingerprint.to_string(),
                suppressed: finding.suppressed.clone(),
            };
            let text = finding.secret().expose_secret();
            let action = if finding.rule == TOKENWARD_RULE {
                self.respond_to_token(text, seen, start, &mut answering).await?
            } else if self.manages_credentials() {
                self.respond_to_credential(text, seen, start, &mut answering).await?
            } else {
                continue;
            };
            response.actions.push(action);
        }
        Ok(response)
    }

    /// Whether any credential is rotated through this handle.
    fn manages_credentials(&self) -> bool {
        !self.inner.watched.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Records a finding and what was done (`scan_finding`); for a managed credential, its name,
    /// its public handle and the risk window in milliseconds; for a token bound to a key, the
    /// key's thumbprint. Never the secret, never a keyed fingerprint of the response's.
    async fn audit_finding(
        &self,
        finding: &Seen<'_>,
        id: Option<TokenId>,
        outcome: &LeakOutcome,
        credential: Option<(&SecretName, &str, Option<Duration>)>,
        bound_to: Option<&Thumbprint>,
    ) -> Result<()> {
        let Some(auditor) = self.auditor() else { return Ok(()) };
        let mut event = AuditEvent::new(self.clock().now(), Actor::System, Action::ScanFinding)
            .attr("location", finding.location.clone())
            .attr("fingerprint", finding.fingerprint.clone())
            .attr("rule", finding.rule.to_owned())
            .attr("outcome", outcome.name());
        if let Some((name, handle, window)) = credential {
            event = event.attr("credential", name.as_str()).attr("handle", handle.to_owned());
            if let Some(w) = window {
                event = event.attr("revoked_after_ms", w.as_millis().to_string());
            }
        }
        if let LeakOutcome::Failed { error, .. } = outcome {
            event = event.attr("error", error.clone());
        }
        if let Some(why) = &finding.suppressed {
            event = event.attr("suppressed", why.clone());
        }
        if let Some(id) = id {
            event = event.token(id);
        }
        if let Some(key) = bound_to {
            event = event.attr("bound_to", key.to_string());
        }
        auditor.emit_durable(event).await?;
        Ok(())
    }
}
