//! Signed tree heads and Merkle proofs from untrusted bytes: the note parser and both proof
//! verifiers never panic, and accept only what the tree itself produces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_audit::{CheckpointSigner, merkle::MerkleTree, merkle::TreeHead, merkle::verify_consistency, merkle::verify_inclusion};

fuzz_target!(|data: &[u8]| {
    let signer = CheckpointSigner::from_seed(&secrecy::SecretBox::new(Box::new([7u8; 32])));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(head) = TreeHead::verify_note(text, "fuzz.example/log", &signer.public_key(), None) {
            // Only our own signature verifies, and what it signed round-trips.
            assert_eq!(head.sign(&signer, "fuzz.example/log").ok().as_deref().map(|n| n.len() <= text.len()), Some(true));
        }
    }
    // Proofs: sizes, index and hashes from the input, against a small real tree.
    if data.len() < 3 {
        return;
    }
    let n = u64::from(data[0]) + 1;
    let mut tree = MerkleTree::new();
    for i in 0..n {
        let mut h = [0u8; 32];
        h[0] = i as u8;
        tree.push_leaf(token_audit::merkle::leaf_hash(&token_audit::chains::ChainHash(h)));
    }
    let (a, b) = (u64::from(data[1]) % (n + 2), u64::from(data[2]) % (n + 2));
    let proof: Vec<[u8; 32]> = data[3..].chunks_exact(32).map(|c| c.try_into().unwrap_or([0; 32])).collect();
    let root = tree.root();
    let leaf = [data[1]; 32];
    if verify_inclusion(&leaf, a, n, &proof, &root).is_ok() {
        assert_eq!(tree.inclusion_proof(a, n).ok(), Some(proof.clone()));
    }
    if let Ok(old_root) = tree.root_at(a.min(n)) {
        let _ = verify_consistency(a.min(n), b, &old_root, &root, &proof);
    }
});
