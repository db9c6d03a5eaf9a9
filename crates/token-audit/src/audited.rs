//! A verifier that records every decision.

use token_core::{Decision, DenyReason, Request, Verifier, lookup::TokenLookup};

use crate::event::{Action, Actor, AuditEvent, Outcome};
use crate::sink::{Auditor, FailureMode};
use crate::subject::SubjectKey;
use crate::summary::VerificationSummary;
use crate::verification::AllowedVerification;

/// Wraps a [`Verifier`]: every verification becomes one event (`verify_allowed` by the token's
/// principal, or `verify_denied` with the reason's code, by an anonymous presenter), with the token
/// id, the request and the source. A malformed presentation is recorded by its keyed hash only (it
/// may be a mistyped real token). In fail-closed mode a verification whose event cannot be
/// recorded is denied ([`DenyReason::AuditUnavailable`]).
///
/// [`AuditedVerifier::summarized`] keeps every denial an event of its own and counts allowed
/// verifications into a [`VerificationSummary`] instead (one entry per token, request and source
/// per interval).
#[derive(Clone)]
pub struct AuditedVerifier<L> {
    inner: Verifier<L>,
    auditor: Auditor,
    subjects: Option<SubjectKey>,
    summary: Option<VerificationSummary>,
}

impl<L> std::fmt::Debug for AuditedVerifier<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditedVerifier").field("auditor", &self.auditor).finish_non_exhaustive()
    }
}

impl<L: TokenLookup> AuditedVerifier<L> {
    /// Records `inner`'s decisions through `auditor`.
    pub fn new(inner: Verifier<L>, auditor: Auditor) -> Self {
        Self { inner, auditor, subjects: None, summary: None }
    }

    /// Counts allowed verifications into `summary` instead of one event each (denials stay
    /// events of their own, recorded through this verifier's auditor at once).
    pub fn summarized(mut self, summary: VerificationSummary) -> Self {
        self.summary = Some(summary);
        self
    }

    /// The summary allowed verifications are counted into, if any.
    pub fn summary(&self) -> Option<&VerificationSummary> {
        self.summary.as_ref()
    }

    /// Records malformed presentations by their HMAC under `key` (without it, not at all).
    pub fn with_subject_key(mut self, key: SubjectKey) -> Self {
        self.subjects = Some(key);
        self
    }

    /// The wrapped verifier.
    pub fn inner(&self) -> &Verifier<L> {
        &self.inner
    }

    /// Verifies `token` for `request` now, and records it.
    pub fn verify(&self, token: &str, request: &Request) -> Decision {
        self.verify_from(token, request, None)
    }

    /// Verifies `token` for `request` now, and records it with the request's `source` (address or host).
    pub fn verify_from(&self, token: &str, request: &Request, source: Option<&str>) -> Decision {
        self.verify_with_proof_from(token, None, request, source)
    }

    /// [`AuditedVerifier::verify_from`] for a token presented with a proof of possession of the
    /// key whose thumbprint is `proof` (a verified DPoP proof), when there is one
    /// ([`Verifier::verify_with_proof_at`]).
    pub fn verify_with_proof_from(
        &self,
        token: &str,
        proof: Option<&token_core::Thumbprint>,
        request: &Request,
        source: Option<&str>,
    ) -> Decision {
        let now_ms = self.inner.clock().now_millis();
        let (decision, presented) =
            self.inner.verify_identified_with_proof_at_millis(token, proof, request, now_ms);
        if let Decision::Allowed(grant) = &decision {
            let recorded = match &self.summary {
                Some(summary) => summary.count_at_millis(grant, request, source, now_ms),
                None => {
                    let v = AllowedVerification::at_millis(now_ms, grant, request, source);
                    // Fail-open never errs (a lost event is counted).
                    self.auditor.emit_allowed(v).is_ok()
                }
            };
            return if recorded { decision } else { Decision::Denied(DenyReason::AuditUnavailable) };
        }
        let Decision::Denied(reason) = &decision else { return decision };
        let now = token_core::chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
        self.record(now, token, decision.clone(), reason, presented, Asked::Request(request), source)
    }

    /// Records a denial decided outside the verifier (a bounded cache that could not read the
    /// token's record: [`DenyReason::LookupUnavailable`]) like any other, and returns it (or
    /// [`DenyReason::AuditUnavailable`] if fail-closed and it cannot be recorded).
    pub fn record_denial(
        &self,
        token: &str,
        reason: DenyReason,
        request: &Request,
        source: Option<&str>,
    ) -> Decision {
        self.record_denied(token, reason, Asked::Request(request), source)
    }

    /// Refuses `token` for a request no scope maps to, and records it. The token is authenticated
    /// first (not counted as a use): one that is not valid is denied for that (revoked,
    /// expired, malformed…), a valid one [`DenyReason::OutOfScope`]. `refused` says what was asked
    /// (a method and path, say); it is the entry's `refused` attribute. In fail-closed mode a
    /// refusal that cannot be recorded is [`DenyReason::AuditUnavailable`].
    pub fn refuse_unmapped(&self, token: &str, refused: &str, source: Option<&str>) -> Decision {
        let reason = match self.inner.authenticate_at(token, self.inner.clock().now()) {
            Decision::Allowed(_) => DenyReason::OutOfScope,
            Decision::Denied(reason) => reason,
        };
        self.record_refusal(token, reason, refused, source)
    }

    /// [`AuditedVerifier::record_denial`] for a request no scope maps to (`refused`: what was
    /// asked).
    pub fn record_refusal(
        &self,
        token: &str,
        reason: DenyReason,
        refused: &str,
        source: Option<&str>,
    ) -> Decision {
        self.record_denied(token, reason, Asked::Refused(refused), source)
    }

    /// Records a denial decided before the verifier ran (the token is parsed for its id only).
    fn record_denied(
        &self,
        token: &str,
        reason: DenyReason,
        asked: Asked<'_>,
        source: Option<&str>,
    ) -> Decision {
        let now = self.inner.clock().now();
        let presented = self.inner.format().parse(token).ok().map(|p| p.id());
        self.record(now, token, Decision::Denied(reason.clone()), &reason, presented, asked, source)
    }

    /// Records a request refused before any token was read: `code` says why (`missing_token`,
    /// `invalid_request`), `refused` what was asked. `false`: it could not be recorded and
    /// auditing fails closed (answer that the log is unavailable, not the refusal).
    pub fn record_tokenless(&self, code: &str, refused: &str, source: Option<&str>) -> bool {
        let mut event = AuditEvent::new(
            self.inner.clock().now(),
            Actor::Anonymous,
            Action::VerifyDenied(code.to_owned()),
        )
        .outcome(Outcome::Failure("no token was read".to_owned()))
        .attr("refused", refused);
        if let Some(s) = source {
            event = event.source(s);
        }
        self.auditor.emit(event).is_ok() || self.auditor.mode() != FailureMode::FailClosed
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        now: token_core::chrono::DateTime<token_core::chrono::Utc>,
        token: &str,
        decision: Decision,
        reason: &DenyReason,
        presented: Option<token_core::TokenId>,
        asked: Asked<'_>,
        source: Option<&str>,
    ) -> Decision {
        let mut event =
            AuditEvent::new(now, Actor::Anonymous, Action::VerifyDenied(reason.code().to_owned()))
                .outcome(Outcome::Failure(reason.to_string()));
        match presented {
            Some(id) => event = event.token(id),
            None => event.subject_hmac = self.subjects.as_ref().map(|k| k.hash(token.as_bytes())),
        }
        match asked {
            Asked::Request(request) => {
                // Sized once: growing through `to_string` would reallocate a few times per
                // verification.
                let mut text = String::with_capacity(96);
                let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{request}"));
                event = event.attr("request", text);
            }
            Asked::Refused(refused) => event = event.attr("refused", refused),
        }
        if let Some(s) = source {
            event = event.source(s);
        }
        match self.auditor.emit(event) {
            Ok(_) => decision,
            Err(_) if self.auditor.mode() == FailureMode::FailClosed => {
                Decision::Denied(DenyReason::AuditUnavailable)
            }
            Err(_) => decision,
        }
    }
}

/// What a denial was for: a scope, or a request no scope maps to (described).
#[derive(Clone, Copy)]
enum Asked<'a> {
    Request(&'a Request),
    Refused(&'a str),
}
