//! `SecretStore`: envelope encryption on top of any [`Backend`].

use std::sync::Arc;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretBox, SecretString};

use crate::backend::Backend;
use crate::envelope::{self, SecretKey};
use crate::error::{Result, StoreError};
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
        match backend.meta(META_KEY_CHECK).await? {
            Some(bytes) => {
                let check: KeyCheck = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupted { what: "key check", detail: e.to_string() })?;
                check.verify(keys.as_ref()).await?;
            }
            None => {
                let check = KeyCheck::create(keys.as_ref()).await?;
                let bytes = serde_json::to_vec(&check).map_err(|e| StoreError::Invalid(e.to_string()))?;
                backend.set_meta(META_KEY_CHECK, None, &bytes).await?;
            }
        }
        Ok(Self { backend, keys, audit: None })
    }

    /// Opens a store under a passphrase: Argon2id parameters and salt are kept in the store (created
    /// with `params` on first use, which defaults to OWASP's when `None`).
    pub async fn open_with_passphrase(
        backend: Arc<dyn Backend>,
        passphrase: &SecretString,
        params: Option<KdfParams>,
    ) -> Result<Self> {
        let params = match backend.meta(META_KDF).await? {
            Some(bytes) => serde_json::from_slice::<KdfParams>(&bytes)
                .map_err(|e| StoreError::Corrupted { what: "KDF parameters", detail: e.to_string() })?,
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
