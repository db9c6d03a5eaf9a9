//! Secret versions: each sealed under its own data key, wrapped by the KEK; labels moved by
//! compare-and-swap.

use chrono::Utc;
use secrecy::SecretBox;

use super::SecretStore;
use crate::envelope::{self, SecretKey};
use crate::error::{Result, StoreError};
use crate::model::{Label, LabelChange, Labels, SecretName, SecretVersion};

pub(super) fn dek_aad(kek_id: &str, name: &SecretName, version: u64) -> Vec<u8> {
    envelope::aad("tokenward/dek/v1", &[kek_id.as_bytes(), name.as_str().as_bytes(), &version.to_be_bytes()])
}

fn payload_aad(name: &SecretName, version: u64) -> Vec<u8> {
    envelope::aad("tokenward/secret/v1", &[name.as_str().as_bytes(), &version.to_be_bytes()])
}

impl SecretStore {
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
}
