//! Signed tree heads: C2SP tlog-checkpoint in a C2SP signed note, signed with Ed25519.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use super::MerkleHash;
use crate::checkpoint::{CheckpointKey, CheckpointSigner};

/// A tree head: the log's origin (its name, e.g. `tokenward.example/audit`), its size and root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// The origin line: which log.
    pub origin: String,
    /// Leaves (entries).
    pub size: u64,
    /// The root hash.
    pub root: MerkleHash,
}

/// Why a signed tree head was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// Not a signed note of a checkpoint (the text, a line, a number or base64 malformed).
    #[error("malformed signed tree head: {0}")]
    Malformed(&'static str),
    /// No signature by the trusted key (name and key hash) verifies.
    #[error("no valid signature by {0}")]
    NotSigned(String),
    /// For another log.
    #[error("tree head of {found:?}, not {expected:?}")]
    WrongOrigin {
        /// The origin expected.
        expected: String,
        /// The origin found.
        found: String,
    },
}

/// The signed-note key hash of an Ed25519 key: the first 4 bytes of
/// `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.
fn key_hash(name: &str, key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n\x01");
    h.update(key);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

impl TreeHead {
    /// The checkpoint body: `origin\nsize\nbase64(root)\n`.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Signs it as a C2SP signed note under `key_name` (no spaces or `+`).
    pub fn sign(&self, signer: &CheckpointSigner, key_name: &str) -> Result<String, NoteError> {
        if !valid_key_name(key_name) {
            return Err(NoteError::Malformed("a key name has no spaces, + or control characters"));
        }
        if self.origin.is_empty() || self.origin.contains('\n') {
            return Err(NoteError::Malformed("an origin is one non-empty line"));
        }
        let body = self.body();
        let sig = signer.signing_key().sign(body.as_bytes());
        let mut blob = key_hash(key_name, &signer.public_key().to_bytes()).to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!("{body}\n\u{2014} {key_name} {}\n", B64.encode(blob)))
    }

    /// Parses a signed note and checks a signature by `key_name` / `key` over it; other
    /// signatures (witnesses, other keys) are ignored. Checks the origin when `origin` is given.
    pub fn verify_note(
        note: &str,
        key_name: &str,
        key: &CheckpointKey,
        origin: Option<&str>,
    ) -> Result<Self, NoteError> {
        if note.len() > 1 << 16 {
            return Err(NoteError::Malformed("too large"));
        }
        let (body, sigs) =
            note.split_once("\n\n").ok_or(NoteError::Malformed("no blank line before the signatures"))?;
        let body = format!("{body}\n");
        let mut lines = body.lines();
        let origin_line = lines.next().filter(|l| !l.is_empty()).ok_or(NoteError::Malformed("no origin"))?;
        let size_line = lines.next().ok_or(NoteError::Malformed("no size"))?;
        let size = if size_line == "0"
            || (!size_line.starts_with('0') && size_line.bytes().all(|b| b.is_ascii_digit()))
        {
            size_line.parse::<u64>().map_err(|_| NoteError::Malformed("the size is not a number"))?
        } else {
            return Err(NoteError::Malformed("the size is not a canonical decimal"));
        };
        let root_line = lines.next().ok_or(NoteError::Malformed("no root hash"))?;
        let root: MerkleHash = B64
            .decode(root_line)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(NoteError::Malformed("the root is not 32 bytes of base64"))?;
        if B64.encode(root) != root_line {
            return Err(NoteError::Malformed("the root is not canonical base64"));
        }
        let head = Self { origin: origin_line.to_owned(), size, root };
        if let Some(o) = origin
            && o != head.origin
        {
            return Err(NoteError::WrongOrigin { expected: o.to_owned(), found: head.origin });
        }
        if !sigs.ends_with('\n') {
            return Err(NoteError::Malformed("the note does not end with a newline"));
        }
        let vk =
            VerifyingKey::from_bytes(&key.to_bytes()).map_err(|_| NoteError::Malformed("the trusted key"))?;
        let want = key_hash(key_name, &key.to_bytes());
        for line in sigs.lines() {
            let rest = line.strip_prefix("\u{2014} ").ok_or(NoteError::Malformed("a signature line"))?;
            let (name, b64) = rest.split_once(' ').ok_or(NoteError::Malformed("a signature line"))?;
            if name != key_name {
                continue;
            }
            let Ok(blob) = B64.decode(b64) else { continue };
            if blob.len() != 68 || blob[..4] != want {
                continue;
            }
            let Ok(sig) = Signature::from_slice(&blob[4..]) else { continue };
            if vk.verify(body.as_bytes(), &sig).is_ok() {
                return Ok(head);
            }
        }
        Err(NoteError::NotSigned(key_name.to_owned()))
    }
}
