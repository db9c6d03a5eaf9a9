//! Key providers: where key-encryption keys (KEKs) come from — a passphrase through Argon2id
//! ([`KdfParams`]), raw keys ([`LocalKek`], [`LocalKeyring`]), OpenBao Transit and AWS KMS (features
//! `openbao-transit`, `aws-kms`) — what moving to another KEK and rewrapping under it did, and the key
//! check that tells a wrong key from corrupted data.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};
use serde::{Deserialize, Serialize};

use crate::envelope::{self, Sealed, SecretKey};
use crate::error::{KeyProviderError, Result, StoreError};

#[cfg(feature = "aws-kms")]
pub use crate::kms::AwsKmsKeyProvider;
#[cfg(feature = "openbao-transit")]
pub use crate::kms::TransitKeyProvider;
pub use crate::store::RewrapReport;

/// Wraps and unwraps data keys under key-encryption keys. Local keys (passphrase, raw key) and
/// external KMSs (an OpenBao Transit provider) implement it; it is `dyn`-safe.
#[async_trait]
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The id of the KEK that wraps new data keys.
    fn current_kek(&self) -> &str;

    /// Wraps `dek` under the current KEK, binding `aad`.
    async fn wrap(&self, dek: &SecretKey, aad: &[u8]) -> Result<Sealed>;

    /// Unwraps a data key wrapped under `kek_id`. Fails with [`StoreError::UnknownKey`] if this
    /// provider does not hold that KEK, and [`StoreError::Corrupted`] if authentication fails.
    async fn unwrap(&self, kek_id: &str, wrapped: &Sealed, aad: &[u8]) -> Result<SecretKey>;

    /// Whether a wrong key should be reported as a wrong passphrase.
    fn is_passphrase(&self) -> bool {
        false
    }

    /// For a [`KekMove`]: the id of the KEK the store is moving away from.
    fn moving_from(&self) -> Option<&str> {
        None
    }
}

/// A store's KEK being moved to another one (another KMS key, or from a passphrase or key file to
/// a KMS): new data keys, rewraps and the key check go under `to`; a data key is unwrapped under
/// whichever of the two holds its KEK, so a store opens with it at any point of the move (before,
/// midway after a crash, after). `from` and `to` are any two providers (a passphrase, a key file, a
/// KMS key). Opening a store with it records the move (once the key check passes), so from then on
/// an ordinary open refuses the store until [`crate::SecretStore::move_kek`] finishes it.
pub struct KekMove {
    from: std::sync::Arc<dyn KeyProvider>,
    to: std::sync::Arc<dyn KeyProvider>,
}

impl KekMove {
    /// A move from `from` (what the store is opened with now) to `to`.
    pub fn new(from: std::sync::Arc<dyn KeyProvider>, to: std::sync::Arc<dyn KeyProvider>) -> Self {
        Self { from, to }
    }
}

impl fmt::Debug for KekMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KekMove")
            .field("from", &self.from.current_kek())
            .field("to", &self.to.current_kek())
            .finish()
    }
}

#[async_trait]
impl KeyProvider for KekMove {
    fn current_kek(&self) -> &str {
        self.to.current_kek()
    }

    async fn wrap(&self, dek: &SecretKey, aad: &[u8]) -> Result<Sealed> {
        self.to.wrap(dek, aad).await
    }

    async fn unwrap(&self, kek_id: &str, wrapped: &Sealed, aad: &[u8]) -> Result<SecretKey> {
        match self.to.unwrap(kek_id, wrapped, aad).await {
            Err(StoreError::UnknownKey { .. }) => self.from.unwrap(kek_id, wrapped, aad).await,
            other => other,
        }
    }

    fn is_passphrase(&self) -> bool {
        self.from.is_passphrase()
    }

    fn moving_from(&self) -> Option<&str> {
        Some(self.from.current_kek())
    }
}

/// Argon2id parameters, stored beside the salt so a store can be reopened with the passphrase
/// alone. Defaults are OWASP's (m = 19 MiB, t = 2, p = 1), argon2's own defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Random per-store salt.
    #[serde(with = "crate::envelope::b64")]
    pub salt: Vec<u8>,
    /// Memory in KiB.
    pub m_cost: u32,
    /// Passes.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// OWASP-grade defaults with a fresh 16-byte salt.
    pub fn generate() -> Result<Self> {
        Self::generate_with(
            argon2::Params::DEFAULT_M_COST,
            argon2::Params::DEFAULT_T_COST,
            argon2::Params::DEFAULT_P_COST,
        )
    }

    /// Chosen costs with a fresh salt (lower costs only for tests).
    pub fn generate_with(m_cost: u32, t_cost: u32, p_cost: u32) -> Result<Self> {
        let mut salt = vec![0u8; 16];
        envelope::fill_random(&mut salt)?;
        Ok(Self { salt, m_cost, t_cost, p_cost })
    }

    /// Bounds on stored parameters, checked before any work: a store's parameters are not
    /// authenticated until the key they derive passes the key check, so someone who can write the
    /// store could otherwise make every open hang (`t_cost = 2^32 - 1`) or exhaust memory.
    pub const MAX_M_COST: u32 = 1 << 20; // 1 GiB
    /// See [`KdfParams::MAX_M_COST`].
    pub const MAX_T_COST: u32 = 16;
    /// See [`KdfParams::MAX_M_COST`].
    pub const MAX_P_COST: u32 = 16;

    /// Whether the parameters are within the bounds any store may use (memory up to 1 GiB, up to
    /// 16 passes and 16 lanes, a salt of 16 to 64 bytes); the reason if not.
    pub fn check(&self) -> std::result::Result<(), String> {
        let bound = |name: &str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) { Ok(()) } else { Err(format!("{name} {v} is outside {lo}..={hi}")) }
        };
        bound("p_cost", self.p_cost, 1, Self::MAX_P_COST)?;
        bound("t_cost", self.t_cost, 1, Self::MAX_T_COST)?;
        bound("m_cost", self.m_cost, 8 * self.p_cost.max(1), Self::MAX_M_COST)?;
        if !(16..=64).contains(&self.salt.len()) {
            return Err(format!("a salt of {} bytes is outside 16..=64", self.salt.len()));
        }
        Ok(())
    }

    fn derive(&self, passphrase: &SecretString) -> Result<SecretKey> {
        self.check().map_err(|e| StoreError::Invalid(format!("Argon2id parameters: {e}")))?;
        let params = argon2::Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| StoreError::Invalid(format!("Argon2id parameters: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = SecretBox::new(Box::new([0u8; 32]));
        argon
            .hash_password_into(passphrase.expose_secret().as_bytes(), &self.salt, out.expose_secret_mut())
            .map_err(|e| StoreError::Invalid(format!("Argon2id: {e}")))?;
        Ok(SecretKey::from_bytes(out))
    }
}

/// A KEK held in this process: from a passphrase (Argon2id) or from raw key material.
pub struct LocalKek {
    id: String,
    key: SecretKey,
    passphrase: bool,
}

impl LocalKek {
    /// Derives the KEK `id` from a passphrase.
    pub fn from_passphrase(id: &str, passphrase: &SecretString, params: &KdfParams) -> Result<Self> {
        Ok(Self { id: check_id(id)?, key: params.derive(passphrase)?, passphrase: true })
    }

    /// A KEK from 32 bytes of key material.
    pub fn from_key(id: &str, key: SecretBox<[u8; 32]>) -> Result<Self> {
        Ok(Self { id: check_id(id)?, key: SecretKey::from_bytes(key), passphrase: false })
    }

    /// Reads a 256-bit key from a file: 32 raw bytes, 64 hex characters, or 44 characters of
    /// base64 (surrounding whitespace ignored).
    pub fn from_file(id: &str, path: &std::path::Path) -> Result<Self> {
        let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| {
            StoreError::KeyProvider(KeyProviderError::new(format!("reading key file {}", path.display()), e))
        })?);
        Self::from_key(id, parse_key(&bytes)?)
    }

    /// Reads a 256-bit key (64 hex or 44 base64 characters) from an environment variable.
    pub fn from_env(id: &str, var: &str) -> Result<Self> {
        let value =
            zeroize::Zeroizing::new(std::env::var(var).map_err(|_| {
                StoreError::KeyProvider(format!("environment variable {var} is not set").into())
            })?);
        Self::from_key(id, parse_key(value.as_bytes())?)
    }

    /// The KEK's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

fn check_id(id: &str) -> Result<String> {
    if id.is_empty()
        || id.len() > 64
        || !id.bytes().all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(&c))
    {
        return Err(StoreError::Invalid("a key id is 1 to 64 characters of [A-Za-z0-9._:-]".into()));
    }
    Ok(id.to_owned())
}

fn parse_key(raw: &[u8]) -> Result<SecretBox<[u8; 32]>> {
    use base64::Engine;
    let mut out = SecretBox::new(Box::new([0u8; 32]));
    if raw.len() == 32 {
        out.expose_secret_mut().copy_from_slice(raw);
        return Ok(out);
    }
    let text = raw.trim_ascii();
    let bad =
        || StoreError::KeyProvider("a key is 32 raw bytes, 64 hex characters or 44 base64 characters".into());
    if text.len() == 64 {
        for (i, pair) in text.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| bad())?;
            out.expose_secret_mut()[i] = u8::from_str_radix(s, 16).map_err(|_| bad())?;
        }
        return Ok(out);
    }
    let decoded =
        zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| bad())?);
    if decoded.len() != 32 {
        return Err(bad());
    }
    out.expose_secret_mut().copy_from_slice(&decoded);
    Ok(out)
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKek").field("id", &self.id).field("key", &"[REDACTED]").finish()
    }
}

#[async_trait]
impl KeyProvider for LocalKek {
    fn current_kek(&self) -> &str {
        &self.id
    }

    async fn wrap(&self, dek: &SecretKey, aad: &[u8]) -> Result<Sealed> {
        envelope::wrap_key(&self.key, aad, dek)
    }

    async fn unwrap(&self, kek_id: &str, wrapped: &Sealed, aad: &[u8]) -> Result<SecretKey> {
        if kek_id != self.id {
            return Err(StoreError::UnknownKey { kek_id: kek_id.to_owned() });
        }
        envelope::unwrap_key(&self.key, aad, wrapped).ok_or_else(|| StoreError::Corrupted {
            id: None,
            what: "wrapped data key",
            detail: "authentication failed".into(),
        })
    }

    fn is_passphrase(&self) -> bool {
        self.passphrase
    }
}

/// Several local KEKs: the current one wraps, all unwrap. Used while rotating the KEK.
#[derive(Debug)]
pub struct LocalKeyring {
    current: String,
    keys: BTreeMap<String, LocalKek>,
}

impl LocalKeyring {
    /// A keyring whose current KEK is `current`.
    pub fn new(current: LocalKek) -> Self {
        let id = current.id.clone();
        Self { current: id.clone(), keys: BTreeMap::from([(id, current)]) }
    }

    /// Keeps `older` for unwrapping.
    pub fn with_older(mut self, older: LocalKek) -> Self {
        self.keys.entry(older.id.clone()).or_insert(older);
        self
    }
}

#[async_trait]
impl KeyProvider for LocalKeyring {
    fn current_kek(&self) -> &str {
        &self.current
    }

    async fn wrap(&self, dek: &SecretKey, aad: &[u8]) -> Result<Sealed> {
        match self.keys.get(&self.current) {
            Some(k) => k.wrap(dek, aad).await,
            None => Err(StoreError::UnknownKey { kek_id: self.current.clone() }),
        }
    }

    async fn unwrap(&self, kek_id: &str, wrapped: &Sealed, aad: &[u8]) -> Result<SecretKey> {
        match self.keys.get(kek_id) {
            Some(k) => k.unwrap(kek_id, wrapped, aad).await,
            None => Err(StoreError::UnknownKey { kek_id: kek_id.to_owned() }),
        }
    }

    fn is_passphrase(&self) -> bool {
        self.keys.get(&self.current).is_some_and(|k| k.passphrase)
    }
}

/// A key check: a known value sealed under a KEK and kept in the store, so opening with a wrong
/// passphrase or key fails at once with [`StoreError::WrongPassphrase`] / [`StoreError::WrongKey`]
/// rather than later as corruption.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCheck {
    /// The KEK it was made under.
    pub kek_id: String,
    /// A fresh data key, wrapped under the KEK with the key-check binding.
    pub wrapped: Sealed,
}

const KEY_CHECK_DOMAIN: &str = "tokenward/keycheck/v1";

impl KeyCheck {
    /// Makes a check for the provider's current KEK.
    pub async fn create(provider: &dyn KeyProvider) -> Result<Self> {
        let kek_id = provider.current_kek().to_owned();
        let aad = envelope::aad(KEY_CHECK_DOMAIN, &[kek_id.as_bytes()]);
        Ok(Self { wrapped: provider.wrap(&SecretKey::generate()?, &aad).await?, kek_id })
    }

    /// Checks that `provider` holds this check's KEK.
    pub async fn verify(&self, provider: &dyn KeyProvider) -> Result<()> {
        let aad = envelope::aad(KEY_CHECK_DOMAIN, &[self.kek_id.as_bytes()]);
        match provider.unwrap(&self.kek_id, &self.wrapped, &aad).await {
            Ok(_) => Ok(()),
            Err(StoreError::Corrupted { .. }) if provider.is_passphrase() => Err(StoreError::WrongPassphrase),
            Err(StoreError::Corrupted { .. }) => Err(StoreError::WrongKey { kek_id: self.kek_id.clone() }),
            Err(e) => Err(e),
        }
    }
}
