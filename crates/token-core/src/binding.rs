//! What binds a token to a key: the key's RFC 7638 JWK SHA-256 thumbprint, kept in the token's
//! authenticated record. A bound token is accepted only with a proof of possession of that key
//! (a DPoP proof, RFC 9449), so a leaked copy alone is useless.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A public key's RFC 7638 JWK SHA-256 thumbprint: what a bound token's record names (`cnf.jkt`
/// in RFC 9449's terms). Public: it identifies a key, it does not unlock anything. Shown and
/// serialised in its base64url form (43 characters).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint([u8; 32]);

impl Thumbprint {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// From its base64url form (43 characters, no padding, as in `cnf.jkt`).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Whether `other` is the same thumbprint, compared in constant time.
    pub fn ct_eq(&self, other: &Thumbprint) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({self})")
    }
}

impl Serialize for Thumbprint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Thumbprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("not a base64url SHA-256 thumbprint"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn round_trips_through_its_text_and_refuses_anything_else() {
        // RFC 7638 §3.1's example thumbprint.
        let text = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let t = Thumbprint::parse(text).unwrap();
        assert_eq!(t.to_string(), text);
        assert_eq!(format!("{t:?}"), format!("Thumbprint({text})"));
        assert!(t.ct_eq(&Thumbprint::from_bytes(*t.as_bytes())));
        assert!(!t.ct_eq(&Thumbprint::from_bytes([0; 32])));
        for bad in [
            "",
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X",
            "NzbLsXh8uDCcd+6MNwXF4W/7noWXFZAfHkxZsRGC9Xs",
            &format!("{text}="),
        ] {
            assert!(Thumbprint::parse(bad).is_none(), "{bad}");
        }
    }
}
