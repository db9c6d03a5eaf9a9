//! # tokenward-tower
//!
//! A [tower] layer — for axum, hyper, tonic — that authenticates RFC 6750 bearer tokens with
//! Tokenward's verifier and authorises the scope each request needs:
//!
//! 1. the one `Authorization: Bearer <token>` header is read (missing → `401` with a bare
//!    `WWW-Authenticate: Bearer`, on every path; duplicated, oversized or malformed → `400
//!    invalid_request`);
//! 2. the request is mapped to a scope ([`RouteTable`]: method + path → `s3:bucket/{path}:read`,
//!    a query only where the route names its parameters; or a closure);
//! 3. the token is verified for that scope through the deployment's [`TokenVerifier`](tokenward::TokenVerifier) — in
//!    constant time, with no I/O, and audited when the deployment audits (every decision, or
//!    denials plus per-interval counts in summarized mode). A request no scope maps to is
//!    refused after its token is judged: an invalid token is `401 invalid_token` there too (no
//!    one learns the routes without a valid token), a valid one `403 insufficient_scope`;
//! 4. allowed: the verified [`Grant`](tokenward::core::Grant) (token id, principal, scopes) goes
//!    into the request's extensions and the inner service is called; denied: `401
//!    invalid_token`, or `403 insufficient_scope` with the scope needed. The deny detail
//!    (revoked, expired…) goes to the audit log and tracing, never to the client. A fail-closed
//!    audit log that cannot record is `503` with `Retry-After: 1`.
//!
//! **DPoP** (RFC 9449), with [`TokenAuthLayer::dpop`]: a token bound to a key (its RFC 7638
//! thumbprint in its authenticated record) is accepted only as `Authorization: DPoP <token>`
//! with one `DPoP` proof header signed by that key for this method and URI (origin + path),
//! fresh, never replayed, carrying the token's hash; a copy presented as a bearer token, with
//! another key's proof or with a bad proof is `401` with `WWW-Authenticate: DPoP
//! error="invalid_token"` or `error="invalid_dpop_proof"`. Without `dpop`, bound tokens are
//! refused (never accepted as bearer tokens).
//!
//! Every refusal is an audit entry (`verify_denied`): with the scope (`request`) when one maps,
//! else with the method and path asked (`refused`; never the query, which may hold a token);
//! requests without a usable token as `missing_token` / `invalid_request`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use http::{Method, Request, Response, StatusCode};
//! use tokenward::core::chrono::TimeDelta;
//! use tokenward::core::{Grant, IssueRequest, Policy, Principal, Role};
//! use tokenward::secrecy::{ExposeSecret, SecretString};
//! use tokenward::Tokenward;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tokenward_tower::{RouteTable, TokenAuthLayer};
//!
//! let dir = tempfile::tempdir()?;
//! let tw = Tokenward::embedded(dir.path().join("tw.db"))
//!     .passphrase(SecretString::from("correct horse battery staple"))
//!     .policy(Policy::builder().role(Role::parse("reader", "s3:bucket/logs/**:read", TimeDelta::hours(1))?).build()?)
//!     .open()
//!     .await?;
//! let token = tw
//!     .issue(&Principal::parse("billing-api", ["reader"])?, &IssueRequest::parse("logs", "s3:bucket/logs/**:read", TimeDelta::minutes(5))?)
//!     .await?;
//!
//! let routes = RouteTable::new().route(Some(Method::GET), "/logs/{*path}", "s3:bucket/logs/{path}:read")?;
//! let service = ServiceBuilder::new()
//!     .layer(TokenAuthLayer::new(tw.verifier(), routes))
//!     .service_fn(|req: Request<String>| async move {
//!         let grant = req.extensions().get::<Grant>().expect("the layer put it there");
//!         Ok::<_, std::convert::Infallible>(Response::new(format!("hello {}", grant.principal())))
//!     });
//!
//! let ok = Request::get("/logs/app.log")
//!     .header("authorization", format!("Bearer {}", token.expose_secret()))
//!     .body(String::new())?;
//! let r = service.clone().oneshot(ok).await?;
//! assert_eq!((r.status(), r.body().as_str()), (StatusCode::OK, "hello billing-api"));
//!
//! let write = Request::put("/logs/app.log").header("authorization", format!("Bearer {}", token.expose_secret())).body(String::new())?;
//! assert_eq!(service.clone().oneshot(write).await?.status(), StatusCode::FORBIDDEN); // no route: no scope
//! let anonymous = Request::get("/logs/app.log").body(String::new())?;
//! let r = service.oneshot(anonymous).await?;
//! assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(r.headers()["www-authenticate"], "Bearer");
//! tw.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Allocation on the allowed path: what verification needs (the scope [`Request`] built from
//! the route) and the grant put into the extensions; the token is borrowed from the header.
//!
//! [tower]: https://docs.rs/tower
//! [`Request`]: tokenward::core::Request

#![deny(missing_docs)]

mod bearer;
mod error;
#[cfg(feature = "exchange")]
mod exchange;
mod future;
mod layer;
mod scope;
mod service;
#[cfg(feature = "exchange")]
mod token_request;

pub use error::Rejection;
#[cfg(feature = "exchange")]
pub use exchange::TokenEndpoint;
pub use future::ResponseFuture;
pub use layer::{DEFAULT_MAX_HEADER, SourceFn, TokenAuthLayer};
pub use scope::{RequiredScope, RouteError, RouteTable};
pub use service::TokenAuth;

/// Parser entry points for the fuzz targets (`cargo fuzz` builds with `--cfg fuzzing`).
#[cfg(all(fuzzing, feature = "exchange"))]
pub mod fuzzing {
    /// Reads a token endpoint's request body as `content_type`; `true` if it is a request the
    /// endpoint would act on (else it is refused with a typed reason).
    pub fn read_token_request(content_type: &str, body: &[u8]) -> bool {
        crate::token_request::read(Some(content_type), body).is_ok()
    }
}
