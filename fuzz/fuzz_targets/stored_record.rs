//! Stored-record parsers (token records in their binary encoding and as legacy JSON, sealed secret versions, KDF parameters, key checks, names,
//! labels, authenticated metadata frames) never panic, a token record that parses serialises and
//! parses back to the same, and integrity tags open only what they sealed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_core::lookup::TokenRecord;
use token_store::{keys::KdfParams, backend::KeyCheck, Label, SecretName, backend::SecretVersion};

fuzz_target!(|data: &[u8]| {
    // Authenticated metadata frames: arbitrary bytes never open under a key that did not seal them.
    let key = token_store::backend::RecordKey::from_bytes(&[5; 32]);
    assert!(key.open_meta("fuzz", data).is_err() || data.starts_with(b"twmac1"));
    let sealed = key.seal_meta("fuzz", data);
    assert_eq!(key.open_meta("fuzz", &sealed).expect("own frame opens"), data);
    // The binary encoding: never panics; what decodes re-encodes to what decodes the same, and its
    // tag checks only on the record it sealed.
    if let Ok(r) = token_store::backend::RecordDecoder::new().decode(data) {
        let bytes = token_store::backend::encode_token_record(&r);
        let again = token_store::backend::RecordDecoder::new().decode(&bytes).expect("re-decodes");
        assert_eq!(token_store::backend::encode_token_record(&again), bytes, "canonical");
        let tagged = token_store::TokenRow::new(again, None, 0, Some(key.seal_token(&r)));
        assert!(key.check_token(&tagged).is_ok());
    }
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = serde_json::from_str::<TokenRecord>(s) {
        let again: TokenRecord = serde_json::from_str(&serde_json::to_string(&r).expect("serialises")).expect("re-parses");
        assert_eq!(again.id, r.id);
        assert_eq!(again.scopes, r.scopes);
        assert_eq!(again.expires_at, r.expires_at);
        let _ = token_core::lookup::TokenView::from_record(&r);
        // A record's tag binds every field: the same record checks, any untagged one does not.
        let tagged = token_store::TokenRow::new(r.clone(), None, 0, Some(key.seal_token(&r)));
        assert!(key.check_token(&tagged).is_ok());
        assert!(key.check_token(&token_store::TokenRow::new(r, None, 0, None)).is_err());
    }
    let _ = serde_json::from_str::<SecretVersion>(s);
    let _ = serde_json::from_str::<KdfParams>(s);
    let _ = serde_json::from_str::<KeyCheck>(s);
    let _ = SecretName::new(s);
    let _ = Label::parse(s);
});
