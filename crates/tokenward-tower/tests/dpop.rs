//! DPoP-bound tokens through the layer (RFC 9449 §7): a token bound to a key is accepted only as
//! `Authorization: DPoP <token>` with a fresh proof by that key for this method and URI; as a
//! bearer token, with another key's proof, a replayed, stale, mis-addressed or token-less proof,
//! it is `401` with a `WWW-Authenticate: DPoP` error; bearer tokens keep working; a layer without
//! DPoP refuses bound tokens too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;

use http::{Method, Request, Response, StatusCode};
use tokenward::audit::{AuditQuery, FileLog, LogStorage};
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::{Grant, IssueRequest, Policy, Principal, Role, Thumbprint};
use tokenward::oidc::DpopVerifier;
use tokenward::secrecy::SecretString;
use tokenward::{FailureMode, Tokenward};
use tokenward_test_support::dpop::DpopKey;
use tokenward_tower::{RouteTable, TokenAuthLayer};
use tower::{ServiceBuilder, ServiceExt};

const ORIGIN: &str = "https://api.example.com";

/// What a refused request is: a name, its headers, the challenge it must get.
type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);

type Svc = tower::util::BoxCloneService<Request<String>, Response<String>, Infallible>;

fn service(tw: &Tokenward, dpop: bool) -> Svc {
    let routes = RouteTable::new()
        .route(Some(Method::GET), "/logs/{*path}", "s3:bucket/prod-logs/{path}:read")
        .unwrap();
    let mut layer = TokenAuthLayer::new(tw.verifier(), routes);
    if dpop {
        layer = layer.dpop(DpopVerifier::builder().build().unwrap(), ORIGIN);
    }
    tower::util::BoxCloneService::new(ServiceBuilder::new().layer(layer).service_fn(
        |req: Request<String>| async move {
            let g = req.extensions().get::<Grant>().expect("a grant");
            Ok::<_, Infallible>(Response::new(format!(
                "{} {:?}",
                g.principal(),
                g.bound_to().map(ToString::to_string)
            )))
        },
    ))
}

async fn call(svc: &Svc, path: &str, headers: &[(&str, &str)]) -> Response<String> {
    let mut b = Request::builder().method(Method::GET).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    svc.clone().oneshot(b.body(String::new()).unwrap()).await.unwrap()
}

fn challenge(r: &Response<String>) -> String {
    r.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_is_useless_without_its_key_and_every_rfc_9449_failure_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy::builder()
        .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1)).unwrap())
        .build()
        .unwrap();
    let tw = Tokenward::embedded(dir.path().join("tw.db"))
        .passphrase(SecretString::from("correct horse battery staple"))
        .policy(policy)
        .audit_file(dir.path().join("audit.jsonl"), FailureMode::FailClosed)
        .open()
        .await
        .unwrap();
    let who = Principal::parse("billing-api", ["reader"]).unwrap();
    let key = DpopKey::from_seed([0x11; 32]);
    let other = DpopKey::from_seed([0x22; 32]);
    let jkt = Thumbprint::parse(&key.thumbprint()).unwrap();
    let read = IssueRequest::parse("bound", "s3:bucket/prod-logs/**:read", TimeDelta::minutes(10)).unwrap();
    let bound = tw.issue(&who, &read.clone().bound_to(jkt)).await.unwrap();
    let bound = bound.expose_secret().to_owned();
    let plain = tw
        .issue(
            &who,
            &IssueRequest::parse("plain", "s3:bucket/prod-logs/**:read", TimeDelta::minutes(10)).unwrap(),
        )
        .await
        .unwrap();
    let plain = plain.expose_secret().to_owned();
    let svc = service(&tw, true);
    let uri = format!("{ORIGIN}/logs/app.log");
    let now = Utc::now().timestamp();
    let dpop_auth = format!("DPoP {bound}");

    // The holder of the key: allowed, and the grant names the key.
    let proof = key.proof("GET", &uri, Some(&bound), now, "jti-1");
    let r = call(&svc, "/logs/app.log", &[("authorization", &dpop_auth), ("dpop", &proof)]).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", challenge(&r));
    assert!(r.body().contains(&key.thumbprint()), "{}", r.body());

    // Every way a copy of the token without the key, or a bad proof, is refused.
    let bearer = format!("Bearer {bound}");
    let cases: Vec<Case<'_>> = vec![
        ("as a bearer token", vec![("authorization", bearer.clone())], "DPoP error=\"invalid_token\""),
        (
            "as a bearer token with a proof",
            vec![
                ("authorization", bearer.clone()),
                ("dpop", key.proof("GET", &uri, Some(&bound), now, "jti-2")),
            ],
            "DPoP error=\"invalid_token\"",
        ),
        ("no proof", vec![("authorization", dpop_auth.clone())], "invalid_dpop_proof"),
        (
            "the replayed proof",
            vec![("authorization", dpop_auth.clone()), ("dpop", proof.clone())],
            "invalid_dpop_proof",
        ),
        (
            "another key's proof",
            vec![
                ("authorization", dpop_auth.clone()),
                ("dpop", other.proof("GET", &uri, Some(&bound), now, "jti-3")),
            ],
            "DPoP error=\"invalid_token\"",
        ),
        (
            "wrong method",
            vec![
                ("authorization", dpop_auth.clone()),
                ("dpop", key.proof("POST", &uri, Some(&bound), now, "jti-4")),
            ],
            "invalid_dpop_proof",
        ),
        (
            "wrong URI",
            vec![
                ("authorization", dpop_auth.clone()),
                ("dpop", key.proof("GET", &format!("{ORIGIN}/logs/other.log"), Some(&bound), now, "jti-5")),
            ],
            "invalid_dpop_proof",
        ),
        (
            "another origin",
            vec![
                ("authorization", dpop_auth.clone()),
                ("dpop", key.proof("GET", "https://evil.example/logs/app.log", Some(&bound), now, "jti-6")),
            ],
            "invalid_dpop_proof",
        ),
        (
            "no ath",
            vec![("authorization", dpop_auth.clone()), ("dpop", key.proof("GET", &uri, None, now, "jti-7"))],
            "invalid_dpop_proof",
        ),
        (
            "another token's ath",
            vec![
                ("authorization", dpop_auth.clone()),
                ("dpop", key.proof("GET", &uri, Some(&plain), now, "jti-8")),
            ],
            "invalid_dpop_proof",
        ),
        (
            "a stale proof",
            vec![
                ("authorization", dpop_auth.clone()),
                ("dpop", key.proof("GET", &uri, Some(&bound), now - 3600, "jti-9")),
            ],
            "invalid_dpop_proof",
        ),
        (
            "a proof from the future",
            vec![
                ("authorization", dpop_auth.clone()),
                ("dpop", key.proof("GET", &uri, Some(&bound), now + 3600, "jti-10")),
            ],
            "invalid_dpop_proof",
        ),
        (
            "two proofs",
            vec![
                ("authorization", dpop_auth.clone()),
                ("dpop", key.proof("GET", &uri, Some(&bound), now, "jti-11")),
                ("dpop", key.proof("GET", &uri, Some(&bound), now, "jti-12")),
            ],
            "invalid_dpop_proof",
        ),
        (
            "garbage",
            vec![("authorization", dpop_auth.clone()), ("dpop", "eyJ.x.y".into())],
            "invalid_dpop_proof",
        ),
        (
            "an unbound token as DPoP",
            vec![
                ("authorization", format!("DPoP {plain}")),
                ("dpop", key.proof("GET", &uri, Some(&plain), now, "jti-13")),
            ],
            "DPoP error=\"invalid_token\"",
        ),
    ];
    for (what, headers, expect) in &cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = call(&svc, "/logs/app.log", &h).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert!(challenge(&r).contains(expect), "{what}: {}", challenge(&r));
        assert!(r.body().is_empty(), "{what}");
    }

    // A bearer token is still a bearer token.
    let r = call(&svc, "/logs/app.log", &[("authorization", &format!("Bearer {plain}"))]).await;
    assert_eq!(r.status(), StatusCode::OK);
    // A layer without DPoP: the bound token is refused whatever comes with it.
    let no_dpop = service(&tw, false);
    let r = call(&no_dpop, "/logs/app.log", &[("authorization", &bearer)]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = call(
        &no_dpop,
        "/logs/app.log",
        &[("authorization", &dpop_auth), ("dpop", &key.proof("GET", &uri, Some(&bound), now, "jti-14"))],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&r), "Bearer", "an unknown scheme is no token");
    tw.shutdown().await.unwrap();
    drop(tw);

    // Audited: the bound token's refusals name why; no token or proof in the log.
    let log = FileLog::open(dir.path().join("audit.jsonl")).unwrap();
    let denied = log.query(&AuditQuery::new().action("verify_denied")).await.unwrap();
    let reasons: Vec<&str> = denied.iter().filter_map(|e| e.event.action.detail()).collect();
    assert!(reasons.contains(&"proof_required"), "{reasons:?}");
    assert!(reasons.contains(&"wrong_proof_key"), "{reasons:?}");
    assert!(reasons.contains(&"invalid_dpop_proof"), "{reasons:?}");
    let raw = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(
        !raw.contains(&bound) && !raw.contains(&plain) && !raw.contains(&proof),
        "no token or proof in the log"
    );
}

/// Proofs that come with tokens the layer refuses take no place in the replay cache: a flood of
/// self-signed proofs for made-up tokens cannot fill it and lock out the real holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_for_refused_tokens_cannot_fill_the_replay_cache() {
    use std::sync::Arc;
    use tokenward::oidc::ReplayCache;
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy::builder()
        .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1)).unwrap())
        .build()
        .unwrap();
    let tw = Tokenward::embedded(dir.path().join("tw.db"))
        .passphrase(SecretString::from("correct horse battery staple"))
        .policy(policy)
        .open()
        .await
        .unwrap();
    let who = Principal::parse("billing-api", ["reader"]).unwrap();
    let key = DpopKey::from_seed([0x33; 32]);
    let jkt = Thumbprint::parse(&key.thumbprint()).unwrap();
    let read = IssueRequest::parse("bound", "s3:bucket/prod-logs/**:read", TimeDelta::minutes(10)).unwrap();
    let bound = tw.issue(&who, &read.bound_to(jkt)).await.unwrap().expose_secret().to_owned();
    let routes = RouteTable::new()
        .route(Some(Method::GET), "/logs/{*path}", "s3:bucket/prod-logs/{path}:read")
        .unwrap();
    // A cache of two entries.
    let verifier = DpopVerifier::builder().replay_cache(Arc::new(ReplayCache::new(2))).build().unwrap();
    let layer = TokenAuthLayer::new(tw.verifier(), routes).dpop(verifier, ORIGIN);
    let svc: Svc = tower::util::BoxCloneService::new(ServiceBuilder::new().layer(layer).service_fn(
        |_req: Request<String>| async move { Ok::<_, Infallible>(Response::new(String::new())) },
    ));
    let uri = format!("{ORIGIN}/logs/app.log");
    let now = Utc::now().timestamp();
    let attacker = DpopKey::from_seed([0x44; 32]);
    for i in 0..10 {
        let fake = format!("acme_made_up_{i}");
        let proof = attacker.proof("GET", &uri, Some(&fake), now, &format!("flood-{i}"));
        let r = call(&svc, "/logs/app.log", &[("authorization", &format!("DPoP {fake}")), ("dpop", &proof)])
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The holder still gets in, and its proof is spent: the same proof again is refused.
    let proof = key.proof("GET", &uri, Some(&bound), now, "holder-1");
    let auth = format!("DPoP {bound}");
    let r = call(&svc, "/logs/app.log", &[("authorization", &auth), ("dpop", &proof)]).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", challenge(&r));
    let r = call(&svc, "/logs/app.log", &[("authorization", &auth), ("dpop", &proof)]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&r).contains("invalid_dpop_proof"), "{}", challenge(&r));
    tw.shutdown().await.unwrap();
}
