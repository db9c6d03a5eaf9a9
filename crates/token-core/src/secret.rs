//! Secret material: the server-side digest key, the stored digest, and the token returned at issue.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::format::TokenId;

/// The server-side key (pepper) under which token secrets are digested: HMAC-SHA256.
///
/// Only the keyed HMAC state is kept, and it is zeroized on drop. A digest key has a numeric id
/// stored beside every digest it made, so keys can be rotated while old digests still verify.
/// `Debug` shows the id only.
#[derive(Clone)]
pub struct DigestKey {
    id: u32,
    mac: Hmac<Sha256>,
}

impl DigestKey {
    /// A key from 32 bytes of key material (from a key provider or the OS CSPRNG).
    pub fn from_bytes(id: u32, key: &secrecy::SecretBox<[u8; 32]>) -> Self {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        Self { id, mac }
    }

    /// A fresh random key from the OS CSPRNG.
    pub fn generate(id: u32) -> Result<Self, crate::RandomnessUnavailable> {
        use rand::TryRng;
        let mut key = secrecy::SecretBox::new(Box::new([0u8; 32]));
        rand::rngs::SysRng
            .try_fill_bytes(secrecy::ExposeSecretMut::expose_secret_mut(&mut key))
            .map_err(|_| crate::RandomnessUnavailable)?;
        Ok(Self::from_bytes(id, &key))
    }

    /// The key's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The digest of a parsed token's secret, as a store keeps it.
    #[inline]
    pub fn digest_token(&self, token: &crate::ParsedToken<'_>) -> TokenDigest {
        self.digest(token.secret_chars())
    }

    /// Digests a token's secret characters.
    #[inline]
    pub(crate) fn digest(&self, secret_chars: &[u8]) -> TokenDigest {
        let mut mac = self.mac.clone();
        mac.update(secret_chars);
        TokenDigest { key_id: self.id, mac: mac.finalize().into_bytes().into() }
    }
}

impl fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestKey").field("id", &self.id).field("key", &"[REDACTED]").finish()
    }
}

/// What the issuer stores instead of a token: HMAC-SHA256(digest key, secret), with the key's id.
///
/// Not a secret by itself (it cannot be reversed without the key), but it is compared only in
/// constant time.
#[derive(Clone, Copy, Serialize, Deserialize)]
pub struct TokenDigest {
    key_id: u32,
    mac: [u8; 32],
}

impl TokenDigest {
    /// Rebuilds a stored digest.
    pub fn from_parts(key_id: u32, mac: [u8; 32]) -> Self {
        Self { key_id, mac }
    }

    /// The id of the digest key that made it.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The 32 MAC bytes.
    pub fn mac(&self) -> &[u8; 32] {
        &self.mac
    }

    /// Constant-time equality of the MAC bytes (the key ids are public).
    #[inline]
    pub fn ct_eq(&self, other: &Self) -> Choice {
        let same_key = Choice::from(u8::from(self.key_id == other.key_id));
        same_key & ct_eq_32(&self.mac, &other.mac)
    }
}

/// Constant-time equality of two 32-byte strings: four 64-bit words folded with OR, then one
/// `subtle` comparison, so no branch depends on where they differ.
#[inline]
pub fn ct_eq_32(a: &[u8; 32], b: &[u8; 32]) -> Choice {
    let mut diff = 0u64;
    for i in 0..4 {
        let wa = u64::from_ne_bytes(a[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        let wb = u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        diff |= wa ^ wb;
    }
    diff.ct_eq(&0)
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest(key {}, ", self.key_id)?;
        for b in &self.mac[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

/// A newly issued token. The plaintext exists only here, once: hand it to its holder and drop it.
///
/// Not `Clone`; `Debug` shows the id only; the text is zeroized on drop.
pub struct IssuedToken {
    id: TokenId,
    text: SecretString,
    expires_at: chrono::DateTime<chrono::Utc>,
}

impl IssuedToken {
    pub(crate) fn new(id: TokenId, text: SecretString, expires_at: chrono::DateTime<chrono::Utc>) -> Self {
        Self { id, text, expires_at }
    }

    /// The public id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// When it expires.
    pub fn expires_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.expires_at
    }

    /// The token text, to hand to its holder.
    pub fn expose_secret(&self) -> &str {
        self.text.expose_secret()
    }

    /// Gives up the token text as a secret string.
    pub fn into_secret(self) -> SecretString {
        self.text
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("id", &self.id)
            .field("expires_at", &self.expires_at)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_finds_a_difference_in_every_byte() {
        let a = [7u8; 32];
        assert!(bool::from(ct_eq_32(&a, &a)));
        for i in 0..32 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!bool::from(ct_eq_32(&a, &b)), "byte {i}");
        }
    }

    #[test]
    fn digest_depends_on_key_and_secret() {
        let k1 = DigestKey::generate(1).expect("rng");
        let k2 = DigestKey::generate(2).expect("rng");
        let d = k1.digest(b"secret");
        assert!(bool::from(d.ct_eq(&k1.digest(b"secret"))));
        assert!(!bool::from(d.ct_eq(&k1.digest(b"secreu"))));
        assert!(!bool::from(d.ct_eq(&k2.digest(b"secret"))));
        assert!(!format!("{k1:?}").contains("mac"));
    }
}
