//! Rotation's parsers: stored rotation records and sealed credentials, and OpenBao's HTTP responses
//! (the client's own HTTP/1.1 parser, chunked bodies included) never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_rotate::RotationRecord;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<RotationRecord>(data) {
        let again: RotationRecord = serde_json::from_slice(&serde_json::to_vec(&r).expect("serialises")).expect("re-parses");
        assert_eq!(again, r);
    }
    let _ = token_rotate::fuzzing::credential(data);
    let _ = token_rotate::fuzzing::openbao_response(data);
});
