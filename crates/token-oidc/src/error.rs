//! What validation can fail with. Every failure is a variant of its own; no error ever holds a
//! token, a proof or a key's private part. Values quoted from a token (an `alg`, an issuer, a
//! `kid`) are attacker-chosen text: they are cut to [`QUOTE_MAX`] characters and shown escaped.

use token_core::chrono::{DateTime, TimeDelta, Utc};

/// How much of a value taken from a token an error quotes.
const QUOTE_MAX: usize = 64;

/// A value from a token, as an error quotes it: at most 64 characters.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// What the JOSE layer (compact serialisation, header, keys, signature) refuses: shared by JWT
/// and DPoP validation, each of which maps it into its own error.
#[derive(Debug)]
pub(crate) enum Jose {
    TooLarge { max: usize },
    Malformed(&'static str),
    AlgNone,
    Hmac { alg: String },
    AlgorithmNotAllowed { alg: String },
    CriticalHeader,
    BadSignature,
}

/// A subject token (JWT) refused. `#[non_exhaustive]`: new checks add variants.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// Longer than the validator accepts (checked before anything is decoded).
    #[error("the token is over {max} bytes")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// Not a compact JWS of three base64url parts holding JSON objects (or a member has the
    /// wrong JSON type, or a member name appears twice).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg: none`: an unsigned token.
    #[error("alg \"none\" (an unsigned token) is refused")]
    AlgNone,
    /// An HMAC algorithm (`HS256`, …): a verifier holding public keys never accepts a MAC (the
    /// public key used as an HMAC secret is the classic forgery).
    #[error("HMAC algorithm {alg:?} is refused: only public-key signatures are accepted")]
    Hmac {
        /// The header's `alg`.
        alg: String,
    },
    /// An algorithm outside the issuer's allow-list (RS256, ES256 and EdDSA at most).
    #[error("algorithm {alg:?} is not allowed for this issuer")]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
    },
    /// A `crit` header: no extension is understood, so none may be critical.
    #[error("the token declares critical header extensions, none of which are understood")]
    CriticalHeader,
    /// A `typ` other than `JWT` (another kind of JWT, a DPoP proof say, is never a subject token).
    #[error("token type {typ:?} is not a JWT")]
    WrongType {
        /// The header's `typ`.
        typ: Option<String>,
    },
    /// The `iss` claim is not the validator's issuer.
    #[error("issuer {found:?} is not the expected {expected:?}")]
    WrongIssuer {
        /// The configured issuer.
        expected: String,
        /// The token's `iss`.
        found: String,
    },
    /// No key of the issuer has the token's `kid` (after at most one refetch of a remote JWKS
    /// within its minimum interval).
    #[error("no key of the issuer has kid {kid:?}")]
    UnknownKey {
        /// The header's `kid` (`None`: the token names no key and the issuer has no single key
        /// for its algorithm).
        kid: Option<String>,
    },
    /// The key the `kid` names cannot verify the header's `alg`: another key type or curve, a
    /// JWK `alg` that differs, `use` other than `sig`, or a key type that is not supported.
    #[error("key {kid:?} cannot verify {alg}: {why}")]
    KeyAlgorithmMismatch {
        /// The key's id.
        kid: Option<String>,
        /// The header's `alg`.
        alg: String,
        /// What disagrees.
        why: &'static str,
    },
    /// The issuer's keys could not be had (the JWKS fetch failed and no keys are cached).
    #[error("the issuer's keys are unavailable: {0}")]
    KeysUnavailable(#[source] JwksError),
    /// The signature does not verify with the issuer's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// A claim the validator needs is absent.
    #[error("the token has no {0:?} claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an impossible value.
    #[error("the {0:?} claim is not valid")]
    BadClaim(&'static str),
    /// The audience is not among the token's `aud`.
    #[error("the token is not for audience {expected:?}")]
    WrongAudience {
        /// The configured audience.
        expected: String,
    },
    /// `exp` has passed (beyond the skew).
    #[error("the token expired at {expired_at}")]
    Expired {
        /// Its `exp`.
        expired_at: DateTime<Utc>,
    },
    /// `nbf` is still ahead (beyond the skew).
    #[error("the token is not valid before {not_before}")]
    NotYetValid {
        /// Its `nbf`.
        not_before: DateTime<Utc>,
    },
    /// `iat` is ahead of now (beyond the skew).
    #[error("the token claims to be issued in the future ({issued_at})")]
    IssuedInFuture {
        /// Its `iat`.
        issued_at: DateTime<Utc>,
    },
    /// `exp − iat` is over the validator's maximum lifetime.
    #[error("the token's lifetime {} is over the maximum {}", token_core::duration::approx(*lifetime), token_core::duration::approx(*max))]
    LifetimeTooLong {
        /// `exp − iat`.
        lifetime: TimeDelta,
        /// The bound.
        max: TimeDelta,
    },
    /// Its `jti` was already accepted within the token's lifetime.
    #[error("the token was already used (its jti was seen before)")]
    Replayed,
    /// The replay cache is full of live entries: refused rather than forgetting one.
    #[error("the replay cache is full; the token is refused rather than an entry forgotten")]
    ReplayCacheFull,
}

impl From<Jose> for JwtError {
    fn from(e: Jose) -> Self {
        match e {
            Jose::TooLarge { max } => Self::TooLarge { max },
            Jose::Malformed(what) => Self::Malformed(what),
            Jose::AlgNone => Self::AlgNone,
            Jose::Hmac { alg } => Self::Hmac { alg },
            Jose::AlgorithmNotAllowed { alg } => Self::AlgorithmNotAllowed { alg },
            Jose::CriticalHeader => Self::CriticalHeader,
            Jose::BadSignature => Self::BadSignature,
        }
    }
}

/// The RFC 9449 error code a refused DPoP proof answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpopErrorCode {
    /// `invalid_dpop_proof`: the proof itself is not valid.
    InvalidDpopProof,
    /// `use_dpop_nonce`: the server requires a nonce the proof lacks or gets wrong; the answer
    /// carries a fresh `DPoP-Nonce`.
    UseDpopNonce,
    /// `invalid_token`: the proof is valid but made with another key than the token is bound
    /// to (RFC 9449 §7.1's "Invalid DPoP key binding").
    InvalidToken,
}

impl DpopErrorCode {
    /// The code as it appears in `error=` of `WWW-Authenticate: DPoP` or a token endpoint's
    /// error response.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InvalidToken => "invalid_token",
        }
    }
}

/// A DPoP proof refused. [`DpopError::code`] gives the RFC 9449 error to answer with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// Longer than the verifier accepts.
    #[error("the DPoP proof is over {max} bytes")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// Not a compact JWS of three base64url parts holding JSON objects.
    #[error("malformed DPoP proof: {0}")]
    Malformed(&'static str),
    /// `alg: none`.
    #[error("alg \"none\" is refused")]
    AlgNone,
    /// An HMAC algorithm: a proof is an asymmetric signature.
    #[error("HMAC algorithm {alg:?} is refused")]
    Hmac {
        /// The header's `alg`.
        alg: String,
    },
    /// An algorithm outside the verifier's allow-list.
    #[error("algorithm {alg:?} is not allowed")]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
    },
    /// A `crit` header.
    #[error("the proof declares critical header extensions, none of which are understood")]
    CriticalHeader,
    /// `typ` is not `dpop+jwt`.
    #[error("proof type {typ:?} is not dpop+jwt")]
    WrongType {
        /// The header's `typ`.
        typ: Option<String>,
    },
    /// The header has no `jwk`.
    #[error("the proof's header has no jwk")]
    MissingKey,
    /// The header's `jwk` holds a private key (`d`, `p`, `q`, … or a symmetric `k`).
    #[error("the proof's jwk holds a private key")]
    PrivateKey,
    /// The header's `jwk` is not a usable public key for the header's `alg`.
    #[error("the proof's jwk is not usable: {0}")]
    BadKey(&'static str),
    /// The signature does not verify with the header's `jwk`.
    #[error("the proof's signature does not verify")]
    BadSignature,
    /// A claim the proof must carry is absent.
    #[error("the proof has no {0:?} claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an impossible value.
    #[error("the proof's {0:?} claim is not valid")]
    BadClaim(&'static str),
    /// `htm` is not the request's method.
    #[error("the proof is for method {found:?}, not {expected:?}")]
    WrongMethod {
        /// The request's method.
        expected: String,
        /// The proof's `htm`.
        found: String,
    },
    /// `htu` is not the request's URI (both normalised; query and fragment ignored).
    #[error("the proof is for URI {found:?}, not {expected:?}")]
    WrongUri {
        /// The request's URI, normalised.
        expected: String,
        /// The proof's `htu`, normalised.
        found: String,
    },
    /// `iat` is older than the verifier's window.
    #[error("the proof was made at {issued_at}, too long ago")]
    Stale {
        /// Its `iat`.
        issued_at: DateTime<Utc>,
    },
    /// `iat` is ahead of now (beyond the skew).
    #[error("the proof claims to be made in the future ({issued_at})")]
    FromFuture {
        /// Its `iat`.
        issued_at: DateTime<Utc>,
    },
    /// Its `jti` was already accepted for this key.
    #[error("the proof was already used (its jti was seen before)")]
    Replayed,
    /// The replay cache is full of live entries: refused rather than forgetting one.
    #[error("the replay cache is full; the proof is refused rather than an entry forgotten")]
    ReplayCacheFull,
    /// An access token was presented and the proof has no `ath`.
    #[error("the proof has no ath for the access token presented with it")]
    MissingAth,
    /// `ath` is not the hash of the access token presented.
    #[error("the proof's ath is not the hash of the access token presented")]
    WrongAth,
    /// The server requires a nonce and the proof has none.
    #[error("the server requires a DPoP nonce")]
    NonceRequired,
    /// The proof's nonce is not the server's current one.
    #[error("the proof's nonce is not the server's")]
    WrongNonce,
    /// The proof is made with another key than the token is bound to.
    #[error("the proof's key is not the key the token is bound to")]
    WrongKey,
}

impl DpopError {
    /// The RFC 9449 error code to answer with.
    pub fn code(&self) -> DpopErrorCode {
        match self {
            Self::NonceRequired | Self::WrongNonce => DpopErrorCode::UseDpopNonce,
            Self::WrongKey => DpopErrorCode::InvalidToken,
            _ => DpopErrorCode::InvalidDpopProof,
        }
    }
}

impl From<Jose> for DpopError {
    fn from(e: Jose) -> Self {
        match e {
            Jose::TooLarge { max } => Self::TooLarge { max },
            Jose::Malformed(what) => Self::Malformed(what),
            Jose::AlgNone => Self::AlgNone,
            Jose::Hmac { alg } => Self::Hmac { alg },
            Jose::AlgorithmNotAllowed { alg } => Self::AlgorithmNotAllowed { alg },
            Jose::CriticalHeader => Self::CriticalHeader,
            Jose::BadSignature => Self::BadSignature,
        }
    }
}

/// An issuer's key set (JWKS) that cannot be had or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The fetch failed (TLS, a timeout, an answer over the size cap, a redirect).
    #[error("fetching the JWKS: {0}")]
    Fetch(#[source] token_http::HttpError),
    /// The issuer answered with a status other than 200.
    #[error("{url}: the JWKS answer is status {status}")]
    Status {
        /// Where (no query).
        url: String,
        /// The status.
        status: u16,
    },
    /// A pinned JWKS file could not be read.
    #[error("reading the JWKS file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A pinned JWKS file its group or others may write: refused (whoever can write it can
    /// mint identities).
    #[error("the JWKS file {path} is writable by its group or others: a pinned JWKS is a trust anchor")]
    Writable {
        /// The file.
        path: String,
    },
    /// A pinned JWKS file whose SHA-256 is not the one pinned: it was changed.
    #[error("the JWKS file {path}: its SHA-256 is not the one pinned (the file was changed)")]
    DigestMismatch {
        /// The file.
        path: String,
    },
    /// The document is larger than the cap.
    #[error("the JWKS is over {max} bytes")]
    TooLarge {
        /// The bound.
        max: usize,
    },
    /// The document is not a JWKS (`{"keys": [...]}` of JSON objects, each with a `kty`).
    #[error("not a JWKS: {0}")]
    Malformed(&'static str),
    /// A key in the set holds private material: the whole set is refused.
    #[error("the JWKS publishes a private key (kid {kid:?}): refused whole")]
    PrivateKey {
        /// The key's id.
        kid: Option<String>,
    },
    /// No key set is held that may be used: none was ever fetched, or the last one fetched is
    /// older than the staleness bound, and fetching fails.
    #[error("no usable key set (last fetched: {fetched_at:?}; last error: {last_error})")]
    Unavailable {
        /// When the key set held was fetched, if ever.
        fetched_at: Option<DateTime<Utc>>,
        /// Why the last fetch failed.
        last_error: String,
    },
    /// More keys than a JWKS may hold here.
    #[error("the JWKS holds over {max} keys")]
    TooManyKeys {
        /// The bound.
        max: usize,
    },
}

/// A configuration the builders refuse (a bound over its ceiling, an empty or wildcard
/// audience, a claim rule that matches everything, …).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value is out of its allowed range.
    #[error("{what} must be {bound}")]
    OutOfRange {
        /// Which setting.
        what: &'static str,
        /// Its range, in words.
        bound: String,
    },
    /// The issuer is empty.
    #[error("the issuer is empty")]
    EmptyIssuer,
    /// The audience is empty, or a wildcard (`*`): an exact audience is required.
    #[error("the audience {0:?} is not an exact audience (required; no wildcard)")]
    BadAudience(String),
    /// No algorithm is allowed, or one outside RS256, ES256 and EdDSA is named.
    #[error("algorithms: {0}")]
    Algorithms(String),
    /// A JWKS URL that cannot be used.
    #[error("JWKS URL: {0}")]
    BadUrl(String),
    /// The HTTP client for the JWKS cannot be built.
    #[error("JWKS client: {0}")]
    Http(#[source] token_http::HttpError),
    /// A claim rule names a claim the preset does not document.
    #[error("{preset} tokens have no documented claim {claim:?}")]
    UnknownClaim {
        /// The preset.
        preset: &'static str,
        /// The claim.
        claim: String,
    },
    /// A claim rule names a registered claim the validator checks itself (`iss`, `aud`,
    /// `exp`, `nbf`, `iat`, `jti`).
    #[error("claim {0:?} is checked by the validator, not by a claim rule")]
    ReservedClaim(String),
    /// A claim rule whose value is empty, or a glob that is only `*` (matching everything).
    #[error("claim {claim:?}: {why}")]
    BadPattern {
        /// The claim.
        claim: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// A verified token whose claims do not satisfy a claim rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// The token has no such claim.
    #[error("the token has no claim {0:?}")]
    Missing(String),
    /// The claim is not a string, a number or a boolean.
    #[error("claim {0:?} is not a string, number or boolean")]
    NotScalar(String),
    /// The claim's value does not match the rule.
    #[error("claim {claim:?} is {found:?}, which does not match the rule")]
    Mismatch {
        /// The claim.
        claim: String,
        /// Its value (cut to 64 characters).
        found: String,
    },
}
