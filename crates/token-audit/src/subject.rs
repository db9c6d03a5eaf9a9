//! Keyed hashes of sensitive values, as Vault's audit devices keep them: an entry can say *which*
//! value an event was about (an operator who knows a value can find its entries) without holding it.

use hmac::{Hmac, KeyInit, Mac};
use rand::TryRng;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use crate::error::AuditError;

/// The HMAC-SHA256 key of a log's subject hashes. Its Debug shows nothing of it.
#[derive(Clone)]
pub struct SubjectKey {
    mac: Hmac<Sha256>,
}

impl SubjectKey {
    /// A fresh key.
    pub fn generate() -> Result<Self, AuditError> {
        let mut k = SecretBox::new(Box::new([0u8; 32]));
        rand::rngs::SysRng
            .try_fill_bytes(secrecy::ExposeSecretMut::expose_secret_mut(&mut k))
            .map_err(|_| AuditError::Unavailable("the OS random number generator failed".into()))?;
        Ok(Self::from_bytes(&k))
    }

    /// The key from its bytes (keep them sealed, e.g. in token-store).
    pub fn from_bytes(key: &SecretBox<[u8; 32]>) -> Self {
        // HMAC takes keys of any length: this cannot fail.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC accepts 32-byte keys"));
        Self { mac }
    }

    /// `HMAC-SHA256(key, value)` as 64 lowercase hex characters (the form of `subject_hmac`).
    pub fn hash(&self, value: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(value);
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        crate::hex::encode(&out)
    }
}

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubjectKey([REDACTED])")
    }
}
