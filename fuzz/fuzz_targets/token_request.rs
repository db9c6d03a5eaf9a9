//! The token endpoint's request form (RFC 8693 §2.1): any body, form-encoded or not, is read or
//! refused with a typed reason, never a panic; only a form body is ever read. Input: the first
//! byte picks the content type, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenward_tower::fuzzing::read_token_request;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let content_type = match pick % 3 {
        0 => "application/x-www-form-urlencoded",
        1 => "application/x-www-form-urlencoded; charset=utf-8",
        _ => "text/plain",
    };
    let read = read_token_request(content_type, body);
    if pick % 3 == 2 {
        assert!(!read, "only a form body is read");
    }
});
