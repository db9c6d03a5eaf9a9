//! A credential: its public handle, its secret, its expiry. Kept sealed in the store as one
//! version of a secret.

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::RotateError;

/// A credential at a target. Its Debug shows the handle and expiry, never the secret.
pub struct Credential {
    /// A public reference the target knows it by (a token id, an accessor, a KV version): what
    /// audit entries name and what revocation uses.
    pub handle: String,
    /// The secret consumers present.
    pub secret: SecretString,
    /// When it stops working; every credential has one.
    pub expires_at: DateTime<Utc>,
}

impl Credential {
    /// A credential.
    pub fn new(handle: impl Into<String>, secret: SecretString, expires_at: DateTime<Utc>) -> Self {
        Self { handle: handle.into(), secret, expires_at }
    }

    /// The sealed form's plaintext: `{"handle":…,"secret":…,"expires_at":…}` (zeroized on drop).
    pub(crate) fn to_sealed_plaintext(&self) -> SecretBox<Vec<u8>> {
        #[derive(Serialize)]
        struct Out<'a> {
            handle: &'a str,
            secret: &'a str,
            expires_at: i64,
        }
        let out = Out {
            handle: &self.handle,
            secret: self.secret.expose_secret(),
            expires_at: self.expires_at.timestamp_millis(),
        };
        // Serialising a struct of strings and an integer cannot fail.
        SecretBox::new(Box::new(serde_json::to_vec(&out).unwrap_or_default()))
    }

    pub(crate) fn from_sealed_plaintext(name: &str, bytes: &SecretBox<Vec<u8>>) -> Result<Self, RotateError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct In {
            handle: String,
            secret: String,
            expires_at: i64,
        }
        let corrupt =
            |detail: &str| RotateError::Corrupted { name: name.to_owned(), detail: detail.to_owned() };
        let mut parsed: In = serde_json::from_slice(bytes.expose_secret())
            .map_err(|_| corrupt("stored credential is not valid (details withheld: it holds a secret)"))?;
        let expires_at =
            DateTime::from_timestamp_millis(parsed.expires_at).ok_or_else(|| corrupt("expiry"))?;
        let secret = SecretString::from(std::mem::take(&mut parsed.secret));
        parsed.secret.zeroize();
        Ok(Self { handle: parsed.handle, secret, expires_at })
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("handle", &self.handle)
            .field("secret", &"[REDACTED]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn sealed_credentials_round_trip(handle in "[ -~]{0,40}", secret in any::<String>(), ms in -1_000_000_000_000i64..10_000_000_000_000) {
            let c = Credential::new(handle, SecretString::from(secret.clone()), DateTime::from_timestamp_millis(ms).unwrap());
            let back = Credential::from_sealed_plaintext("n", &c.to_sealed_plaintext()).unwrap();
            prop_assert_eq!(&back.handle, &c.handle);
            prop_assert_eq!(back.secret.expose_secret(), secret.as_str());
            prop_assert_eq!(back.expires_at, c.expires_at);
        }

        #[test]
        fn the_parser_never_panics_nor_quotes_its_input(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Err(e) = Credential::from_sealed_plaintext("n", &SecretBox::new(Box::new(bytes))) {
                prop_assert!(e.to_string().contains("details withheld") || e.to_string().contains("expiry"));
            }
        }
    }
}
