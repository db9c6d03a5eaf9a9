//! Public JSON Web Keys (RFC 7517) as an issuer's JWKS or a DPoP proof's header carries them:
//! read strictly (exact lengths, canonical base64url, no private member), bound to the one
//! algorithm each may verify, with their RFC 7638 thumbprint.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::jws::{self, Algorithm};

/// Members that only a private (or symmetric) key has.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// RSA moduli accepted: 2048 to 4096 bits.
const RSA_MIN_BYTES: usize = 256;
const RSA_MAX_BYTES: usize = 512;

/// An RFC 7638 JWK SHA-256 thumbprint: what a DPoP-bound token records (`cnf.jkt`); the one
/// type token-core's records and verifier use.
pub use token_core::Thumbprint;

/// Why a JWK cannot be read at all.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JwkRefusal {
    /// It holds a private or symmetric key.
    Private,
    /// It is not a JWK of a supported key type, or its members are malformed.
    Bad(&'static str),
}

/// A public key read from a JWK, usable with exactly one algorithm — or, when the JWK is
/// well-formed but not usable here (another curve, `use: enc`, a JWK `alg` we refuse), with
/// none, and why.
#[derive(Clone)]
pub struct PublicJwk {
    kid: Option<String>,
    usable: Result<Algorithm, &'static str>,
    key: jsonwebtoken::DecodingKey,
    signature_len: usize,
    thumbprint: Thumbprint,
}

impl std::fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicJwk")
            .field("kid", &self.kid)
            .field("usable", &self.usable)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

impl PublicJwk {
    /// The key's id (`kid`), if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies, or why it verifies none.
    pub fn algorithm(&self) -> Result<Algorithm, &'static str> {
        self.usable
    }

    /// Its RFC 7638 SHA-256 thumbprint.
    pub fn thumbprint(&self) -> Thumbprint {
        self.thumbprint
    }

    pub(crate) fn decoding_key(&self) -> &jsonwebtoken::DecodingKey {
        &self.key
    }

    pub(crate) fn signature_len(&self) -> usize {
        self.signature_len
    }

    /// Whether this key verifies `alg`, and if not, why.
    pub(crate) fn check_alg(&self, alg: Algorithm) -> Result<(), &'static str> {
        match self.usable {
            Ok(a) if a == alg => Ok(()),
            Ok(Algorithm::RS256) => Err("an RSA key verifies RS256 only"),
            Ok(Algorithm::ES256) => Err("a P-256 key verifies ES256 only"),
            Ok(Algorithm::EdDSA) => Err("an Ed25519 key verifies EdDSA only"),
            Err(why) => Err(why),
        }
    }

    /// Reads a JWK. `strict` (a DPoP proof's key, chosen by whoever sends it): an RSA modulus
    /// with a leading zero octet is refused (its thumbprint would differ from the same key's
    /// canonical form); a JWKS key from the issuer is read as published. An Ed25519 key of
    /// small order is refused either way.
    pub(crate) fn from_map(m: &Map<String, Value>, strict: bool) -> Result<Self, JwkRefusal> {
        if PRIVATE_MEMBERS.iter().any(|k| m.contains_key(*k)) {
            return Err(JwkRefusal::Private);
        }
        let kid = match m.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err(JwkRefusal::Bad("kid is not a string")),
        };
        let text = |name: &'static str| match m.get(name) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(JwkRefusal::Bad("a key member is not a string")),
            None => Err(JwkRefusal::Bad("a required key member is missing")),
        };
        let bytes = |name: &'static str| -> Result<(String, Vec<u8>), JwkRefusal> {
            let s = text(name)?;
            let b = jws::b64(s, "").map_err(|_| JwkRefusal::Bad("a key member is not base64url"))?;
            Ok((s.to_owned(), b))
        };
        let (natural, key, signature_len, canonical) = match text("kty")? {
            "RSA" => {
                let (n_text, n) = bytes("n")?;
                let (e_text, e) = bytes("e")?;
                if strict && n.first() == Some(&0) {
                    return Err(JwkRefusal::Bad("the RSA modulus has a leading zero octet"));
                }
                let significant = n.iter().skip_while(|b| **b == 0).count();
                if !(RSA_MIN_BYTES..=RSA_MAX_BYTES).contains(&significant) {
                    return Err(JwkRefusal::Bad("the RSA modulus is not 2048 to 4096 bits"));
                }
                if e.is_empty()
                    || e.len() > 8
                    || e[0] == 0
                    || e.last().is_some_and(|b| b & 1 == 0)
                    || e == [1]
                {
                    return Err(JwkRefusal::Bad("the RSA exponent is not an odd number above 1"));
                }
                let canonical = format!(r#"{{"e":"{e_text}","kty":"RSA","n":"{n_text}"}}"#);
                let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e);
                (Algorithm::RS256, key, significant, canonical)
            }
            "EC" => {
                let crv = text("crv")?;
                let (x_text, x) = bytes("x")?;
                let (y_text, y) = bytes("y")?;
                if crv != "P-256" {
                    return Err(JwkRefusal::Bad("only the P-256 curve is supported"));
                }
                if x.len() != 32 || y.len() != 32 {
                    return Err(JwkRefusal::Bad("a P-256 coordinate is not 32 bytes"));
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let key = jsonwebtoken::DecodingKey::from_ec_der(&point);
                if !jws::backend_accepts(Algorithm::ES256, &key) {
                    return Err(JwkRefusal::Bad("the point is not on the P-256 curve"));
                }
                let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x_text}","y":"{y_text}"}}"#);
                (Algorithm::ES256, key, 64, canonical)
            }
            "OKP" => {
                let crv = text("crv")?;
                let (x_text, x) = bytes("x")?;
                if crv != "Ed25519" {
                    return Err(JwkRefusal::Bad("only the Ed25519 curve is supported"));
                }
                // Checked here, before the backend sees it: jsonwebtoken slices `[..32]`.
                let Ok(raw) = <[u8; 32]>::try_from(x.as_slice()) else {
                    return Err(JwkRefusal::Bad("an Ed25519 key is not 32 bytes"));
                };
                let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&raw) else {
                    return Err(JwkRefusal::Bad("the Ed25519 point does not decode"));
                };
                // A key of small order verifies forged signatures: refused from anyone.
                if vk.is_weak() {
                    return Err(JwkRefusal::Bad("the Ed25519 key has small order"));
                }
                let key = jsonwebtoken::DecodingKey::from_ed_der(&raw);
                let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x_text}"}}"#);
                (Algorithm::EdDSA, key, 64, canonical)
            }
            "oct" => return Err(JwkRefusal::Private),
            _ => return Err(JwkRefusal::Bad("the key type is not RSA, EC or OKP")),
        };
        let thumbprint = Thumbprint::from_bytes(Sha256::digest(canonical.as_bytes()).into());
        let usable = usability(m, natural);
        Ok(Self { kid, usable, key, signature_len, thumbprint })
    }
}

/// The algorithm a key of type `natural` may verify, given its `alg`, `use` and `key_ops`.
fn usability(m: &Map<String, Value>, natural: Algorithm) -> Result<Algorithm, &'static str> {
    match m.get("alg") {
        None => {}
        Some(Value::String(a)) if a == natural.as_str() => {}
        Some(_) => return Err("the key's own alg is another algorithm"),
    }
    match m.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(_) => return Err("the key's use is not sig"),
    }
    match m.get("key_ops") {
        None => {}
        Some(Value::Array(ops)) if ops.iter().any(|o| o == "verify") => {}
        Some(_) => return Err("the key's key_ops do not include verify"),
    }
    Ok(natural)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(json: &str) -> Map<String, Value> {
        match serde_json::from_str(json) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn private_and_symmetric_keys_are_refused() {
        let ec = r#"{"kty":"EC","crv":"P-256","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","d":"AAAA"}"#;
        assert_eq!(PublicJwk::from_map(&map(ec), true).err(), Some(JwkRefusal::Private));
        assert_eq!(
            PublicJwk::from_map(&map(r#"{"kty":"oct","k":"c2VjcmV0"}"#), true).err(),
            Some(JwkRefusal::Private)
        );
    }

    #[test]
    fn a_short_ed25519_key_is_refused_not_a_panic() {
        let r = PublicJwk::from_map(&map(r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#), false);
        assert!(matches!(r, Err(JwkRefusal::Bad(_))));
    }

    #[test]
    fn a_small_order_ed25519_key_is_refused() {
        // The identity point (y = 1): small order.
        let mut id = [0u8; 32];
        id[0] = 1;
        let jwk = format!(
            r#"{{"kty":"OKP","crv":"Ed25519","x":"{}"}}"#,
            base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, id)
        );
        assert!(matches!(PublicJwk::from_map(&map(&jwk), true), Err(JwkRefusal::Bad(_))));
        assert!(matches!(PublicJwk::from_map(&map(&jwk), false), Err(JwkRefusal::Bad(_))), "in a JWKS too");
    }

    #[test]
    fn a_key_whose_alg_differs_is_read_but_usable_for_nothing() {
        let ec = r#"{"kty":"EC","crv":"P-256","alg":"ES384","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}"#;
        let k = PublicJwk::from_map(&map(ec), false).ok();
        assert!(k.is_some_and(|k| k.check_alg(Algorithm::ES256).is_err()));
    }
}
