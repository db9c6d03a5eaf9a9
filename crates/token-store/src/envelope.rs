//! Envelope encryption: each secret version has its own data key (AES-256-GCM, random 96-bit
//! nonce); the data key is wrapped by a key-encryption key (KEK) from a [`crate::KeyProvider`].
//!
//! Associated data binds a ciphertext to where it belongs:
//! - the data-key wrap: `"tokenward/dek/v1" ‖ kek id ‖ secret name ‖ version`;
//! - the payload: `"tokenward/secret/v1" ‖ secret name ‖ version`,
//!
//! each field length-prefixed, so a ciphertext or a wrapped key moved to another secret or version
//! fails to open. Labels (`current`, `pending`, `previous`) are not bound: they move between
//! versions during a rotation without touching ciphertext; moves are compare-and-swap in the store.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::TryRng;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// Bytes of a GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of a GCM tag.
pub const TAG_LEN: usize = 16;

/// A 256-bit key (data key or KEK), zeroized on drop, never printed.
pub struct SecretKey(SecretBox<[u8; 32]>);

impl SecretKey {
    /// A fresh key from the OS CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut k = SecretBox::new(Box::new([0u8; 32]));
        fill_random(k.expose_secret_mut())?;
        Ok(Self(k))
    }

    /// Wraps key material.
    pub fn from_bytes(bytes: SecretBox<[u8; 32]>) -> Self {
        Self(bytes)
    }

    pub(crate) fn expose_bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// The key material, for a [`crate::KeyProvider`] that wraps it elsewhere (a KMS). Keep it
    /// in zeroizing buffers only.
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    pub(crate) fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(*self.0.expose_secret()))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    rand::rngs::SysRng
        .try_fill_bytes(buf)
        .map_err(|_| StoreError::KeyProvider("the operating system's random number generator failed".into()))
}

/// A nonce followed by AES-256-GCM ciphertext and tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed(#[serde(with = "b64")] pub Vec<u8>);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// Length-prefixed associated data.
pub(crate) fn aad(domain: &str, fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + fields.iter().map(|f| f.len() + 4).sum::<usize>());
    out.extend_from_slice(domain.as_bytes());
    for f in fields {
        out.extend_from_slice(&u32::try_from(f.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Encrypts `plaintext` under `key` with a random nonce, binding `aad`.
pub(crate) fn seal(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Result<Sealed> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let ct = key
        .cipher()
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| StoreError::Invalid("AES-GCM refused the message (too long)".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(Sealed(out))
}

/// Decrypts a [`Sealed`]; `None` when authentication fails (wrong key, wrong binding, tampering).
pub(crate) fn open(key: &SecretKey, aad: &[u8], sealed: &Sealed) -> Option<SecretBox<Vec<u8>>> {
    if sealed.0.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ct) = sealed.0.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    key.cipher()
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .ok()
        .map(|v| SecretBox::new(Box::new(v)))
}

/// Wraps (seals) a data key under a KEK.
pub(crate) fn wrap_key(kek: &SecretKey, aad: &[u8], dek: &SecretKey) -> Result<Sealed> {
    seal(kek, aad, dek.0.expose_secret())
}

/// Unwraps a data key; `None` when authentication fails.
pub(crate) fn unwrap_key(kek: &SecretKey, aad: &[u8], wrapped: &Sealed) -> Option<SecretKey> {
    let bytes = open(kek, aad, wrapped)?;
    let arr: [u8; 32] = bytes.expose_secret().as_slice().try_into().ok()?;
    Some(SecretKey(SecretBox::new(Box::new(arr))))
}

pub(crate) mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let k = SecretKey::generate().expect("rng");
        let a = aad("d", &[b"name", b"1"]);
        let s = seal(&k, &a, b"hello").expect("seal");
        assert_eq!(open(&k, &a, &s).expect("open").expose_secret().as_slice(), b"hello");
        assert!(open(&k, &aad("d", &[b"name", b"2"]), &s).is_none(), "moved to another version");
        assert!(open(&k, &aad("d", &[b"nam", b"e1"]), &s).is_none(), "length prefixes separate fields");
        let other = SecretKey::generate().expect("rng");
        assert!(open(&other, &a, &s).is_none());
        for i in 0..s.0.len() {
            let mut t = s.clone();
            t.0[i] ^= 1;
            assert!(open(&k, &a, &t).is_none(), "flip at {i}");
        }
        assert!(open(&k, &a, &Sealed(vec![0; 5])).is_none());
    }
}
