//! Stored audit entries and checkpoints: the parsers never panic; an accepted entry is written back
//! byte for byte (every byte of a stored entry matters), hashes and verifies consistently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_audit::{chains::ChainHead, checkpoints::SignedCheckpoint, fuzzing::parse_entry, chains::verify};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = parse_entry(data) {
        let mut again = Vec::new();
        e.json_line_into(&mut again);
        assert_eq!(again.strip_suffix(b"\n"), Some(data.strip_suffix(b"\n").unwrap_or(data)));
        let _ = e.event.canonical();
        let from = ChainHead { len: e.seq, head: e.prev };
        let ok = token_audit::chains::entry_hash(e.seq, &e.prev, &e.event) == e.hash;
        assert_eq!(verify(from, [&e]).is_ok(), ok);
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(c) = serde_json::from_str::<SignedCheckpoint>(s)
    {
        let _ = c.key.verify(&c);
    }
});
