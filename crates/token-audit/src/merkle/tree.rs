//! The full tree: every level kept, so any prefix's root and any proof can be made.

use std::fmt;

use super::{MerkleHash, ProofError, empty_root, leaf_hash, node_hash, path_len};
use crate::chain::Entry;

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
