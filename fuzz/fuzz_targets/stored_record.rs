//! Stored-record parsers (token records, sealed secret versions, KDF parameters, key checks, names,
//! labels) never panic, and a token record that parses serialises and parses back to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_core::TokenRecord;
use token_store::{KdfParams, KeyCheck, Label, SecretName, SecretVersion};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = serde_json::from_str::<TokenRecord>(s) {
        let again: TokenRecord = serde_json::from_str(&serde_json::to_string(&r).expect("serialises")).expect("re-parses");
        assert_eq!(again.id, r.id);
        assert_eq!(again.scopes, r.scopes);
        assert_eq!(again.expires_at, r.expires_at);
        let _ = token_core::TokenView::from_record(&r);
    }
    let _ = serde_json::from_str::<SecretVersion>(s);
    let _ = serde_json::from_str::<KdfParams>(s);
    let _ = serde_json::from_str::<KeyCheck>(s);
    let _ = SecretName::new(s);
    let _ = Label::parse(s);
});
