//! The compact range: a log's tree in `O(log n)` hashes, extended leaf by leaf.

use std::fmt;

use super::{MerkleHash, empty_root, leaf_hash, node_hash};
use crate::chain::Entry;

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

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::merkle::MerkleTree;

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
