//! DPoP proofs (RFC 9449 §4.3): a JWT typed `dpop+jwt`, signed by the public key in its own
//! header, naming the request's method (`htm`) and URI (`htu`), made moments ago (`iat`), never
//! seen before (`jti`), carrying the access token's hash (`ath`) when one is presented and the
//! server's nonce when one is required. The key's RFC 7638 thumbprint is what a token is bound
//! to.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_core::clocks::{Clock, SystemClock};

use crate::error::{ConfigError, DpopError, quote};
use crate::jwk::{JwkRefusal, PublicJwk, Thumbprint};
use crate::jws::{self, Algorithm};
use crate::jwt::{Rounding, numeric_date};
use crate::limits;
use crate::replay::{Refused, ReplayCache};

/// The request a proof is checked against. Build with [`DpopRequest::new`].
#[derive(Clone, Copy)]
pub struct DpopRequest<'a> {
    method: &'a str,
    uri: &'a str,
    access_token: Option<&'a str>,
    nonce: Option<&'a str>,
    bound_to: Option<&'a Thumbprint>,
}

impl std::fmt::Debug for DpopRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopRequest")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("access_token", &self.access_token.map(|_| "[redacted]"))
            .field("nonce", &self.nonce.is_some())
            .field("bound_to", &self.bound_to)
            .finish()
    }
}

impl<'a> DpopRequest<'a> {
    /// A request with `method` (`GET`, as sent: methods are case-sensitive) for the absolute
    /// `uri` the server is reached at (`https://api.example.com/v1/x?q=1`; query and fragment
    /// are ignored).
    pub fn new(method: &'a str, uri: &'a str) -> Self {
        Self { method, uri, access_token: None, nonce: None, bound_to: None }
    }

    /// The access token presented with the proof: its hash must be the proof's `ath`.
    #[must_use]
    pub fn access_token(mut self, token: &'a str) -> Self {
        self.access_token = Some(token);
        self
    }

    /// The nonce the server requires (its current `DPoP-Nonce`).
    #[must_use]
    pub fn nonce(mut self, nonce: &'a str) -> Self {
        self.nonce = Some(nonce);
        self
    }

    /// The key the presented token is bound to: the proof must be made with it.
    #[must_use]
    pub fn bound_to(mut self, thumbprint: &'a Thumbprint) -> Self {
        self.bound_to = Some(thumbprint);
        self
    }
}

/// A proof that passed every check.
#[derive(Clone, Debug)]
pub struct DpopProof {
    thumbprint: Thumbprint,
    algorithm: Algorithm,
    jwt_id: String,
    issued_at: DateTime<Utc>,
}

impl DpopProof {
    /// The RFC 7638 thumbprint of the key that made it (what to bind a token to: `cnf.jkt`).
    pub fn thumbprint(&self) -> Thumbprint {
        self.thumbprint
    }

    /// The algorithm it was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Its `jti`.
    pub fn jwt_id(&self) -> &str {
        &self.jwt_id
    }

    /// Its `iat`.
    pub fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }
}

/// Verifies DPoP proofs. Build with [`DpopVerifier::builder`].
pub struct DpopVerifier {
    algorithms: Vec<Algorithm>,
    max_age: TimeDelta,
    skew: TimeDelta,
    max_size: usize,
    replay: Arc<ReplayCache>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DpopVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopVerifier")
            .field("algorithms", &self.algorithms)
            .field("max_age", &self.max_age)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

/// Configures a [`DpopVerifier`].
#[must_use = "a builder does nothing until `build`"]
pub struct DpopVerifierBuilder {
    algorithms: Vec<Algorithm>,
    max_age: TimeDelta,
    skew: TimeDelta,
    max_size: usize,
    replay: Option<Arc<ReplayCache>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for DpopVerifierBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopVerifierBuilder").field("algorithms", &self.algorithms).finish_non_exhaustive()
    }
}

impl DpopVerifierBuilder {
    /// The algorithms a proof may use (default ES256, EdDSA and RS256).
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// How old a proof's `iat` may be (default 60 s; at most 10 min).
    pub fn max_age(mut self, d: TimeDelta) -> Self {
        self.max_age = d;
        self
    }

    /// The clock skew tolerated on `iat`, either way (default 10 s; at most 5 min).
    pub fn skew(mut self, d: TimeDelta) -> Self {
        self.skew = d;
        self
    }

    /// The longest proof accepted, in bytes (default 8 KiB; at most 64 KiB).
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// The replay cache (default one of its own of 100,000 entries; each entry lives
    /// `max_age + skew`).
    pub fn replay_cache(mut self, cache: Arc<ReplayCache>) -> Self {
        self.replay = Some(cache);
        self
    }

    /// The clock [`DpopVerifier::verify`] reads (default the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the settings and builds the verifier.
    pub fn build(self) -> Result<DpopVerifier, ConfigError> {
        if self.algorithms.is_empty() {
            return Err(ConfigError::Algorithms("at least one is required".into()));
        }
        let out_of = |what, bound: &str| ConfigError::OutOfRange { what, bound: bound.to_owned() };
        if self.max_age <= TimeDelta::zero() || self.max_age > limits::MAX_PROOF_AGE_CEILING {
            return Err(out_of("the proof age", "above 0s, at most 10m"));
        }
        if self.skew < TimeDelta::zero() || self.skew > limits::MAX_SKEW {
            return Err(out_of("the proof clock skew", "0s to 5m"));
        }
        if self.max_size < 64 || self.max_size > limits::MAX_TOKEN_CEILING {
            return Err(out_of("the maximum proof size", "64 B to 64 KiB"));
        }
        Ok(DpopVerifier {
            algorithms: self.algorithms,
            max_age: self.max_age,
            skew: self.skew,
            max_size: self.max_size,
            replay: self.replay.unwrap_or_default(),
            clock: self.clock,
        })
    }
}

impl DpopVerifier {
    /// A builder with the defaults.
    pub fn builder() -> DpopVerifierBuilder {
        DpopVerifierBuilder {
            algorithms: vec![Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256],
            max_age: limits::DEFAULT_PROOF_MAX_AGE,
            skew: limits::DEFAULT_PROOF_SKEW,
            max_size: limits::DEFAULT_MAX_PROOF,
            replay: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The algorithms accepted, space-separated: the `algs` of a `WWW-Authenticate: DPoP`.
    pub fn algs(&self) -> String {
        self.algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" ")
    }

    /// [`DpopVerifier::verify_at`] now, by the verifier's clock.
    pub fn verify(&self, proof: &str, request: &DpopRequest<'_>) -> Result<DpopProof, DpopError> {
        self.verify_at(proof, request, self.clock.now())
    }

    /// Verifies `proof` (the `DPoP` header's value; the caller refuses a request with more
    /// than one) for `request` at `now`. The `jti` is recorded last, only for a proof that
    /// passed every other check.
    pub fn verify_at(
        &self,
        proof: &str,
        request: &DpopRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<DpopProof, DpopError> {
        let verified = self.verify_unspent_at(proof, request, now)?;
        self.spend_at(&verified, now)?;
        Ok(verified)
    }

    /// [`DpopVerifier::verify_at`] without recording the `jti`: for a caller that checks the
    /// token the proof comes with first, and then calls [`DpopVerifier::spend_at`] — so proofs
    /// for tokens that are refused anyway take no place in the replay cache. Until spent, the
    /// same proof verifies again: never act on an unspent proof.
    pub fn verify_unspent_at(
        &self,
        proof: &str,
        request: &DpopRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<DpopProof, DpopError> {
        let jws = jws::parse(proof, self.max_size, &self.algorithms)?;
        match jws.header.typ.as_deref() {
            Some(t)
                if t.eq_ignore_ascii_case("dpop+jwt") || t.eq_ignore_ascii_case("application/dpop+jwt") => {}
            other => return Err(DpopError::WrongType { typ: other.map(quote) }),
        }
        let jwk = jws.header.jwk.as_ref().ok_or(DpopError::MissingKey)?;
        let key = PublicJwk::from_map(jwk, true).map_err(|r| match r {
            JwkRefusal::Private => DpopError::PrivateKey,
            JwkRefusal::Bad(why) => DpopError::BadKey(why),
        })?;
        key.check_alg(jws.header.alg).map_err(DpopError::BadKey)?;
        jws::verify(jws.header.alg, &key, jws.signing_input, &jws.signature)?;

        let claims = &jws.payload;
        let jti = match claims.get("jti") {
            None => return Err(DpopError::MissingClaim("jti")),
            Some(Value::String(j)) if !j.is_empty() && j.len() <= limits::MAX_JTI_LEN => j,
            Some(_) => return Err(DpopError::BadClaim("jti")),
        };
        let htm = text(claims, "htm")?;
        if htm != request.method {
            return Err(DpopError::WrongMethod { expected: quote(request.method), found: quote(htm) });
        }
        let htu = text(claims, "htu")?;
        let expected = normalise_uri(request.uri)
            .ok_or(DpopError::WrongUri { expected: quote(request.uri), found: quote(htu) })?;
        match normalise_uri(htu) {
            Some(found) if found == expected => {}
            found => {
                return Err(DpopError::WrongUri {
                    expected: quote(&expected),
                    found: quote(found.as_deref().unwrap_or(htu)),
                });
            }
        }
        let issued_at = numeric_date(claims, "iat", Rounding::Down)
            .map_err(DpopError::BadClaim)?
            .ok_or(DpopError::MissingClaim("iat"))?;
        if issued_at > now + self.skew {
            return Err(DpopError::FromFuture { issued_at });
        }
        if issued_at < now - self.max_age - self.skew {
            return Err(DpopError::Stale { issued_at });
        }
        if let Some(token) = request.access_token {
            let ath = match claims.get("ath") {
                None => return Err(DpopError::MissingAth),
                Some(Value::String(a)) => a,
                Some(_) => return Err(DpopError::BadClaim("ath")),
            };
            let expected = access_token_hash(token);
            if !bool::from(ath.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(DpopError::WrongAth);
            }
        }
        if let Some(nonce) = request.nonce {
            match claims.get("nonce") {
                None => return Err(DpopError::NonceRequired),
                Some(Value::String(n)) if bool::from(n.as_bytes().ct_eq(nonce.as_bytes())) => {}
                Some(_) => return Err(DpopError::WrongNonce),
            }
        }
        let thumbprint = key.thumbprint();
        if let Some(bound) = request.bound_to
            && !bound.ct_eq(&thumbprint)
        {
            return Err(DpopError::WrongKey);
        }
        Ok(DpopProof { thumbprint, algorithm: jws.header.alg, jwt_id: jti.clone(), issued_at })
    }

    /// Records `proof`'s `jti` (a proof this verifier accepted, unspent) until it could no
    /// longer pass as fresh (one second past its age limit, so the last instant it is accepted is
    /// covered): [`DpopError::Replayed`] if it was spent before (atomic), [`DpopError::ReplayCacheFull`]
    /// if the cache is full.
    pub fn spend_at(&self, proof: &DpopProof, now: DateTime<Utc>) -> Result<(), DpopError> {
        let mut scope = b"dpop:".to_vec();
        scope.extend_from_slice(proof.thumbprint.as_bytes());
        let until = proof.issued_at + self.max_age + self.skew + TimeDelta::seconds(1);
        self.replay.check_and_record(&scope, &proof.jwt_id, until, now).map_err(|r| match r {
            Refused::Replayed => DpopError::Replayed,
            Refused::Full => DpopError::ReplayCacheFull,
        })
    }

    /// [`DpopVerifier::spend_at`] now, by the verifier's clock.
    pub fn spend(&self, proof: &DpopProof) -> Result<(), DpopError> {
        self.spend_at(proof, self.clock.now())
    }

    /// [`DpopVerifier::verify_unspent_at`] now, by the verifier's clock.
    pub fn verify_unspent(&self, proof: &str, request: &DpopRequest<'_>) -> Result<DpopProof, DpopError> {
        self.verify_unspent_at(proof, request, self.clock.now())
    }
}

fn text<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, DpopError> {
    match claims.get(name) {
        None => Err(DpopError::MissingClaim(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(DpopError::BadClaim(name)),
    }
}

/// base64url(SHA-256(access token)): a proof's `ath`.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// An `htu` or a request URI as compared (RFC 9449 §4.3 with RFC 3986 §6.2.2 and §6.2.3):
/// http or https only; scheme and host lower-cased; the default port dropped; an empty path
/// made `/`; dot segments removed; percent-encodings upper-cased and those of unreserved
/// characters decoded; query, fragment dropped. `None`: not an absolute http(s) URI, or one
/// with credentials.
pub(crate) fn normalise_uri(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let mut out = url.origin().ascii_serialization();
    let path = url.path();
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(c as char);
                } else {
                    out.push('%');
                    out.push_str(&format!("{c:02X}"));
                }
                i += 3;
                continue;
            }
        }
        out.push(b as char);
        i += 1;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_normalised_as_rfc_3986_says() {
        let n = |u: &str| normalise_uri(u);
        assert_eq!(
            n("https://Server.Example.COM:443/token?x=1#f").as_deref(),
            Some("https://server.example.com/token")
        );
        assert_eq!(n("HTTPS://server.example.com").as_deref(), Some("https://server.example.com/"));
        assert_eq!(n("http://h:80/a/./b/../c").as_deref(), Some("http://h/a/c"));
        assert_eq!(n("https://h/%7euser/%2f%41").as_deref(), Some("https://h/~user/%2FA"));
        assert_eq!(n("https://h:8443/x").as_deref(), Some("https://h:8443/x"));
        assert_eq!(n("ftp://h/x"), None);
        assert_eq!(n("https://u:p@h/x"), None);
        assert_eq!(n("/relative"), None);
    }

    #[test]
    fn the_builder_refuses_settings_past_their_bounds() {
        assert!(DpopVerifier::builder().build().is_ok());
        let out = |r: Result<DpopVerifier, ConfigError>| matches!(r, Err(ConfigError::OutOfRange { .. }));
        assert!(out(DpopVerifier::builder()
            .max_age(limits::MAX_PROOF_AGE_CEILING + TimeDelta::seconds(1))
            .build()));
        assert!(out(DpopVerifier::builder().max_age(TimeDelta::zero()).build()));
        assert!(out(DpopVerifier::builder().skew(limits::MAX_SKEW + TimeDelta::seconds(1)).build()));
        assert!(out(DpopVerifier::builder().max_size(limits::MAX_TOKEN_CEILING + 1).build()));
        assert!(matches!(DpopVerifier::builder().algorithms([]).build(), Err(ConfigError::Algorithms(_))));
        assert_eq!(
            DpopVerifier::builder().build().map(|v| v.algs()).ok().as_deref(),
            Some("ES256 EdDSA RS256")
        );
    }

    #[test]
    fn the_rfc_9449_ath_example() {
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
