//! The parsers take any input without panicking: whole strings, three base64url parts of any
//! JSON, valid tokens and proofs with one byte changed (never accepted), any JWKS document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::Value;
use token_core::chrono::DateTime;
use token_oidc::{DpopRequest, DpopVerifier, IssuerKeys, Jwks, JwtValidator, Thumbprint};

fn file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn first(name: &str, field: &str) -> String {
    let v: Value = serde_json::from_slice(&file(name)).unwrap();
    v["cases"][0][field].as_str().unwrap().to_owned()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

fn jwt_validator() -> JwtValidator {
    let keys = IssuerKeys::pinned(Jwks::parse(&file("jwks.json")).unwrap());
    JwtValidator::builder("https://token.actions.githubusercontent.com", "tokenward", keys).build().unwrap()
}

/// JSON-ish text: objects with the members validation reads, of any type.
fn json_part() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("null".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "[ -~]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just(r#"["tokenward"]"#.to_owned()),
    ];
    let key = prop_oneof![
        Just("alg"),
        Just("kid"),
        Just("typ"),
        Just("jwk"),
        Just("crit"),
        Just("iss"),
        Just("aud"),
        Just("exp"),
        Just("nbf"),
        Just("iat"),
        Just("jti"),
        Just("htm"),
        Just("htu"),
        Just("ath"),
        Just("kty"),
        Just("crv"),
        Just("x"),
        Just("n"),
    ];
    prop::collection::vec((key, scalar), 0..8).prop_map(|members| {
        let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_string_is_a_typed_refusal(s in "\\PC{0,400}") {
        let rt = runtime();
        let now = DateTime::from_timestamp(1_765_000_000, 0).unwrap();
        prop_assert!(rt.block_on(jwt_validator().validate_at(&s, now)).is_err());
        let request = DpopRequest::new("POST", "https://server.example.com/token");
        prop_assert!(DpopVerifier::builder().build().unwrap().verify_at(&s, &request, now).is_err());
        let _ = Thumbprint::parse(&s);
    }

    #[test]
    fn any_json_in_three_parts_is_a_typed_refusal(h in json_part(), p in json_part(), sig in prop::collection::vec(any::<u8>(), 0..80)) {
        let token = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(&h), URL_SAFE_NO_PAD.encode(&p), URL_SAFE_NO_PAD.encode(&sig));
        let rt = runtime();
        let now = DateTime::from_timestamp(1_765_000_000, 0).unwrap();
        prop_assert!(rt.block_on(jwt_validator().validate_at(&token, now)).is_err());
        let request = DpopRequest::new("POST", "https://server.example.com/token");
        prop_assert!(DpopVerifier::builder().build().unwrap().verify_at(&token, &request, now).is_err());
    }

    #[test]
    fn a_changed_byte_is_never_accepted(i in any::<prop::sample::Index>(), b in any::<u8>()) {
        let now = DateTime::from_timestamp(1_765_000_000, 0).unwrap();
        let token = first("jwt.json", "token");
        let mut bytes = token.clone().into_bytes();
        let at = i.index(bytes.len());
        prop_assume!(bytes[at] != b);
        bytes[at] = b;
        if let Ok(changed) = String::from_utf8(bytes) {
            let r = runtime().block_on(jwt_validator().validate_at(&changed, now));
            prop_assert!(r.is_err(), "a changed token was accepted");
        }
        let proof = first("dpop.json", "proof");
        let mut bytes = proof.into_bytes();
        let at = i.index(bytes.len());
        prop_assume!(bytes[at] != b);
        bytes[at] = b;
        if let Ok(changed) = String::from_utf8(bytes) {
            let request = DpopRequest::new("POST", "https://server.example.com/token");
            prop_assert!(DpopVerifier::builder().build().unwrap().verify_at(&changed, &request, now).is_err());
        }
    }

    #[test]
    fn any_jwks_document_parses_or_is_refused(doc in prop::collection::vec(any::<u8>(), 0..600), keys in json_part()) {
        let _ = Jwks::parse(&doc);
        let _ = Jwks::parse(format!(r#"{{"keys":[{keys}]}}"#).as_bytes());
    }
}
