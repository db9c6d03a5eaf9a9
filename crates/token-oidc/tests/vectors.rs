//! The vectors under `tests/vectors/`, made by an independent implementation (jwcrypto, by
//! `gen_vectors.py`): subject tokens with GitHub's and Kubernetes' claim sets and every failure
//! case, DPoP proofs and theirs, and the RFC 7638 and RFC 9449 examples from the RFC text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::Value;
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_oidc::{
    ClaimError, ClaimRules, DpopError, DpopErrorCode, DpopRequest, DpopVerifier, IssuerKeys, Jwks, JwtError,
    JwtValidator, Preset, ReplayCache, Thumbprint,
};

fn vectors(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn at(v: &Value) -> DateTime<Utc> {
    DateTime::from_timestamp(v.as_i64().unwrap(), 0).unwrap()
}

fn jwt_name(e: &JwtError) -> &'static str {
    match e {
        JwtError::TooLarge { .. } => "TooLarge",
        JwtError::Malformed(_) => "Malformed",
        JwtError::AlgNone => "AlgNone",
        JwtError::Hmac { .. } => "Hmac",
        JwtError::AlgorithmNotAllowed { .. } => "AlgorithmNotAllowed",
        JwtError::CriticalHeader => "CriticalHeader",
        JwtError::WrongType { .. } => "WrongType",
        JwtError::WrongIssuer { .. } => "WrongIssuer",
        JwtError::UnknownKey { .. } => "UnknownKey",
        JwtError::KeyAlgorithmMismatch { .. } => "KeyAlgorithmMismatch",
        JwtError::KeysUnavailable(_) => "KeysUnavailable",
        JwtError::BadSignature => "BadSignature",
        JwtError::MissingClaim(_) => "MissingClaim",
        JwtError::BadClaim(_) => "BadClaim",
        JwtError::WrongAudience { .. } => "WrongAudience",
        JwtError::Expired { .. } => "Expired",
        JwtError::NotYetValid { .. } => "NotYetValid",
        JwtError::IssuedInFuture { .. } => "IssuedInFuture",
        JwtError::LifetimeTooLong { .. } => "LifetimeTooLong",
        JwtError::Replayed => "Replayed",
        JwtError::ReplayCacheFull => "ReplayCacheFull",
        _ => "other",
    }
}

fn dpop_name(e: &DpopError) -> &'static str {
    match e {
        DpopError::TooLarge { .. } => "TooLarge",
        DpopError::Malformed(_) => "Malformed",
        DpopError::AlgNone => "AlgNone",
        DpopError::Hmac { .. } => "Hmac",
        DpopError::AlgorithmNotAllowed { .. } => "AlgorithmNotAllowed",
        DpopError::CriticalHeader => "CriticalHeader",
        DpopError::WrongType { .. } => "WrongType",
        DpopError::MissingKey => "MissingKey",
        DpopError::PrivateKey => "PrivateKey",
        DpopError::BadKey(_) => "BadKey",
        DpopError::BadSignature => "BadSignature",
        DpopError::MissingClaim(_) => "MissingClaim",
        DpopError::BadClaim(_) => "BadClaim",
        DpopError::WrongMethod { .. } => "WrongMethod",
        DpopError::WrongUri { .. } => "WrongUri",
        DpopError::Stale { .. } => "Stale",
        DpopError::FromFuture { .. } => "FromFuture",
        DpopError::Replayed => "Replayed",
        DpopError::ReplayCacheFull => "ReplayCacheFull",
        DpopError::MissingAth => "MissingAth",
        DpopError::WrongAth => "WrongAth",
        DpopError::NonceRequired => "NonceRequired",
        DpopError::WrongNonce => "WrongNonce",
        DpopError::WrongKey => "WrongKey",
        _ => "other",
    }
}

fn pinned() -> IssuerKeys {
    let doc = std::fs::read(format!("{}/tests/vectors/jwks.json", env!("CARGO_MANIFEST_DIR"))).unwrap();
    IssuerKeys::pinned(Jwks::parse(&doc).unwrap())
}

fn validator(case: &Value, keys: IssuerKeys) -> JwtValidator {
    let mut b =
        JwtValidator::builder(case["issuer"].as_str().unwrap(), case["audience"].as_str().unwrap(), keys);
    if let Some(secs) = case["max_lifetime"].as_i64() {
        b = b.max_lifetime(TimeDelta::seconds(secs));
    }
    b.build().unwrap()
}

#[tokio::test]
async fn subject_tokens_from_jwcrypto_are_accepted_or_refused_as_labelled() {
    let v = vectors("jwt.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 25);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let token = case["token"].as_str().unwrap();
        let now = at(&case["now"]);
        let expect = case["expect"].as_str().unwrap();
        let validator = validator(case, pinned());
        let first = validator.validate_at(token, now).await;
        let result = if case["replay"].as_bool().unwrap() {
            assert!(first.is_ok(), "{name}: the first use is accepted: {first:?}");
            validator.validate_at(token, now + TimeDelta::seconds(1)).await
        } else {
            first
        };
        match (expect, result) {
            ("ok", Ok(t)) => {
                assert_eq!(t.subject(), case["subject"].as_str().unwrap(), "{name}");
                assert_eq!(t.issuer(), case["issuer"].as_str().unwrap(), "{name}");
                assert!(t.audience().iter().any(|a| a == "tokenward"), "{name}");
                assert!(t.expires_at() > now - TimeDelta::seconds(60), "{name}");
                assert!(t.jwt_id().is_some(), "{name}");
            }
            ("ok", Err(e)) => panic!("{name}: refused: {e}"),
            (want, Ok(_)) => panic!("{name}: accepted, but {want} was expected"),
            (want, Err(e)) => {
                assert_eq!(jwt_name(&e), want, "{name}: {e}");
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains(token), "{name}: an error never holds the token");
                assert!(
                    !shown.contains(token.split('.').nth(2).unwrap_or("-")) || token.ends_with('.'),
                    "{name}"
                );
            }
        }
    }
}

#[tokio::test]
async fn claim_rules_match_githubs_and_kubernetes_claim_sets() {
    let v = vectors("jwt.json");
    let case = |n: &str| v["cases"].as_array().unwrap().iter().find(|c| c["name"] == n).unwrap().clone();
    let gh = case("github_rs256");
    let token =
        validator(&gh, pinned()).validate_at(gh["token"].as_str().unwrap(), at(&gh["now"])).await.unwrap();
    let rules = ClaimRules::new(Preset::GitHubActions)
        .require("repository", "octo-org/octo-repo")
        .unwrap()
        .require("environment", "prod")
        .unwrap()
        .require_glob("ref", "refs/heads/*")
        .unwrap()
        .require_glob("job_workflow_ref", "octo-org/octo-automation/*@refs/heads/main")
        .unwrap();
    let matched = rules.check(&token).unwrap();
    assert_eq!(matched[0], ("repository".to_owned(), "octo-org/octo-repo".to_owned()));
    assert_eq!(matched.len(), 4);
    let other_repo = ClaimRules::new(Preset::GitHubActions).require("repository", "octo-org/other").unwrap();
    assert!(matches!(other_repo.check(&token), Err(ClaimError::Mismatch { .. })));
    let release_only =
        ClaimRules::new(Preset::GitHubActions).require_glob("ref", "refs/heads/release-*").unwrap();
    assert!(matches!(release_only.check(&token), Err(ClaimError::Mismatch { .. })));
    let absent = ClaimRules::new(Preset::GitHubActions).require("enterprise", "acme").unwrap();
    assert_eq!(absent.check(&token), Err(ClaimError::Missing("enterprise".into())));

    let k8s = case("kubernetes_rs256_aud_array");
    let token =
        validator(&k8s, pinned()).validate_at(k8s["token"].as_str().unwrap(), at(&k8s["now"])).await.unwrap();
    let rules = ClaimRules::new(Preset::Kubernetes)
        .require("/kubernetes.io/namespace", "ci")
        .unwrap()
        .require("/kubernetes.io/serviceaccount/name", "deployer")
        .unwrap()
        .require("sub", "system:serviceaccount:ci:deployer")
        .unwrap();
    assert_eq!(rules.check(&token).unwrap().len(), 3);
    let wrong_ns = ClaimRules::new(Preset::Kubernetes).require("/kubernetes.io/namespace", "prod").unwrap();
    assert!(matches!(wrong_ns.check(&token), Err(ClaimError::Mismatch { .. })));

    let generic = case("generic_es256");
    let token = validator(&generic, pinned())
        .validate_at(generic["token"].as_str().unwrap(), at(&generic["now"]))
        .await
        .unwrap();
    let numbers = ClaimRules::new(Preset::Generic)
        .require("build", "1234")
        .unwrap()
        .require("team", "payments")
        .unwrap();
    assert_eq!(numbers.check(&token).unwrap().len(), 2, "a number matches its JSON text");
}

#[tokio::test]
async fn a_shared_replay_cache_refuses_across_validators_and_a_full_one_refuses() {
    let v = vectors("jwt.json");
    let gh = v["cases"].as_array().unwrap().iter().find(|c| c["name"] == "github_rs256").unwrap().clone();
    let token = gh["token"].as_str().unwrap();
    let now = at(&gh["now"]);
    let cache = Arc::new(ReplayCache::new(1));
    let build = || {
        JwtValidator::builder(gh["issuer"].as_str().unwrap(), "tokenward", pinned())
            .replay_cache(Arc::clone(&cache))
            .build()
            .unwrap()
    };
    assert!(build().validate_at(token, now).await.is_ok());
    assert!(matches!(build().validate_at(token, now).await, Err(JwtError::Replayed)));
    let other =
        v["cases"].as_array().unwrap().iter().find(|c| c["name"] == "expired_within_skew").unwrap().clone();
    assert!(matches!(
        build().validate_at(other["token"].as_str().unwrap(), now).await,
        Err(JwtError::ReplayCacheFull)
    ));
}

#[test]
fn dpop_proofs_from_jwcrypto_are_accepted_or_refused_as_labelled() {
    let v = vectors("dpop.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let proof = case["proof"].as_str().unwrap();
        let now = at(&case["now"]);
        let expect = case["expect"].as_str().unwrap();
        let verifier = DpopVerifier::builder().build().unwrap();
        let bound = case["bound_to"].as_str().map(|t| Thumbprint::parse(t).unwrap());
        let mut request = DpopRequest::new(case["method"].as_str().unwrap(), case["uri"].as_str().unwrap());
        if let Some(t) = case["access_token"].as_str() {
            request = request.access_token(t);
        }
        if let Some(n) = case["nonce"].as_str() {
            request = request.nonce(n);
        }
        if let Some(b) = &bound {
            request = request.bound_to(b);
        }
        let first = verifier.verify_at(proof, &request, now);
        let result = if case["replay"].as_bool().unwrap_or(false) {
            assert!(first.is_ok(), "{name}: the first use is accepted: {first:?}");
            verifier.verify_at(proof, &request, now + TimeDelta::seconds(1))
        } else {
            first
        };
        match (expect, result) {
            ("ok", Ok(p)) => {
                assert_eq!(p.thumbprint().to_string(), case["thumbprint"].as_str().unwrap(), "{name}")
            }
            ("ok", Err(e)) => panic!("{name}: refused: {e}"),
            (want, Ok(_)) => panic!("{name}: accepted, but {want} was expected"),
            (want, Err(e)) => {
                assert_eq!(dpop_name(&e), want, "{name}: {e}");
                let code = match want {
                    "NonceRequired" | "WrongNonce" => DpopErrorCode::UseDpopNonce,
                    "WrongKey" => DpopErrorCode::InvalidToken,
                    _ => DpopErrorCode::InvalidDpopProof,
                };
                assert_eq!(e.code(), code, "{name}");
                assert!(!format!("{e} {e:?}").contains(proof), "{name}");
            }
        }
    }
}

#[test]
fn the_rfc_examples_verify() {
    let v = vectors("rfc.json");
    let r7638 = &v["rfc7638"];
    let jwks = Jwks::parse(format!(r#"{{"keys":[{}]}}"#, r7638["jwk"]).as_bytes()).unwrap();
    assert_eq!(jwks.keys()[0].thumbprint().to_string(), r7638["thumbprint"].as_str().unwrap());

    let r = &v["rfc9449"];
    assert_eq!(
        token_oidc::access_token_hash(r["access_token"].as_str().unwrap()),
        r["ath"].as_str().unwrap()
    );
    let jkt = Thumbprint::parse(r["jkt"].as_str().unwrap()).unwrap();
    for p in r["proofs"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let verifier = DpopVerifier::builder().build().unwrap();
        let mut request =
            DpopRequest::new(p["method"].as_str().unwrap(), p["uri"].as_str().unwrap()).bound_to(&jkt);
        if let Some(t) = p["access_token"].as_str() {
            request = request.access_token(t);
        }
        let proof =
            verifier.verify_at(p["proof"].as_str().unwrap(), &request, at(&p["now"])).unwrap_or_else(|e| {
                panic!("{name}: {e}");
            });
        assert_eq!(proof.thumbprint(), jkt, "{name}");
        // A minute and more later, the same proof is stale; a different URI is refused.
        let late = at(&p["now"]) + TimeDelta::seconds(120);
        assert!(matches!(
            verifier.verify_at(p["proof"].as_str().unwrap(), &request, late),
            Err(DpopError::Stale { .. })
        ));
    }
    // The resource proof presented without its token's hash check passes, with another token fails.
    let res = &r["proofs"][2];
    let verifier = DpopVerifier::builder().build().unwrap();
    let request = DpopRequest::new("GET", res["uri"].as_str().unwrap()).access_token("another-token");
    assert!(matches!(
        verifier.verify_at(res["proof"].as_str().unwrap(), &request, at(&res["now"])),
        Err(DpopError::WrongAth)
    ));
}
