//! The key-encryption key: data keys re-wrapped under a rotated KEK, or moved to another one.

use super::versions::dek_aad;
use super::{KEK_MOVE_META, META_KEY_CHECK, SecretStore};
use crate::error::{Result, StoreError};
use crate::keys::KeyCheck;

/// What a KEK rotation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Data keys re-wrapped by this call.
    pub rewrapped: usize,
}

impl SecretStore {
    /// Records a KEK move to the current KEK (plain metadata [`KEK_MOVE_META`]), unless it is
    /// recorded already; a move to another KEK recorded meanwhile is
    /// [`StoreError::KekMoveUnfinished`].
    pub(super) async fn record_move(&self) -> Result<()> {
        let to = self.keys.current_kek().as_bytes();
        loop {
            let old = match self.backend.meta(KEK_MOVE_META).await? {
                Some(v) if v == to => return Ok(()),
                Some(v) if !v.is_empty() => {
                    return Err(StoreError::KekMoveUnfinished {
                        to: String::from_utf8_lossy(&v).into_owned(),
                    });
                }
                old => old,
            };
            match self.backend.set_meta(KEK_MOVE_META, old.as_deref(), to).await {
                // Another process wrote it meanwhile: read it again.
                Err(StoreError::Conflict(_)) => continue,
                other => return other,
            }
        }
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

    /// Moves the store to another KEK: the store must be opened with a [`KekMove`](crate::keys::KekMove)
    /// (from the KEK it is under, to the new one; any two [`KeyProvider`](crate::keys::KeyProvider)s: a passphrase, a key
    /// file, a KMS key). The move is recorded (plain metadata [`KEK_MOVE_META`]) by that open
    /// already, before anything can be written under the new KEK, so an ordinary open refuses a
    /// half-moved store with [`StoreError::KekMoveUnfinished`] instead of failing on the first
    /// moved secret; and an open to move somewhere else refuses it the same way. Then it rewraps
    /// every data key under the new KEK (compare-and-swap each: a rerun after a crash resumes),
    /// writes the key check for the new KEK (from then on the old one no longer opens the store),
    /// clears the record, and audits a `key_rotation` with both KEK ids (never key material).
    pub async fn move_kek(&self, batch: usize) -> Result<RewrapReport> {
        let Some(from) = self.keys.moving_from().map(str::to_owned) else {
            return Err(StoreError::Invalid("moving a KEK needs the store opened with a KekMove".into()));
        };
        let to = self.keys.current_kek().to_owned();
        if from == to {
            return Err(StoreError::Invalid(format!("the store is already under {to}")));
        }
        self.record_move().await?;
        let audit = self.audit.clone();
        let report = Self { audit: None, ..self.clone() }.rotate_kek(batch).await?;
        self.backend.set_meta(KEK_MOVE_META, Some(to.as_bytes()), b"").await?;
        if let Some(a) = &audit {
            let event = token_audit::AuditEvent::new(
                chrono::Utc::now(),
                token_audit::Actor::System,
                token_audit::Action::KeyRotation,
            )
            .attr("key", "kek")
            .attr("operation", "move")
            .attr("from_kek_id", from)
            .attr("kek_id", to)
            .attr("rewrapped", report.rewrapped.to_string());
            a.emit_durable(event).await?;
        }
        Ok(report)
    }
}
