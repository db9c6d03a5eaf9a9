//! Checking proofs with no access to the log: inclusion of a leaf, consistency of two sizes.

use super::{MerkleHash, ProofError, node_hash, path_len};

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
