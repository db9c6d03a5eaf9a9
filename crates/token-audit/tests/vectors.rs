//! The chain agrees with `tests/vectors/audit-chain.json`, written by an independent Python
//! implementation (`scripts/gen_audit_vectors.py`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use token_audit::chains::{ChainHead, Entry, verify};
use token_audit::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn vectors_match() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/audit-chain.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut head = ChainHead::EMPTY;
    let mut entries = Vec::new();
    for case in v["entries"].as_array().unwrap() {
        let event: AuditEvent = serde_json::from_value(case["event"].clone()).unwrap();
        assert_eq!(
            hex(&event.canonical()),
            case["canonical_hex"].as_str().unwrap(),
            "canonical bytes of {event}"
        );
        let entry = head.append(event);
        assert_eq!(entry.hash.to_string(), case["hash"].as_str().unwrap());
        assert_eq!(entry.prev.to_string(), case["prev"].as_str().unwrap());
        // The stored form parses back to the same entry.
        let stored: Entry = serde_json::from_value(serde_json::json!({
            "seq": case["seq"], "prev": case["prev"], "hash": case["hash"], "event": case["event"]
        }))
        .unwrap();
        assert_eq!(stored, entry);
        entries.push(stored);
    }
    assert_eq!(head.head.to_string(), v["head"]["head"].as_str().unwrap());
    assert_eq!(verify(ChainHead::EMPTY, &entries), Ok(head));
}
