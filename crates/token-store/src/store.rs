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
/// Plain metadata, set while a store's KEK is being moved ([`SecretStore::move_kek`]): the id of
/// the KEK it is moving to (public). Empty or absent: no move in progress.
pub const KEK_MOVE_META: &str = "kek-move";
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
}

/// Where the record key (the MAC key of token and rotation records) is kept, sealed.
pub const RECORD_KEY_SECRET: &str = "tokenward/record-key";
/// Where the digest key (the verifier's HMAC pepper) is kept, sealed.
pub const DIGEST_KEY_SECRET: &str = "tokenward/digest-key";
/// Sealed metadata, written when a store is created: every token record carries its integrity tag.
const META_TAGGED: &str = "tokenward/tokens-tagged";
/// Sealed metadata, written when a store is created: every token record is in the binary encoding.
const META_ENCODED: &str = "tokenward/tokens-encoded";
/// The integrity markers every store holds from its creation.
const MARKERS: [&str; 2] = [META_TAGGED, META_ENCODED];
/// Sealed metadata, written when a store is created: which audit log the store writes to and how
/// far that log had come ([`token_audit::witnesses::LogBinding`]; empty at creation: the first log attached
/// is the store's). The front door checks it at every open with a log and advances it as the log
/// grows; a store without it (from before bindings) is bound only by an explicit migration or a
/// deliberate new log.
pub const AUDIT_BINDING_META: &str = "tokenward/audit-binding";

fn empty_binding() -> Vec<u8> {
    token_audit::witnesses::LogBinding::new(0, None, token_audit::chains::ChainHead::EMPTY).encode()
}
const MIGRATE_HINT: &str =
    "; if this store was written by an older Tokenward, `tokenward migrate` upgrades it (audited)";

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

/// What a KEK rotation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RewrapReport {
    /// Data keys re-wrapped by this call.
    pub rewrapped: usize,
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

    /// Records a KEK move to the current KEK (plain metadata [`KEK_MOVE_META`]), unless it is
    /// recorded already; a move to another KEK recorded meanwhile is
    /// [`StoreError::KekMoveUnfinished`].
    async fn record_move(&self) -> Result<()> {
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

    /// Moves the store to another KEK: the store must be opened with a [`KekMove`](crate::keys::KekMove)
    /// (from the KEK it is under, to the new one; any two [`KeyProvider`]s: a passphrase, a key
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
