//! DPoP proofs and the URIs they name: the verifier never panics; a JWK that reads has a stable
//! thumbprint; `htu` normalisation is idempotent and keeps an absolute http(s) URI one; claim
//! globs never panic and a pattern with no `*` matches only itself. Input: the first line is a
//! URI (and a glob pattern), the rest a proof (and the glob's text).
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_oidc::fuzzing::{glob_match, normalise_uri, parse_jwk, verify_dpop};

fuzz_target!(|data: &[u8]| {
    if let Some(t) = parse_jwk(data) {
        assert_eq!(parse_jwk(data), Some(t));
    }
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (first, rest) = s.split_once('\n').unwrap_or((s, ""));
    if let Some(n) = normalise_uri(first) {
        assert_eq!(normalise_uri(&n).as_deref(), Some(n.as_str()), "normalisation is idempotent");
    }
    // RFC 9449's example proof key is the only one whose proofs a fuzzer could replay; any
    // accepted proof must at least name a URI that normalises.
    if verify_dpop(rest, first).is_some() {
        assert!(normalise_uri(first).is_some());
    }
    if !first.contains('*') {
        assert_eq!(glob_match(first, rest), first == rest);
    }
});
