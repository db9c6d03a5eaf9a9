//! # Tokenward
//!
//! Least-privilege, expiring, rotatable API tokens for cloud infrastructure, as embeddable Rust
//! libraries. [`Tokenward`] is the front door: one handle that opens a whole deployment — store,
//! key, token service, audit log, rotator and their upkeep — in one call:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tokenward::core::chrono::TimeDelta;
//! use tokenward::core::{IssueRequest, Policy, Principal, Request, Role};
//! use tokenward::secrecy::{ExposeSecret, SecretString};
//! use tokenward::{FailureMode, Tokenward};
//!
//! let dir = tempfile::tempdir()?;
//! let policy = Policy::builder()
//!     .role(Role::parse("log-reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1))?)
//!     .build()?;
//! let tw = Tokenward::embedded(dir.path().join("tokenward.db"))
//!     .passphrase(SecretString::from("correct horse battery staple"))
//!     .prefix("acme_prod")
//!     .policy(policy)
//!     .audit_file(dir.path().join("audit.jsonl"), FailureMode::FailClosed)
//!     .open()
//!     .await?;
//! let principal = Principal::parse("billing-api", ["log-reader"])?;
//! let request = IssueRequest::parse("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))?;
//! let token = tw.issue(&principal, &request).await?;          // durable and audited
//! let read = Request::parse("s3:bucket/prod-logs/app.log:read")?;
//! assert!(tw.verifier().verify(token.expose_secret(), &read).is_allowed()); // audited, no I/O
//! tw.revoke(token.id()).await?;
//! tw.shutdown().await?;                                         // closes everything in order
//! # Ok(()) }
//! ```
//!
//! The full builders stay public underneath, under short names:
//!
//! - [`core`] (`token-core`): token format, secrets, scopes, roles, expiry policy, verification.
//! - [`store`] (`token-store`): storage trait, envelope encryption, key providers, backends.
//! - [`audit`] (`token-audit`): hash-chained audit log, checkpoints, sinks, queries.
//! - [`rotate`] (`token-rotate`): verified rotation protocol, scheduler, emergency revoke-and-replace.
//!
//! Features: `sqlite` (default; the embedded store), `postgres` (the PostgreSQL store and audit
//! log), `vault` (OpenBao / Vault rotation targets, Transit as the KEK), `aws` (IAM access keys,
//! Secrets Manager, KMS as the KEK), `scan`, `s3`, `scan-postgres` and `github-alerts` (leak
//! scanning and response), `validate` (live validation of found credentials by their providers,
//! opt-in at run time).

#![deny(missing_docs)]

mod builder;
mod busy;
mod deployment;
mod error;
#[cfg(feature = "federation")]
pub mod federation;
mod guard;
mod inner;
mod kms;
#[cfg(feature = "validate")]
mod live;
#[cfg(feature = "scan")]
mod managed;
pub mod policy;
pub mod posture;
#[cfg(feature = "scan")]
mod respond;
mod upkeep;
mod verifier;

pub use builder::{LOCAL_KEK_ID, TokenwardBuilder};
pub use deployment::{Reconciliation, Tokenward};
pub use error::{Error, Result};
pub use guard::{AUDIT_LOG_NAME, AUDIT_SIGNER_KEY_META, AUDIT_SIGNER_SECRET, AUDIT_TREE_META};
pub use kms::KmsKey;
#[cfg(feature = "scan")]
pub use respond::{LeakAction, LeakOutcome, LeakResponse};
#[cfg(feature = "scan")]
pub use token_scan as scan;
pub use upkeep::Upkeep;
pub use verifier::TokenVerifier;

pub use token_audit::{FailureMode, VerifyAuditMode};
pub use token_rotate::{EmergencyOrder, Schedule};

pub use token_audit as audit;
pub use token_core as core;
pub use token_core::secrecy;
#[cfg(feature = "federation")]
pub use token_oidc as oidc;
pub use token_rotate as rotate;
pub use token_store as store;

/// The README's code, compiled and run as doctests so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// docs/extending.md's worked examples (a rotation target, a deploy destination, a key provider,
/// a backend, a rule), compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/extending.md")]
struct ExtendingDoctests;
