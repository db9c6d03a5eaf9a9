//! Merkle proofs from the CLI: a signed tree head (C2SP signed note), an inclusion proof for an
//! entry and a consistency proof between two heads, each checked without the log, and refused
//! when altered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn tree_heads_and_proofs_check_without_the_log_and_fail_when_altered() {
    let cli = Cli::new();
    std::fs::write(cli.path("policy.toml"), POLICY).unwrap();
    cli.run(&["init", "--policy", "policy.toml"]).ok();
    let n = std::cell::Cell::new(0);
    let issue = || {
        n.set(n.get() + 1);
        let purpose = format!("p{}", n.get());
        let args = [
            "issue",
            "--principal",
            "billing-api",
            "--purpose",
            &purpose,
            "--scope",
            "s3:bucket/prod-logs/*:read",
            "--ttl",
            "10m",
        ];
        cli.run(&args).ok().to_owned()
    };
    issue();
    cli.run(&["audit", "tree-head", "--out", "old.note"]).ok();
    let old = std::fs::read_to_string(cli.path("old.note")).unwrap();
    assert!(old.starts_with("tokenward\n"), "{old}");
    assert!(old.contains("\n\n\u{2014} tokenward "), "{old}");
    let old_size: u64 = old.lines().nth(1).unwrap().parse().unwrap();
    for _ in 0..3 {
        issue();
    }
    cli.run(&["audit", "tree-head", "--out", "new.note"]).ok();
    let new = std::fs::read_to_string(cli.path("new.note")).unwrap();
    let new_size: u64 = new.lines().nth(1).unwrap().parse().unwrap();
    assert!(new_size > old_size);

    let size = new_size.to_string();
    let proof = cli.run(&["audit", "prove", "1", "--size", &size]).ok().to_owned();
    std::fs::write(cli.path("entry.proof.json"), &proof).unwrap();
    let r = cli.run(&["audit", "check-proof", "entry.proof.json", "--tree-head", "new.note"]);
    assert!(r.ok().contains("entry 1 "), "{}", r.stdout);

    let growth =
        cli.run(&["audit", "prove", "--from", &old_size.to_string(), "--size", &size]).ok().to_owned();
    std::fs::write(cli.path("growth.proof.json"), &growth).unwrap();
    let r = cli.run(&[
        "audit",
        "check-proof",
        "growth.proof.json",
        "--tree-head",
        "new.note",
        "--old-tree-head",
        "old.note",
    ]);
    assert!(r.ok().contains("is a prefix of"), "{}", r.stdout);

    // Altered: a hash of the proof, the entry it names, the tree head's size; another key.
    let v: serde_json::Value = serde_json::from_str(&proof).unwrap();
    let first = v["proof"][0].as_str().unwrap().to_owned();
    let flipped = format!("{}{}", if first.starts_with('0') { "1" } else { "0" }, &first[1..]);
    std::fs::write(cli.path("bad.proof.json"), proof.replace(&first, &flipped)).unwrap();
    let r = cli.run(&["audit", "check-proof", "bad.proof.json", "--tree-head", "new.note"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.error_line().contains("does not hold"), "{}", r.stderr);
    let entry = v["entry_hash"].as_str().unwrap().to_owned();
    let other = format!("{}{}", if entry.starts_with('0') { "1" } else { "0" }, &entry[1..]);
    std::fs::write(cli.path("bad2.proof.json"), proof.replace(&entry, &other)).unwrap();
    assert_eq!(cli.run(&["audit", "check-proof", "bad2.proof.json", "--tree-head", "new.note"]).code, 1);
    std::fs::write(
        cli.path("forged.note"),
        new.replacen(&format!("\n{new_size}\n"), &format!("\n{}\n", new_size + 1), 1),
    )
    .unwrap();
    assert_eq!(cli.run(&["audit", "check-proof", "entry.proof.json", "--tree-head", "forged.note"]).code, 1);
    let r = cli.run(&[
        "audit",
        "check-proof",
        "entry.proof.json",
        "--tree-head",
        "new.note",
        "--key",
        "0bb3f2823a8f1c7dd6ea11d23b55830da299e8b02e622421ecdfaa68d9988fc1",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // The consistency proof the other way round, or against the wrong old head, does not hold.
    let r = cli.run(&[
        "audit",
        "check-proof",
        "growth.proof.json",
        "--tree-head",
        "new.note",
        "--old-tree-head",
        "new.note",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    cli.run(&["audit", "verify"]).ok();
}
