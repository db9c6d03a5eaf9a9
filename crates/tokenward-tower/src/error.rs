//! Why a request was turned away, and the RFC 6750 response each reason gets.

use std::fmt;

use http::header::{HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Response, StatusCode};
use tokenward::core::Request;

/// Why the layer answered instead of the service. The response says only what RFC 6750 lets a
/// client know; the deny detail (revoked, expired, which digest key…) goes to the audit log and
/// to tracing, never to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No bearer credentials (no `Authorization` header, or another scheme): `401` with a bare
    /// `WWW-Authenticate: Bearer` challenge (RFC 6750 §3.1: no error code).
    MissingToken,
    /// A malformed, duplicated or oversized `Authorization` header: `400`,
    /// `error="invalid_request"`. The text is ours (fixed), never the header's.
    InvalidRequest(&'static str),
    /// The token is not valid (unknown, bad secret, revoked, expired, not yet valid, used up,
    /// idle): `401`, `error="invalid_token"`.
    InvalidToken,
    /// The token is valid but does not cover the request: `403`, `error="insufficient_scope"`
    /// with the scope the request needs (none when no scope maps to the request).
    InsufficientScope(Option<Request>),
    /// The audit log cannot record the decision and auditing fails closed: `503` with
    /// `Retry-After: 1`. Not the client's fault, and not a denial of its token.
    AuditUnavailable,
    /// A `DPoP`-scheme request whose proof is missing, duplicated or not valid (signature,
    /// method, URI, age, replayed `jti`, `ath`): `401`, `WWW-Authenticate: DPoP
    /// error="invalid_dpop_proof"` (RFC 9449 §7.1).
    InvalidDpopProof,
    /// A token bound to a key presented without a proof by that key — as a plain bearer token,
    /// or with another key's proof — or an unbound token presented as a DPoP one: `401`,
    /// `WWW-Authenticate: DPoP error="invalid_token"`.
    InvalidKeyBinding,
}

/// The algorithms a DPoP proof may use, as the `algs` of a `DPoP` challenge.
const DPOP_ALGS: &str = "ES256 EdDSA RS256";

impl Rejection {
    /// The status this rejection is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken | Self::InvalidDpopProof | Self::InvalidKeyBinding => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::AuditUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `WWW-Authenticate` challenge, if this rejection has one.
    pub fn challenge(&self) -> Option<HeaderValue> {
        let text = match self {
            Self::MissingToken => "Bearer".to_owned(),
            Self::InvalidRequest(why) => {
                format!("Bearer error=\"invalid_request\", error_description=\"{why}\"")
            }
            Self::InvalidToken => "Bearer error=\"invalid_token\"".to_owned(),
            // A scope's characters (letters, digits, `:/*._@+=-`) need no escaping in a
            // quoted-string.
            Self::InsufficientScope(Some(scope)) => {
                format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"")
            }
            Self::InsufficientScope(None) => "Bearer error=\"insufficient_scope\"".to_owned(),
            Self::InvalidDpopProof => format!("DPoP error=\"invalid_dpop_proof\", algs=\"{DPOP_ALGS}\""),
            Self::InvalidKeyBinding => format!("DPoP error=\"invalid_token\", algs=\"{DPOP_ALGS}\""),
            Self::AuditUnavailable => return None,
        };
        HeaderValue::from_str(&text).ok()
    }

    /// The response: the status, the challenge, an empty body.
    pub fn into_response<B: Default>(self) -> Response<B> {
        let mut r = Response::new(B::default());
        *r.status_mut() = self.status();
        if let Some(c) = self.challenge() {
            r.headers_mut().insert(WWW_AUTHENTICATE, c);
        }
        if self == Self::AuditUnavailable {
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingToken => f.write_str("no bearer token"),
            Self::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Self::InvalidToken => f.write_str("invalid token"),
            Self::InsufficientScope(Some(s)) => write!(f, "insufficient scope: needs {s}"),
            Self::InsufficientScope(None) => f.write_str("insufficient scope: no scope maps to this request"),
            Self::AuditUnavailable => f.write_str("the audit log cannot record this request"),
            Self::InvalidDpopProof => f.write_str("invalid DPoP proof"),
            Self::InvalidKeyBinding => f.write_str("the token's key binding is not proven"),
        }
    }
}

impl std::error::Error for Rejection {}
