//! # token-core
//!
//! Tokenward's token model: the presented token format, secrets, scopes, roles, the issuing
//! policy, expiry, and verification.
//!
//! A token looks like `acme_prod_3fQm…`: an issuer prefix a scanner recognises, a public id
//! (the lookup key, safe to log), a 256-bit secret, and a CRC-32 checksum that lets a scanner
//! confirm a match offline. The issuer stores only an HMAC-SHA256 digest of the secret under a
//! server-side key and compares it in constant time; the plaintext is handed out once, at issue.
//!
//! ```
//! use std::sync::Arc;
//! use chrono::{TimeDelta, Utc};
//! use token_core::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A role grants scopes, with a cap on token lifetime; a principal holds roles.
//! let policy = Policy::builder()
//!     .role(Role::parse("log-reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1))?)
//!     .build()?;
//! let principal = Principal::parse("billing-api", ["log-reader"])?;
//!
//! let format = TokenFormat::new(TokenPrefix::new("acme_prod")?);
//! let keys = digest::DigestKeyring::new(digest::DigestKey::generate(1)?);
//! let issuer = Issuer::new(format.clone(), keys.clone(), policy);
//! let tokens = Arc::new(lookup::InMemoryLookup::new());
//!
//! // Issue a least-privilege token: one scope, 15 minutes.
//! let request = IssueRequest::parse("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))?;
//! let now = Utc::now();
//! let token = tokens.issue_at(&issuer, &principal, &request, now)?;
//!
//! let verifier = Verifier::new(format, keys, Arc::clone(&tokens));
//! let read = Request::parse("s3:bucket/prod-logs/app.log:read")?;
//! assert!(verifier.verify_at(token.expose_secret(), &read, now).is_allowed());
//!
//! let write = Request::parse("s3:bucket/prod-logs/app.log:write")?;
//! assert_eq!(verifier.verify_at(token.expose_secret(), &write, now).reason(), Some(&DenyReason::OutOfScope));
//!
//! let later = now + TimeDelta::minutes(16);
//! assert!(matches!(
//!     verifier.verify_at(token.expose_secret(), &read, later).reason(),
//!     Some(DenyReason::Expired { .. })
//! ));
//! # Ok(()) }
//! ```
//!
//! Secrets never appear in `Debug` or `Display` output, nor in any error.

#![deny(missing_docs)]

mod base62;
mod binding;
mod clock;
mod decision;
pub mod duration;
mod error;
mod format;
pub mod hex;
mod issue;
mod memory;
mod policy;
pub mod private_fs;
mod record;
mod role;
mod scope;
mod secret;
mod verify;
mod view;

pub use binding::Thumbprint;
pub use decision::{Decision, DenyReason, Grant};
pub use format::{TokenFormat, TokenId, TokenPrefix};
pub use issue::{IssueError, Issuer};
pub use policy::{ChildRequest, IssueRequest, Policy};
pub use role::{Principal, Role};
pub use scope::{Request, Scope, ScopeSet};
pub use secret::IssuedToken;
pub use verify::Verifier;

/// The validated names a principal, a role and a purpose go by.
pub mod names {
    pub use crate::role::{PrincipalId, Purpose, RoleName};
}

/// Where "now" comes from: the [`clocks::Clock`] trait, the system's clock, one read once a
/// millisecond for hot paths, and one set by hand for tests.
pub mod clocks {
    pub use crate::clock::{CachedClock, Clock, ManualClock, SystemClock};
}

/// The keyed digests a store keeps instead of secrets, and the keys they are made under.
pub mod digest {
    pub use crate::secret::{DigestKey, TokenDigest};
    pub use crate::verify::DigestKeyring;
}

/// The errors besides [`IssueError`]: a malformed token ([`errors::TokenFormatError`]), what a
/// policy, a name or a scope refused, and a failed random number generator.
pub mod errors {
    pub use crate::error::{RandomnessUnavailable, ScopeError, TokenFormatError};
    pub use crate::policy::{PolicyBuilder, PolicyError, PolicyViolation};
    pub use crate::role::NameError;
}

/// The format's and the scope grammar's fixed sizes and limits.
pub mod limits {
    pub use crate::format::{BODY_LEN, CHECKSUM_LEN, ID_LEN, MAX_PREFIX_LEN, MAX_TOKEN_LEN, SECRET_LEN};
    pub use crate::policy::{MAX_NOT_BEFORE_AHEAD, MAX_TTL_CEILING};
    pub use crate::scope::{MAX_SCOPE_LEN, MAX_SCOPES, MAX_SEGMENTS};
    pub use crate::verify::MAX_ANCESTRY;
}

/// For storage authors: what a verifier asks of a store ([`lookup::TokenLookup`], answering with
/// a compact [`lookup::TokenView`]), the stored record of a token ([`lookup::TokenRecord`]: its
/// use limits, its lifecycle status), what the policy approved of an issue, and an in-memory
/// lookup for tests and examples.
pub mod lookup {
    pub use crate::format::ParsedToken;
    pub use crate::memory::InMemoryLookup;
    pub use crate::policy::Approval;
    pub use crate::record::{TokenRecord, TokenStatus, UseLimits};
    pub use crate::secret::ct_eq_32;
    pub use crate::verify::TokenLookup;
    pub use crate::view::TokenView;
}

pub use chrono;
pub use secrecy;
