//! The RFC 8693 token endpoint (feature `exchange`): a DPoP proof sent with an exchange is spent
//! only when the exchange is granted — a flood of refused exchanges, each with a fresh valid
//! proof, takes no room in the proof replay cache, and a granted one still cannot be replayed —
//! and any request body whatever is answered with a typed RFC 6749 refusal, never a panic.

#![cfg(feature = "exchange")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Router;
use http::{Request, StatusCode};
use proptest::prelude::*;
use tokenward::oidc::{DpopVerifier, ReplayCache};
use tokenward::policy::PolicyFile;
use tokenward::secrecy::SecretString;
use tokenward::{FailureMode, Tokenward};
use tokenward_test_support::dpop::{DpopKey, TestIssuer};
use tokenward_tower::TokenEndpoint;
use tower::ServiceExt as _;

use tokenward_test_support::dpop::{CI_ISSUER as ISSUER, ci_federation_policy as policy};
const URL: &str = "https://auth.example.test/token";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// A deployment trusting the test issuer, and its token endpoint whose DPoP proofs share `replay`.
async fn endpoint(
    dir: &std::path::Path,
    issuer: &TestIssuer,
    replay: Arc<ReplayCache>,
) -> (Tokenward, Router) {
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    let file = PolicyFile::parse(&policy(&jwks)).unwrap();
    let tw = Tokenward::embedded(dir.join("tw.db"))
        .passphrase(SecretString::from("correct horse battery staple"))
        .policy(file.to_policy().unwrap())
        .audit_file(dir.join("audit.jsonl"), FailureMode::FailClosed)
        .open()
        .await
        .unwrap();
    tw.federate(&file).unwrap();
    let verifier = DpopVerifier::builder().replay_cache(replay).build().unwrap();
    let router = TokenEndpoint::new(tw.clone()).dpop(verifier, URL).into_router("/token");
    (tw, router)
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}

async fn post(router: &Router, body: String, proof: Option<&str>) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post("/token").header("content-type", "application/x-www-form-urlencoded");
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    let r = router.clone().oneshot(req.body(axum::body::Body::from(body)).unwrap()).await.unwrap();
    let status = r.status();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_proof_is_spent_only_when_the_exchange_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = TestIssuer::new(ISSUER, "ci-key-1", [0x31; 32]);
    let replay = Arc::new(ReplayCache::new(1));
    let (tw, router) = endpoint(dir.path(), &issuer, Arc::clone(&replay)).await;
    let key = DpopKey::from_seed([0x41; 32]);
    let main = serde_json::json!({"sub": "repo:acme/api:ref:refs/heads/main", "repository": "acme/api", "ref": "refs/heads/main"});
    let other = serde_json::json!({"sub": "repo:acme/api:ref:refs/heads/dev", "repository": "acme/api", "ref": "refs/heads/dev"});
    let ask = |subject: &str, scope: &str| {
        form(&[
            ("grant_type", GRANT),
            ("subject_token", subject),
            ("subject_token_type", JWT),
            ("scope", scope),
        ])
    };
    let scope = "deploy:service/api/web:release";

    // Refused for every other reason — another branch's identity, a scope not granted, an
    // invalid subject token — each with a fresh, valid proof: none takes the cache's one place.
    let refused = [
        ask(&issuer.mint("tokenward", 300, &other), scope),
        ask(&issuer.mint("tokenward", 300, &main), "admin:everything/x:write"),
        ask("eyJhbGciOiJFUzI1NiJ9.e30.c2ln", scope),
    ];
    for _ in 0..5 {
        for body in &refused {
            let (status, answer) = post(&router, body.clone(), Some(&key.proof_now("POST", URL, None))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert_ne!(answer["error"], "invalid_dpop_proof", "{answer}");
        }
    }
    assert_eq!(replay.len(), 0, "refused exchanges spent no proof");

    // Granted: bound to the key, and its proof spent (the one place taken).
    let proof = key.proof_now("POST", URL, None);
    let (status, answer) =
        post(&router, ask(&issuer.mint("tokenward", 300, &main), scope), Some(&proof)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["token_type"], "DPoP");
    assert_eq!(replay.len(), 1);

    // The same proof again, with a fresh subject token: a replay, refused; the subject token is
    // left unspent, so a fresh proof still exchanges it (once: the cache is full, which refuses
    // rather than forgets).
    let subject = issuer.mint("tokenward", 300, &main);
    let (status, answer) = post(&router, ask(&subject, scope), Some(&proof)).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")));
    let (status, answer) = post(&router, ask(&subject, scope), Some(&key.proof_now("POST", URL, None))).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")));
    assert_eq!(replay.len(), 1);
    tw.shutdown().await.unwrap();
}

/// The errors RFC 6749 §5.2 (and RFC 9449) let the endpoint answer a bad request with.
const REFUSALS: [&str; 4] =
    ["invalid_request", "invalid_scope", "unsupported_grant_type", "invalid_dpop_proof"];

/// A form body: some of the parameters the endpoint reads (or others), any values, repeated or
/// not, percent-encoded or raw.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("grant_type".to_owned()),
        Just("subject_token".to_owned()),
        Just("subject_token_type".to_owned()),
        Just("scope".to_owned()),
        Just("expires_in".to_owned()),
        Just("requested_token_type".to_owned()),
        Just("actor_token".to_owned()),
        ".{0,12}",
    ];
    let value = prop_oneof![
        Just(GRANT.to_owned()),
        Just(JWT.to_owned()),
        Just("deploy:service/api/web:release".to_owned()),
        Just("eyJhbGciOiJFUzI1NiJ9.e30.c2ln".to_owned()),
        "-?[0-9]{0,22}",
        ".{0,40}",
    ];
    let form = prop::collection::vec((name, value), 0..24).prop_map(|pairs| {
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes()
    });
    prop_oneof![form, prop::collection::vec(any::<u8>(), 0..512)]
}

#[test]
fn any_body_gets_a_typed_refusal_and_never_a_panic() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let issuer = TestIssuer::new(ISSUER, "ci-key-1", [0x31; 32]);
    let (tw, router) = rt.block_on(endpoint(dir.path(), &issuer, Arc::new(ReplayCache::new(16))));
    proptest!(ProptestConfig::with_cases(512), |(body in body(), form in any::<bool>())| {
        let content_type = if form { "application/x-www-form-urlencoded" } else { "text/plain" };
        let req = Request::post("/token")
            .header("content-type", content_type)
            .body(axum::body::Body::from(body))
            .unwrap();
        let r = rt.block_on(router.clone().oneshot(req)).unwrap();
        // No valid subject token is ever made here: every answer is a refusal of a known kind.
        prop_assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let bytes = rt.block_on(axum::body::to_bytes(r.into_body(), 1 << 20)).unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let error = answer["error"].as_str().unwrap_or_default().to_owned();
        prop_assert!(REFUSALS.contains(&error.as_str()), "{}", answer);
    });
    rt.block_on(tw.shutdown()).unwrap();
}
