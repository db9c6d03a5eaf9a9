//! The layer as a service author meets it: over a real deployment with an audit log, every
//! answer RFC 6750 asks for, the grant in the extensions, the source in the audit entry, nothing
//! of the deny detail or the token in any response, and a broken fail-closed log answered 503.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use tokenward::audit::testing::Breakable;
use tokenward::audit::{AuditQuery, FileLog, LogStorage, MemoryLog};
use tokenward::core::chrono::TimeDelta;
use tokenward::core::{Grant, IssueRequest, Policy, Principal, Role};
use tokenward::secrecy::SecretString;
use tokenward::{FailureMode, Tokenward, TokenwardBuilder};
use tokenward_tower::{RouteTable, TokenAuthLayer};
use tower::{ServiceBuilder, ServiceExt};

fn builder(dir: &std::path::Path) -> TokenwardBuilder {
    let policy = Policy::builder()
        .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1)).unwrap())
        .build()
        .unwrap();
    Tokenward::embedded(dir.join("tw.db"))
        .passphrase(SecretString::from("correct horse battery staple"))
        .policy(policy)
}

fn routes() -> RouteTable {
    RouteTable::new()
        .route(Some(Method::GET), "/logs/{*path}", "s3:bucket/prod-logs/{path}:read")
        .unwrap()
        .route(Some(Method::PUT), "/logs/{*path}", "s3:bucket/prod-logs/{path}:write")
        .unwrap()
}

type Svc = tower::util::BoxCloneService<Request<String>, Response<String>, Infallible>;

fn service(tw: &Tokenward) -> Svc {
    let layer = TokenAuthLayer::new(tw.verifier(), routes())
        .source(|_, headers| headers.get("x-test-peer").and_then(|v| v.to_str().ok()).map(str::to_owned));
    tower::util::BoxCloneService::new(ServiceBuilder::new().layer(layer).service_fn(
        |req: Request<String>| async move {
            let g =
                req.extensions().get::<Grant>().expect("a grant for every request that reaches the service");
            let scopes = g.scopes().to_string();
            Ok::<_, Infallible>(Response::new(format!("{} {} {scopes}", g.principal(), g.id())))
        },
    ))
}

async fn call(svc: &Svc, method: Method, path: &str, auth: &[&str]) -> Response<String> {
    let mut b = Request::builder().method(method).uri(path).header("x-test-peer", "10.9.8.7");
    for a in auth {
        b = b.header("authorization", *a);
    }
    svc.clone().oneshot(b.body(String::new()).unwrap()).await.unwrap()
}

fn challenge(r: &Response<String>) -> &str {
    r.headers().get("www-authenticate").map_or("", |v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_rfc_6750_and_the_audit_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let tw = builder(dir.path()).audit_file(&audit, FailureMode::FailClosed).open().await.unwrap();
    let who = Principal::parse("billing-api", ["reader"]).unwrap();
    let token = tw
        .issue(
            &who,
            &IssueRequest::parse("logs", "s3:bucket/prod-logs/**:read", TimeDelta::minutes(10)).unwrap(),
        )
        .await
        .unwrap();
    let revoked = tw
        .issue(
            &who,
            &IssueRequest::parse("old", "s3:bucket/prod-logs/**:read", TimeDelta::minutes(10)).unwrap(),
        )
        .await
        .unwrap();
    tw.revoke(revoked.id()).await.unwrap();
    let svc = service(&tw);
    let bearer = format!("Bearer {}", token.expose_secret());
    let mut answers = Vec::new();

    let ok = call(&svc, Method::GET, "/logs/2026/app.log", &[&bearer]).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.body(), &format!("billing-api {} s3:bucket/prod-logs/**:read", token.id()));
    // Case-insensitive scheme, several spaces.
    let lower = format!("bearer   {}", token.expose_secret());
    assert_eq!(call(&svc, Method::GET, "/logs/a", &[&lower]).await.status(), StatusCode::OK);

    let none = call(&svc, Method::GET, "/logs/a", &[]).await;
    assert_eq!((none.status(), challenge(&none)), (StatusCode::UNAUTHORIZED, "Bearer"));
    let basic = call(&svc, Method::GET, "/logs/a", &["Basic dXNlcjpwYXNz"]).await;
    assert_eq!((basic.status(), challenge(&basic)), (StatusCode::UNAUTHORIZED, "Bearer"));

    for (auth, what) in [
        (vec![bearer.as_str(), bearer.as_str()], "duplicated"),
        (vec!["Bearer "], "empty"),
        (vec!["Bearer a b"], "two tokens"),
        (vec!["Bearer tw_x, Basic y"], "a list"),
    ] {
        let r = call(&svc, Method::GET, "/logs/a", &auth).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert!(challenge(&r).starts_with("Bearer error=\"invalid_request\""), "{what}: {}", challenge(&r));
        answers.push(r);
    }
    let huge = format!("Bearer {}", "a".repeat(4096));
    assert_eq!(call(&svc, Method::GET, "/logs/a", &[&huge]).await.status(), StatusCode::BAD_REQUEST);

    let revoked_bearer = format!("Bearer {}", revoked.expose_secret());
    let mut forged = token.expose_secret().to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [revoked_bearer.clone(), format!("Bearer {forged}"), "Bearer tw_notatoken".to_owned()] {
        let r = call(&svc, Method::GET, "/logs/a", &[&bad]).await;
        assert_eq!((r.status(), challenge(&r)), (StatusCode::UNAUTHORIZED, "Bearer error=\"invalid_token\""));
        answers.push(r);
    }
    let write = call(&svc, Method::PUT, "/logs/a.log", &[&bearer]).await;
    assert_eq!(write.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&write),
        "Bearer error=\"insufficient_scope\", scope=\"s3:bucket/prod-logs/a.log:write\""
    );
    let unmapped = call(&svc, Method::DELETE, "/logs/a.log", &[&bearer]).await;
    assert_eq!(
        (unmapped.status(), challenge(&unmapped)),
        (StatusCode::FORBIDDEN, "Bearer error=\"insufficient_scope\"")
    );
    let dots = call(&svc, Method::GET, "/logs/../secrets", &[&bearer]).await;
    assert_eq!(dots.status(), StatusCode::FORBIDDEN);
    answers.extend([write, unmapped, dots, none, basic, ok]);

    // No answer tells the client why, and none holds a token.
    for r in &answers {
        let all = format!("{:?} {:?}", r.headers(), r.body());
        for word in ["revoked", "expired", "bad_secret", "unknown"] {
            assert!(!all.contains(word), "{word} in {all}");
        }
        assert!(
            !all.contains(token.expose_secret())
                && !all.contains(revoked.expose_secret())
                && !all.contains(&forged)
        );
    }

    tw.shutdown().await.unwrap();
    let log = FileLog::open(&audit).unwrap();
    let allowed = log.query(&AuditQuery::new().action("verify_allowed")).await.unwrap();
    assert_eq!(allowed.len(), 2);
    assert_eq!(allowed[0].event.source.as_deref(), Some("10.9.8.7"));
    assert_eq!(allowed[0].event.attrs["request"], "s3:bucket/prod-logs/2026/app.log:read");
    let denied = log.query(&AuditQuery::new().action("verify_denied")).await.unwrap();
    let reasons: Vec<&str> = denied.iter().filter_map(|e| e.event.action.detail()).collect();
    assert_eq!(
        reasons,
        [
            ["missing_token"; 2].as_slice(),
            &["invalid_request"; 5],
            &["revoked", "malformed", "malformed"],
            &["out_of_scope"; 3]
        ]
        .concat(),
        "the detail is in the log (a changed character breaks the checksum); every refusal is an entry"
    );
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        !text.contains(token.expose_secret())
            && !text.contains(revoked.expose_secret())
            && !text.contains(&forged)
    );
    log.verify(&[]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fail_closed_log_that_cannot_record_is_503_not_a_denial_of_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(Breakable::new(MemoryLog::new()));
    let tw =
        builder(dir.path()).audit_storage(storage.clone(), FailureMode::FailClosed).open().await.unwrap();
    let who = Principal::parse("billing-api", ["reader"]).unwrap();
    let token = tw
        .issue(
            &who,
            &IssueRequest::parse("logs", "s3:bucket/prod-logs/**:read", TimeDelta::minutes(10)).unwrap(),
        )
        .await
        .unwrap();
    let svc = service(&tw);
    let bearer = format!("Bearer {}", token.expose_secret());
    assert_eq!(call(&svc, Method::GET, "/logs/a", &[&bearer]).await.status(), StatusCode::OK);
    storage.set_broken(true);
    let mut unavailable = None;
    for _ in 0..200 {
        let r = call(&svc, Method::GET, "/logs/a", &[&bearer]).await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            unavailable = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let r = unavailable.expect("a broken fail-closed log refuses");
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.headers().get("www-authenticate").is_none());
    storage.set_broken(false);
    let mut back = false;
    for _ in 0..400 {
        if call(&svc, Method::GET, "/logs/a", &[&bearer]).await.status() == StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(back, "the layer answers again once the log recovers");
    let _ = storage.inner().entries();
    let _ = tw.shutdown().await;
}

/// With a bounded cache, the layer reads a token it does not hold before deciding: an evicted
/// token is allowed (after one read), a made-up one refused, a revoked one refused; and the
/// decision is audited like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_cache_reads_what_it_does_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let tw = builder(dir.path())
        .bounded_cache(tokenward::store::cache::BoundedCache::new(2))
        .audit_file(&audit, FailureMode::FailClosed)
        .open()
        .await
        .unwrap();
    let who = Principal::parse("billing-api", ["reader"]).unwrap();
    let mut tokens = Vec::new();
    for i in 0..6 {
        let req =
            IssueRequest::parse(&format!("logs-{i}"), "s3:bucket/prod-logs/**:read", TimeDelta::minutes(10))
                .unwrap();
        tokens.push(tw.issue(&who, &req).await.unwrap());
    }
    assert!(tw.tokens().cache().len() <= 2, "the cache holds two at most");
    let svc = service(&tw);
    for t in &tokens {
        let r = call(&svc, Method::GET, "/logs/a.log", &[&format!("Bearer {}", t.expose_secret())]).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.body());
    }
    let stats = tw.tokens().cache().stats();
    assert!(stats.misses >= 4 && stats.lookups >= 4, "{stats:?}");
    // A path no route maps, with a valid token the cache no longer holds: read, then 403 (not
    // the 401 of a token the cache does not know).
    let evicted = tokens.iter().find(|t| tw.verifier().needs_fetch(t.expose_secret())).expect("one evicted");
    let r =
        call(&svc, Method::DELETE, "/logs/a.log", &[&format!("Bearer {}", evicted.expose_secret())]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Revoked while not held: read, denied as revoked.
    let gone = &tokens[0];
    tw.revoke(gone.id()).await.unwrap();
    for t in &tokens[1..] {
        let _ = call(&svc, Method::GET, "/logs/a.log", &[&format!("Bearer {}", t.expose_secret())]).await;
    }
    let r = call(&svc, Method::GET, "/logs/a.log", &[&format!("Bearer {}", gone.expose_secret())]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A token of another store: unknown, then remembered as unknown (no second read).
    let other = tempfile::tempdir().unwrap();
    let stranger_tw = builder(other.path()).open().await.unwrap();
    let stranger = stranger_tw
        .issue(
            &who,
            &IssueRequest::parse("x", "s3:bucket/prod-logs/**:read", TimeDelta::minutes(10)).unwrap(),
        )
        .await
        .unwrap();
    let before = tw.tokens().cache().stats().lookups;
    for _ in 0..3 {
        let r =
            call(&svc, Method::GET, "/logs/a.log", &[&format!("Bearer {}", stranger.expose_secret())]).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(tw.tokens().cache().stats().lookups, before + 1, "one read for three presentations");
    tw.shutdown().await.unwrap();
    stranger_tw.shutdown().await.unwrap();
    let entries = FileLog::open(&audit).unwrap().query(&AuditQuery::default()).await.unwrap();
    assert!(entries.iter().any(|e| e.event.token == Some(gone.id())
        && matches!(&e.event.action, tokenward::audit::Action::VerifyDenied(c) if c == "revoked")));
}

/// A request no route maps (another method, a path trick, a query the route does not name) is
/// judged by its token first: a revoked or made-up token is `401 invalid_token` there as on a
/// mapped path, no token is `401` everywhere, so the routes cannot be mapped without a valid
/// token; a valid token is `403`. Each refusal is one audit entry saying what was asked (never
/// the query), and nothing reaches the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_requests_judge_the_token_first_and_every_refusal_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.jsonl");
    let tw = builder(dir.path()).audit_file(&audit, FailureMode::FailClosed).open().await.unwrap();
    let who = Principal::parse("billing-api", ["reader"]).unwrap();
    let issue = |purpose: &'static str| {
        let tw = &tw;
        let who = &who;
        async move {
            let req =
                IssueRequest::parse(purpose, "s3:bucket/prod-logs/**:read", TimeDelta::minutes(10)).unwrap();
            tw.issue(who, &req).await.unwrap()
        }
    };
    let (token, leaked) = (issue("logs").await, issue("leaked").await);
    tw.revoke(leaked.id()).await.unwrap();
    let svc = service(&tw);
    let (valid, revoked) =
        (format!("Bearer {}", token.expose_secret()), format!("Bearer {}", leaked.expose_secret()));
    let unmapped: [(Method, &str); 9] = [
        (Method::DELETE, "/logs/a.log"),
        (Method::GET, "/admin"),
        (Method::GET, "/logs/../admin"),
        (Method::GET, "/logs/./a.log"),
        (Method::GET, "/logs//a.log"),
        (Method::GET, "/logs/%2e%2e/admin"),
        (Method::GET, "/logs/a%2Fb"),
        (Method::GET, "/logs/a.log?acl"),
        (Method::GET, "/logs/?list-type=2&prefix="),
    ];
    let mut refusals = 0;
    for (method, path) in &unmapped {
        for (auth, who, expected) in [
            (Some(revoked.as_str()), "revoked", (StatusCode::UNAUTHORIZED, "Bearer error=\"invalid_token\"")),
            (
                Some("Bearer tw_madeup"),
                "made up",
                (StatusCode::UNAUTHORIZED, "Bearer error=\"invalid_token\""),
            ),
            (None, "none", (StatusCode::UNAUTHORIZED, "Bearer")),
            (Some(valid.as_str()), "valid", (StatusCode::FORBIDDEN, "Bearer error=\"insufficient_scope\"")),
        ] {
            let r = call(&svc, method.clone(), path, auth.as_slice()).await;
            assert_eq!((r.status(), challenge(&r)), expected, "{method} {path} with the {who} token");
            refusals += 1;
        }
    }
    // The same query-less path is served: the refusal above was the query's.
    assert_eq!(call(&svc, Method::GET, "/logs/a.log", &[&valid]).await.status(), StatusCode::OK);
    // No token on a mapped path: 401 too.
    let r = call(&svc, Method::GET, "/logs/a.log", &[]).await;
    assert_eq!((r.status(), challenge(&r)), (StatusCode::UNAUTHORIZED, "Bearer"));
    refusals += 1;

    tw.shutdown().await.unwrap();
    let log = FileLog::open(&audit).unwrap();
    log.verify(&[]).unwrap();
    let denied = log.query(&AuditQuery::new().action("verify_denied")).await.unwrap();
    assert_eq!(denied.len(), refusals, "every refusal is an entry");
    let entry = |detail: &str, refused: &str| {
        denied.iter().any(|e| {
            e.event.action.detail() == Some(detail)
                && e.event.attrs.get("refused").map(String::as_str) == Some(refused)
        })
    };
    for (method, path) in &unmapped {
        let asked = match path.split_once('?') {
            Some((p, _)) => format!("{method} {p}?…"),
            None => format!("{method} {path}"),
        };
        for detail in ["revoked", "malformed", "missing_token", "out_of_scope"] {
            assert!(entry(detail, &asked), "no {detail} entry for {asked}");
        }
    }
    assert!(denied.iter().any(|e| e.event.token == Some(leaked.id())
        && e.event.attrs.get("refused").map(String::as_str) == Some("GET /logs/../admin")));
    assert!(denied.iter().any(|e| e.event.token == Some(token.id())
        && e.event.attrs.get("refused").map(String::as_str) == Some("GET /logs/%2e%2e/admin")));
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains("acl") && !text.contains("list-type"), "a query in the audit log");
    assert!(!text.contains(token.expose_secret()) && !text.contains(leaked.expose_secret()));
}
