//! # Tokenward
//!
//! Least-privilege, expiring, rotatable API tokens for cloud infrastructure, as embeddable Rust
//! libraries. This crate re-exports the workspace's crates under short names:
//!
//! - [`core`] (`token-core`): token format, secrets, scopes, roles, expiry policy, verification.
//! - [`store`] (`token-store`): storage trait, envelope encryption, key providers, backends.
//! - [`audit`] (`token-audit`): hash-chained audit log, checkpoints, sinks, queries.
//! - [`rotate`] (`token-rotate`): verified rotation protocol, scheduler, emergency revoke-and-replace.
//!
//! ```
//! use tokenward::core::{Scope, Request};
//! let scope = Scope::parse("s3:bucket/prod-logs/*:read")?;
//! assert!(scope.allows(&Request::parse("s3:bucket/prod-logs/app.log:read")?));
//! # Ok::<(), tokenward::core::ScopeError>(())
//! ```

#![deny(missing_docs)]

pub use token_audit as audit;
pub use token_core as core;
pub use token_core::secrecy;
pub use token_rotate as rotate;
pub use token_store as store;
