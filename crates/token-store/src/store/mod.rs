//! `SecretStore`: envelope encryption on top of any [`Backend`].
//!
//! This module holds the store, the names it reserves and its sealed metadata; `open` opens,
//! creates and migrates a store (the key check, the store's own keys, the integrity markers),
//! `versions` seals and opens secret versions and moves their labels, `kek` re-wraps data keys
//! under a rotated or another key-encryption key.

mod kek;
mod open;
mod versions;

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretBox, SecretString};

pub use self::kek::RewrapReport;
pub use self::open::Migration;
use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::integrity::RecordKey;
use crate::keys::KeyProvider;
use crate::model::{Label, SecretName};

const META_KEY_CHECK: &str = "key-check";
/// Plain metadata, set while a store's KEK is being moved ([`SecretStore::move_kek`]): the id of
/// the KEK it is moving to (public). Empty or absent: no move in progress.
pub const KEK_MOVE_META: &str = "kek-move";
/// The id of the KEK derived from a store's passphrase.
pub const PASSPHRASE_KEK_ID: &str = "passphrase";

/// Versioned secrets, sealed at rest: each version under its own data key, wrapped by the key
/// provider's KEK. Plaintext exists only in the `SecretBox`es it returns, zeroized on drop.
#[derive(Clone)]
pub struct SecretStore {
    backend: Arc<dyn Backend>,
    keys: Arc<dyn KeyProvider>,
    audit: Option<token_audit::Auditor>,
    record_key: Option<RecordKey>,
}

/// Where the record key (the MAC key of token and rotation records) is kept, sealed.
pub const RECORD_KEY_SECRET: &str = "tokenward/record-key";
/// Where the digest key (the verifier's HMAC pepper) is kept, sealed.
pub const DIGEST_KEY_SECRET: &str = "tokenward/digest-key";
/// Sealed metadata, written when a store is created: which audit log the store writes to and how
/// far that log had come ([`token_audit::witnesses::LogBinding`]; empty at creation: the first log attached
/// is the store's). The front door checks it at every open with a log and advances it as the log
/// grows; a store without it (from before bindings) is bound only by an explicit migration or a
/// deliberate new log.
pub const AUDIT_BINDING_META: &str = "tokenward/audit-binding";

/// The 32-byte key sealed as `name` in `store` (its current version), or `None` if it has none.
pub(crate) async fn sealed_key(
    store: &SecretStore,
    name: &str,
) -> Result<Option<(u64, SecretBox<[u8; 32]>)>> {
    let name = SecretName::new(name)?;
    let Some((version, bytes)) = store.get_labeled(&name, Label::Current).await? else { return Ok(None) };
    let key: [u8; 32] = bytes.expose_secret().as_slice().try_into().map_err(|_| StoreError::Corrupted {
        id: Some(name.to_string()),
        what: "sealed key",
        detail: "not 32 bytes".into(),
    })?;
    Ok(Some((version, SecretBox::new(Box::new(key)))))
}

/// The key sealed as `name`, which every store holds from its creation: missing is tampering.
pub(crate) async fn required_key(store: &SecretStore, name: &str) -> Result<(u64, SecretBox<[u8; 32]>)> {
    sealed_key(store, name).await?.ok_or_else(|| StoreError::Missing {
        what: format!("its {name} (the sealed key or its `current` label)"),
        hint: "",
    })
}

impl SecretStore {
    /// The key token and rotation records are authenticated under.
    pub fn record_key(&self) -> Result<&RecordKey> {
        self.record_key.as_ref().ok_or_else(|| StoreError::Invalid("the store is not open".into()))
    }

    /// An authenticated metadata value: `(value, stored bytes)` — the stored bytes are the
    /// expectation for [`SecretStore::set_sealed_meta`]. A value that fails its MAC, or has none,
    /// is [`StoreError::Corrupted`].
    pub async fn sealed_meta(&self, key: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let Some(raw) = self.backend.meta(key).await? else { return Ok(None) };
        let value = self.record_key()?.open_meta(key, &raw)?.to_vec();
        Ok(Some((value, raw)))
    }

    /// Sets an authenticated metadata value if the stored bytes are still `expect` (compare and
    /// swap); returns the new stored bytes.
    pub async fn set_sealed_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> Result<Vec<u8>> {
        let sealed = self.record_key()?.seal_meta(key, value);
        self.backend.set_meta(key, expect, &sealed).await?;
        Ok(sealed)
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The id of the key-encryption key new data keys are wrapped under (`local`,
    /// `transit:<mount>/<key>:v<n>`, `aws-kms:<key>`): public, safe to show.
    pub fn current_kek(&self) -> &str {
        self.keys.current_kek()
    }

    /// Records key rotations (`rotate_kek`) through `auditor`, durably before they return.
    pub fn with_audit(mut self, auditor: token_audit::Auditor) -> Self {
        self.audit = Some(auditor);
        self
    }
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore").field("kek", &self.keys.current_kek()).finish_non_exhaustive()
    }
}

/// Reads a secret's bytes as UTF-8 text, still as a secret.
pub fn secret_text(bytes: SecretBox<Vec<u8>>) -> Result<SecretString> {
    let text = std::str::from_utf8(bytes.expose_secret())
        .map_err(|_| StoreError::Invalid("secret is not UTF-8 text".into()))?;
    Ok(SecretString::from(text))
}
