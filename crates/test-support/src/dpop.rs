//! A DPoP client key (RFC 9449) for tests and benches: ES256 or EdDSA (Ed25519) proofs for a
//! request, the key's RFC 7638 thumbprint. The server side is verified against an independent
//! implementation's vectors in `token-oidc`; this is the client a test needs to talk to a live
//! server.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The private half of a [`DpopKey`].
enum Private {
    /// P-256 (ES256), with its public point's coordinates (base64url).
    P256 { key: SigningKey, x: String, y: String },
    /// Ed25519 (EdDSA), with its public key (base64url).
    Ed25519 { key: ed25519_dalek::SigningKey, x: String },
}

/// A key a client proves possession of: P-256 ([`DpopKey::from_seed`]) or Ed25519
/// ([`DpopKey::ed25519_from_seed`]).
pub struct DpopKey {
    key: Private,
}

impl DpopKey {
    /// The P-256 key made from `seed` (any 32 bytes that make a valid scalar; tests pass
    /// constants); its proofs are ES256.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let key = SigningKey::from_slice(&seed).expect("a valid P-256 scalar");
        let point = key.verifying_key().to_sec1_point(false);
        let b = point.as_bytes();
        Self { key: Private::P256 { x: B64.encode(&b[1..33]), y: B64.encode(&b[33..65]), key } }
    }

    /// The Ed25519 key made from `seed` (any 32 bytes); its proofs are EdDSA.
    pub fn ed25519_from_seed(seed: [u8; 32]) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        Self { key: Private::Ed25519 { x: B64.encode(key.verifying_key().to_bytes()), key } }
    }

    /// The JWS algorithm of its proofs (`ES256`, `EdDSA`).
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Private::P256 { .. } => "ES256",
            Private::Ed25519 { .. } => "EdDSA",
        }
    }

    /// Its public JWK.
    fn jwk(&self) -> Value {
        match &self.key {
            Private::P256 { x, y, .. } => json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
            Private::Ed25519 { x, .. } => json!({"kty": "OKP", "crv": "Ed25519", "x": x}),
        }
    }

    /// A compact JWS of `header` and `claims`, signed by this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let signature = match &self.key {
            Private::P256 { key, .. } => {
                let sig: Signature = key.sign(input.as_bytes());
                sig.to_bytes().to_vec()
            }
            Private::Ed25519 { key, .. } => {
                ed25519_dalek::Signer::sign(key, input.as_bytes()).to_bytes().to_vec()
            }
        };
        format!("{input}.{}", B64.encode(signature))
    }

    /// Its RFC 7638 thumbprint, base64url (what a bound token names).
    pub fn thumbprint(&self) -> String {
        // The required members in lexicographic order, no whitespace (RFC 7638 §3.2).
        let canonical = match &self.key {
            Private::P256 { x, y, .. } => format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#),
            Private::Ed25519 { x, .. } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
        };
        B64.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// A proof for `method` `uri` made at `iat` (Unix seconds), with `jti`, carrying the hash of
    /// `access_token` when one is presented.
    pub fn proof(&self, method: &str, uri: &str, access_token: Option<&str>, iat: i64, jti: &str) -> String {
        let header = json!({"typ": "dpop+jwt", "alg": self.algorithm(), "jwk": self.jwk()});
        let mut claims = json!({"jti": jti, "htm": method, "htu": uri, "iat": iat});
        if let Some(t) = access_token {
            claims["ath"] = json!(B64.encode(Sha256::digest(t.as_bytes())));
        }
        self.sign(&header, &claims)
    }

    /// [`DpopKey::proof`] now, with a fresh random `jti`.
    pub fn proof_now(&self, method: &str, uri: &str, access_token: Option<&str>) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut jti = [0u8; 16];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut jti).expect("the OS random source");
        let jti = token_core::hex::encode(&jti);
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
        let mut jwk = self.key.jwk();
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.key.algorithm());
        jwk["use"] = json!("sig");
        json!({"keys": [jwk]}).to_string()
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
            "jti": token_core::hex::encode(&jti),
        });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), claims.as_object()) {
            for (k, v) in extra {
                b.insert(k.clone(), v.clone());
            }
        }
        let header = json!({"typ": "JWT", "alg": self.key.algorithm(), "kid": self.kid});
        self.key.sign(&header, &body)
    }
}

/// The issuer the federation fixtures trust.
pub const CI_ISSUER: &str = "https://ci.example.test";

/// A policy trusting [`CI_ISSUER`] with GitHub Actions' claims (`acme/api` on `refs/heads/main`,
/// audience `tokenward`) for principal `ci-deployer` — role `deployer`,
/// `deploy:service/api/*:release`, at most 1 h, exchanged for at most 15 min — its keys pinned in
/// the JWKS file `jwks`.
#[must_use]
pub fn ci_federation_policy(jwks: &std::path::Path) -> String {
    format!(
        r#"
[[role]]
name = "deployer"
grants = ["deploy:service/api/*:release"]
max_ttl = "1h"

[[principal]]
name = "ci-deployer"
roles = ["deployer"]

[[federation]]
name = "ci-main"
preset = "github-actions"
issuer = "{CI_ISSUER}"
audience = "tokenward"
jwks = {{ file = "{jwks}" }}
principal = "ci-deployer"
max_ttl = "15m"
[federation.claims]
repository = "acme/api"
ref = "refs/heads/main"
"#,
        jwks = jwks.display()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 8037's example key (Appendix A.1: its `d` as the seed) has the RFC's public key and
    /// RFC 7638 thumbprint (A.3); its proofs name it.
    #[test]
    fn the_ed25519_key_is_rfc_8037_s_example() {
        let d = B64.decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        let key = DpopKey::ed25519_from_seed(d.try_into().unwrap());
        assert_eq!(key.thumbprint(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let proof = key.proof("GET", "https://api.example.com/x", Some("tok"), 1_765_000_000, "j1");
        let header: Value =
            serde_json::from_slice(&B64.decode(proof.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["alg"], "EdDSA");
        assert_eq!(header["jwk"]["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        let (input, sig) = proof.rsplit_once('.').unwrap();
        let sig = ed25519_dalek::Signature::from_slice(&B64.decode(sig).unwrap()).unwrap();
        let public = ed25519_dalek::VerifyingKey::from_bytes(
            &B64.decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap().try_into().unwrap(),
        )
        .unwrap();
        assert!(public.verify_strict(input.as_bytes(), &sig).is_ok());
        assert!(public.verify_strict(format!("{input}x").as_bytes(), &sig).is_err());
    }
}
