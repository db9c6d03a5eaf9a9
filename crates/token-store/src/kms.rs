//! Key providers whose key-encryption key never leaves a KMS: **OpenBao Transit** (feature
//! `openbao-transit`) and **AWS KMS** (feature `aws-kms`). Each data key is sent to the KMS to be
//! wrapped and unwrapped; the KMS never hands out the KEK.
//!
//! Both bind the wrap to its `aad` (secret name and version): Transit by prefixing the plaintext
//! with SHA-256 of the aad and checking it in constant time on unwrap, KMS by an encryption
//! context holding the aad's hash. An error names the provider and the KMS's own reason, never a
//! key: a refused permission, an unreachable KMS, a version below `min_decryption_version`.

use async_trait::async_trait;
#[cfg(feature = "aws-kms")]
use base64::Engine as _;
use secrecy::SecretBox;
use sha2::{Digest, Sha256};

use crate::envelope::{Sealed, SecretKey};
use crate::error::{KeyProviderError, Result, StoreError};
use crate::keys::KeyProvider;

#[cfg(feature = "aws-kms")]
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn kms_error(provider: &str, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::KeyProvider(KeyProviderError::new(format!("{provider}: {what}"), e))
}

fn refused(provider: &str, what: String) -> StoreError {
    StoreError::KeyProvider(format!("{provider}: {what}").into())
}

/// The 32-byte DEK from a KMS's plaintext answer (base64), after the `aad` check for Transit.
fn dek_from(bytes: &[u8]) -> Option<SecretKey> {
    let arr: [u8; 32] = bytes.try_into().ok()?;
    Some(SecretKey::from_bytes(SecretBox::new(Box::new(arr))))
}

/// An OpenBao (or Vault) Transit key as the KEK (feature `openbao-transit`).
///
/// The KEK id is `transit:<mount>/<key>:v<latest version>`, read when the provider connects: after
/// rotating the key in Transit, connect again (reopen the store) and
/// [`crate::SecretStore::rotate_kek`] rewraps every data key under the new version. Raising the
/// key's `min_decryption_version` then refuses the old wraps (typed, named errors).
#[cfg(feature = "openbao-transit")]
pub struct TransitKeyProvider {
    bao: token_http::openbao::OpenBao,
    mount: String,
    key: String,
    kek_id: String,
}

#[cfg(feature = "openbao-transit")]
impl std::fmt::Debug for TransitKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitKeyProvider")
            .field("addr", &self.bao.addr())
            .field("kek", &self.kek_id)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "openbao-transit")]
impl TransitKeyProvider {
    /// Connects to Transit at `http` (a [`token_http::HttpClient`] for the server: its TLS, CA and
    /// timeouts), acting with `token`, using key `key` of the engine mounted at `mount`
    /// (`transit`). Reads the key's latest version.
    pub async fn connect(
        http: token_http::HttpClient,
        token: secrecy::SecretString,
        mount: &str,
        key: &str,
    ) -> Result<Self> {
        let mut p = Self {
            bao: token_http::openbao::OpenBao::with_token(http, token),
            mount: mount.trim_matches('/').to_owned(),
            key: key.to_owned(),
            kek_id: String::new(),
        };
        let latest = p
            .bao
            .transit_latest_version(&p.mount, &p.key)
            .await
            .map_err(|e| p.failed("reading the key", e))?;
        p.kek_id = format!("transit:{}/{}:v{latest}", p.mount, p.key);
        Ok(p)
    }

    fn name(&self) -> String {
        format!("OpenBao Transit key {}/{}", self.mount, self.key)
    }

    /// A failed `call` (`encrypt`, `decrypt`, `reading the key`) as the provider's error.
    fn failed(&self, call: &str, e: token_http::openbao::OpenBaoError) -> StoreError {
        use token_http::openbao::OpenBaoError as E;
        match e {
            E::Call(cause) => kms_error(&self.name(), "the call failed", cause),
            E::NotJson { source, .. } => kms_error(&self.name(), "the answer is not JSON", source),
            E::Api { status, errors } => refused(&self.name(), format!("{call} answered {status}: {errors}")),
            E::Denied { errors, .. } => refused(&self.name(), format!("{call} answered 403: {errors}")),
            other => refused(&self.name(), other.to_string()),
        }
    }
}

#[cfg(feature = "openbao-transit")]
#[async_trait]
impl KeyProvider for TransitKeyProvider {
    fn current_kek(&self) -> &str {
        &self.kek_id
    }

    async fn wrap(&self, dek: &SecretKey, aad: &[u8]) -> Result<Sealed> {
        let mut plain = zeroize::Zeroizing::new(Vec::with_capacity(64));
        plain.extend_from_slice(&Sha256::digest(aad));
        plain.extend_from_slice(dek.expose_secret());
        let ct = self
            .bao
            .transit_encrypt(&self.mount, &self.key, &plain)
            .await
            .map_err(|e| self.failed("encrypt", e))?;
        Ok(Sealed(ct.into_bytes()))
    }

    async fn unwrap(&self, kek_id: &str, wrapped: &Sealed, aad: &[u8]) -> Result<SecretKey> {
        let prefix = format!("transit:{}/{}:v", self.mount, self.key);
        if !kek_id.starts_with(&prefix) {
            return Err(StoreError::UnknownKey { kek_id: kek_id.to_owned() });
        }
        let ct = std::str::from_utf8(&wrapped.0).map_err(|_| StoreError::Corrupted {
            id: None,
            what: "wrapped data key",
            detail: "not a Transit ciphertext".into(),
        })?;
        let plain = self
            .bao
            .transit_decrypt(&self.mount, &self.key, ct)
            .await
            .map_err(|e| self.failed("decrypt", e))?;
        let bound: bool = plain.len() == 64
            && bool::from(subtle::ConstantTimeEq::ct_eq(&plain[..32], Sha256::digest(aad).as_slice()));
        if !bound {
            return Err(StoreError::Corrupted {
                id: None,
                what: "wrapped data key",
                detail: "bound to another secret".into(),
            });
        }
        dek_from(&plain[32..])
            .ok_or_else(|| refused(&self.name(), "decrypt's plaintext has the wrong size".into()))
    }
}

/// An AWS KMS key as the KEK (feature `aws-kms`): `Encrypt` / `Decrypt` with an encryption
/// context holding the aad's hash. The KEK id is `aws-kms:<key id or ARN>`; KMS's own key
/// rotation is transparent (a ciphertext names its backing key).
#[cfg(feature = "aws-kms")]
#[derive(Debug)]
pub struct AwsKmsKeyProvider {
    client: token_http::aws::AwsClient,
    key_id: String,
    kek_id: String,
}

#[cfg(feature = "aws-kms")]
impl AwsKmsKeyProvider {
    /// KMS key `key_id` (an id, ARN or alias) through `client`.
    pub fn new(client: token_http::aws::AwsClient, key_id: &str) -> Self {
        Self { client, key_id: key_id.to_owned(), kek_id: format!("aws-kms:{key_id}") }
    }

    fn name(&self) -> String {
        format!("AWS KMS key {}", self.key_id)
    }

    fn context(aad: &[u8]) -> serde_json::Value {
        serde_json::json!({ "tokenward-aad-sha256": token_core::hex::encode(&Sha256::digest(aad)) })
    }
}

#[cfg(feature = "aws-kms")]
#[async_trait]
impl KeyProvider for AwsKmsKeyProvider {
    fn current_kek(&self) -> &str {
        &self.kek_id
    }

    async fn wrap(&self, dek: &SecretKey, aad: &[u8]) -> Result<Sealed> {
        let body = serde_json::json!({
            "KeyId": self.key_id,
            "Plaintext": B64.encode(dek.expose_secret()),
            "EncryptionContext": Self::context(aad),
        });
        let v = self
            .client
            .json("kms", "TrentService.Encrypt", &body)
            .await
            .map_err(|e| kms_error(&self.name(), "Encrypt failed", e))?;
        let blob = v["CiphertextBlob"]
            .as_str()
            .ok_or_else(|| refused(&self.name(), "Encrypt's answer lacks the blob".into()))?;
        Ok(Sealed(
            B64.decode(blob).map_err(|_| refused(&self.name(), "Encrypt's blob is not base64".into()))?,
        ))
    }

    async fn unwrap(&self, kek_id: &str, wrapped: &Sealed, aad: &[u8]) -> Result<SecretKey> {
        if kek_id != self.kek_id {
            return Err(StoreError::UnknownKey { kek_id: kek_id.to_owned() });
        }
        let body = serde_json::json!({
            "KeyId": self.key_id,
            "CiphertextBlob": B64.encode(&wrapped.0),
            "EncryptionContext": Self::context(aad),
        });
        let v = self.client.json("kms", "TrentService.Decrypt", &body).await.map_err(|e| match e.code() {
            // A wrong context or a tampered blob.
            Some("InvalidCiphertextException") => StoreError::Corrupted {
                id: None,
                what: "wrapped data key",
                detail: "KMS refused the ciphertext or its context".into(),
            },
            _ => kms_error(&self.name(), "Decrypt failed", e),
        })?;
        let plain = zeroize::Zeroizing::new(
            B64.decode(v["Plaintext"].as_str().unwrap_or_default())
                .map_err(|_| refused(&self.name(), "Decrypt's plaintext is not base64".into()))?,
        );
        dek_from(&plain).ok_or_else(|| refused(&self.name(), "Decrypt's plaintext has the wrong size".into()))
    }
}
