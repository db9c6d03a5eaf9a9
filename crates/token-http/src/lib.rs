//! # token-http
//!
//! The one HTTP client every remote API call of Tokenward goes through (OpenBao, AWS, KMS,
//! webhooks), on reqwest with rustls and the ring provider — one TLS stack for the whole graph —
//! with the rules a client holding tokens needs, written once:
//!
//! - TLS verified against the platform's roots, or only against a custom CA (`ca_pem`), with an
//!   optional client certificate (`client_identity_pem`);
//! - plain HTTP only to a loopback address unless explicitly allowed;
//! - one host per client (its base URL's); a loopback one is never reached through a proxy
//!   (a remote one through the proxy `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY` name, less
//!   `NO_PROXY`);
//! - connect and whole-request timeouts; responses bounded in size (read in chunks, refused past
//!   the bound, never buffered whole first);
//! - **no redirects**: a token header must never follow one to another host;
//! - headers carrying tokens marked sensitive (hidden from reqwest's and hyper's debug output);
//! - retries with exponential backoff and jitter for idempotent calls (connect errors, timeouts,
//!   429 and 5xx answers), never for the others.
//!
//! The APIs on it: `aws` (feature `aws`: SigV4, the query, JSON and REST protocols) and `openbao`
//! (feature `openbao`: a token or AppRole client; the token auth method, KV v2 and Transit).
//!
//! ```no_run
//! # async fn run() -> Result<(), token_http::HttpError> {
//! use token_http::{HttpClient, Request};
//! use token_http::secrecy::SecretString;
//!
//! let bao = HttpClient::builder("https://bao.internal:8200")
//!     .ca_pem(std::fs::read("/etc/bao/ca.pem").map_err(token_http::HttpError::config)?)
//!     .build()?;
//! let token = SecretString::from("hvs.…".to_owned());
//! let r = bao.send(Request::get("/v1/auth/token/lookup-self").secret_header("X-Vault-Token", &token)).await?;
//! assert_eq!(r.status, 200);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

#[cfg(feature = "aws")]
pub mod aws;
mod client;
mod error;
#[cfg(feature = "openbao")]
pub mod openbao;
mod request;

pub use client::{BodyStream, HttpClient, HttpClientBuilder};
pub use error::HttpError;
pub use request::{Method, Request, Response};

pub use secrecy;

/// Parser entry points for the fuzz targets (`cargo fuzz` builds with `--cfg fuzzing`).
#[cfg(fuzzing)]
pub mod fuzzing {
    /// The little XML reader for AWS's answers (also public as `aws::xml`, for the crates that
    /// call AWS).
    #[cfg(feature = "aws")]
    pub use crate::aws::xml;
}
