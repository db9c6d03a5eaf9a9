//! GitHub secret-scanning partner alerts (feature `github-alerts`), framework-free: give it the
//! raw body and the two headers; it checks the ECDSA P-256 / SHA-256 signature over the raw body
//! against GitHub's published keys **before** parsing, refuses oversized and replayed bodies, and
//! parses the alert list. [`partner_response`] writes the answer GitHub expects (token hashes,
//! never the tokens).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use base64::Engine as _;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The header naming the key that signed an alert.
pub const KEY_ID_HEADER: &str = "Github-Public-Key-Identifier";
/// The header holding the signature (base64 DER).
pub const SIGNATURE_HEADER: &str = "Github-Public-Key-Signature";

/// Why an alert was refused. None quotes the body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlertError {
    /// The body is larger than the verifier takes.
    #[error("alert body of {size} bytes is larger than {max}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A header is missing or empty.
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    /// The key id names no configured key.
    #[error("unknown signing key")]
    UnknownKey,
    /// The signature does not verify over the body (or is not base64 DER).
    #[error("bad signature")]
    BadSignature,
    /// The same signed body was seen before.
    #[error("replayed alert")]
    Replayed,
    /// The body verifies but is not an alert list.
    #[error("malformed alert: {0}")]
    Malformed(String),
    /// A configured key does not parse.
    #[error("bad GitHub public key: {0}")]
    BadKey(String),
}

/// One reported token. Its `Debug` hides the token.
#[derive(Deserialize)]
#[non_exhaustive]
pub struct Alert {
    /// The token GitHub found.
    #[serde(deserialize_with = "secret")]
    pub token: SecretString,
    /// The token type GitHub matched (its pattern name).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it was found.
    #[serde(default)]
    pub url: String,
    /// What kind of place (`content`, `commit`, `npm`, …).
    #[serde(default)]
    pub source: String,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
    String::deserialize(d).map(SecretString::from)
}

impl std::fmt::Debug for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alert")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct PublishedKeys {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
    #[serde(default)]
    is_current: bool,
}

/// Digests of recently accepted bodies: a set to look up, a queue to forget the oldest.
type Recent = (HashSet<[u8; 32]>, VecDeque<[u8; 32]>);

/// Checks GitHub's alerts: the keys, a body size limit, and a memory of recent bodies.
pub struct AlertVerifier {
    keys: Vec<(String, VerifyingKey)>,
    max_body: usize,
    seen: Mutex<Recent>,
    remember: usize,
}

impl std::fmt::Debug for AlertVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertVerifier")
            .field("keys", &self.keys.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>())
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl AlertVerifier {
    /// A verifier with no keys yet (add GitHub's), a 1 MiB body limit, and a memory of the last
    /// 10,000 bodies for replay refusal.
    pub fn new() -> Self {
        Self {
            keys: Vec::new(),
            max_body: 1 << 20,
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
            remember: 10_000,
        }
    }

    /// Adds a key (PEM SubjectPublicKeyInfo) under its identifier.
    pub fn with_key(mut self, key_identifier: &str, pem: &str) -> Result<Self, AlertError> {
        let key = VerifyingKey::from_public_key_pem(pem).map_err(|e| AlertError::BadKey(e.to_string()))?;
        self.keys.push((key_identifier.to_owned(), key));
        Ok(self)
    }

    /// Adds every key of GitHub's published key list (`{"public_keys":[{"key_identifier",
    /// "key", "is_current"}]}`); retired keys too, since GitHub may still sign with them briefly.
    pub fn with_published_keys(mut self, json: &str) -> Result<Self, AlertError> {
        let list: PublishedKeys =
            serde_json::from_str(json).map_err(|e| AlertError::BadKey(e.to_string()))?;
        for k in list.public_keys {
            let _ = k.is_current;
            self = self.with_key(&k.key_identifier, &k.key)?;
        }
        Ok(self)
    }

    /// The largest body accepted.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Verifies and parses an alert delivery: size, headers, key, signature over the raw body,
    /// replay — in that order, so nothing unverified is parsed.
    pub fn verify(
        &self,
        body: &[u8],
        key_id: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Vec<Alert>, AlertError> {
        let verified = self.verify_unlogged(body, key_id, signature);
        match &verified {
            // Not signed by GitHub, or sent twice: someone other than GitHub may be calling.
            Err(e @ (AlertError::UnknownKey | AlertError::BadSignature | AlertError::Replayed)) => {
                tracing::warn!(error = %e, size = body.len(), "a secret-scanning alert delivery was refused")
            }
            Err(e) => {
                tracing::debug!(error = %e, size = body.len(), "a secret-scanning alert delivery was refused")
            }
            Ok(alerts) => tracing::debug!(alerts = alerts.len(), "secret-scanning alerts verified"),
        }
        verified
    }

    fn verify_unlogged(
        &self,
        body: &[u8],
        key_id: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Vec<Alert>, AlertError> {
        if body.len() > self.max_body {
            return Err(AlertError::TooLarge { size: body.len(), max: self.max_body });
        }
        let key_id = key_id.filter(|k| !k.is_empty()).ok_or(AlertError::MissingHeader(KEY_ID_HEADER))?;
        let signature =
            signature.filter(|s| !s.is_empty()).ok_or(AlertError::MissingHeader(SIGNATURE_HEADER))?;
        let key =
            self.keys.iter().find(|(id, _)| id == key_id).map(|(_, k)| k).ok_or(AlertError::UnknownKey)?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| AlertError::BadSignature)?;
        let sig = Signature::from_der(&der).map_err(|_| AlertError::BadSignature)?;
        key.verify(body, &sig).map_err(|_| AlertError::BadSignature)?;
        let digest: [u8; 32] = Sha256::digest(body).into();
        {
            let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !seen.0.insert(digest) {
                return Err(AlertError::Replayed);
            }
            seen.1.push_back(digest);
            if seen.1.len() > self.remember
                && let Some(old) = seen.1.pop_front()
            {
                seen.0.remove(&old);
            }
        }
        parse_alerts(body)
    }
}

/// Parses an alert list. Only for bodies whose signature verified ([`AlertVerifier::verify`]
/// calls it; the fuzz targets reach it through `token_scan::fuzzing`).
pub(crate) fn parse_alerts(body: &[u8]) -> Result<Vec<Alert>, AlertError> {
    serde_json::from_slice(body)
        .map_err(|e| AlertError::Malformed(format!("not an alert list ({})", e.classify_name())))
}

impl Default for AlertVerifier {
    fn default() -> Self {
        Self::new()
    }
}

trait Classify {
    fn classify_name(&self) -> &'static str;
}

impl Classify for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "i/o",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "wrong fields",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// A partner's verdict on one reported token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// It was a live credential (now revoked).
    TruePositive,
    /// It was not one (not ours, unknown, already dead).
    FalsePositive,
}

/// The response body GitHub expects: `[{"token_hash", "token_type", "label"}]` (the SHA-256 of
/// each token in hex, never the token).
pub fn partner_response(verdicts: &[(&Alert, Verdict)]) -> String {
    let items: Vec<serde_json::Value> = verdicts
        .iter()
        .map(|(a, v)| {
            let hash = token_core::hex::encode(&Sha256::digest(a.token.expose_secret().as_bytes()));
            serde_json::json!({
                "token_hash": hash,
                "token_type": a.kind,
                "label": match v { Verdict::TruePositive => "true_positive", Verdict::FalsePositive => "false_positive" },
            })
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}
