//! The verifier a [`crate::Tokenward`] hands out: synchronous, no I/O, audited when the deployment
//! audits.

use std::sync::Arc;

use token_audit::{AuditedVerifier, Auditor, SubjectKey, summary::VerificationSummary};
use token_core::{Decision, Request, Thumbprint, Verifier, clocks::Clock};
use token_store::{TokenService, cache::VerifierCache};

/// The auditor, the key malformed presentations are hashed under, and the summary allowed
/// verifications are counted into.
type Audit = (Auditor, Option<SubjectKey>, Option<VerificationSummary>);

/// Verifies tokens against the deployment's in-memory cache, in constant time, with no I/O on the
/// calling thread. With an audit log, every decision is one audit event (queued, written by the
/// log's own thread); in fail-closed mode a decision that cannot be recorded is a denial. Cheap to
/// clone; `Send + Sync`.
#[derive(Clone)]
pub struct TokenVerifier {
    /// One reference count to clone (services clone their verifier per request).
    inner: Arc<Inner>,
}

struct Inner {
    plain: Verifier<Arc<VerifierCache>>,
    tokens: Arc<TokenService>,
    audit: Option<Audit>,
    audited: Option<AuditedVerifier<Arc<VerifierCache>>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").field("audited", &self.is_audited()).finish_non_exhaustive()
    }
}

impl TokenVerifier {
    pub(crate) fn new(
        plain: Verifier<Arc<VerifierCache>>,
        tokens: Arc<TokenService>,
        audit: Option<Audit>,
    ) -> Self {
        let audited = audit.as_ref().map(|(auditor, key, summary)| {
            let mut v = AuditedVerifier::new(plain.clone(), auditor.clone());
            if let Some(k) = key {
                v = v.with_subject_key(k.clone());
            }
            if let Some(s) = summary {
                v = v.summarized(s.clone());
            }
            v
        });
        Self { inner: Arc::new(Inner { plain, tokens, audit, audited }) }
    }

    /// The same verifier reading `clock` instead of the deployment's (to show what a decision
    /// will be at another time; still audited).
    #[must_use]
    pub fn with_clock(&self, clock: Arc<dyn Clock>) -> Self {
        Self::new(
            self.inner.plain.clone().with_clock(clock),
            Arc::clone(&self.inner.tokens),
            self.inner.audit.clone(),
        )
    }

    /// Whether decisions are recorded in the audit log.
    pub fn is_audited(&self) -> bool {
        self.inner.audited.is_some()
    }

    /// Verifies `token` for `request` now (on the deployment's clock).
    pub fn verify(&self, token: &str, request: &Request) -> Decision {
        self.verify_from(token, request, None)
    }

    /// Verifies `token` for `request` now, recording the request's `source` (an address or host).
    pub fn verify_from(&self, token: &str, request: &Request, source: Option<&str>) -> Decision {
        self.verify_with_proof_from(token, None, request, source)
    }

    /// [`TokenVerifier::verify_from`] for a token presented with a proof of possession of the key
    /// whose thumbprint is `proof` — a DPoP proof the caller verified — when there is one: a token
    /// bound to a key is allowed only with a proof by that key
    /// ([`token_core::Verifier::verify_with_proof_at`]); presented without one it is
    /// [`token_core::DenyReason::ProofRequired`].
    pub fn verify_with_proof_from(
        &self,
        token: &str,
        proof: Option<&Thumbprint>,
        request: &Request,
        source: Option<&str>,
    ) -> Decision {
        match &self.inner.audited {
            None => {
                let plain = &self.inner.plain;
                plain
                    .verify_identified_with_proof_at_millis(token, proof, request, plain.clock().now_millis())
                    .0
            }
            Some(v) => v.verify_with_proof_from(token, proof, request, source),
        }
    }

    /// Whether the deployment's cache is bounded: then verify with [`TokenVerifier::verify_async`].
    pub fn is_bounded(&self) -> bool {
        self.inner.tokens.cache().bounded_config().is_some()
    }

    /// Verifies `token` for `request` now, reading its record from the store first if a bounded
    /// cache does not hold it (one indexed read, shared by concurrent presentations of the same
    /// token; unknown ids remembered briefly). With a full cache this is [`TokenVerifier::verify`]
    /// and never waits. A read that cannot be made is a denial
    /// ([`token_core::DenyReason::LookupUnavailable`]), audited like any other.
    pub async fn verify_async(&self, token: &str, request: &Request) -> Decision {
        self.verify_from_async(token, request, None).await
    }

    /// [`TokenVerifier::verify_async`] recording the request's `source`.
    pub async fn verify_from_async(&self, token: &str, request: &Request, source: Option<&str>) -> Decision {
        self.verify_with_proof_from_async(token, None, request, source).await
    }

    /// [`TokenVerifier::verify_from_async`] with a proof of possession's key, as
    /// [`TokenVerifier::verify_with_proof_from`].
    pub async fn verify_with_proof_from_async(
        &self,
        token: &str,
        proof: Option<&Thumbprint>,
        request: &Request,
        source: Option<&str>,
    ) -> Decision {
        if let Err(reason) = self.fetch(token).await {
            return match &self.inner.audited {
                None => Decision::Denied(reason),
                Some(v) => v.record_denial(token, reason, request, source),
            };
        }
        self.verify_with_proof_from(token, proof, request, source)
    }

    /// Refuses `token` for a request no scope maps to, recording `refused` (what was asked, e.g.
    /// `GET /logs/../admin`) and the `source`. The token is authenticated first: one that is not
    /// valid is denied for that (revoked, expired…), a valid one
    /// [`token_core::DenyReason::OutOfScope`]. Audited like any verification (every refusal is an
    /// entry, in summarized mode too).
    pub fn refuse_unmapped_from(&self, token: &str, refused: &str, source: Option<&str>) -> Decision {
        match &self.inner.audited {
            None => match self.inner.plain.authenticate_at(token, self.inner.plain.clock().now()) {
                Decision::Allowed(_) => Decision::Denied(token_core::DenyReason::OutOfScope),
                denied => denied,
            },
            Some(v) => v.refuse_unmapped(token, refused, source),
        }
    }

    /// [`TokenVerifier::refuse_unmapped_from`], reading the token's record first when a bounded
    /// cache does not hold it (as [`TokenVerifier::verify_from_async`] does).
    pub async fn refuse_unmapped_from_async(
        &self,
        token: &str,
        refused: &str,
        source: Option<&str>,
    ) -> Decision {
        if let Err(reason) = self.fetch(token).await {
            return match &self.inner.audited {
                None => Decision::Denied(reason),
                Some(v) => v.record_refusal(token, reason, refused, source),
            };
        }
        self.refuse_unmapped_from(token, refused, source)
    }

    /// A bounded cache's read of `token` (and its ancestors) before deciding; a read that cannot
    /// be made is the denial [`token_core::DenyReason::LookupUnavailable`].
    async fn fetch(&self, token: &str) -> Result<(), token_core::DenyReason> {
        self.inner.tokens.fetch_missing(token).await.map_err(|e| {
            tracing::warn!(error = %e, "token lookup unavailable; the presentation is denied");
            token_core::DenyReason::LookupUnavailable
        })
    }

    /// Records a request refused before any token was read (`code`: `missing_token`,
    /// `invalid_request`; `refused`: what was asked). `false`: auditing fails closed and the
    /// entry could not be recorded. Without an audit log, `true`.
    pub fn record_tokenless(&self, code: &str, refused: &str, source: Option<&str>) -> bool {
        self.inner.audited.as_ref().is_none_or(|v| v.record_tokenless(code, refused, source))
    }

    /// Whether `token` must be read from the store before the cache can answer for it (a bounded
    /// cache that does not hold it and does not remember it as unknown): then
    /// [`TokenVerifier::verify_async`] waits for a read; otherwise it answers at once.
    pub fn needs_fetch(&self, token: &str) -> bool {
        self.inner.tokens.needs_fetch(token)
    }

    /// The unaudited verifier underneath (for authentication without a request, or `*_at` forms).
    pub fn unaudited(&self) -> &Verifier<Arc<VerifierCache>> {
        &self.inner.plain
    }
}
