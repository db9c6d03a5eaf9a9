//! The token format agrees with the vectors in `tests/vectors/token-format.json`, which an
//! independent Python implementation (`scripts/gen_token_vectors.py`) wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use token_core::digest::DigestKey;
use token_core::secrecy::SecretBox;
use token_core::*;

fn vectors() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/token-format.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read vectors")).expect("json")
}

fn hex32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

#[test]
fn valid_vectors_parse_and_digest() {
    let v = vectors();
    let key = DigestKey::from_bytes(
        7,
        &SecretBox::new(Box::new(hex32(v["digest_key_hex"].as_str().expect("key")))),
    );
    let valid = v["valid"].as_array().expect("valid");
    assert!(valid.len() >= 5);
    for case in valid {
        let token = case["token"].as_str().expect("token");
        let format =
            TokenFormat::new(TokenPrefix::new(case["prefix"].as_str().expect("prefix")).expect("prefix"));
        let parsed = format.parse(token).unwrap_or_else(|e| panic!("{token}: {e}"));
        assert_eq!(parsed.id().to_string(), case["id"].as_str().expect("id"));
        assert_eq!(parsed.id().to_u128().to_string(), case["id_u128"].as_str().expect("id_u128"));
        let digest = key.digest_token(&parsed);
        assert_eq!(digest.key_id(), 7);
        assert_eq!(*digest.mac(), hex32(case["digest_hmac_sha256_hex"].as_str().expect("digest")));
    }
}

#[test]
fn invalid_vectors_fail_with_the_named_error() {
    let v = vectors();
    let format =
        TokenFormat::new(TokenPrefix::new(v["expected_prefix_for_invalid"].as_str().expect("p")).expect("p"));
    let invalid = v["invalid"].as_array().expect("invalid");
    assert!(invalid.len() >= 14);
    for case in invalid {
        let input = case["input"].as_str().expect("input");
        let want = case["error"].as_str().expect("error");
        let err = format.parse(input).expect_err(input);
        let got = format!("{err:?}");
        assert!(got.starts_with(want), "{input:?}: expected {want}, got {got}");
    }
}
