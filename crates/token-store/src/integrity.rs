//! Stored records that cannot be edited into more power: every token record, rotation record and
//! authenticated metadata value carries an HMAC-SHA256 under the store's record key, a random
//! 256-bit key sealed in the store like any secret (so it sits under the KEK, whatever provides it).
//!
//! Someone who can write the database but holds no key cannot widen a token's scopes, extend its
//! expiry, change its principal or limits, or clear its revocation: the record then fails its MAC
//! and is refused ([`StoreError::Corrupted`] with its id) — never used, never read as something
//! else. What a MAC cannot catch is a *rollback* of a row to an older, validly authenticated state
//! (restoring a backup row to un-revoke a token): the front door reconciles revocations with the
//! audit log for that (see `tokenward::Tokenward::reconcile_revocations`).
//!
//! What is authenticated, and how (the rule every backend shares, written once here):
//! - a token: `HMAC(key, "tokenward-record-v2\0token\0" ‖ encoding(record))`, where
//!   `encoding(record)` is the canonical binary encoding of the record as decoded
//!   ([`crate::backend::encode_token_record`]), so every field counts, revocation included; use
//!   counters are not covered — they are advisory limits updated in bulk. (Stores written before
//!   the binary encoding kept JSON records tagged over `"tokenward-record-v1\0token\0" ‖
//!   JSON(record)`; such a record is refused until an explicit, audited migration rewrites it in
//!   the current encoding — only if its tag holds. An untagged record is never accepted.)
//! - a metadata value: `HMAC(key, "tokenward-record-v1\0meta\0" ‖ key name ‖ 0 ‖ value)`, stored as
//!   `"twmac1" ‖ mac ‖ value`, so a value cannot be moved to another key either.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use token_core::lookup::TokenRecord;
use zeroize::Zeroize;

use crate::error::{Result, StoreError};
use crate::model::TokenRow;

thread_local! {
    /// One reusable buffer per thread for the encoding a tag is computed over (records are
    /// not secret, but a load of a million records should not allocate a million buffers).
    static ENCODE_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

const TOKEN_DOMAIN: &[u8] = b"tokenward-record-v2\0token\0";
const LEGACY_TOKEN_DOMAIN: &[u8] = b"tokenward-record-v1\0token\0";
const META_DOMAIN: &[u8] = b"tokenward-record-v1\0meta\0";
const META_MAGIC: &[u8] = b"twmac1";

/// The key records are authenticated under. Backends receive it to seal what they write in one
/// transaction (a revocation changes a record); they never need to check it — the store does.
#[derive(Clone)]
pub struct RecordKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey(..)")
    }
}

/// A record's authentication tag (not secret: it reveals nothing of the key or the record).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordMac(pub [u8; 32]);

impl std::fmt::Debug for RecordMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordMac({:02x}{:02x}{:02x}{:02x}…)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

impl RecordMac {
    /// From stored bytes: exactly 32 of them.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

impl RecordKey {
    /// A key from its 32 bytes (which the caller zeroizes).
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        #[allow(clippy::expect_used)]
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        Self { mac }
    }

    fn token_json(record: &TokenRecord) -> Vec<u8> {
        // Serialising a parsed record cannot fail (no maps with non-string keys, no floats).
        serde_json::to_vec(record).unwrap_or_default()
    }

    fn token_tag(&self, record: &TokenRecord, legacy_json: bool) -> Hmac<Sha256> {
        let mut m = self.mac.clone();
        if legacy_json {
            m.update(LEGACY_TOKEN_DOMAIN);
            let mut json = Self::token_json(record);
            m.update(&json);
            json.zeroize();
        } else {
            m.update(TOKEN_DOMAIN);
            ENCODE_BUF.with_borrow_mut(|buf| {
                buf.clear();
                crate::encoding::encode_token_record_into(record, buf);
                m.update(buf);
            });
        }
        m
    }

    /// The MAC of a token record as it stands (over its canonical encoding).
    pub fn seal_token(&self, record: &TokenRecord) -> RecordMac {
        RecordMac(self.token_tag(record, false).finalize().into_bytes().into())
    }

    fn token_ok(&self, stored: &TokenRow) -> bool {
        stored.defect.is_none()
            && stored.mac.is_some_and(|tag| {
                self.token_tag(&stored.record, stored.legacy_json).verify_slice(&tag.0).is_ok()
            })
    }

    /// Whether a record read in the older JSON form may be rewritten in the current one by an
    /// explicit migration: its tag (over the JSON) holds. An untagged record never may.
    pub fn may_upgrade(&self, stored: &TokenRow) -> bool {
        stored.legacy_json && self.token_ok(stored)
    }

    /// Checks a stored token's MAC (constant time). A missing or wrong MAC, a row its backend
    /// quarantined, or a record still in the older JSON form (until an explicit migration) is
    /// [`StoreError::Corrupted`] naming the token.
    pub fn check_token(&self, stored: &TokenRow) -> Result<()> {
        if !stored.legacy_json && self.token_ok(stored) {
            return Ok(());
        }
        let detail = if let Some(defect) = &stored.defect {
            defect.clone()
        } else if stored.mac.is_none() {
            "has no integrity tag".into()
        } else if stored.legacy_json {
            "is in the older JSON form: refused until `tokenward migrate` rewrites it".into()
        } else {
            "fails its integrity check (edited outside Tokenward)".into()
        };
        Err(StoreError::Corrupted { id: Some(stored.record.id.to_string()), what: "token record", detail })
    }

    fn meta_tag(&self, key: &str, value: &[u8]) -> Hmac<Sha256> {
        let mut m = self.mac.clone();
        m.update(META_DOMAIN);
        m.update(key.as_bytes());
        m.update(&[0]);
        m.update(value);
        m
    }

    /// A metadata value framed with its MAC, for [`crate::Backend::set_meta`].
    pub fn seal_meta(&self, key: &str, value: &[u8]) -> Vec<u8> {
        let tag: [u8; 32] = self.meta_tag(key, value).finalize().into_bytes().into();
        let mut out = Vec::with_capacity(META_MAGIC.len() + 32 + value.len());
        out.extend_from_slice(META_MAGIC);
        out.extend_from_slice(&tag);
        out.extend_from_slice(value);
        out
    }

    /// The value inside a sealed metadata frame, if its MAC holds for `key`.
    pub fn open_meta<'a>(&self, key: &str, stored: &'a [u8]) -> Result<&'a [u8]> {
        let refused = |detail: &str| StoreError::Corrupted {
            id: Some(key.to_owned()),
            what: "metadata record",
            detail: detail.into(),
        };
        let rest = stored.strip_prefix(META_MAGIC).ok_or_else(|| refused("has no integrity tag"))?;
        if rest.len() < 32 {
            return Err(refused("is truncated"));
        }
        let (tag, value) = rest.split_at(32);
        self.meta_tag(key, value)
            .verify_slice(tag)
            .map_err(|_| refused("fails its integrity check (edited outside Tokenward)"))?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn meta_frames_bind_key_and_value() {
        let k = RecordKey::from_bytes(&[9; 32]);
        let sealed = k.seal_meta("a", b"value");
        assert_eq!(k.open_meta("a", &sealed).unwrap(), b"value");
        assert!(k.open_meta("b", &sealed).is_err(), "moved to another key");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(k.open_meta("a", &bad).is_err(), "byte {i}");
        }
        assert!(k.open_meta("a", &sealed[..20]).is_err());
        assert!(k.open_meta("a", b"value").is_err());
        let other = RecordKey::from_bytes(&[8; 32]);
        assert!(other.open_meta("a", &sealed).is_err(), "another store's key");
    }
}
