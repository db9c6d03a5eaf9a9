//! Subject-token validation: one issuer's JWTs checked as a security library must — the
//! algorithm allow-list, the key the `kid` names, the signature, `iss`, `aud`, `exp`, `nbf`,
//! `iat` with a small bounded skew, a maximum size and lifetime, and a `jti` never accepted
//! twice within the token's life.

use std::sync::Arc;

use serde_json::{Map, Value};
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_core::clocks::{Clock, SystemClock};

use crate::error::{ConfigError, JwtError, quote};
use crate::jwks::IssuerKeys;
use crate::jws::{self, Algorithm};
use crate::limits;
use crate::replay::{Refused, ReplayCache};

/// Validates the JWTs of one issuer for one audience. Build with [`JwtValidator::builder`].
pub struct JwtValidator {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    keys: IssuerKeys,
    skew: TimeDelta,
    max_lifetime: TimeDelta,
    max_size: usize,
    require_jti: bool,
    replay: Arc<ReplayCache>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for JwtValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidator")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("algorithms", &self.algorithms)
            .field("keys", &self.keys)
            .field("skew", &self.skew)
            .field("max_lifetime", &self.max_lifetime)
            .finish_non_exhaustive()
    }
}

/// Configures a [`JwtValidator`].
#[must_use = "a builder does nothing until `build`"]
pub struct JwtValidatorBuilder {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    keys: IssuerKeys,
    skew: TimeDelta,
    max_lifetime: TimeDelta,
    max_size: usize,
    require_jti: bool,
    replay: Option<Arc<ReplayCache>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for JwtValidatorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtValidatorBuilder").field("issuer", &self.issuer).finish_non_exhaustive()
    }
}

impl JwtValidatorBuilder {
    /// The algorithms this issuer's tokens may use (default all three: RS256, ES256, EdDSA).
    pub fn algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algs.into_iter().collect();
        self
    }

    /// The clock skew tolerated on `exp`, `nbf` and `iat` (default 60 s; at most 5 min).
    pub fn skew(mut self, skew: TimeDelta) -> Self {
        self.skew = skew;
        self
    }

    /// The longest `exp − iat` accepted (default 1 h; at most 24 h).
    pub fn max_lifetime(mut self, d: TimeDelta) -> Self {
        self.max_lifetime = d;
        self
    }

    /// The longest token accepted, in bytes (default 8 KiB; at most 64 KiB).
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }

    /// Whether a token without `jti` is refused (default yes: without one, a replay cannot be
    /// told from a first use). GitHub, GitLab and Kubernetes (1.29+) tokens all carry one.
    pub fn require_jti(mut self, on: bool) -> Self {
        self.require_jti = on;
        self
    }

    /// The replay cache to record `jti`s in (default: one of its own, of 100,000 entries).
    /// Share one between validators of the same issuer.
    pub fn replay_cache(mut self, cache: Arc<ReplayCache>) -> Self {
        self.replay = Some(cache);
        self
    }

    /// The clock [`JwtValidator::validate`] reads (default the system's).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks the settings and builds the validator.
    pub fn build(self) -> Result<JwtValidator, ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::EmptyIssuer);
        }
        if self.audience.is_empty() || self.audience.contains('*') {
            return Err(ConfigError::BadAudience(self.audience));
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::Algorithms("at least one is required".into()));
        }
        let out_of = |what, bound: &str| ConfigError::OutOfRange { what, bound: bound.to_owned() };
        if self.skew < TimeDelta::zero() || self.skew > limits::MAX_SKEW {
            return Err(out_of("the clock skew", "0s to 5m"));
        }
        if self.max_lifetime <= TimeDelta::zero() || self.max_lifetime > limits::MAX_LIFETIME_CEILING {
            return Err(out_of("the maximum token lifetime", "above 0s, at most 24h"));
        }
        if self.max_size < 64 || self.max_size > limits::MAX_TOKEN_CEILING {
            return Err(out_of("the maximum token size", "64 B to 64 KiB"));
        }
        Ok(JwtValidator {
            issuer: self.issuer,
            audience: self.audience,
            algorithms: self.algorithms,
            keys: self.keys,
            skew: self.skew,
            max_lifetime: self.max_lifetime,
            max_size: self.max_size,
            require_jti: self.require_jti,
            replay: self.replay.unwrap_or_default(),
            clock: self.clock,
        })
    }
}

impl JwtValidator {
    /// A validator of `issuer`'s tokens for `audience` (exact; required; no wildcard), with
    /// its keys from `keys`.
    pub fn builder(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        keys: IssuerKeys,
    ) -> JwtValidatorBuilder {
        JwtValidatorBuilder {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: Algorithm::ALL.to_vec(),
            keys,
            skew: limits::DEFAULT_SKEW,
            max_lifetime: limits::DEFAULT_MAX_LIFETIME,
            max_size: limits::DEFAULT_MAX_TOKEN,
            require_jti: true,
            replay: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `iss` a compact JWT claims, **unverified**: to pick which issuer's validator to try
    /// when several are trusted, never to act on. The token is taken apart by the parser
    /// validation uses (at most [`limits::MAX_TOKEN_CEILING`] bytes, base64url, JSON objects with
    /// no member twice, an allowed `alg`, no `crit`); `None` if it does not parse or its `iss`
    /// is not a string.
    pub fn claimed_issuer(token: &str) -> Option<String> {
        let jws = jws::parse(token, limits::MAX_TOKEN_CEILING, &Algorithm::ALL).ok()?;
        match jws.payload.get("iss") {
            Some(Value::String(iss)) => Some(iss.clone()),
            _ => None,
        }
    }

    /// The audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The issuer's keys.
    pub fn keys(&self) -> &IssuerKeys {
        &self.keys
    }

    /// [`JwtValidator::validate_at`] now, by the validator's clock.
    pub async fn validate(&self, token: &str) -> Result<VerifiedJwt, JwtError> {
        self.validate_at(token, self.clock.now()).await
    }

    /// Validates `token` at `now`. The order: size, structure, header (`alg` allow-list,
    /// `crit`, `typ`), `iss` (before any key is looked up, so another issuer's tokens make no
    /// fetch), the key `kid` names (a remote set refetched at most once per minimum interval),
    /// the signature, then `aud`, `exp`, `nbf`, `iat`, the lifetime, `sub`, and last the `jti`
    /// (recorded only for a token otherwise valid, so an invalid one burns nothing).
    pub async fn validate_at(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedJwt, JwtError> {
        let jwt = self.validate_unspent_at(token, now).await?;
        self.spend_at(&jwt, now)?;
        Ok(jwt)
    }

    /// [`JwtValidator::validate_at`] without recording the `jti`: for a caller that has more to
    /// check (claim rules, a policy) before the token may count as used — then it calls
    /// [`JwtValidator::spend_at`], and only a token that passed everything takes a place in the
    /// replay cache (so tokens refused for their claims cannot fill it). Until spent, the same
    /// token validates again: never act on an unspent token.
    pub async fn validate_unspent_at(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedJwt, JwtError> {
        let jws = jws::parse(token, self.max_size, &self.algorithms)?;
        match jws.header.typ.as_deref() {
            None => {}
            Some(t) if t.eq_ignore_ascii_case("JWT") || t.eq_ignore_ascii_case("application/jwt") => {}
            Some(t) => return Err(JwtError::WrongType { typ: Some(quote(t)) }),
        }
        let claims = jws.payload;
        let iss = string_claim(&claims, "iss")?;
        if iss != self.issuer {
            return Err(JwtError::WrongIssuer { expected: self.issuer.clone(), found: quote(iss) });
        }
        let key = self.keys.key_at(jws.header.kid.as_deref(), jws.header.alg, now).await?;
        jws::verify(jws.header.alg, &key, jws.signing_input, &jws.signature)?;

        let audience = match claims.get("aud") {
            None => return Err(JwtError::MissingClaim("aud")),
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .map(|a| a.as_str().map(str::to_owned).ok_or(JwtError::BadClaim("aud")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(JwtError::BadClaim("aud")),
        };
        if !audience.contains(&self.audience) {
            return Err(JwtError::WrongAudience { expected: self.audience.clone() });
        }
        let date = |name, rounding| numeric_date(&claims, name, rounding).map_err(JwtError::BadClaim);
        let expires_at = date("exp", Rounding::Down)?.ok_or(JwtError::MissingClaim("exp"))?;
        let issued_at = date("iat", Rounding::Up)?.ok_or(JwtError::MissingClaim("iat"))?;
        let not_before = date("nbf", Rounding::Up)?;
        if now - self.skew >= expires_at {
            return Err(JwtError::Expired { expired_at: expires_at });
        }
        if let Some(nbf) = not_before
            && nbf > now + self.skew
        {
            return Err(JwtError::NotYetValid { not_before: nbf });
        }
        if issued_at > now + self.skew {
            return Err(JwtError::IssuedInFuture { issued_at });
        }
        let lifetime = expires_at - issued_at;
        if lifetime <= TimeDelta::zero() {
            return Err(JwtError::BadClaim("exp"));
        }
        if lifetime > self.max_lifetime {
            return Err(JwtError::LifetimeTooLong { lifetime, max: self.max_lifetime });
        }
        let subject = string_claim(&claims, "sub")?.to_owned();
        if subject.is_empty() {
            return Err(JwtError::BadClaim("sub"));
        }
        let jwt_id = match claims.get("jti") {
            None if self.require_jti => return Err(JwtError::MissingClaim("jti")),
            None => None,
            Some(Value::String(j)) if !j.is_empty() && j.len() <= limits::MAX_JTI_LEN => Some(j.clone()),
            Some(_) => return Err(JwtError::BadClaim("jti")),
        };
        Ok(VerifiedJwt {
            issuer: self.issuer.clone(),
            subject,
            audience,
            expires_at,
            issued_at,
            not_before,
            jwt_id,
            algorithm: jws.header.alg,
            key_id: jws.header.kid,
            claims,
        })
    }

    /// Records `jwt`'s `jti` (a token this validator accepted, unspent) in the replay cache until
    /// its expiry plus the skew: [`JwtError::Replayed`] if it was spent before (atomic: of two
    /// concurrent callers, one wins), [`JwtError::ReplayCacheFull`] if the cache is full. A token
    /// without a `jti` (with `require_jti(false)`) is not recorded.
    pub fn spend_at(&self, jwt: &VerifiedJwt, now: DateTime<Utc>) -> Result<(), JwtError> {
        if let Some(jti) = &jwt.jwt_id {
            self.replay
                .check_and_record(self.issuer.as_bytes(), jti, jwt.expires_at + self.skew, now)
                .map_err(|r| match r {
                    Refused::Replayed => JwtError::Replayed,
                    Refused::Full => JwtError::ReplayCacheFull,
                })?;
        }
        Ok(())
    }
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, JwtError> {
    match claims.get(name) {
        None => Err(JwtError::MissingClaim(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(JwtError::BadClaim(name)),
    }
}

/// Which way a fractional NumericDate is rounded: the stricter way for each claim (an expiry
/// earlier, a start later).
#[derive(Clone, Copy)]
pub(crate) enum Rounding {
    Down,
    Up,
}

/// A NumericDate claim (seconds since the epoch, 0 to year 9999), or `None` if absent.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
    rounding: Rounding,
) -> Result<Option<DateTime<Utc>>, &'static str> {
    let Some(v) = claims.get(name) else { return Ok(None) };
    let secs = match (v.as_i64(), v.as_f64()) {
        (Some(s), _) => s,
        (None, Some(f)) if f.is_finite() && (0.0..=limits::MAX_NUMERIC_DATE as f64).contains(&f) => {
            match rounding {
                Rounding::Down => f.floor() as i64,
                Rounding::Up => f.ceil() as i64,
            }
        }
        _ => return Err(name),
    };
    if !(0..=limits::MAX_NUMERIC_DATE).contains(&secs) {
        return Err(name);
    }
    DateTime::from_timestamp(secs, 0).map(Some).ok_or(name)
}

/// A token that passed every check: who issued it, whom it names, for whom, until when, and
/// its claims. Holds no part of the token itself; `Debug` shows claim names, not values.
#[derive(Clone)]
pub struct VerifiedJwt {
    issuer: String,
    subject: String,
    audience: Vec<String>,
    expires_at: DateTime<Utc>,
    issued_at: DateTime<Utc>,
    not_before: Option<DateTime<Utc>>,
    jwt_id: Option<String>,
    algorithm: Algorithm,
    key_id: Option<String>,
    claims: Map<String, Value>,
}

impl std::fmt::Debug for VerifiedJwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedJwt")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("audience", &self.audience)
            .field("expires_at", &self.expires_at)
            .field("algorithm", &self.algorithm)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl VerifiedJwt {
    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// `aud` (one or more).
    pub fn audience(&self) -> &[String] {
        &self.audience
    }

    /// `exp`.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }

    /// `iat`.
    pub fn issued_at(&self) -> DateTime<Utc> {
        self.issued_at
    }

    /// `nbf`, if any.
    pub fn not_before(&self) -> Option<DateTime<Utc>> {
        self.not_before
    }

    /// `jti`, if any.
    pub fn jwt_id(&self) -> Option<&str> {
        self.jwt_id.as_deref()
    }

    /// The algorithm it was signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `kid` of the key that verified it, if the header named one.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// All its claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// One claim: by top-level name, or by RFC 6901 JSON pointer when `name` starts with `/`
    /// (`/kubernetes.io/namespace`).
    pub fn claim(&self, name: &str) -> Option<&Value> {
        if let Some(pointer) = name.strip_prefix('/') {
            let (first, rest) = match pointer.split_once('/') {
                Some((first, rest)) => (first, Some(rest)),
                None => (pointer, None),
            };
            let first = first.replace("~1", "/").replace("~0", "~");
            let top = self.claims.get(&first)?;
            match rest {
                None => Some(top),
                Some(rest) => top.pointer(&format!("/{rest}")),
            }
        } else {
            self.claims.get(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claimed_issuer_is_read_by_the_validators_parser() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = |header: &str, payload: &str| format!("{}.{}.{}", b64(header), b64(payload), b64("sig"));
        let claimed = JwtValidator::claimed_issuer;
        assert_eq!(
            claimed(&token(r#"{"alg":"ES256"}"#, r#"{"iss":"https://a"}"#)).as_deref(),
            Some("https://a")
        );
        for refused in [
            token(r#"{"alg":"ES256"}"#, r#"{"iss":1}"#),
            token(r#"{"alg":"ES256"}"#, r#"{"sub":"x"}"#),
            // What validation refuses is not read either: no `alg: none`, no member twice, no `crit`.
            token(r#"{"alg":"none"}"#, r#"{"iss":"https://a"}"#),
            token(r#"{"alg":"ES256"}"#, r#"{"iss":"https://a","iss":"https://b"}"#),
            token(r#"{"alg":"ES256","crit":["x"]}"#, r#"{"iss":"https://a"}"#),
            token(r#"{"alg":"ES256"}"#, &format!(r#"{{"iss":"{}"}}"#, "a".repeat(limits::MAX_TOKEN_CEILING))),
            "a.b".into(),
            String::new(),
        ] {
            assert_eq!(claimed(&refused), None, "{refused:.80}");
        }
    }

    #[test]
    fn the_builder_refuses_settings_past_their_bounds() {
        let keys = || IssuerKeys::pinned(crate::Jwks::default());
        let b = || JwtValidator::builder("https://issuer.example", "tokenward", keys());
        assert!(b().build().is_ok());
        assert!(matches!(
            JwtValidator::builder("https://issuer.example", "*", keys()).build(),
            Err(ConfigError::BadAudience(_))
        ));
        assert!(matches!(
            JwtValidator::builder("https://issuer.example", "", keys()).build(),
            Err(ConfigError::BadAudience(_))
        ));
        assert!(matches!(
            JwtValidator::builder("", "tokenward", keys()).build(),
            Err(ConfigError::EmptyIssuer)
        ));
        assert!(matches!(b().algorithms([]).build(), Err(ConfigError::Algorithms(_))));
        assert!(b().skew(limits::MAX_SKEW).build().is_ok());
        let out = |r: Result<JwtValidator, ConfigError>| matches!(r, Err(ConfigError::OutOfRange { .. }));
        assert!(out(b().skew(limits::MAX_SKEW + TimeDelta::seconds(1)).build()));
        assert!(out(b().skew(TimeDelta::seconds(-1)).build()));
        assert!(out(b().max_lifetime(limits::MAX_LIFETIME_CEILING + TimeDelta::seconds(1)).build()));
        assert!(out(b().max_lifetime(TimeDelta::zero()).build()));
        assert!(out(b().max_size(limits::MAX_TOKEN_CEILING + 1).build()));
    }

    #[test]
    fn claims_are_named_by_top_level_name_or_json_pointer() {
        let Ok(Value::Object(claims)) = serde_json::from_str::<Value>(
            r#"{"kubernetes.io": {"namespace": "ci", "": "empty"}, "a/b": 1, "plain": true}"#,
        ) else {
            unreachable!("a literal object")
        };
        let t = VerifiedJwt {
            issuer: "i".into(),
            subject: "s".into(),
            audience: vec!["a".into()],
            expires_at: DateTime::UNIX_EPOCH,
            issued_at: DateTime::UNIX_EPOCH,
            not_before: None,
            jwt_id: None,
            algorithm: Algorithm::ES256,
            key_id: None,
            claims,
        };
        assert_eq!(t.claim("/kubernetes.io/namespace"), Some(&Value::from("ci")));
        assert!(t.claim("/kubernetes.io").is_some_and(Value::is_object));
        assert_eq!(t.claim("/kubernetes.io/"), Some(&Value::from("empty")), "the member named \"\"");
        assert_eq!(t.claim("/a~1b"), Some(&Value::from(1)));
        assert_eq!(t.claim("plain"), Some(&Value::from(true)));
        assert_eq!(t.claim("/kubernetes.io/absent"), None);
        assert_eq!(t.claim("kubernetes.io/namespace"), None, "a name is not a pointer");
    }
}
