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

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::chain::{ChainHash, Entry};
use crate::checkpoint::{CheckpointKey, CheckpointSigner};

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

/// The tree over a log's leaves, every level kept, so that any root of a prefix and any proof is
/// O(log n) to produce. Level 0 holds the leaves; at each level a lone last node is carried up
/// unchanged (which gives exactly RFC 6962's tree).
#[derive(Clone, Default)]
pub struct MerkleTree {
    levels: Vec<Vec<MerkleHash>>,
}

impl fmt::Debug for MerkleTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerkleTree").field("size", &self.size()).finish_non_exhaustive()
    }
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

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self { levels: vec![Vec::new()] }
    }

    /// The tree of `entries` (their chain hashes).
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Self {
        let mut t = Self::new();
        for e in entries {
            t.push_entry(e);
        }
        t
    }

    /// The tree of every entry in `storage`, read in pages of 4,096 (each page's links checked
    /// as it is read).
    pub async fn from_storage(
        storage: &dyn crate::storage::LogStorage,
    ) -> Result<Self, crate::error::AuditError> {
        let mut t = Self::new();
        let mut chain = crate::chain::ChainVerifier::new(crate::chain::ChainHead::EMPTY);
        loop {
            let page = storage.read(t.size(), 4096).await?;
            if page.is_empty() {
                return Ok(t);
            }
            for e in &page {
                chain.push(e)?;
                t.push_entry(e);
            }
        }
    }

    /// Appends an entry's leaf.
    pub fn push_entry(&mut self, entry: &Entry) {
        self.push_leaf(leaf_hash(&entry.hash));
    }

    /// Appends a leaf, updating the O(log n) nodes above it.
    pub fn push_leaf(&mut self, leaf: MerkleHash) {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let mut level = 0;
        loop {
            let len = self.levels[level].len();
            if len < 2 {
                break;
            }
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            // The node above the last pair, or the lone last node carried up.
            let parent = if len.is_multiple_of(2) {
                node_hash(&self.levels[level][len - 2], &self.levels[level][len - 1])
            } else {
                self.levels[level][len - 1]
            };
            let slot = (len - 1) / 2;
            let up = &mut self.levels[level + 1];
            if up.len() > slot {
                up[slot] = parent;
            } else {
                up.push(parent);
            }
            level += 1;
        }
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The root of the whole tree.
    pub fn root(&self) -> MerkleHash {
        match self.size() {
            0 => empty_root(),
            n => self.range_hash(0, n),
        }
    }

    /// The root of the tree of the first `size` leaves (an earlier tree head).
    pub fn root_at(&self, size: u64) -> Result<MerkleHash, ProofError> {
        if size > self.size() {
            return Err(ProofError::OutOfRange(format!("size {size} past the tree's {}", self.size())));
        }
        Ok(if size == 0 { empty_root() } else { self.range_hash(0, size) })
    }

    /// MTH(D[lo:hi]) for a range the RFC's recursion produces: `lo` aligned to the largest power
    /// of two not below `hi - lo`, or a perfect subtree. O(log n) from the kept levels.
    fn range_hash(&self, lo: u64, hi: u64) -> MerkleHash {
        let n = hi - lo;
        if n == 1 {
            return self.levels[0][lo as usize];
        }
        // The tail of the whole tree, from an aligned start, is one kept node too (the lone last
        // nodes carried up).
        if hi == self.size() {
            let level = (64 - (n - 1).leading_zeros()) as usize;
            if lo.is_multiple_of(1u64 << level)
                && let Some(h) = self.levels.get(level).and_then(|l| l.get((lo >> level) as usize))
            {
                return *h;
            }
        }
        // A perfect, aligned subtree is one kept node.
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            if let Some(h) = self.levels.get(level).and_then(|l| l.get((lo >> level) as usize)) {
                // The kept node covers exactly [lo, lo + n) when the whole subtree exists.
                if lo + n <= self.size() {
                    return *h;
                }
            }
        }
        let k = 1u64 << (63 - (n - 1).leading_zeros());
        node_hash(&self.range_hash(lo, lo + k), &self.range_hash(lo + k, hi))
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size` leaves (RFC 6962
    /// §2.1.1 PATH), leaf to root.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<MerkleHash>, ProofError> {
        if size > self.size() || index >= size {
            return Err(ProofError::OutOfRange(format!(
                "leaf {index} of a tree of {size} (the tree has {})",
                self.size()
            )));
        }
        let mut proof = Vec::with_capacity(path_len(index, size));
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<MerkleHash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = 1u64 << (63 - (n - 1).leading_zeros());
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.range_hash(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.range_hash(lo, lo + k));
        }
    }

    /// The consistency proof between the trees of the first `old` and first `new` leaves (RFC
    /// 6962 §2.1.2 PROOF).
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<MerkleHash>, ProofError> {
        if new > self.size() || old > new {
            return Err(ProofError::OutOfRange(format!("{old} → {new} (the tree has {})", self.size())));
        }
        let mut proof = Vec::new();
        if old > 0 && old < new {
            self.subproof(old, 0, new, true, &mut proof);
        }
        Ok(proof)
    }

    fn subproof(&self, m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<MerkleHash>) {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.range_hash(lo, hi));
            }
            return;
        }
        let k = 1u64 << (63 - (n - 1).leading_zeros());
        if m <= k {
            self.subproof(m, lo, lo + k, whole, out);
            out.push(self.range_hash(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.range_hash(lo, lo + k));
        }
    }
}

/// The RFC 6962 compact range of a log's first `size` leaves: the roots of its perfect subtrees,
/// left to right (one per 1-bit of `size`, at most 64 hashes). All that is needed to extend the
/// tree with later leaves and to compute the root of its current size, without the leaves.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CompactTree {
    size: u64,
    hashes: Vec<MerkleHash>,
}

impl fmt::Debug for CompactTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactTree").field("size", &self.size).finish_non_exhaustive()
    }
}

impl CompactTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The compact range of `size` leaves from its subtree roots (left to right), or `None` when
    /// their number is not the number of 1-bits of `size`.
    pub fn from_parts(size: u64, hashes: Vec<MerkleHash>) -> Option<Self> {
        (hashes.len() == size.count_ones() as usize).then_some(Self { size, hashes })
    }

    /// The subtree roots, left to right.
    pub fn hashes(&self) -> &[MerkleHash] {
        &self.hashes
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends an entry's leaf.
    pub fn push_entry(&mut self, entry: &Entry) {
        self.push_leaf(leaf_hash(&entry.hash));
    }

    /// Appends a leaf: merges the equal-sized subtrees it completes (O(log n)).
    pub fn push_leaf(&mut self, leaf: MerkleHash) {
        let mut h = leaf;
        let mut s = self.size;
        while s & 1 == 1 {
            // `size` has a 1-bit here, so there is a subtree root to merge with.
            let Some(left) = self.hashes.pop() else { break };
            h = node_hash(&left, &h);
            s >>= 1;
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The root of the tree of these `size` leaves.
    pub fn root(&self) -> MerkleHash {
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else { return empty_root() };
        it.fold(*last, |r, h| node_hash(h, &r))
    }
}

/// Checks that `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`, with
/// `proof` (RFC 9162 §2.1.3.2). Needs nothing else.
pub fn verify_inclusion(
    leaf: &MerkleHash,
    index: u64,
    size: u64,
    proof: &[MerkleHash],
    root: &MerkleHash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange(format!("leaf {index} of a tree of {size}")));
    }
    let expected = path_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongLength { expected, found: proof.len() });
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if snode == 0 {
            return Err(ProofError::Mismatch);
        }
        if fnode % 2 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode % 2 == 0 {
                while fnode % 2 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode == 0 && r == *root { Ok(()) } else { Err(ProofError::Mismatch) }
}

/// Checks that the tree of `old` leaves with root `old_root` is a prefix of the tree of `new`
/// leaves with root `new_root`, with `proof` (RFC 9162 §2.1.4.2). Needs nothing else.
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &MerkleHash,
    new_root: &MerkleHash,
    proof: &[MerkleHash],
) -> Result<(), ProofError> {
    if old > new {
        return Err(ProofError::OutOfRange(format!("{old} → {new}: a log does not shrink")));
    }
    if old == new || old == 0 {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength { expected: 0, found: proof.len() });
        }
        // Every tree extends the empty one; equal sizes must have equal roots.
        return if old == 0 || old_root == new_root { Ok(()) } else { Err(ProofError::Mismatch) };
    }
    let Some((first, rest)) = proof.split_first() else {
        return Err(ProofError::WrongLength { expected: 1, found: 0 });
    };
    let mut path: Vec<&MerkleHash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(old_root);
    }
    path.push(first);
    path.extend(rest.iter());
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode % 2 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*path[0], *path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return Err(ProofError::Mismatch);
        }
        if fnode % 2 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode % 2 == 0 {
                while fnode % 2 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode == 0 && fr == *old_root && sr == *new_root { Ok(()) } else { Err(ProofError::Mismatch) }
}

// ---------------------------------------------------------------------------------------------
// Signed tree heads: C2SP tlog-checkpoint in a C2SP signed note, signed with Ed25519.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compact_tree_has_the_roots_of_the_full_tree_and_rebuilds_from_its_parts() {
        let mut full = MerkleTree::new();
        let mut compact = CompactTree::new();
        assert_eq!(compact.root(), full.root());
        for i in 0u32..600 {
            let leaf: MerkleHash = Sha256::digest(i.to_be_bytes()).into();
            full.push_leaf(leaf);
            compact.push_leaf(leaf);
            assert_eq!(compact.size(), full.size());
            assert_eq!(compact.root(), full.root(), "size {}", i + 1);
            let again = CompactTree::from_parts(compact.size(), compact.hashes().to_vec());
            assert_eq!(again.as_ref(), Some(&compact));
        }
        assert_eq!(CompactTree::from_parts(3, vec![[0; 32]]), None, "3 leaves are two subtrees");
    }
}
