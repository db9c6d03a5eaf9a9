//! A Merkle tree over the chain (RFC 6962 / RFC 9162): inclusion proofs (this entry is in the log
//! of size N) and consistency proofs (the log of size M is a prefix of the log of size N), both
//! O(log n) hashes and checked by standalone functions that need no access to the log; and
//! signed tree heads in the C2SP `tlog-checkpoint` signed-note format.
//!
//! - leaf: `SHA-256(0x00 ‖ entry hash)` — the entry's chain hash already commits to its sequence
//!   number, the previous hash and the canonical event, so a leaf names exactly one entry;
//! - node: `SHA-256(0x01 ‖ left ‖ right)`; the tree of `n` leaves splits at the largest power of
//!   two below `n` (RFC 6962 §2.1); the empty tree's root is `SHA-256("")`.
//!
//! ```
//! use token_audit::chains::{ChainHead, Entry};
//! use token_audit::merkle::{MerkleTree, leaf_hash, verify_consistency, verify_inclusion};
//! use token_audit::{Action, Actor, AuditEvent};
//! use token_core::chrono::Utc;
//!
//! let mut head = ChainHead::EMPTY;
//! let entries: Vec<Entry> =
//!     (0..5).map(|_| head.append(AuditEvent::new(Utc::now(), Actor::System, Action::Issue))).collect();
//! let tree = MerkleTree::from_entries(&entries);
//! let root = tree.root();
//! let proof = tree.inclusion_proof(3, 5).unwrap();
//! // Anyone holding the entry, the root and the proof can check it; no log needed.
//! verify_inclusion(&leaf_hash(&entries[3].hash), 3, 5, &proof, &root).unwrap();
//! let older = tree.root_at(2).unwrap();
//! verify_consistency(2, 5, &older, &root, &tree.consistency_proof(2, 5).unwrap()).unwrap();
//! ```
//!
//! This module holds the hashes and the shape every tree and proof shares; `tree` is the full
//! tree (roots of any prefix, proofs), `compact` the compact range, `proof` the standalone proof
//! checks, `note` the signed tree heads.

mod compact;
mod note;
mod proof;
mod tree;

use sha2::{Digest, Sha256};

pub use self::compact::CompactTree;
pub use self::note::{NoteError, TreeHead};
pub use self::proof::{verify_consistency, verify_inclusion};
pub use self::tree::MerkleTree;
use crate::chain::ChainHash;

/// A node or leaf hash.
pub type MerkleHash = [u8; 32];

/// The leaf of the entry whose chain hash is `entry_hash`: `SHA-256(0x00 ‖ entry_hash)`.
pub fn leaf_hash(entry_hash: &ChainHash) -> MerkleHash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry_hash.0);
    h.finalize().into()
}

/// An interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &MerkleHash, right: &MerkleHash) -> MerkleHash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> MerkleHash {
    Sha256::digest([]).into()
}

/// Why a proof was refused, or could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The index or sizes are impossible (an index past the size, M > N, a size past the tree).
    #[error("out of range: {0}")]
    OutOfRange(String),
    /// The proof has the wrong number of hashes for these sizes.
    #[error("the proof has {found} hashes; these sizes need {expected}")]
    WrongLength {
        /// The length the sizes require.
        expected: usize,
        /// The proof's length.
        found: usize,
    },
    /// The proof does not lead to the root (an altered entry, proof or root).
    #[error("the proof does not lead to the root")]
    Mismatch,
}

/// The number of hashes a path from a leaf of a tree of `size` has: `ceil(log2(size))` at most.
fn path_len(index: u64, size: u64) -> usize {
    let (mut i, mut last, mut n) = (index, size - 1, 0);
    while last > 0 {
        if i < last || i % 2 == 1 {
            n += 1;
        }
        i /= 2;
        last /= 2;
    }
    n
}
