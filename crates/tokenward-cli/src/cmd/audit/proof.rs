//! Merkle proofs (RFC 6962): made from the log, checked against signed tree heads without it.

use std::path::{Path, PathBuf};

use tokenward::audit::checkpoints::CheckpointKey;
use tokenward::audit::merkle::{MerkleTree, TreeHead, leaf_hash, verify_consistency, verify_inclusion};

use super::signed::trusted_key;
use super::{LOG_NAME, entries};
use crate::cli::{Global, Output};
use crate::error::{CliError, Result};
use crate::open::{self, Need};

/// `audit prove`: an inclusion proof for entry `seq`, or a consistency proof from size `from`.
pub(super) async fn prove(g: &Global, seq: Option<u64>, from: Option<u64>, size: Option<u64>) -> Result<u8> {
    let mut tree = MerkleTree::new();
    let mut hashes = Vec::new();
    for e in entries(g).await? {
        let e = e.map_err(|e| CliError::denied(format!("audit log: {e}")))?;
        tree.push_entry(&e);
        hashes.push(e.hash);
    }
    let size = size.unwrap_or(tree.size());
    let hex = |h: &[u8; 32]| tokenward::core::hex::encode(h);
    let proof_err = |e: tokenward::audit::merkle::ProofError| CliError::new(e.to_string());
    let v = match (seq, from) {
        (Some(seq), _) => {
            let proof = tree.inclusion_proof(seq, size).map_err(proof_err)?;
            let entry = hashes[seq as usize];
            serde_json::json!({
                "kind": "inclusion", "seq": seq, "size": size,
                "entry_hash": entry.to_string(), "leaf": hex(&leaf_hash(&entry)),
                "root": hex(&tree.root_at(size).map_err(proof_err)?),
                "proof": proof.iter().map(hex).collect::<Vec<_>>(),
            })
        }
        (None, Some(old)) => {
            let proof = tree.consistency_proof(old, size).map_err(proof_err)?;
            serde_json::json!({
                "kind": "consistency", "old": old, "size": size,
                "old_root": hex(&tree.root_at(old).map_err(proof_err)?),
                "root": hex(&tree.root_at(size).map_err(proof_err)?),
                "proof": proof.iter().map(hex).collect::<Vec<_>>(),
            })
        }
        (None, None) => return Err(CliError::new("give SEQ or --from M")),
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

/// `audit check-proof`: a proof from `prove` against signed tree heads, without the log.
pub(super) async fn check_proof(
    g: &Global,
    proof: PathBuf,
    tree_head: PathBuf,
    old_tree_head: Option<PathBuf>,
    key: Option<String>,
    output: Output,
) -> Result<u8> {
    let key = match key {
        Some(k) => CheckpointKey::try_from(k).map_err(|e| CliError::new(format!("--key: {e}")))?,
        None => {
            let tw = open::open(g, Need::ReadOnly).await?;
            let k = trusted_key(&tw).await;
            tw.shutdown().await?;
            k?
        }
    };
    let read = |p: &Path| {
        let meta = std::fs::metadata(p).map_err(CliError::read(p))?;
        if meta.len() > 1 << 20 {
            return Err(CliError::new(format!("{}: larger than 1 MiB", p.display())));
        }
        std::fs::read_to_string(p).map_err(CliError::read(p))
    };
    let head_of = |p: &Path| {
        TreeHead::verify_note(&read(p)?, LOG_NAME, &key, Some(LOG_NAME))
            .map_err(|e| CliError::denied(format!("{}: {e}", p.display())))
    };
    let head = head_of(&tree_head)?;
    let v: serde_json::Value = serde_json::from_str(&read(&proof)?)
        .map_err(|e| CliError::new(format!("{}: not JSON: {e}", proof.display())))?;
    let bad = |what: &str| CliError::new(format!("{}: {what}", proof.display()));
    let h32 = |v: &serde_json::Value| -> Result<[u8; 32]> {
        let s = v.as_str().ok_or_else(|| bad("a hash is not a string"))?;
        tokenward::audit::chains::ChainHash::try_from(s.to_owned())
            .map(|h| h.0)
            .map_err(|_| bad("a hash is not 64 hex"))
    };
    let hashes: Vec<[u8; 32]> =
        v["proof"].as_array().ok_or_else(|| bad("no proof"))?.iter().map(h32).collect::<Result<_>>()?;
    let n = |k: &str| v[k].as_u64().ok_or_else(|| bad(&format!("no {k}")));
    if n("size")? != head.size {
        return Err(CliError::denied(format!(
            "the proof is for size {}, the tree head for {}",
            n("size")?,
            head.size
        )));
    }
    let outcome = match v["kind"].as_str() {
        Some("inclusion") => {
            let leaf = leaf_hash(&tokenward::audit::chains::ChainHash(h32(&v["entry_hash"])?));
            verify_inclusion(&leaf, n("seq")?, head.size, &hashes, &head.root).map(|()| {
                format!(
                    "entry {} ({}) is in the log of {} entries",
                    n("seq").unwrap_or(0),
                    v["entry_hash"].as_str().unwrap_or(""),
                    head.size
                )
            })
        }
        Some("consistency") => {
            let old_path = old_tree_head
                .as_deref()
                .ok_or_else(|| CliError::new("a consistency proof needs --old-tree-head"))?;
            let old = head_of(old_path)?;
            if old.size != n("old")? {
                return Err(CliError::denied(format!(
                    "the proof is from size {}, the old tree head is of {}",
                    n("old")?,
                    old.size
                )));
            }
            verify_consistency(old.size, head.size, &old.root, &head.root, &hashes)
                .map(|()| format!("the log of {} entries is a prefix of the log of {}", old.size, head.size))
        }
        _ => return Err(bad("kind is neither inclusion nor consistency")),
    };
    match outcome {
        Ok(msg) if output.json() => {
            println!(
                "{}",
                serde_json::json!({"holds": true, "kind": v["kind"], "size": head.size, "detail": msg})
            );
            Ok(0)
        }
        Ok(msg) => {
            println!("proof holds: {msg}");
            Ok(0)
        }
        Err(e) => Err(CliError::denied(format!("proof does not hold: {e}"))),
    }
}
