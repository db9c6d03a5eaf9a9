//! The credential gateway (`examples/gateway.rs`) under bounded load on loopback: clients hold
//! only Tokenward tokens, the upstream checks its own key, which rotates 20 times underneath;
//! one client's token leaks and is revoked and replaced mid-run. Valid clients see no failed
//! request, the upstream never sees a key it does not accept, the leaked token is refused at
//! once, every request is in the audit chain, and no upstream key reaches a client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

#[path = "../examples/gateway.rs"]
#[allow(clippy::all, missing_docs)]
mod gateway;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use gateway::*;
use tokenward::audit::{AuditQuery, FileLog, LogStorage};
use tokenward::core::chrono::TimeDelta;
use tokenward::core::{IssueRequest, Policy, Principal, Role};
use tokenward::rotate::{Rotation, Step};
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward::store::SecretName;
use tokenward::{EmergencyOrder, FailureMode, Tokenward, Upkeep};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_never_fail_while_the_upstream_key_rotates_20_times_and_a_leaked_client_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let admin = "upstream-admin-test-key";
    let state = UpstreamState::new(admin);
    let up_addr = serve(upstream(state.clone())).await;
    let client = http_client();
    let audit = dir.path().join("audit.jsonl");
    let tw = Tokenward::embedded(dir.path().join("gw.db"))
        .passphrase(SecretString::from("correct horse battery staple"))
        .policy(
            Policy::builder()
                .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1)).unwrap())
                .build()
                .unwrap(),
        )
        .audit_file(&audit, FailureMode::FailClosed)
        .overlap(TimeDelta::milliseconds(400))
        .upkeep(Upkeep::new().sweep_every(Duration::from_millis(50)))
        .open()
        .await
        .unwrap();
    let key_name = SecretName::new("upstream/api-key").unwrap();
    let target = Arc::new(UpstreamKeys {
        base: format!("http://{up_addr}"),
        admin: SecretString::from(admin),
        client: client.clone(),
    });
    assert!(matches!(tw.rotate(&key_name, target.clone()).await.unwrap(), Rotation::Promoted { .. }));
    let up = Arc::new(Upstream {
        base: format!("http://{up_addr}"),
        credential: tw.follow(&key_name).await.unwrap(),
        client: client.clone(),
    });
    let gw = format!("http://{}", serve(gateway(&tw, routes(), up.clone())).await);

    // Three valid clients with tokens of their own, and a fourth whose token is a declared
    // credential (so it can be replaced in an emergency), read through the store as a sidecar would.
    let reader = |who: &str| Principal::parse(who, ["reader"]).unwrap();
    let scope =
        |p: &str| IssueRequest::parse(p, "s3:bucket/prod-logs/**:read", TimeDelta::minutes(30)).unwrap();
    let mut tokens = Vec::new();
    for who in ["billing-api", "search-api", "reports"] {
        tokens.push(tw.issue(&reader(who), &scope("logs")).await.unwrap().expose_secret().to_owned());
    }
    let leaky_name = SecretName::new("clients/leaky").unwrap();
    let leaky_target = tw.token_target(reader("leaky"), scope("logs"));
    assert!(matches!(tw.rotate(&leaky_name, leaky_target.clone()).await.unwrap(), Rotation::Promoted { .. }));
    let leaky = Arc::new(tw.follow(&leaky_name).await.unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut load = Vec::new();
    for (i, token) in tokens.iter().cloned().enumerate() {
        let (client, stop, ok, failed, url) =
            (client.clone(), stop.clone(), ok.clone(), failed.clone(), format!("{gw}/objects/c{i}/app.log"));
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && n < 200_000 {
                match get(&client, &url, Some(&token)).await {
                    StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                    s => {
                        eprintln!("valid client {i} got {s}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                n += 1;
            }
        }));
    }
    // The leaky client: its current token, as the store has it.
    let leaky_stats = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    {
        let (client, stop, stats, url) =
            (client.clone(), stop.clone(), leaky_stats.clone(), format!("{gw}/objects/leaky/x"));
        let leaky = leaky.clone();
        load.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline && n < 200_000 {
                let token = leaky.get().secret.expose_secret().to_owned();
                match get(&client, &url, Some(&token)).await {
                    StatusCode::OK => stats.0.fetch_add(1, Ordering::Relaxed),
                    _ => stats.1.fetch_add(1, Ordering::Relaxed),
                };
                n += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }

    let idle = async |name: &SecretName| {
        for _ in 0..400 {
            if tw.rotator().record(name).await.unwrap().step == Step::Idle {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{name}: the previous credential was not revoked after the overlap");
    };
    let mut cut_off = None;
    let mut max_keys = 0;
    for r in 0..20 {
        idle(&key_name).await;
        max_keys = max_keys.max(state.key_count());
        let rotation = tw.rotate(&key_name, target.clone()).await.unwrap();
        assert!(matches!(rotation, Rotation::Promoted { .. }), "rotation {r}: {rotation:?}");
        max_keys = max_keys.max(state.key_count());
        if r == 10 {
            // The leak: revoke and replace the client's token, then present the leaked one.
            let leaked = leaky.get().secret.expose_secret().to_owned();
            tw.revoke_and_replace(&leaky_name, leaky_target.clone(), EmergencyOrder::ReplaceFirst)
                .await
                .unwrap();
            let revoked_at = Instant::now();
            let s = get(&client, &format!("{gw}/objects/leaky/x"), Some(&leaked)).await;
            cut_off = Some((s, revoked_at.elapsed()));
            assert_ne!(leaky.get().secret.expose_secret(), leaked, "the client reads its replacement");
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    idle(&key_name).await;
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }

    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    let (leaky_ok, leaky_failed) =
        (leaky_stats.0.load(Ordering::Relaxed), leaky_stats.1.load(Ordering::Relaxed));
    let (status, after) = cut_off.unwrap();
    eprintln!(
        "gateway under load: {ok} requests from valid clients, {failed} failed; leaked token refused ({status}) {after:?} \
         after the emergency returned; the leaky client's sidecar: {leaky_ok} ok, {leaky_failed} refused; upstream keys \
         at most {max_keys} at once"
    );
    assert_eq!(failed, 0, "valid clients saw failures");
    assert!(ok > 200, "only {ok} requests: the load did not run");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // One request's round trip under the load (0.5 ms here); bounded loosely for a loaded CI machine.
    assert!(after < Duration::from_millis(500), "the leaked token was refused only after {after:?}");
    assert!(leaky_ok > 0);
    assert_eq!(state.refused.load(Ordering::Relaxed), 0, "the upstream saw a key it does not accept");
    assert!(max_keys <= 2, "the upstream held {max_keys} keys at once");
    assert_eq!(state.key_count(), 1, "every previous key revoked after its overlap");

    tw.shutdown().await.unwrap();
    let log = FileLog::open(&audit).unwrap();
    log.verify(&[]).unwrap();
    let allowed = log.query(&AuditQuery::new().action("verify_allowed")).await.unwrap();
    assert!(allowed.len() as u64 >= ok + leaky_ok, "every request is an entry");
    let e =
        allowed.iter().find(|e| e.event.attrs["request"] == "s3:bucket/prod-logs/c0/app.log:read").unwrap();
    assert_eq!(e.event.source.as_deref(), Some("127.0.0.1"));
    assert!(matches!(&e.event.actor, tokenward::audit::Actor::Principal(p) if p == "billing-api"));
    let denied = log.query(&AuditQuery::new().action("verify_denied")).await.unwrap();
    assert!(denied.iter().any(|e| e.event.action.detail() == Some("revoked")));
    // No upstream key in the audit log (the gateway's clients never see one either: they get
    // the upstream's answers only).
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(!text.contains("upk_"), "an upstream key in the audit log");
}

/// The gateway forwards what the layer authorised and nothing more: a token for
/// `s3:bucket/prod-logs/**:read` does not reach the object's ACL (`?acl`), a listing
/// (`?list-type=2&prefix=`) or a path outside its prefix; a revoked token is `401` on any path;
/// the upstream sees none of these, and each is an audit entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_forwards_no_query_or_path_the_routes_do_not_name() {
    let dir = tempfile::tempdir().unwrap();
    let admin = "upstream-admin-test-key";
    let state = UpstreamState::new(admin);
    let up_addr = serve(upstream(state.clone())).await;
    let client = http_client();
    let audit = dir.path().join("audit.jsonl");
    let tw = Tokenward::embedded(dir.path().join("gw.db"))
        .passphrase(SecretString::from("correct horse battery staple"))
        .policy(
            Policy::builder()
                .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1)).unwrap())
                .build()
                .unwrap(),
        )
        .audit_file(&audit, FailureMode::FailClosed)
        .open()
        .await
        .unwrap();
    let key_name = SecretName::new("upstream/api-key").unwrap();
    let target = Arc::new(UpstreamKeys {
        base: format!("http://{up_addr}"),
        admin: SecretString::from(admin),
        client: client.clone(),
    });
    assert!(matches!(tw.rotate(&key_name, target).await.unwrap(), Rotation::Promoted { .. }));
    let up = Arc::new(Upstream {
        base: format!("http://{up_addr}"),
        credential: tw.follow(&key_name).await.unwrap(),
        client: client.clone(),
    });
    let gw = format!("http://{}", serve(gateway(&tw, routes(), up)).await);
    let reader = Principal::parse("billing-api", ["reader"]).unwrap();
    let issue = async |p: &str| {
        let req = IssueRequest::parse(p, "s3:bucket/prod-logs/x:read", TimeDelta::minutes(30)).unwrap();
        tw.issue(&reader, &req).await.unwrap()
    };
    let (token, leaked) = (issue("x").await, issue("leaked").await);
    tw.revoke(leaked.id()).await.unwrap();
    let token = token.expose_secret().to_owned();

    assert_eq!(get(&client, &format!("{gw}/objects/x"), Some(&token)).await, StatusCode::OK);
    let served = state.served.load(Ordering::Relaxed);
    let refused = [
        "/objects/x?acl",
        "/objects/x?list-type=2&prefix=",
        "/objects/x?versionId=1",
        "/objects/../admin/keys",
        "/objects/%2e%2e/admin/keys",
        "/admin/keys",
    ];
    for path in refused {
        let s = get(&client, &format!("{gw}{path}"), Some(&token)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path} with a token for objects/x");
        let s = get(&client, &format!("{gw}{path}"), Some(leaked.expose_secret())).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} with a revoked token");
        assert_eq!(get(&client, &format!("{gw}{path}"), None).await, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(state.served.load(Ordering::Relaxed), served, "the upstream served a refused request");
    assert_eq!(state.refused.load(Ordering::Relaxed), 0);

    tw.shutdown().await.unwrap();
    let log = FileLog::open(&audit).unwrap();
    log.verify(&[]).unwrap();
    let denied = log.query(&AuditQuery::new().action("verify_denied")).await.unwrap();
    assert_eq!(denied.len(), refused.len() * 3, "every refusal is an entry");
    assert!(denied.iter().all(|e| e.event.source.as_deref() == Some("127.0.0.1")));
    assert!(denied.iter().any(|e| e.event.token == Some(leaked.id())
        && e.event.action.detail() == Some("revoked")
        && e.event.attrs.get("refused").map(String::as_str) == Some("GET /admin/keys")));
}
