//! Signed checkpoints: `(log, length, head hash, time)` signed with Ed25519, exported and kept
//! away from the log (another host, a ticket, a transparency log). A log verified against a
//! checkpoint it has since lost entries from, or rewritten, fails — which a hash chain alone cannot
//! show, since whoever truncates or rewrites a chain can recompute it.
//!
//! The signed message is `"tokenward-audit-checkpoint-v1\n" ‖ u32 BE length of log name ‖ log name ‖
//! u64 BE length ‖ 32-byte head ‖ i64 BE time in Unix milliseconds`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::TryRng;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};

use crate::chain::{ChainHash, ChainHead};

const DOMAIN: &[u8] = b"tokenward-audit-checkpoint-v1\n";

/// What a checkpoint attests: the log named `log` had `len` entries, the last hashing to `head`, at
/// `time`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The log's name (so a checkpoint of one log cannot vouch for another).
    pub log: String,
    /// Entries in the log.
    pub len: u64,
    /// The last entry's hash.
    pub head: ChainHash,
    /// When it was taken (milliseconds).
    #[serde(with = "crate::event::canonical_time")]
    pub time: DateTime<Utc>,
}

impl Checkpoint {
    /// The chain position it attests.
    pub fn chain_head(&self) -> ChainHead {
        ChainHead { len: self.len, head: self.head }
    }

    fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(DOMAIN.len() + 4 + self.log.len() + 8 + 32 + 8);
        m.extend_from_slice(DOMAIN);
        m.extend_from_slice(&u32::try_from(self.log.len()).unwrap_or(u32::MAX).to_be_bytes());
        m.extend_from_slice(self.log.as_bytes());
        m.extend_from_slice(&self.len.to_be_bytes());
        m.extend_from_slice(&self.head.0);
        m.extend_from_slice(&self.time.timestamp_millis().to_be_bytes());
        m
    }
}

/// A checkpoint with its signer's public key and Ed25519 signature (hex), as exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    /// What is attested.
    pub checkpoint: Checkpoint,
    /// The signer's public key.
    pub key: CheckpointKey,
    /// The signature, 128 lowercase hex characters.
    pub signature: String,
}

/// Why a checkpoint was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Signed by a key other than the one trusted.
    #[error("checkpoint signed by key {found}, not by the trusted key {trusted}")]
    UntrustedKey {
        /// The trusted key.
        trusted: CheckpointKey,
        /// The key it names.
        found: CheckpointKey,
    },
    /// The signature does not verify (the checkpoint was altered, or forged).
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// For a different log.
    #[error("checkpoint is for log {found:?}, not {expected:?}")]
    WrongLog {
        /// The log being verified.
        expected: String,
        /// The log it names.
        found: String,
    },
    /// A key or signature is not well-formed hex of the right length.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// An Ed25519 public key that verifies checkpoints (shown as 64 lowercase hex characters).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CheckpointKey([u8; 32]);

impl CheckpointKey {
    /// The key's 32 bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The key of these 32 bytes (checked when used: a malformed key verifies nothing).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Checks that `signed` is signed by this key and returns what it attests.
    pub fn verify<'a>(&self, signed: &'a SignedCheckpoint) -> Result<&'a Checkpoint, CheckpointError> {
        if signed.key != *self {
            return Err(CheckpointError::UntrustedKey { trusted: *self, found: signed.key });
        }
        let bytes: [u8; 64] = crate::hex::decode(&signed.signature)
            .ok_or(CheckpointError::Malformed("checkpoint signature"))?;
        let sig = Signature::from_bytes(&bytes);
        VerifyingKey::from_bytes(&self.0)
            .map_err(|_| CheckpointError::Malformed("checkpoint key"))?
            .verify_strict(&signed.checkpoint.message(), &sig)
            .map_err(|_| CheckpointError::BadSignature)?;
        Ok(&signed.checkpoint)
    }

    /// Like [`CheckpointKey::verify`], and checks the checkpoint is for `log`.
    pub fn verify_for<'a>(
        &self,
        signed: &'a SignedCheckpoint,
        log: &str,
    ) -> Result<&'a Checkpoint, CheckpointError> {
        let c = self.verify(signed)?;
        if c.log != log {
            return Err(CheckpointError::WrongLog { expected: log.to_owned(), found: c.log.clone() });
        }
        Ok(c)
    }
}

impl fmt::Display for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hex::encode(&self.0))
    }
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CheckpointKey({self})")
    }
}

impl FromStr for CheckpointKey {
    type Err = CheckpointError;
    fn from_str(s: &str) -> Result<Self, CheckpointError> {
        let bytes: [u8; 32] = crate::hex::decode(s).ok_or(CheckpointError::Malformed("checkpoint key"))?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| CheckpointError::Malformed("checkpoint key"))?;
        Ok(Self(bytes))
    }
}

impl TryFrom<String> for CheckpointKey {
    type Error = CheckpointError;
    fn try_from(s: String) -> Result<Self, CheckpointError> {
        s.parse()
    }
}

impl From<CheckpointKey> for String {
    fn from(k: CheckpointKey) -> String {
        k.to_string()
    }
}

/// The Ed25519 signing key of a log's checkpoints. Zeroized on drop; its Debug shows only the
/// public key.
pub struct CheckpointSigner {
    key: SigningKey,
}

impl CheckpointSigner {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, CheckpointError> {
        let mut seed = SecretBox::new(Box::new([0u8; 32]));
        rand::rngs::SysRng
            .try_fill_bytes(secrecy::ExposeSecretMut::expose_secret_mut(&mut seed))
            .map_err(|_| CheckpointError::Malformed("random seed (the OS random number generator failed)"))?;
        Ok(Self::from_seed(&seed))
    }

    /// The key from its 32-byte seed (kept sealed by whoever keeps it, e.g. token-store).
    pub fn from_seed(seed: &SecretBox<[u8; 32]>) -> Self {
        Self { key: SigningKey::from_bytes(seed.expose_secret()) }
    }

    /// The seed, for sealing it away.
    pub fn to_seed(&self) -> SecretBox<[u8; 32]> {
        SecretBox::new(Box::new(self.key.to_bytes()))
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    /// The public key that verifies this signer's checkpoints.
    pub fn public_key(&self) -> CheckpointKey {
        CheckpointKey(self.key.verifying_key().to_bytes())
    }

    /// Signs `head` of the log named `log` at `time` (kept to the millisecond).
    pub fn sign(&self, log: &str, head: ChainHead, time: DateTime<Utc>) -> SignedCheckpoint {
        let time = DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time);
        let checkpoint = Checkpoint { log: log.to_owned(), len: head.len, head: head.head, time };
        let sig = self.key.sign(&checkpoint.message());
        SignedCheckpoint {
            checkpoint,
            key: self.public_key(),
            signature: crate::hex::encode(&sig.to_bytes()),
        }
    }
}

impl fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointSigner").field("public_key", &self.public_key()).finish_non_exhaustive()
    }
}
