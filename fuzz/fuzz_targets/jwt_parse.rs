//! Subject tokens (compact JWS → header, claims, key, signature, time checks): the parser and the
//! whole validator never panic on any input, and nothing but a correctly signed token of the
//! fixed issuer is accepted (the fuzzer cannot make an ES256 signature, so nothing is).
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_oidc::fuzzing::{parse_compact, parse_jwk, validate_jwt};

fuzz_target!(|data: &[u8]| {
    let _ = parse_jwk(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_compact(s);
        let accepted = validate_jwt(s);
        assert!(!accepted, "a token the fuzzer made was accepted");
    }
});
