//! The compact JWS serialisation (RFC 7515) as both subject tokens and DPoP proofs use it: three
//! base64url parts, a header and a payload that are JSON objects with no member twice, the
//! algorithm allow-list, and the signature check — the one place a signature is verified,
//! through jsonwebtoken's RustCrypto backend.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use serde_json::{Map, Value};

use crate::error::{Jose, quote};
use crate::jwk::PublicJwk;

/// The signature algorithms accepted: RS256, ES256 and EdDSA (Ed25519), nothing else — no
/// `none`, no HMAC, no RSA-PSS or other curves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys of 2048 to 4096 bits).
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// EdDSA on Ed25519.
    EdDSA,
}

impl Algorithm {
    /// All of them.
    pub const ALL: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

    /// Its JOSE name (`RS256`, `ES256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The algorithm a JOSE name stands for, if it is one of these.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }

    fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compact JWS taken apart: its decoded header and payload, what was signed, the signature.
pub(crate) struct Compact<'a> {
    pub(crate) header: Header,
    pub(crate) payload: Map<String, Value>,
    pub(crate) signing_input: &'a [u8],
    pub(crate) signature: Vec<u8>,
}

/// The header members validation reads.
pub(crate) struct Header {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
    pub(crate) jwk: Option<Map<String, Value>>,
}

/// Splits and decodes `token` (at most `max` bytes), checks its `alg` against `allowed` and
/// refuses a `crit` header. The signature is not checked here: [`verify`] does.
pub(crate) fn parse<'a>(token: &'a str, max: usize, allowed: &[Algorithm]) -> Result<Compact<'a>, Jose> {
    if token.len() > max {
        return Err(Jose::TooLarge { max });
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Jose::Malformed("not three dot-separated parts (a compact JWS)"));
    };
    let header = object(&b64(h, "the header is not base64url")?, "the header is not a JSON object")?;
    let header = read_header(header, allowed)?;
    let payload = object(&b64(p, "the payload is not base64url")?, "the payload is not a JSON object")?;
    let signature = b64(s, "the signature is not base64url")?;
    let signing_input = &token.as_bytes()[..h.len() + 1 + p.len()];
    Ok(Compact { header, payload, signing_input, signature })
}

/// Whether `signature` over `signing_input` verifies with `key` under `alg`. The key was
/// checked, when it was read, to be one `alg` may use.
pub(crate) fn verify(
    alg: Algorithm,
    key: &PublicJwk,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<(), Jose> {
    if signature.len() != key.signature_len() {
        return Err(Jose::BadSignature);
    }
    // The backend is named, not taken from jsonwebtoken's process-wide default: another crate
    // in the process enabling its aws-lc feature, or installing a provider, changes nothing here.
    let verifier = (DEFAULT_PROVIDER.verifier_factory)(&alg.to_jwt(), key.decoding_key())
        .map_err(|_| Jose::BadSignature)?;
    verifier.verify(signing_input, &signature.to_vec()).map_err(|_| Jose::BadSignature)
}

/// Whether `key` (already checked in shape) is accepted by the backend for `alg`: the EC point
/// is on the curve, the Ed25519 point decodes.
pub(crate) fn backend_accepts(alg: Algorithm, key: &jsonwebtoken::DecodingKey) -> bool {
    (DEFAULT_PROVIDER.verifier_factory)(&alg.to_jwt(), key).is_ok()
}

fn read_header(mut h: Map<String, Value>, allowed: &[Algorithm]) -> Result<Header, Jose> {
    let alg = match h.get("alg") {
        None => return Err(Jose::Malformed("the header has no alg")),
        Some(Value::String(a)) => a.as_str(),
        Some(_) => return Err(Jose::Malformed("the header's alg is not a string")),
    };
    let alg = match Algorithm::from_name(alg) {
        _ if alg.eq_ignore_ascii_case("none") => return Err(Jose::AlgNone),
        _ if alg.starts_with("HS") => return Err(Jose::Hmac { alg: quote(alg) }),
        Some(a) if allowed.contains(&a) => a,
        _ => return Err(Jose::AlgorithmNotAllowed { alg: quote(alg) }),
    };
    if h.contains_key("crit") {
        return Err(Jose::CriticalHeader);
    }
    let kid = match h.remove("kid") {
        None => None,
        Some(Value::String(k)) => Some(k),
        Some(_) => return Err(Jose::Malformed("the header's kid is not a string")),
    };
    let typ = match h.remove("typ") {
        None => None,
        Some(Value::String(t)) => Some(t),
        Some(_) => return Err(Jose::Malformed("the header's typ is not a string")),
    };
    let jwk = match h.remove("jwk") {
        None => None,
        Some(Value::Object(k)) => Some(k),
        Some(_) => return Err(Jose::Malformed("the header's jwk is not an object")),
    };
    Ok(Header { alg, kid, typ, jwk })
}

/// Base64url without padding, strictly: no padding, no other alphabet, no stray bits.
pub(crate) fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, Jose> {
    URL_SAFE_NO_PAD.decode(part).map_err(|_| Jose::Malformed(what))
}

/// The JSON object in `bytes`, refusing a member name that appears twice at any depth (two
/// parsers reading one token differently is how claims get smuggled).
pub(crate) fn object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, Jose> {
    match strict_json(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Jose::Malformed(what)),
    }
}

/// `bytes` as JSON, or an error if it is not JSON or a member name appears twice in an object.
pub(crate) fn strict_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|s| s.0)
}

struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.insert(k, v).is_some() {
                return Err(serde::de::Error::custom("a member name appears twice"));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        assert!(strict_json(br#"{"a":1,"b":{"c":2}}"#).is_ok());
        assert!(strict_json(br#"{"a":1,"a":2}"#).is_err());
        assert!(strict_json(br#"{"a":{"c":1,"c":1}}"#).is_err());
        assert!(strict_json(br#"[{"c":1,"c":1}]"#).is_err());
    }

    #[test]
    fn base64url_is_strict() {
        assert!(b64("YQ", "x").is_ok());
        assert!(b64("YQ==", "x").is_err(), "padding");
        assert!(b64("YR", "x").is_err(), "stray bits");
        assert!(b64("Y+", "x").is_err(), "the standard alphabet");
    }
}
