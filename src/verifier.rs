//! The verifier a [`crate::Tokenward`] hands out: synchronous, no I/O, audited when the deployment
//! audits.

use std::sync::Arc;

use token_audit::AuditedVerifier;
use token_core::{Decision, Request, Verifier};
use token_store::VerifierCache;

/// Verifies tokens against the deployment's in-memory cache, in constant time, with no I/O on the
/// calling thread. With an audit log, every decision is one audit event (queued, written by the
/// log's own thread); in fail-closed mode a decision that cannot be recorded is a denial. Cheap to
/// clone; `Send + Sync`.
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Plain(Verifier<Arc<VerifierCache>>),
    Audited(AuditedVerifier<Arc<VerifierCache>>),
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier").field("audited", &self.is_audited()).finish_non_exhaustive()
    }
}

impl TokenVerifier {
    pub(crate) fn plain(v: Verifier<Arc<VerifierCache>>) -> Self {
        Self { inner: Inner::Plain(v) }
    }

    pub(crate) fn audited(v: AuditedVerifier<Arc<VerifierCache>>) -> Self {
        Self { inner: Inner::Audited(v) }
    }

    /// Whether decisions are recorded in the audit log.
    pub fn is_audited(&self) -> bool {
        matches!(self.inner, Inner::Audited(_))
    }

    /// Verifies `token` for `request` now (on the deployment's clock).
    pub fn verify(&self, token: &str, request: &Request) -> Decision {
        self.verify_from(token, request, None)
    }

    /// Verifies `token` for `request` now, recording the request's `source` (an address or host).
    pub fn verify_from(&self, token: &str, request: &Request, source: Option<&str>) -> Decision {
        match &self.inner {
            Inner::Plain(v) => v.verify(token, request),
            Inner::Audited(v) => v.verify_from(token, request, source),
        }
    }

    /// The unaudited verifier underneath (for authentication without a request, or `*_at` forms).
    pub fn unaudited(&self) -> &Verifier<Arc<VerifierCache>> {
        match &self.inner {
            Inner::Plain(v) => v,
            Inner::Audited(v) => v.inner(),
        }
    }
}
