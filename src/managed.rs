//! Which credential this handle manages a found secret is (feature `scan`), for the leak
//! response: the keyed fingerprints of the current and the previous (still alive in its overlap)
//! secret of every credential rotated through the handle ([`Tokenward::rotate`],
//! [`Tokenward::schedule`], [`Tokenward::manage_declared`]), and of an AWS access key's id.
//!
//! No plaintext is kept: each sealed version is read, fingerprinted and dropped (zeroized). A
//! fingerprint is HMAC-SHA256 under a key derived from the store's record key (domain-separated,
//! never stored, never logged, zeroized when the index is dropped), so it is worthless without
//! the store; a found secret is fingerprinted under the same key and compared with every entry in
//! constant time.

use std::sync::Arc;

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use token_core::secrecy::ExposeSecret;
use token_rotate::RotationTarget;
use token_store::SecretName;
use zeroize::{Zeroize, Zeroizing};

use crate::deployment::Tokenward;
use crate::error::Result;

/// What the fingerprint key is derived under (never a metadata key: it has a `/`).
const KEY_DOMAIN: &str = "tokenward/leak-response/fingerprint-key";

/// Which of a credential's versions an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// The current one.
    Current,
    /// The previous one, still alive in its overlap.
    Previous,
}

/// One managed credential version, fingerprinted.
pub(crate) struct Entry {
    pub(crate) name: SecretName,
    pub(crate) target: Arc<dyn RotationTarget>,
    /// Its public handle (an access key id, an accessor, a KV version).
    pub(crate) handle: String,
    pub(crate) version: Version,
    secret: [u8; 32],
    /// The handle's fingerprint, for a target whose handle names the credential on its own
    /// ([`RotationTarget::handle_names_credential`]).
    id: Option<[u8; 32]>,
}

/// The fingerprints of every credential this handle manages, at one moment.
pub(crate) struct ManagedIndex {
    key: Zeroizing<[u8; 32]>,
    entries: Vec<Entry>,
}

impl ManagedIndex {
    /// Reads the current and previous version of every credential rotated through `tw` and
    /// fingerprints them.
    pub(crate) async fn build(tw: &Tokenward) -> Result<Self> {
        let key = {
            let mut sealed = tw.secrets().record_key()?.seal_meta(KEY_DOMAIN, b"");
            let mut key = Zeroizing::new([0u8; 32]);
            // The frame of an empty value ends with its 32-byte tag: HMAC(record key, domain).
            key.copy_from_slice(&sealed[sealed.len() - 32..]);
            sealed.zeroize();
            key
        };
        let mut index = Self { key, entries: Vec::new() };
        let watched: Vec<_> =
            tw.inner.watched.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for (name, target) in watched {
            let versions = [
                (Version::Current, tw.rotator().current(&name).await?),
                (Version::Previous, tw.rotator().previous(&name).await?),
            ];
            for (version, credential) in versions {
                // The credential (its secret a `SecretString`) is zeroized as it drops here.
                let Some(c) = credential else { continue };
                let secret = index.fingerprint(c.secret.expose_secret());
                // A handle that names the credential on its own (an AWS access key id) is a finding too.
                let id = target.handle_names_credential().then(|| index.fingerprint(&c.handle));
                index.entries.push(Entry {
                    name: name.clone(),
                    target: target.clone(),
                    handle: c.handle.clone(),
                    version,
                    secret,
                    id,
                });
            }
        }
        Ok(index)
    }

    fn fingerprint(&self, text: &str) -> [u8; 32] {
        #[allow(clippy::expect_used)]
        let mut m =
            <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(self.key.as_slice()).expect("HMAC takes any key");
        m.update(text.as_bytes());
        m.finalize().into_bytes().into()
    }

    /// The entry whose secret (or, for an AWS key, whose access key id) `found` is. Every entry
    /// is compared, in constant time each; surrounding whitespace is not part of a secret.
    pub(crate) fn find(&self, found: &str) -> Option<&Entry> {
        if self.entries.is_empty() {
            return None;
        }
        let fp = self.fingerprint(found.trim());
        let mut hit = None;
        for e in &self.entries {
            let matched = e.secret.ct_eq(&fp) | e.id.map_or(subtle::Choice::from(0), |id| id.ct_eq(&fp));
            if bool::from(matched) && hit.is_none() {
                hit = Some(e);
            }
        }
        hit
    }
}
