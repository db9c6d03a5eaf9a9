//! Rotation's parsers: stored rotation records and sealed credentials never panic. (OpenBao's
//! answers are read by reqwest through token-http, bounded, and parsed by serde_json.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_rotate::RotationRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<RotationRecord>(data) {
        let again: RotationRecord = serde_json::from_slice(&serde_json::to_vec(&r).expect("serialises")).expect("re-parses");
        assert_eq!(again, r);
    }
    let _ = token_rotate::fuzzing::credential(data);
});
