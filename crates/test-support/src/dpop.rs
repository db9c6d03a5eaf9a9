//! A DPoP client key (RFC 9449) for tests and benches: ES256 proofs for a request, the key's
//! RFC 7638 thumbprint. The server side is verified against an independent implementation's
//! vectors in `token-oidc`; this is the client a test needs to talk to a live server.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;
use sha2::{Digest, Sha256};

/// A P-256 key a client proves possession of.
pub struct DpopKey {
    key: SigningKey,
    x: String,
    y: String,
}

impl DpopKey {
    /// The key made from `seed` (any 32 bytes that make a valid scalar; tests pass constants).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_slice(&seed).expect("a valid P-256 scalar");
        let point = key.verifying_key().to_sec1_point(false);
        let b = point.as_bytes();
        Self { x: B64.encode(&b[1..33]), y: B64.encode(&b[33..65]), key }
    }

    /// Its RFC 7638 thumbprint, base64url (what a bound token names).
    pub fn thumbprint(&self) -> String {
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, self.x, self.y);
        B64.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A proof for `method` `uri` made at `iat` (Unix seconds), with `jti`, carrying the hash of
    /// `access_token` when one is presented.
    pub fn proof(&self, method: &str, uri: &str, access_token: Option<&str>, iat: i64, jti: &str) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y}});
        let mut claims = json!({"jti": jti, "htm": method, "htu": uri, "iat": iat});
        if let Some(t) = access_token {
            claims["ath"] = json!(B64.encode(Sha256::digest(t.as_bytes())));
        }
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.to_bytes()))
    }

    /// [`DpopKey::proof`] now, with a fresh random `jti`.
    pub fn proof_now(&self, method: &str, uri: &str, access_token: Option<&str>) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut jti = [0u8; 16];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut jti).expect("the OS random source");
        let jti: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        self.proof(method, uri, access_token, i64::try_from(now).unwrap_or(i64::MAX), &jti)
    }
}

/// An OIDC issuer for tests: ES256 subject tokens with the claims given, and its JWKS. (The
/// validator is tested against jwcrypto's tokens in `token-oidc`; this mints at the current time
/// for end-to-end tests.)
pub struct TestIssuer {
    key: DpopKey,
    kid: String,
    issuer: String,
}

impl TestIssuer {
    /// An issuer at `issuer` whose one key (`kid`) is made from `seed`.
    pub fn new(issuer: &str, kid: &str, seed: [u8; 32]) -> Self {
        Self { key: DpopKey::from_seed(seed), kid: kid.into(), issuer: issuer.into() }
    }

    /// Its JWKS document.
    pub fn jwks(&self) -> String {
        json!({"keys": [{"kty": "EC", "crv": "P-256", "x": self.key.x, "y": self.key.y, "kid": self.kid, "alg": "ES256", "use": "sig"}]})
            .to_string()
    }

    /// A subject token for `audience` with `claims` (added to `iss`, `aud`, `iat`, `nbf`, `exp`
    /// = now + `ttl_secs`, and a fresh `jti`).
    pub fn mint(&self, audience: &str, ttl_secs: i64, claims: &serde_json::Value) -> String {
        let now = i64::try_from(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        )
        .unwrap_or(i64::MAX);
        let mut jti = [0u8; 16];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut jti).expect("the OS random source");
        let mut body = json!({
            "iss": self.issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl_secs,
            "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), claims.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        let header = json!({"typ": "JWT", "alg": "ES256", "kid": self.kid});
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(body.to_string()));
        let sig: Signature = self.key.key.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(sig.to_bytes()))
    }
}
