//! Stored-record parsers reject bad input with errors, never panics; good records round-trip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use token_core::chrono::{TimeDelta, Utc};
use token_core::digest::{DigestKey, DigestKeyring};
use token_core::lookup::TokenRecord;
use token_core::*;
use token_store::{Label, SecretName, backend::KeyCheck, backend::SecretVersion, keys::KdfParams};

fn issued_record(purpose: &str, scopes: &str) -> TokenRecord {
    let policy = Policy::builder()
        .allow_bare_wildcards(true)
        .role(Role::parse("r", "svc:**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new("tw").unwrap()),
        DigestKeyring::new(DigestKey::generate(3).unwrap()),
        policy,
    );
    let req = IssueRequest::parse(purpose, scopes, TimeDelta::hours(1)).unwrap().max_uses(9);
    issuer.issue_at(&Principal::parse("p", ["r"]).unwrap(), &req, &[], Utc::now()).unwrap().1
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn stored_parsers_never_panic(s in "\\PC{0,300}") {
        let _ = serde_json::from_str::<TokenRecord>(&s);
        let _ = serde_json::from_str::<SecretVersion>(&s);
        let _ = serde_json::from_str::<KdfParams>(&s);
        let _ = serde_json::from_str::<KeyCheck>(&s);
        let _ = SecretName::new(&s);
        let _ = Label::parse(&s);
    }

    /// Every single-character change to a stored record either fails to parse (typed error) or
    /// parses to a record that still serialises (no panic, no half-state).
    #[test]
    fn mutated_records_fail_cleanly(pos in 0usize..2000, c in "[\\x20-\\x7e]", seg in "[a-z]{1,8}") {
        let r = issued_record(&format!("p-{seg}"), &format!("svc:{seg}/*:read"));
        let json = serde_json::to_string(&r).unwrap();
        let back: TokenRecord = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back.id, r.id);
        prop_assert_eq!(&back.scopes, &r.scopes);
        prop_assert_eq!(back.expires_at, r.expires_at);
        prop_assert!(bool::from(back.digest.ct_eq(&r.digest)));
        let mut bytes = json.into_bytes();
        let pos = pos % bytes.len();
        bytes[pos] = c.as_bytes()[0];
        if let Ok(text) = String::from_utf8(bytes)
            && let Ok(parsed) = serde_json::from_str::<TokenRecord>(&text)
        {
            prop_assert!(serde_json::to_string(&parsed).is_ok());
        }
    }
}

#[test]
fn malformed_fields_are_refused() {
    let r = issued_record("p", "svc:a/*:read");
    let v = serde_json::to_value(&r).unwrap();
    for (field, bad) in [
        ("id", serde_json::json!("not-an-id")),
        ("scopes", serde_json::json!(["svc:a/../b:read"])),
        ("principal", serde_json::json!("bad principal!")),
        ("expires_at", serde_json::json!("yesterday")),
    ] {
        let mut w = v.clone();
        w[field] = bad;
        assert!(serde_json::from_value::<TokenRecord>(w).is_err(), "{field}");
    }
    assert!(SecretName::new("").is_err());
    assert!(SecretName::new("a b").is_err());
    assert!(Label::parse("currentish").is_err());
}
