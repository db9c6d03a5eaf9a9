//! GitHub partner-alert deliveries: arbitrary bodies, key ids and signatures never panic and are
//! never accepted without a valid signature; the alert-list parser never panics on bodies that
//! are signed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use token_scan::alerts::AlertVerifier;

const PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEbuuasKDwrcIQI37nzgGt3ZAWIzwc
aL6zrzJ2MHFqZvRhAlqQPZqyJDyEhfQ55mezXYjLMVPsbY+ySyKUr0P+vA==
-----END PUBLIC KEY-----";

fn verifier() -> &'static AlertVerifier {
    static V: OnceLock<AlertVerifier> = OnceLock::new();
    V.get_or_init(|| AlertVerifier::new().with_key("k", PEM).expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|c| *c == 0).unwrap_or(data.len());
    let (sig, body) = data.split_at(split);
    let sig = String::from_utf8_lossy(sig);
    assert!(verifier().verify(body, Some("k"), Some(&sig)).is_err(), "nothing verifies without the private key");
    let _ = token_scan::fuzzing::parse_alerts(body);
});
