//! Secret material: the server-side digest key, the stored digest, and the token returned at issue.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, Zeroizing};

use crate::format::TokenId;

/// The server-side key (pepper) under which token secrets are digested: HMAC-SHA256.
///
/// Only the keyed HMAC state is kept, and it is zeroized on drop. A digest key has a numeric id
/// stored beside every digest it made, so keys can be rotated while old digests still verify.
/// `Debug` shows the id only.
#[derive(Clone)]
pub struct DigestKey {
    id: u32,
    /// SHA-256's state after the key's inner and outer pad blocks (RFC 2104): each digest is then
    /// the two compressions a short message needs, run on these with no hasher to copy.
    pads: Zeroizing<[[u32; 8]; 2]>,
}

/// SHA-256's initial state (FIPS 180-4, 5.3.3).
const SHA256_IV: [u32; 8] =
    [0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19];

/// Runs SHA-256's compression over `message` (which follows one 64-byte pad block already in
/// `state`) with the standard padding, and returns the digest.
#[inline]
fn finish_sha256(mut state: [u32; 8], message: &[u8]) -> [u8; 32] {
    use sha2::block_api::compress256;
    let bits = ((64 + message.len()) as u64) * 8;
    let mut chunks = message.chunks_exact(64);
    for block in &mut chunks {
        compress256(&mut state, &[block.try_into().unwrap_or([0; 64])]);
    }
    let rest = chunks.remainder();
    let mut tail = [[0u8; 64]; 2];
    let flat = tail.as_flattened_mut();
    flat[..rest.len()].copy_from_slice(rest);
    flat[rest.len()] = 0x80;
    let blocks = if rest.len() < 56 { 1 } else { 2 };
    flat[blocks * 64 - 8..blocks * 64].copy_from_slice(&bits.to_be_bytes());
    compress256(&mut state, &tail[..blocks]);
    // The copy of the message's last bytes (a token's secret characters) does not outlive this.
    tail.as_flattened_mut()[..rest.len()].zeroize();
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(4).zip(state) {
        o.copy_from_slice(&w.to_be_bytes());
    }
    out
}

impl DigestKey {
    /// A key from 32 bytes of key material (from a key provider or the OS CSPRNG).
    pub fn from_bytes(id: u32, key: &secrecy::SecretBox<[u8; 32]>) -> Self {
        let mut pads = Zeroizing::new([SHA256_IV; 2]);
        for (state, pad) in pads.iter_mut().zip([0x36u8, 0x5c]) {
            let mut block = Zeroizing::new([pad; 64]);
            for (b, k) in block.iter_mut().zip(key.expose_secret()) {
                *b ^= k;
            }
            sha2::block_api::compress256(state, std::slice::from_ref(&*block));
        }
        Self { id, pads }
    }

    /// A fresh random key from the OS CSPRNG.
    pub fn generate(id: u32) -> Result<Self, crate::errors::RandomnessUnavailable> {
        use rand::TryRng;
        let mut key = secrecy::SecretBox::new(Box::new([0u8; 32]));
        rand::rngs::SysRng
            .try_fill_bytes(secrecy::ExposeSecretMut::expose_secret_mut(&mut key))
            .map_err(|_| crate::errors::RandomnessUnavailable)?;
        Ok(Self::from_bytes(id, &key))
    }

    /// The key's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The digest of a parsed token's secret, as a store keeps it.
    #[inline]
    pub fn digest_token(&self, token: &crate::lookup::ParsedToken<'_>) -> TokenDigest {
        self.digest(token.secret_chars())
    }

    /// Digests a token's secret characters.
    #[inline]
    pub(crate) fn digest(&self, secret_chars: &[u8]) -> TokenDigest {
        // HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)), the pad blocks compressed already.
        let inner = finish_sha256(self.pads[0], secret_chars);
        TokenDigest { key_id: self.id, mac: finish_sha256(self.pads[1], &inner) }
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

    proptest::proptest! {
        /// The two compressions on the precomputed pads are HMAC-SHA256: checked against the
        /// `hmac` crate (an independent implementation) for every length around the one- and
        /// two-block boundaries and beyond.
        #[test]
        fn the_digest_is_hmac_sha256(key: [u8; 32], message in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            use hmac::{Hmac, KeyInit, Mac};
            let ours = DigestKey::from_bytes(9, &secrecy::SecretBox::new(Box::new(key))).digest(&message);
            let mut theirs = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).expect("any key length");
            theirs.update(&message);
            proptest::prop_assert_eq!(ours.mac(), &<[u8; 32]>::from(theirs.finalize().into_bytes()));
        }
    }

    /// RFC 4231 test case 1 is for a 20-byte key; ours are 32 bytes, so the vector here is HMAC's
    /// definition computed by hand with SHA-256 alone (`sha2`'s generic API), every boundary length.
    #[test]
    fn every_length_up_to_three_blocks_matches_the_definition() {
        use sha2::Digest;
        let key = [0x0bu8; 32];
        let ours = DigestKey::from_bytes(1, &secrecy::SecretBox::new(Box::new(key)));
        for len in 0..=192usize {
            let message: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let pad =
                |p: u8| key.iter().map(|k| k ^ p).chain(std::iter::repeat_n(p, 32)).collect::<Vec<u8>>();
            let inner = sha2::Sha256::new().chain_update(pad(0x36)).chain_update(&message).finalize();
            let outer = sha2::Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
            assert_eq!(ours.digest(&message).mac(), &<[u8; 32]>::from(outer), "length {len}");
        }
    }
}
