//! Why an exchange was refused ([`ExchangeError`]): a leaf, so the front door's error can wrap it.

/// Why an exchange was refused. Never holds the subject token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The handle trusts no issuer ([`crate::Tokenward::federate`] was not called, or the policy has no
    /// `[[federation]]`).
    #[error("no federation is trusted by this deployment")]
    NotConfigured,
    /// No federation trusts the subject token's issuer (as the token claims it; not verified).
    #[error("no federation trusts the issuer {0:?}")]
    UntrustedIssuer(String),
    /// The subject token is not valid (signature, issuer, audience, times, a replayed `jti`…).
    #[error("the subject token: {0}")]
    Subject(#[from] token_oidc::JwtError),
    /// The token is valid, but a bound claim does not match in any federation of its issuer.
    #[error("federation {federation}: {error}")]
    Claims {
        /// The first federation of the issuer.
        federation: String,
        /// What did not match.
        error: token_oidc::ClaimError,
    },
    /// The DPoP proof the key was shown with cannot be spent: it was used before (a replay), or
    /// the proof replay cache is full.
    #[error("the DPoP proof: {0}")]
    Proof(#[source] token_oidc::DpopError),
    /// The federation grants only key-bound tokens, and no key was given.
    #[error("federation {0} grants only key-bound tokens: exchange with a DPoP proof")]
    BindingRequired(String),
    /// A longer token than the federation's `max_ttl` was asked for.
    #[error("federation {federation}: requested {requested} but at most {max}")]
    TtlTooLong {
        /// The federation.
        federation: String,
        /// What was asked.
        requested: String,
        /// Its `max_ttl`.
        max: String,
    },
    /// A scope outside the federation's `scopes` was asked for.
    #[error("federation {federation}: scope {scope} may not be granted")]
    ScopeNotAllowed {
        /// The federation.
        federation: String,
        /// The scope.
        scope: String,
    },
    /// The principal's roles refuse the token (a scope they do not grant, a lifetime above a
    /// role's).
    #[error("federation {federation}: {error}")]
    Issue {
        /// The federation.
        federation: String,
        /// The policy's refusal.
        error: token_core::IssueError,
    },
}

impl ExchangeError {
    /// A short, stable name for the audit entry and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::UntrustedIssuer(_) => "untrusted_issuer",
            Self::Subject(_) => "invalid_subject_token",
            Self::Claims { .. } => "claims_mismatch",
            Self::Proof(_) => "invalid_dpop_proof",
            Self::BindingRequired(_) => "binding_required",
            Self::TtlTooLong { .. } => "ttl_too_long",
            Self::ScopeNotAllowed { .. } => "scope_not_allowed",
            Self::Issue { .. } => "policy_refused",
        }
    }
}
