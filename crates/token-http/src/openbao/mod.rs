//! OpenBao (and Vault) over [`crate::HttpClient`] (feature `openbao`): one authenticated client,
//! [`OpenBao`], acting with a token or through **AppRole** (it logs in, renews its token at two
//! thirds of the lease, logs in again when renewal is refused, and revokes its login token at
//! [`OpenBao::logout`]), and typed calls for what Tokenward uses:
//!
//! - the token auth method: [`OpenBao::lookup_self`], [`OpenBao::lookup_as`],
//!   [`OpenBao::create_orphan_token`], [`OpenBao::revoke_accessor`];
//! - KV v2: [`OpenBao::kv_current_version`], [`OpenBao::kv_read`], [`OpenBao::kv_write`] (with
//!   check-and-set), [`OpenBao::kv_destroy`], [`OpenBao::kv_delete_all`];
//! - Transit: [`OpenBao::transit_latest_version`], [`OpenBao::transit_encrypt`],
//!   [`OpenBao::transit_decrypt`].
//!
//! The client's rules are [`crate::HttpClient`]'s (TLS on rustls with ring, a custom CA, a
//! client certificate, plain HTTP only to loopback, no redirects, bounded answers, retries of
//! idempotent calls); the token travels in `X-Vault-Token`, marked sensitive. Errors are
//! [`OpenBaoError`]: a call made with the client's own token that OpenBao refuses with 403 names
//! the path whose capability the token's policy lacks. Nothing here shows a token, a secret id or
//! a secret's value in `Debug`, an error or a log line.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use token_http::openbao::OpenBao;
//! use token_http::secrecy::SecretString;
//!
//! let bao = OpenBao::builder("https://bao.internal:8200")
//!     .ca_pem(std::fs::read("/etc/bao/ca.pem")?)
//!     .approle("4a1c…", SecretString::from("s3cr3t-id".to_owned()))
//!     .build()?;
//! let me = bao.lookup_self().await?; // logs in first
//! assert!(me["policies"].is_array());
//! bao.logout().await?; // revokes the login token
//! # Ok(()) }
//! ```

mod client;
mod error;
mod kv;
mod token;
mod transit;

pub use client::{OpenBao, OpenBaoBuilder};
pub use error::OpenBaoError;
pub use kv::KvSecret;
pub use token::{CreatedToken, TokenRequest};
