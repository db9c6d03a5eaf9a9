//! Opening a store: the key check, a KEK move left midway, creating a new store (its record and
//! digest keys, its integrity markers, last its key check), migrating an older one, and the key a
//! passphrase derives.

use std::sync::Arc;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

use super::{
    AUDIT_BINDING_META, DIGEST_KEY_SECRET, KEK_MOVE_META, META_KEY_CHECK, PASSPHRASE_KEK_ID,
    RECORD_KEY_SECRET, SecretStore, required_key, sealed_key,
};
use crate::backend::Backend;
use crate::envelope::SecretKey;
use crate::error::{Result, StoreError};
use crate::integrity::RecordKey;
use crate::keys::{KdfParams, KeyCheck, KeyProvider, LocalKek};
use crate::model::{Label, LabelChange, SecretName};

const META_KDF: &str = "kdf";
/// Sealed metadata, written when a store is created: every token record carries its integrity tag.
const META_TAGGED: &str = "tokenward/tokens-tagged";
/// Sealed metadata, written when a store is created: every token record is in the binary encoding.
const META_ENCODED: &str = "tokenward/tokens-encoded";
/// The integrity markers every store holds from its creation.
const MARKERS: [&str; 2] = [META_TAGGED, META_ENCODED];

fn empty_binding() -> Vec<u8> {
    token_audit::witnesses::LogBinding::new(0, None, token_audit::chains::ChainHead::EMPTY).encode()
}
const MIGRATE_HINT: &str =
    "; if this store was written by an older Tokenward, `tokenward migrate` upgrades it (audited)";

/// Creates the key sealed as `name` unless it exists (whichever instance wins the label's
/// compare-and-swap makes it). Only while a store is created, or by an explicit migration.
async fn create_key(store: &SecretStore, name: &str) -> Result<()> {
    if sealed_key(store, name).await?.is_some() {
        return Ok(());
    }
    let secret = SecretName::new(name)?;
    let key = SecretKey::generate()?;
    let v = store.put(&secret, key.expose_bytes()).await?;
    match store
        .update_labels(&secret, &[LabelChange { label: Label::Current, expect: None, set: Some(v) }])
        .await
    {
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()), // another instance won: its key stands
        Err(e) => Err(e),
    }
}

/// What an explicit migration ([`SecretStore::migrate`]) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migration {
    /// Token records rewritten from the older JSON form (each one's tag held).
    pub records_rewritten: usize,
    /// The integrity markers written.
    pub markers_written: Vec<&'static str>,
    /// Whether the digest key was created (a store that had never issued a token).
    pub digest_key_created: bool,
}

impl Migration {
    /// Whether the migration changed anything.
    pub fn changed(&self) -> bool {
        self.records_rewritten > 0 || !self.markers_written.is_empty() || self.digest_key_created
    }
}

impl SecretStore {
    /// Opens a store with `keys`, creating it if the backend is empty. A new store gets, in this
    /// order, its record key, its digest key and its integrity markers, and last its key check
    /// (so a store whose creation was interrupted is finished by the next open). An existing
    /// store must hold every one of them: a key that does not match fails with
    /// [`StoreError::WrongKey`] or [`StoreError::WrongPassphrase`], and anything missing is
    /// [`StoreError::Missing`] — never re-created, re-tagged or migrated by an open.
    pub async fn open(backend: Arc<dyn Backend>, keys: Arc<dyn KeyProvider>) -> Result<Self> {
        Self::open_as(backend, keys, false).await.map(|(store, _)| store)
    }

    /// Opens a store written by an older Tokenward and upgrades it, deliberately (the operator's
    /// `tokenward migrate`; audit the returned [`Migration`]): token records in the older JSON
    /// form whose integrity tag holds are rewritten in the current encoding, the digest key is
    /// created if the store has never held a token, and the integrity markers are written. The
    /// key check must pass and the record key must exist. Never trusted blindly: a record with no
    /// tag, or one whose tag fails, stays refused; unsealed metadata stays refused.
    pub async fn migrate(backend: Arc<dyn Backend>, keys: Arc<dyn KeyProvider>) -> Result<(Self, Migration)> {
        Self::open_as(backend, keys, true).await
    }

    async fn open_as(
        backend: Arc<dyn Backend>,
        keys: Arc<dyn KeyProvider>,
        migrate: bool,
    ) -> Result<(Self, Migration)> {
        if keys.moving_from() == Some(keys.current_kek()) {
            return Err(StoreError::Invalid(format!("a move from {} to itself", keys.current_kek())));
        }
        let stored_check = backend.meta(META_KEY_CHECK).await?;
        // A move of the KEK left midway (a crash): only the move itself (both KEKs, to the same
        // target) opens it.
        let moving = backend.meta(KEK_MOVE_META).await?.filter(|v| !v.is_empty());
        if let Some(to) = &moving
            && (keys.moving_from().is_none() || to.as_slice() != keys.current_kek().as_bytes())
        {
            return Err(StoreError::KekMoveUnfinished { to: String::from_utf8_lossy(to).into_owned() });
        }
        let store = Self { backend, keys, audit: None, record_key: None };
        match stored_check {
            Some(bytes) => {
                let check: KeyCheck = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupted {
                    id: None,
                    what: "key check",
                    detail: e.to_string(),
                })?;
                check.verify(store.keys.as_ref()).await?;
                // Opened to move (and holding the KEK it is under): the move is recorded now,
                // before anything can be written under the new KEK (a secret the opener puts
                // before `move_kek` starts), so that a kill from here on leaves a store that an
                // ordinary open refuses, never one that opens with the old KEK and then fails
                // on a secret it cannot unwrap.
                if moving.is_none() && store.keys.moving_from().is_some() {
                    store.record_move().await?;
                }
                store.open_existing(migrate).await
            }
            None => Ok((store.create().await?, Migration::default())),
        }
    }

    /// Creates a store in an empty backend (or finishes a creation that was interrupted: only the
    /// store's own sealed keys exist, no other secret and no token).
    async fn create(mut self) -> Result<Self> {
        let reserved = [RECORD_KEY_SECRET, DIGEST_KEY_SECRET];
        let names = self.backend.secret_names().await?;
        let foreign = names.iter().any(|(n, _)| !reserved.contains(&n.as_str()));
        let tokens = !self
            .backend
            .token_ids(&crate::TokenQuery::Unexpired { at: chrono::DateTime::<Utc>::MIN_UTC })
            .await?
            .is_empty();
        if foreign || tokens {
            return Err(StoreError::Missing {
                what: "its key check (the store holds secrets or tokens)".into(),
                hint: "",
            });
        }
        create_key(&self, RECORD_KEY_SECRET).await?;
        create_key(&self, DIGEST_KEY_SECRET).await?;
        let (_, key) = required_key(&self, RECORD_KEY_SECRET).await?;
        self.record_key = Some(RecordKey::from_bytes(key.expose_secret()));
        for marker in MARKERS {
            if self.backend.meta(marker).await?.is_none() {
                match self.set_sealed_meta(marker, None, b"v1").await {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            self.check_marker(marker).await?;
        }
        if self.backend.meta(AUDIT_BINDING_META).await?.is_none() {
            match self.set_sealed_meta(AUDIT_BINDING_META, None, &empty_binding()).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let check = KeyCheck::create(self.keys.as_ref()).await?;
        let bytes = serde_json::to_vec(&check).map_err(|e| StoreError::Invalid(e.to_string()))?;
        match self.backend.set_meta(META_KEY_CHECK, None, &bytes).await {
            Ok(()) => Ok(self),
            // Another instance created it at the same moment: its check must hold for our key.
            Err(StoreError::Conflict(_)) => {
                let stored = self.backend.meta(META_KEY_CHECK).await?.unwrap_or_default();
                let check: KeyCheck = serde_json::from_slice(&stored).map_err(|e| StoreError::Corrupted {
                    id: None,
                    what: "key check",
                    detail: e.to_string(),
                })?;
                check.verify(self.keys.as_ref()).await?;
                Ok(self)
            }
            Err(e) => Err(e),
        }
    }

    async fn open_existing(mut self, migrate: bool) -> Result<(Self, Migration)> {
        let (_, key) = required_key(&self, RECORD_KEY_SECRET).await?;
        self.record_key = Some(RecordKey::from_bytes(key.expose_secret()));
        let mut done = Migration::default();
        let missing: Vec<&'static str> = {
            let mut m = Vec::new();
            for marker in MARKERS {
                if self.backend.meta(marker).await?.is_none() {
                    m.push(marker);
                }
            }
            m
        };
        if !missing.is_empty() {
            if !migrate {
                return Err(StoreError::Missing {
                    what: format!("its integrity marker {}", missing.join(" and ")),
                    hint: MIGRATE_HINT,
                });
            }
            done.records_rewritten = self.backend.upgrade_token_records(self.record_key()?).await?;
            if sealed_key(&self, DIGEST_KEY_SECRET).await?.is_none()
                && self
                    .backend
                    .token_ids(&crate::TokenQuery::Unexpired { at: chrono::DateTime::<Utc>::MIN_UTC })
                    .await?
                    .is_empty()
            {
                create_key(&self, DIGEST_KEY_SECRET).await?;
                done.digest_key_created = true;
            }
            for marker in missing {
                match self.set_sealed_meta(marker, None, b"v1").await {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(e),
                }
                done.markers_written.push(marker);
            }
        }
        for marker in MARKERS {
            self.check_marker(marker).await?;
        }
        // A store from before log bindings: bound (empty: to the log it is next opened with) only
        // by the explicit migration. An open leaves it unbound; the front door refuses to attach a
        // log to it.
        if migrate && self.backend.meta(AUDIT_BINDING_META).await?.is_none() {
            match self.set_sealed_meta(AUDIT_BINDING_META, None, &empty_binding()).await {
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
            done.markers_written.push(AUDIT_BINDING_META);
        }
        required_key(&self, DIGEST_KEY_SECRET).await?;
        Ok((self, done))
    }

    async fn check_marker(&self, marker: &'static str) -> Result<()> {
        match self.sealed_meta(marker).await? {
            Some((value, _)) if value == b"v1" => Ok(()),
            Some(_) => Err(StoreError::Corrupted {
                id: Some(marker.into()),
                what: "integrity marker",
                detail: "holds an unknown value".into(),
            }),
            None => Err(StoreError::Missing {
                what: format!("its integrity marker {marker}"),
                hint: MIGRATE_HINT,
            }),
        }
    }

    /// Opens a store under a passphrase: Argon2id parameters and salt are kept in the store (created
    /// with `params` on first use, which defaults to OWASP's when `None`).
    pub async fn open_with_passphrase(
        backend: Arc<dyn Backend>,
        passphrase: &SecretString,
        params: Option<KdfParams>,
    ) -> Result<Self> {
        let keys = Self::passphrase_key(&backend, passphrase, params).await?;
        Self::open(backend, keys).await
    }

    /// The key a passphrase derives for the store in `backend` (what
    /// [`SecretStore::open_with_passphrase`] opens with): its stored Argon2id parameters, checked
    /// against [`KdfParams::check`] before any work, or for a new store `params` (OWASP's when
    /// `None`), stored. Parameters missing from a store that has a key check are
    /// [`StoreError::Missing`].
    pub async fn passphrase_key(
        backend: &Arc<dyn Backend>,
        passphrase: &SecretString,
        params: Option<KdfParams>,
    ) -> Result<Arc<dyn KeyProvider>> {
        let params =
            match backend.meta(META_KDF).await? {
                Some(bytes) => {
                    let p = serde_json::from_slice::<KdfParams>(&bytes).map_err(|e| {
                        StoreError::Corrupted { id: None, what: "KDF parameters", detail: e.to_string() }
                    })?;
                    p.check().map_err(|detail| StoreError::Corrupted {
                        id: None,
                        what: "KDF parameters",
                        detail,
                    })?;
                    p
                }
                None => {
                    if backend.meta(META_KEY_CHECK).await?.is_some() {
                        return Err(StoreError::Missing { what: "its KDF parameters".into(), hint: "" });
                    }
                    let p = match params {
                        Some(p) => p,
                        None => KdfParams::generate()?,
                    };
                    p.check().map_err(StoreError::Invalid)?;
                    let bytes = serde_json::to_vec(&p).map_err(|e| StoreError::Invalid(e.to_string()))?;
                    match backend.set_meta(META_KDF, None, &bytes).await {
                        Ok(()) => p,
                        // Another instance created the store meanwhile: derive with its parameters.
                        Err(StoreError::Conflict(_)) => {
                            return Box::pin(Self::passphrase_key(backend, passphrase, None)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
        Ok(Arc::new(LocalKek::from_passphrase(PASSPHRASE_KEK_ID, passphrase, &params)?))
    }
}
