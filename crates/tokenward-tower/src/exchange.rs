//! The RFC 8693 token endpoint ([`TokenEndpoint`]).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokenward::federation::{ExchangeError, ExchangeRequest};
use tokenward::oidc::{DpopRequest, DpopVerifier};
use tokenward::{Error, Tokenward};

use crate::layer::SourceFn;
use crate::token_request::{self, ACCESS_TOKEN};

/// The largest request body.
const MAX_BODY: usize = 64 * 1024;

/// The token endpoint of RFC 8693 (OAuth 2.0 Token Exchange) over
/// [`Tokenward::exchange`](tokenward::Tokenward::exchange), as an axum router (feature
/// `exchange`): a workload posts its OIDC token and gets a short-lived Tokenward token.
///
/// `POST` (form-encoded, at most 64 KiB, each parameter once):
///
/// | parameter | |
/// |---|---|
/// | `grant_type` | `urn:ietf:params:oauth:grant-type:token-exchange` (else `unsupported_grant_type`) |
/// | `subject_token` | the workload's OIDC token (a JWT) |
/// | `subject_token_type` | `urn:ietf:params:oauth:token-type:jwt` or `…:id_token` |
/// | `scope` | the scopes asked for, space-separated (required) |
/// | `requested_token_type` | optional; only `urn:ietf:params:oauth:token-type:access_token` |
/// | `expires_in` | optional (an extension): seconds, at most the federation's `max_ttl` |
///
/// With a `DPoP` proof header (RFC 9449 §5) and [`TokenEndpoint::dpop`], the token is bound to
/// the proof's key and `token_type` is `DPoP`; the proof's `jti` is spent only when the exchange
/// is granted (as the layer's are), so refused exchanges take no room in the replay cache. The answer is RFC 8693 §2.2.1's JSON
/// (`access_token`, `issued_token_type`, `token_type`, `expires_in`, `scope`) with
/// `Cache-Control: no-store`; a refusal is RFC 6749 §5.2's (`invalid_request`, `invalid_scope`,
/// `unsupported_grant_type`, `invalid_dpop_proof`) with a short, fixed description — why in
/// detail goes to the audit log, never the subject token. `actor_token` (delegation) is refused.
pub struct TokenEndpoint {
    tw: Tokenward,
    dpop: Option<(Arc<DpopVerifier>, String)>,
    source: Option<Arc<SourceFn>>,
}

impl std::fmt::Debug for TokenEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEndpoint")
            .field("dpop", &self.dpop.as_ref().map(|(_, url)| url))
            .finish_non_exhaustive()
    }
}

struct Shared {
    tw: Tokenward,
    dpop: Option<(Arc<DpopVerifier>, String)>,
    source: Option<Arc<SourceFn>>,
}

impl TokenEndpoint {
    /// The endpoint over `tw`, whose trusted issuers [`Tokenward::federate`] set.
    pub fn new(tw: Tokenward) -> Self {
        Self { tw, dpop: None, source: None }
    }

    /// Binds tokens to the key of the request's `DPoP` proof, checked by `verifier` for `POST`
    /// at `url` — the endpoint's URL as clients reach it (`https://auth.example.com/token`).
    #[must_use]
    pub fn dpop(mut self, verifier: DpopVerifier, url: impl Into<String>) -> Self {
        self.dpop = Some((Arc::new(verifier), url.into()));
        self
    }

    /// Records each request's source in its audit entry, as `f` reads it.
    #[must_use]
    pub fn source(
        mut self,
        f: impl Fn(&http::Extensions, &http::HeaderMap) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Arc::new(f));
        self
    }

    /// The router: `POST path`.
    pub fn into_router(self, path: &str) -> Router {
        let shared = Arc::new(Shared { tw: self.tw, dpop: self.dpop, source: self.source });
        Router::new().route(path, post(token)).layer(DefaultBodyLimit::max(MAX_BODY)).with_state(shared)
    }
}

/// An RFC 6749 §5.2 error answer.
fn refuse(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::json!({"error": error, "error_description": description}).to_string();
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bad(description: &str) -> Response {
    refuse(StatusCode::BAD_REQUEST, "invalid_request", description)
}

async fn token(State(shared): State<Arc<Shared>>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return bad("the request body is too large or unreadable");
    };
    let source = shared.source.as_ref().and_then(|f| f(&parts.extensions, &parts.headers));
    answer(&shared, &parts.headers, &body, source).await
}

async fn answer(shared: &Shared, headers: &HeaderMap, body: &Bytes, source: Option<String>) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let asked = match token_request::read(content_type, body) {
        Ok(asked) => asked,
        Err(refusal) => return refuse(StatusCode::BAD_REQUEST, refusal.error(), refusal.description()),
    };
    let scope_text = asked.scopes.to_string();
    let mut ask = match asked.ttl {
        None => ExchangeRequest::longest(asked.scopes),
        Some(ttl) => ExchangeRequest::new(asked.scopes, ttl),
    };
    let subject = asked.subject.as_str();
    let mut token_type = "Bearer";
    let mut proofs = headers.get_all("dpop").iter();
    match (proofs.next(), proofs.next(), &shared.dpop) {
        (None, _, _) => {}
        (Some(proof), None, Some((verifier, url))) => {
            let Ok(proof) = proof.to_str() else { return invalid_proof() };
            // Unspent, as the layer's proofs are: its `jti` is spent only if the exchange is
            // granted, so refused exchanges take no room in the replay cache.
            match verifier.verify_unspent(proof, &DpopRequest::new("POST", url)) {
                Ok(p) => {
                    ask = ask.proven_by(p, Arc::clone(verifier));
                    token_type = "DPoP";
                }
                Err(e) => {
                    tracing::debug!(error = %e, "token endpoint: DPoP proof refused");
                    return invalid_proof();
                }
            }
        }
        (Some(_), _, _) => return invalid_proof(),
    }
    if let Some(s) = source {
        ask = ask.source(s);
    }
    match shared.tw.exchange(subject, &ask).await {
        Ok(done) => {
            let expires_in = (done.expires_at - shared.tw.clock().now()).num_seconds().max(0);
            let body = serde_json::json!({
                "access_token": done.token.expose_secret(),
                "issued_token_type": ACCESS_TOKEN,
                "token_type": token_type,
                "expires_in": expires_in,
                "scope": scope_text,
            })
            .to_string();
            let mut r = (StatusCode::OK, body).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            r
        }
        Err(Error::Exchange(e)) => match e {
            ExchangeError::ScopeNotAllowed { .. } | ExchangeError::Issue { .. } => {
                refuse(StatusCode::BAD_REQUEST, "invalid_scope", "the scopes asked for may not be granted")
            }
            ExchangeError::Proof(_) => invalid_proof(),
            ExchangeError::BindingRequired(_) => {
                refuse(StatusCode::BAD_REQUEST, "invalid_dpop_proof", "a DPoP proof is required")
            }
            ExchangeError::TtlTooLong { .. } => bad("expires_in is longer than allowed"),
            other => bad(match other.code() {
                "claims_mismatch" => "the subject token's identity is not trusted for an exchange",
                "untrusted_issuer" => "the subject token's issuer is not trusted",
                _ => "the subject token is not valid",
            }),
        },
        Err(e @ (Error::Audit(_) | Error::Store(_))) => {
            tracing::warn!(error = %e, "token endpoint: the store or the audit log is unavailable");
            let mut r =
                refuse(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", "try again shortly");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "token endpoint: the exchange failed");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the exchange failed")
        }
    }
}

fn invalid_proof() -> Response {
    refuse(StatusCode::BAD_REQUEST, "invalid_dpop_proof", "the DPoP proof is not valid")
}
