//! Sealed secrets through the handle: every read and write audited (fail-closed), the store's own
//! names kept apart, the store moved to another KEK.

use token_audit::{Action, AuditEvent};
use token_core::clocks::Clock;
use token_store::secrecy::SecretBox;
use token_store::{Label, LabelChange, SecretName};

use super::Tokenward;
use crate::error::{Error, Result};

impl Tokenward {
    /// Records a durable `secret_access` entry (fail-closed: an unrecorded access is refused).
    pub(super) async fn audit_access(
        &self,
        name: &SecretName,
        detail: &str,
        version: Option<u64>,
    ) -> Result<()> {
        let Some(auditor) = &self.inner.auditor else { return Ok(()) };
        let mut event = AuditEvent::new(
            self.inner.clock.now(),
            self.inner.actor.clone(),
            Action::SecretAccess(detail.into()),
        )
        .attr("secret", name.as_str());
        if let Some(v) = version {
            event = event.attr("version", v.to_string());
        }
        auditor.emit_durable(event).await?;
        Ok(())
    }

    /// Secret names under this prefix are the store's own (its keys, signer seeds):
    /// [`Tokenward::secret_names`] hides them, and tools should not let users write them.
    pub const RESERVED_SECRET_PREFIX: &str = "tokenward/";

    /// Every secret's name and latest version, in name order, except the store's own (under
    /// [`Tokenward::RESERVED_SECRET_PREFIX`]).
    pub async fn secret_names(&self) -> Result<Vec<(SecretName, u64)>> {
        let mut names = self.inner.backend.secret_names().await?;
        names.retain(|(n, _)| !n.as_str().starts_with(Self::RESERVED_SECRET_PREFIX));
        Ok(names)
    }

    /// Seals `plaintext` as a new version of the secret `name` and makes it current (audited as
    /// `secret_access` / `write`). Returns its version.
    pub async fn seal_current(&self, name: &SecretName, plaintext: &[u8]) -> Result<u64> {
        let secrets = &self.inner.secrets;
        let version = secrets.put(name, plaintext).await?;
        for _ in 0..8 {
            let current = secrets.labels(name).await?.get(&Label::Current).copied();
            let change = LabelChange { label: Label::Current, expect: current, set: Some(version) };
            match secrets.update_labels(name, &[change]).await {
                Ok(()) => {
                    self.audit_access(name, "write", Some(version)).await?;
                    return Ok(version);
                }
                Err(token_store::StoreError::Conflict(_)) => continue, // moved meanwhile: read again
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(token_store::StoreError::Conflict(format!(
            "{name}: the current label keeps moving"
        ))))
    }

    /// The current version of the secret `name`, decrypted (`None` if it has none). Zeroized when
    /// dropped. Audited as `secret_access` / `read` before the value is returned (fail-closed: an
    /// access that cannot be recorded is refused).
    pub async fn read_current(&self, name: &SecretName) -> Result<Option<SecretBox<Vec<u8>>>> {
        Ok(self.read_current_version(name).await?.map(|(_, bytes)| bytes))
    }

    /// [`Tokenward::read_current`], with the version read.
    pub async fn read_current_version(&self, name: &SecretName) -> Result<Option<(u64, SecretBox<Vec<u8>>)>> {
        let Some((version, bytes)) = self.inner.secrets.get_labeled(name, Label::Current).await? else {
            return Ok(None);
        };
        self.audit_access(name, "read", Some(version)).await?;
        Ok(Some((version, bytes)))
    }

    /// Moves the store to the KEK it was opened to move to
    /// ([`crate::TokenwardBuilder::moving_kek_to`]): every data key and the key check rewrapped
    /// under it, resumable (a rerun after a crash finishes it), audited (`key_rotation`, with both
    /// KEK ids). Afterwards only the new KEK opens the store. See
    /// [`SecretStore::move_kek`](token_store::SecretStore::move_kek).
    pub async fn move_kek(&self) -> Result<token_store::keys::RewrapReport> {
        Ok(self.inner.secrets.move_kek(256).await?)
    }
}
