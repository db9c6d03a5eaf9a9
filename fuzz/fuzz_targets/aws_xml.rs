//! The little XML reader AWS's query answers go through (token_http::aws::xml): tags, repeated
//! blocks and entities never panic, and a block is always a substring of its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_http::fuzzing::xml;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for name in ["Code", "Message", "AccessKeyId", "member", "Arn"] {
        let _ = xml::tag(text, name);
        for b in xml::blocks(text, name) {
            assert!(text.contains(b));
            let _ = xml::tag(b, "AccessKeyId");
        }
    }
    let _ = xml::unescape(text);
});
