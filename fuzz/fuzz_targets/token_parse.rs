//! The token parser never panics, and whatever it accepts is exactly a well-formed token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_core::{limits::BODY_LEN, limits::MAX_TOKEN_LEN, lookup::ParsedToken, TokenId};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(t) = ParsedToken::parse(s) {
        assert!(s.len() <= MAX_TOKEN_LEN);
        assert!(s.is_ascii());
        assert_eq!(s.len(), t.prefix().len() + 1 + BODY_LEN);
        assert!(s[t.prefix().len() + 1..].bytes().all(|c| c.is_ascii_alphanumeric()));
        // The id's text form is what the token carries.
        let id_text = t.id().to_string();
        assert_eq!(&s[t.prefix().len() + 1..][..17], id_text);
        assert_eq!(id_text.parse::<TokenId>().ok(), Some(t.id()));
    }
    let _ = s.parse::<TokenId>();
});
