//! The Merkle tree over the chain: agreement with `tests/vectors/merkle.json` (an independent
//! Python implementation of RFC 6962's recursive definitions and of a C2SP signed note,
//! `scripts/gen_merkle_vectors.py`), and properties: every leaf of random trees has a proof that
//! verifies, every prefix a consistency proof that verifies, and any altered proof, leaf, index,
//! size or root fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use token_audit::chains::ChainHash;
use token_audit::merkle::{
    MerkleHash, MerkleTree, NoteError, TreeHead, empty_root, leaf_hash, node_hash, verify_consistency,
    verify_inclusion,
};
use token_audit::*;

fn hex32(s: &str) -> [u8; 32] {
    let v: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect();
    v.try_into().unwrap()
}

fn vectors() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/merkle.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn roots_and_proofs_match_the_independent_implementation() {
    let v = vectors();
    let leaves: Vec<MerkleHash> = v["entry_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| leaf_hash(&ChainHash(hex32(h.as_str().unwrap()))))
        .collect();
    let mut tree = MerkleTree::new();
    for l in &leaves {
        tree.push_leaf(*l);
    }
    for r in v["roots"].as_array().unwrap() {
        let size = r["size"].as_u64().unwrap();
        assert_eq!(tree.root_at(size).unwrap(), hex32(r["root"].as_str().unwrap()), "root of {size}");
        // A tree built only to that size agrees (its tail nodes are carried, not complete).
        let mut prefix = MerkleTree::new();
        for l in &leaves[..size as usize] {
            prefix.push_leaf(*l);
        }
        assert_eq!(prefix.root(), hex32(r["root"].as_str().unwrap()));
    }
    for c in v["inclusion"].as_array().unwrap() {
        let (index, size) = (c["index"].as_u64().unwrap(), c["size"].as_u64().unwrap());
        let expected: Vec<MerkleHash> =
            c["proof"].as_array().unwrap().iter().map(|h| hex32(h.as_str().unwrap())).collect();
        assert_eq!(tree.inclusion_proof(index, size).unwrap(), expected, "path {index} of {size}");
        verify_inclusion(&leaves[index as usize], index, size, &expected, &tree.root_at(size).unwrap())
            .unwrap();
    }
    for c in v["consistency"].as_array().unwrap() {
        let (old, new) = (c["old"].as_u64().unwrap(), c["new"].as_u64().unwrap());
        let expected: Vec<MerkleHash> =
            c["proof"].as_array().unwrap().iter().map(|h| hex32(h.as_str().unwrap())).collect();
        assert_eq!(tree.consistency_proof(old, new).unwrap(), expected, "proof {old} → {new}");
        verify_consistency(old, new, &tree.root_at(old).unwrap(), &tree.root_at(new).unwrap(), &expected)
            .unwrap();
    }
}

#[test]
fn the_signed_tree_head_is_the_c2sp_note_byte_for_byte() {
    let v = vectors();
    let n = &v["note"];
    let seed = secrecy::SecretBox::new(Box::new(hex32(n["seed"].as_str().unwrap())));
    let signer = CheckpointSigner::from_seed(&seed);
    assert_eq!(signer.public_key().to_bytes(), hex32(n["public_key"].as_str().unwrap()));
    let leaves: Vec<MerkleHash> = v["entry_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| leaf_hash(&ChainHash(hex32(h.as_str().unwrap()))))
        .collect();
    let mut tree = MerkleTree::new();
    leaves.iter().for_each(|l| tree.push_leaf(*l));
    let (name, origin) = (n["key_name"].as_str().unwrap(), n["origin"].as_str().unwrap());
    let head = TreeHead { origin: origin.into(), size: 40, root: tree.root_at(40).unwrap() };
    let note = head.sign(&signer, name).unwrap();
    assert_eq!(note, n["text"].as_str().unwrap());
    let key = signer.public_key();
    assert_eq!(TreeHead::verify_note(&note, name, &key, Some(origin)).unwrap(), head);
    // Another origin, another key, an altered size or root, a truncated note: refused.
    assert!(matches!(
        TreeHead::verify_note(&note, name, &key, Some("other/log")),
        Err(NoteError::WrongOrigin { .. })
    ));
    let other = CheckpointSigner::generate().unwrap().public_key();
    assert!(matches!(TreeHead::verify_note(&note, name, &other, None), Err(NoteError::NotSigned(_))));
    assert!(TreeHead::verify_note(&note.replacen("\n40\n", "\n41\n", 1), name, &key, None).is_err());
    let root_b64 = note.lines().nth(2).unwrap();
    let mut altered = root_b64.to_owned().into_bytes();
    altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
    assert!(
        TreeHead::verify_note(
            &note.replace(root_b64, std::str::from_utf8(&altered).unwrap()),
            name,
            &key,
            None
        )
        .is_err()
    );
    assert!(TreeHead::verify_note(&note[..note.len() - 10], name, &key, None).is_err());
    assert!(TreeHead::verify_note("", name, &key, None).is_err());
    assert!(TreeHead::verify_note(&note.replacen("\n40\n", "\n040\n", 1), name, &key, None).is_err());
    // Witness cosignatures by other keys are ignored, not refused.
    let cosigned = format!("{note}\u{2014} witness.example AAAAAAAA\n");
    assert_eq!(TreeHead::verify_note(&cosigned, name, &key, None).unwrap(), head);
}

#[tokio::test]
async fn a_real_log_proves_its_entries_and_its_growth() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("a.jsonl")).unwrap();
    let ev = |i: usize| {
        AuditEvent::new(token_core::chrono::Utc::now(), Actor::System, Action::Issue).attr("n", i.to_string())
    };
    log.append_now(&(0..37).map(ev).collect::<Vec<_>>()).unwrap();
    let early = MerkleTree::from_entries(&log.read(0, 1000).await.unwrap());
    let (old_size, old_root) = (early.size(), early.root());
    log.append_now(&(37..100).map(ev).collect::<Vec<_>>()).unwrap();
    let entries = log.read(0, 1000).await.unwrap();
    let tree = MerkleTree::from_entries(&entries);
    assert_eq!(tree.size(), 100);
    let proof = tree.inclusion_proof(41, 100).unwrap();
    assert!(proof.len() <= 7);
    verify_inclusion(&leaf_hash(&entries[41].hash), 41, 100, &proof, &tree.root()).unwrap();
    // An entry whose event was edited no longer hashes to a leaf in the tree.
    let mut forged = entries[41].clone();
    forged.event.attrs.insert("n".into(), "999".into());
    let recomputed = token_audit::chains::entry_hash(forged.seq, &forged.prev, &forged.event);
    assert!(verify_inclusion(&leaf_hash(&recomputed), 41, 100, &proof, &tree.root()).is_err());
    let c = tree.consistency_proof(old_size, 100).unwrap();
    verify_consistency(old_size, 100, &old_root, &tree.root(), &c).unwrap();
}

/// RFC 6962's recursive definitions, again, for the properties.
fn mth(d: &[MerkleHash]) -> MerkleHash {
    match d.len() {
        0 => empty_root(),
        1 => d[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

fn leaves(n: usize, salt: u8) -> Vec<MerkleHash> {
    (0..n)
        .map(|i| {
            leaf_hash(&ChainHash([
                salt ^ (i as u8),
                (i >> 8) as u8,
                7,
                1,
                2,
                3,
                4,
                5,
                6,
                7,
                8,
                9,
                10,
                11,
                12,
                13,
                14,
                15,
                16,
                17,
                18,
                19,
                20,
                21,
                22,
                23,
                24,
                25,
                26,
                27,
                28,
                29,
            ]))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_leaf_proves_and_every_alteration_fails(n in 1usize..300, salt in any::<u8>(), pick in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let l = leaves(n, salt);
        let mut tree = MerkleTree::new();
        l.iter().for_each(|x| tree.push_leaf(*x));
        prop_assert_eq!(tree.root(), mth(&l));
        let root = tree.root();
        let i = pick.index(n) as u64;
        let proof = tree.inclusion_proof(i, n as u64).unwrap();
        prop_assert!(proof.len() <= 9);
        prop_assert!(verify_inclusion(&l[i as usize], i, n as u64, &proof, &root).is_ok());
        // Another leaf, index, size, root, or an altered hash of the proof: refused.
        let other = if n > 1 { (i + 1) % n as u64 } else { 0 };
        if other != i {
            prop_assert!(verify_inclusion(&l[other as usize], i, n as u64, &proof, &root).is_err());
            prop_assert!(verify_inclusion(&l[i as usize], other, n as u64, &proof, &root).is_err());
        }
        // (The size is bound to the root by the signed tree head: a proof checked against a root
        // with another size may go through the same hashes — RFC 9162 checks the pair.)
        let mut bad_root = root;
        bad_root[0] ^= 1;
        prop_assert!(verify_inclusion(&l[i as usize], i, n as u64, &proof, &bad_root).is_err());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            let (at, bit) = flip;
            let k = at.index(bad.len());
            bad[k][usize::from(bit) % 32] ^= 1 << (bit % 8);
            prop_assert!(verify_inclusion(&l[i as usize], i, n as u64, &bad, &root).is_err());
            let mut short = proof.clone();
            short.pop();
            prop_assert!(verify_inclusion(&l[i as usize], i, n as u64, &short, &root).is_err());
        }
    }

    #[test]
    fn every_prefix_is_consistent_and_every_alteration_fails(n in 1usize..300, salt in any::<u8>(), pick in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let l = leaves(n, salt);
        let mut tree = MerkleTree::new();
        l.iter().for_each(|x| tree.push_leaf(*x));
        let m = pick.index(n) as u64 + 1;
        let (old_root, new_root) = (tree.root_at(m).unwrap(), tree.root());
        prop_assert_eq!(old_root, mth(&l[..m as usize]));
        let proof = tree.consistency_proof(m, n as u64).unwrap();
        prop_assert!(proof.len() <= 2 * 9 + 1);
        prop_assert!(verify_consistency(m, n as u64, &old_root, &new_root, &proof).is_ok());
        if m < n as u64 {
            let mut bad_old = old_root;
            bad_old[31] ^= 0x80;
            prop_assert!(verify_consistency(m, n as u64, &bad_old, &new_root, &proof).is_err());
            let mut bad = proof.clone();
            let (at, bit) = flip;
            let k = at.index(bad.len());
            bad[k][usize::from(bit) % 32] ^= 1 << (bit % 8);
            prop_assert!(verify_consistency(m, n as u64, &old_root, &new_root, &bad).is_err());
            // A log that forked after m: another leaf at m.
            let mut forked = l.clone();
            forked[m as usize][0] ^= 1;
            prop_assert!(verify_consistency(m, n as u64, &old_root, &mth(&forked), &proof).is_err());
        }
        prop_assert!(verify_consistency(n as u64, m, &new_root, &old_root, &proof).is_err() || m == n as u64);
    }
}
