//! `SecretStore`: envelope encryption on top of any [`Backend`].

use std::sync::Arc;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::backend::Backend;
use crate::envelope::{self, SecretKey};
use crate::error::{Result, StoreError};
use crate::integrity::RecordKey;
use crate::keys::{KdfParams, KeyCheck, KeyProvider, LocalKek};
use crate::model::{Label, LabelChange, Labels, SecretName, SecretVersion};

const META_KEY_CHECK: &str = "key-check";
const META_KDF: &str = "kdf";
/// The id of the KEK derived from a store's passphrase.
pub const PASSPHRASE_KEK_ID: &str = "passphrase";

fn dek_aad(kek_id: &str, name: &SecretName, version: u64) -> Vec<u8> {
    envelope::aad("tokenward/dek/v1", &[kek_id.as_bytes(), name.as_str().as_bytes(), &version.to_be_bytes()])
}

fn payload_aad(name: &SecretName, version: u64) -> Vec<u8> {
    envelope::aad("tokenward/secret/v1", &[name.as_str().as_bytes(), &version.to_be_bytes()])
}

/// Versioned secrets, sealed at rest: each version under its own data key, wrapped by the key
/// provider's KEK. Plaintext exists only in the `SecretBox`es it returns, zeroized on drop.
#[derive(Clone)]
pub struct SecretStore {
    backend: Arc<dyn Backend>,
    keys: Arc<dyn KeyProvider>,
    audit: Option<token_audit::Auditor>,
    record_key: Option<RecordKey>,
    /// Whether this store existed before integrity tags (its unsealed metadata is read once).
    legacy: bool,
}

/// Where the record key (the MAC key of token and rotation records) is kept, sealed.
pub const RECORD_KEY_SECRET: &str = "tokenward/record-key";
/// Set (sealed) when an existing store gained its record key: its older, unsealed metadata
/// records are accepted and sealed on their next write.
const META_LEGACY: &str = "tokenward/integrity-legacy";

/// The current version of the 32-byte key sealed as `name` in `store`, created on first use (by
/// whichever instance wins the label's compare-and-swap). Returns whether this call created it.
pub(crate) async fn sealed_key(store: &SecretStore, name: &str) -> Result<(u64, SecretBox<[u8; 32]>, bool)> {
    let name = SecretName::new(name)?;
    let (found, created) = match store.get_labeled(&name, Label::Current).await? {
        Some(found) => (found, false),
        None => {
            let key = SecretKey::generate()?;
            let v = store.put(&name, key.expose_bytes()).await?;
            let created = match store
                .update_labels(&name, &[LabelChange { label: Label::Current, expect: None, set: Some(v) }])
                .await
            {
                Ok(()) => true,
                Err(StoreError::Conflict(_)) => false, // another instance won: use its key
                Err(e) => return Err(e),
            };
            let found = store
                .get_labeled(&name, Label::Current)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("{name} after creating it")))?;
            (found, created)
        }
    };
    let (version, bytes) = found;
    let key: [u8; 32] = bytes.expose_secret().as_slice().try_into().map_err(|_| StoreError::Corrupted {
        id: Some(name.to_string()),
        what: "sealed key",
        detail: "not 32 bytes".into(),
    })?;
    Ok((version, SecretBox::new(Box::new(key)), created))
}

/// What a KEK rotation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Data keys re-wrapped by this call.
    pub rewrapped: usize,
}

impl SecretStore {
    /// Opens a store with `keys`. On first use it records a key check; afterwards a key that does
    /// not match fails here with [`StoreError::WrongKey`] or [`StoreError::WrongPassphrase`].
    pub async fn open(backend: Arc<dyn Backend>, keys: Arc<dyn KeyProvider>) -> Result<Self> {
        let stored_check = backend.meta(META_KEY_CHECK).await?;
        let existed = stored_check.is_some();
        match stored_check {
            Some(bytes) => {
                let check: KeyCheck = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupted {
                    id: None,
                    what: "key check",
                    detail: e.to_string(),
                })?;
                check.verify(keys.as_ref()).await?;
            }
            None => {
                let check = KeyCheck::create(keys.as_ref()).await?;
                let bytes = serde_json::to_vec(&check).map_err(|e| StoreError::Invalid(e.to_string()))?;
                backend.set_meta(META_KEY_CHECK, None, &bytes).await?;
            }
        }
        let mut store = Self { backend, keys, audit: None, record_key: None, legacy: false };
        let (_, key, created) = sealed_key(&store, RECORD_KEY_SECRET).await?;
        store.record_key = Some(RecordKey::from_bytes(key.expose_secret()));
        let legacy_value = b"v1";
        if created && existed {
            // An existing store gains integrity tags: its unsealed metadata is read once more.
            let sealed = store.record_key()?.seal_meta(META_LEGACY, legacy_value);
            let _ = store.backend.set_meta(META_LEGACY, None, &sealed).await;
            tracing::warn!(
                "store gained integrity tags: existing records are tagged under its new record key"
            );
        }
        if let Some(raw) = store.backend.meta(META_LEGACY).await? {
            store.legacy = store.record_key()?.open_meta(META_LEGACY, &raw)? == legacy_value;
        }
        Ok(store)
    }

    /// The key token and rotation records are authenticated under.
    pub fn record_key(&self) -> Result<&RecordKey> {
        self.record_key.as_ref().ok_or_else(|| StoreError::Invalid("the store is not open".into()))
    }

    /// An authenticated metadata value: `(value, stored bytes)` — the stored bytes are the
    /// expectation for [`SecretStore::set_sealed_meta`]. A value that fails its MAC is
    /// [`StoreError::Corrupted`]; an unsealed one too, except in a store that predates integrity
    /// tags (read as is, sealed on its next write).
    pub async fn sealed_meta(&self, key: &str) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let Some(raw) = self.backend.meta(key).await? else { return Ok(None) };
        if self.legacy && !RecordKey::is_sealed_meta(&raw) {
            return Ok(Some((raw.clone(), raw)));
        }
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

    /// Opens a store under a passphrase: Argon2id parameters and salt are kept in the store (created
    /// with `params` on first use, which defaults to OWASP's when `None`).
    pub async fn open_with_passphrase(
        backend: Arc<dyn Backend>,
        passphrase: &SecretString,
        params: Option<KdfParams>,
    ) -> Result<Self> {
        let params = match backend.meta(META_KDF).await? {
            Some(bytes) => serde_json::from_slice::<KdfParams>(&bytes).map_err(|e| {
                StoreError::Corrupted { id: None, what: "KDF parameters", detail: e.to_string() }
            })?,
            None => {
                let p = match params {
                    Some(p) => p,
                    None => KdfParams::generate()?,
                };
                let bytes = serde_json::to_vec(&p).map_err(|e| StoreError::Invalid(e.to_string()))?;
                backend.set_meta(META_KDF, None, &bytes).await?;
                p
            }
        };
        let kek = LocalKek::from_passphrase(PASSPHRASE_KEK_ID, passphrase, &params)?;
        Self::open(backend, Arc::new(kek)).await
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Seals `plaintext` as the next version of `name` and returns its number. Labels are not
    /// moved: see [`SecretStore::update_labels`].
    pub async fn put(&self, name: &SecretName, plaintext: &[u8]) -> Result<u64> {
        let version = self.backend.latest_version(name).await?.unwrap_or(0) + 1;
        let kek_id = self.keys.current_kek().to_owned();
        let dek = SecretKey::generate()?;
        let ciphertext = envelope::seal(&dek, &payload_aad(name, version), plaintext)?;
        let wrapped_key = self.keys.wrap(&dek, &dek_aad(&kek_id, name, version)).await?;
        let v = SecretVersion {
            name: name.clone(),
            version,
            kek_id,
            wrapped_key,
            ciphertext,
            created_at: Utc::now(),
        };
        self.backend.insert_version(&v).await?;
        Ok(version)
    }

    /// Opens a version of `name`.
    pub async fn get(&self, name: &SecretName, version: u64) -> Result<SecretBox<Vec<u8>>> {
        let v = self
            .backend
            .version(name, version)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{name} version {version}")))?;
        self.open_version(&v).await
    }

    /// Opens the version `label` points at, with its number.
    pub async fn get_labeled(
        &self,
        name: &SecretName,
        label: Label,
    ) -> Result<Option<(u64, SecretBox<Vec<u8>>)>> {
        match self.backend.labels(name).await?.get(&label) {
            Some(&v) => Ok(Some((v, self.get(name, v).await?))),
            None => Ok(None),
        }
    }

    /// Where the labels of `name` point.
    pub async fn labels(&self, name: &SecretName) -> Result<Labels> {
        self.backend.labels(name).await
    }

    /// Moves labels atomically (compare-and-swap on each).
    pub async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> Result<()> {
        self.backend.update_labels(name, changes).await
    }

    async fn open_version(&self, v: &SecretVersion) -> Result<SecretBox<Vec<u8>>> {
        let dek =
            self.keys.unwrap(&v.kek_id, &v.wrapped_key, &dek_aad(&v.kek_id, &v.name, v.version)).await?;
        envelope::open(&dek, &payload_aad(&v.name, v.version), &v.ciphertext).ok_or_else(|| {
            StoreError::Corrupted {
                id: None,
                what: "secret ciphertext",
                detail: format!("{} version {} fails authentication", v.name, v.version),
            }
        })
    }

    /// Re-wraps every data key not under the provider's current KEK, without touching ciphertext,
    /// in batches of `batch`; then records a key check for the new KEK. Each re-wrap is a
    /// compare-and-swap, so an interrupted rotation resumes where it stopped when called again
    /// (with a provider that still holds the old KEK).
    pub async fn rotate_kek(&self, batch: usize) -> Result<RewrapReport> {
        let current = self.keys.current_kek().to_owned();
        let mut report = RewrapReport::default();
        loop {
            let todo = self.backend.versions_not_under(&current, batch.max(1)).await?;
            if todo.is_empty() {
                break;
            }
            for (name, version) in todo {
                let Some(v) = self.backend.version(&name, version).await? else { continue };
                let dek =
                    self.keys.unwrap(&v.kek_id, &v.wrapped_key, &dek_aad(&v.kek_id, &name, version)).await?;
                let wrapped = self.keys.wrap(&dek, &dek_aad(&current, &name, version)).await?;
                match self.backend.rewrap_version(&name, version, &v.kek_id, &current, &wrapped).await {
                    Ok(()) => report.rewrapped += 1,
                    Err(StoreError::Conflict(_)) => {} // another process re-wrapped it
                    Err(e) => return Err(e),
                }
            }
        }
        let old = self.backend.meta(META_KEY_CHECK).await?;
        let check = KeyCheck::create(self.keys.as_ref()).await?;
        let bytes = serde_json::to_vec(&check).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.backend.set_meta(META_KEY_CHECK, old.as_deref(), &bytes).await?;
        if let Some(a) = &self.audit {
            let event = token_audit::AuditEvent::new(
                chrono::Utc::now(),
                token_audit::Actor::System,
                token_audit::Action::KeyRotation,
            )
            .attr("key", "kek")
            .attr("kek_id", current)
            .attr("rewrapped", report.rewrapped.to_string());
            a.emit_durable(event).await?;
        }
        Ok(report)
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
