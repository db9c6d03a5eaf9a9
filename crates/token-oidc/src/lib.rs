//! # token-oidc
//!
//! The verification core of Tokenward's federation: a workload with no stored secret proves who
//! it is with its platform's OIDC token (GitHub Actions, GitLab CI, a Kubernetes service
//! account, any OIDC issuer), and proves possession of a key with DPoP proofs (RFC 9449).
//!
//! - [`JwtValidator`]: one issuer's JWTs, validated as a security library must — RS256, ES256
//!   and EdDSA only (an allow-list per issuer); `alg: none`, any HMAC, an `alg` the key does
//!   not serve, `crit` headers and unknown `kid`s refused; `iss`, `aud` (required, exact),
//!   `exp`, `nbf`, `iat` with a small bounded skew; a maximum size and lifetime; a `jti` never
//!   accepted twice within the token's life ([`ReplayCache`], bounded, refusing when full).
//! - [`IssuerKeys`]: the issuer's JWKS, pinned (a file, for air-gapped use) or fetched through
//!   `token-http` (TLS, a size cap, timeouts, no redirects), cached, refreshed, and refetched
//!   on an unknown `kid` at most once per minimum interval.
//! - [`ClaimRules`]: what the claims must say (every rule exact, or a `*` glob where said), by
//!   a [`Preset`]'s documented claim names.
//! - [`DpopVerifier`]: DPoP proofs checked as RFC 9449 §4.3 lists, answering each failure with
//!   its RFC error code; the proof key's RFC 7638 [`Thumbprint`] is what a token binds to.
//!
//! Time comes from an injected clock; every time-dependent call has an `*_at(now)` form. No
//! error and no `Debug` output holds a token or a proof. Signatures are verified by
//! jsonwebtoken's RustCrypto backend (p256 0.14, ed25519-dalek 3, rsa 0.10): the workspace's
//! one crypto generation (docs/federation.md, "JOSE", says why).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use token_oidc::{ClaimRules, IssuerKeys, Jwks, JwtValidator, Preset};
//!
//! // An issuer's keys pinned from a file (or `IssuerKeys::remote(url).build()?`).
//! let keys = IssuerKeys::pinned(Jwks::parse(br#"{"keys": []}"#)?);
//! let github = JwtValidator::builder("https://token.actions.githubusercontent.com", "tokenward", keys)
//!     .build()?;
//! let rules = ClaimRules::new(Preset::GitHubActions)
//!     .require("repository", "acme/api")?
//!     .require_glob("ref", "refs/heads/release-*")?;
//! match github.validate("eyJ…").await {
//!     Ok(token) => println!("{} matched {:?}", token.subject(), rules.check(&token)?),
//!     Err(refused) => println!("refused: {refused}"),
//! }
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod claims;
mod dpop;
mod error;
mod jwk;
mod jwks;
mod jws;
mod jwt;
pub mod limits;
mod replay;

pub use claims::{ClaimRules, Preset};
pub use dpop::{DpopProof, DpopRequest, DpopVerifier, DpopVerifierBuilder, access_token_hash};
pub use error::{ClaimError, ConfigError, DpopError, DpopErrorCode, JwksError, JwtError};
pub use jwk::{PublicJwk, Thumbprint};
pub use jwks::{IssuerKeys, Jwks, RemoteKeysBuilder};
pub use jws::Algorithm;
pub use jwt::{JwtValidator, JwtValidatorBuilder, VerifiedJwt};
pub use replay::ReplayCache;

/// Parser entry points for the fuzz targets (`cargo fuzz` builds with `--cfg fuzzing`).
#[cfg(fuzzing)]
pub mod fuzzing {
    /// Takes a compact JWS apart (size cap, base64url, strict JSON, header rules) as both
    /// validators do; `true` if it parsed.
    pub fn parse_compact(input: &str) -> bool {
        crate::jws::parse(input, crate::limits::MAX_TOKEN_CEILING, &crate::Algorithm::ALL).is_ok()
    }

    /// Reads a JWK as a DPoP proof's header carries it; its thumbprint if it is usable.
    pub fn parse_jwk(input: &[u8]) -> Option<crate::Thumbprint> {
        match crate::jws::strict_json(input) {
            Ok(serde_json::Value::Object(m)) => {
                crate::jwk::PublicJwk::from_map(&m, true).ok().map(|k| k.thumbprint())
            }
            _ => None,
        }
    }

    /// Normalises an `htu` as DPoP verification does.
    pub fn normalise_uri(input: &str) -> Option<String> {
        crate::dpop::normalise_uri(input)
    }

    /// Validates `input` as a subject token of a fixed issuer whose JWKS holds RFC 9449's
    /// example P-256 key (kid `k`), at a fixed instant; `true` if it was accepted.
    pub fn validate_jwt(input: &str) -> bool {
        use std::sync::OnceLock;
        static VALIDATOR: OnceLock<Option<crate::JwtValidator>> = OnceLock::new();
        let validator = VALIDATOR.get_or_init(|| {
            let jwks = crate::Jwks::parse(
                br#"{"keys":[{"kty":"EC","kid":"k","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}]}"#,
            )
            .ok()?;
            crate::JwtValidator::builder("https://issuer.example", "tokenward", crate::IssuerKeys::pinned(jwks))
                .build()
                .ok()
        });
        let Some(validator) = validator else { return false };
        let now = token_core::chrono::DateTime::from_timestamp(1_562_262_616, 0).unwrap_or_default();
        // Pinned keys never wait: one poll finishes the validation.
        let mut fut = std::pin::pin!(validator.validate_at(input, now));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        matches!(fut.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(_)))
    }

    /// Verifies `proof` as a DPoP proof for `POST uri` at a fixed instant (RFC 9449's first
    /// example's); the proof's thumbprint if it was accepted.
    pub fn verify_dpop(proof: &str, uri: &str) -> Option<crate::Thumbprint> {
        let verifier = crate::DpopVerifier::builder().build().ok()?;
        let now = token_core::chrono::DateTime::from_timestamp(1_562_262_616, 0)?;
        verifier.verify_at(proof, &crate::DpopRequest::new("POST", uri), now).ok().map(|p| p.thumbprint())
    }

    /// Whether `text` matches the claim glob `pattern`.
    pub fn glob_match(pattern: &str, text: &str) -> bool {
        let parts: Vec<String> = pattern.split('*').map(str::to_owned).collect();
        crate::claims::glob_match(&parts, text)
    }
}
