//! Issue 27's measurements, each beside its floor in the same run:
//!
//! - **The exchange** (`Tokenward::exchange`) with a warm key cache: an embedded store, its audit
//!   log in a file (fail-closed), a federation whose JWKS is pinned; a fresh ES256 subject token
//!   per call (its `jti` is single-use). Per-call latencies, median and p99, interleaved in
//!   batches with the floors: the bare validation of the same kind of token
//!   (`JwtValidator::validate`, the same pinned key), and a plain `Tokenward::issue` of the same
//!   scope on the same deployment. Target: ≤ 1 ms.
//! - **The DPoP layer** beside bearer verification: one `TokenAuthLayer` with `.dpop(…)`, a bearer
//!   token, and tokens bound to an ES256 and an EdDSA key presented with a fresh proof per
//!   request. In process (`oneshot`, criterion), beside the proof's verification alone
//!   (`DpopVerifier::verify`, the floor of a DPoP request); and over loopback (an axum server,
//!   keep-alive HTTP/1.1, 8 connections, rounds alternated): requests/s and the ratio to bearer
//!   (target ≥ 50%). Proofs are made before each batch or round, outside the timed region.
//!
//! The JWKS refresh under a flood of unknown `kid`s is measured by the `oidc` bench.
//! `cargo bench -p tokenward-bench --bench federation`; the figures are printed at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

#[allow(dead_code)]
mod support;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use criterion::{Criterion, Throughput, criterion_group};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use token_oidc::{DpopRequest, DpopVerifier, IssuerKeys, JwtValidator, ReplayCache};
use tokenward::core::chrono::TimeDelta;
use tokenward::core::{IssueRequest, Policy, Principal, Role, ScopeSet, Thumbprint};
use tokenward::federation::ExchangeRequest;
use tokenward::policy::PolicyFile;
use tokenward::secrecy::SecretString;
use tokenward::{FailureMode, Tokenward, VerifyAuditMode};
use tokenward_test_support::dpop::{DpopKey, TestIssuer};
use tokenward_test_support::stats::{median, percentile};
use tokenward_tower::{RouteTable, TokenAuthLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

use tokenward_test_support::dpop::{CI_ISSUER as ISSUER, ci_federation_policy as policy};
const SCOPE: &str = "deploy:service/api/v2:release";
/// Exchange: calls per batch, and batches (each series runs one batch per round, in turn).
const BATCH: usize = 100;
const BATCHES: usize = 12;
/// Loopback: connections, requests per round and variant, rounds.
const CONNECTIONS: usize = 8;
const PER_ROUND: usize = 4_000;
const ROUNDS: usize = 9;
const GROUP: &str = "dpop_in_process";
const PATH: &str = "/objects/2026/app.log";

/// (median, p99) of per-call microseconds.
fn spread(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

/// The exchange beside its floors: per-call latencies in µs of (exchange, bound exchange, bare
/// validation, plain issue).
fn exchange(rt: &tokio::runtime::Runtime, dir: &Path) -> [Vec<f64>; 4] {
    let issuer = TestIssuer::new(ISSUER, "ci-key-1", [0x31; 32]);
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, issuer.jwks()).unwrap();
    let file = PolicyFile::parse(&policy(&jwks)).unwrap();
    let tw = rt.block_on(async {
        let tw = Tokenward::embedded(dir.join("tw.db"))
            .passphrase(SecretString::from("bench passphrase"))
            .prefix("acme")
            .policy(file.to_policy().unwrap())
            .audit_file(dir.join("audit.jsonl"), FailureMode::FailClosed)
            .open()
            .await
            .unwrap();
        tw.federate(&file).unwrap();
        tw
    });
    // The floor's validator: the same pinned key, its own replay cache.
    let validator = JwtValidator::builder(ISSUER, "tokenward", IssuerKeys::pinned_file(&jwks).unwrap())
        .replay_cache(Arc::new(ReplayCache::new(1_000_000)))
        .build()
        .unwrap();
    let claims = serde_json::json!({"sub": "repo:acme/api:ref:refs/heads/main", "repository": "acme/api", "ref": "refs/heads/main"});
    let ask = ExchangeRequest::new(ScopeSet::parse(SCOPE).unwrap(), TimeDelta::minutes(10));
    let key = DpopKey::ed25519_from_seed([0x41; 32]);
    let bound = ask.clone().bound_to(Thumbprint::parse(&key.thumbprint()).unwrap());
    let principal = Principal::parse("ci-deployer", ["deployer"]).unwrap();
    let mut out: [Vec<f64>; 4] = Default::default();
    // Warm: the pinned key parsed, the store's pages and the log's file in the page cache.
    for _ in 0..20 {
        rt.block_on(tw.exchange(&issuer.mint("tokenward", 300, &claims), &ask)).unwrap();
    }
    for round in 0..BATCHES {
        for k in 0..4 {
            // Rotate which series goes first, so none always follows another.
            let series = (k + round) % 4;
            let tokens: Vec<String> = (0..BATCH).map(|_| issuer.mint("tokenward", 300, &claims)).collect();
            // One active token per purpose: each plain issue has its own (as each exchange does).
            let plain: Vec<IssueRequest> = (0..BATCH)
                .map(|i| {
                    IssueRequest::parse(&format!("plain-{round}-{i}"), SCOPE, TimeDelta::minutes(10)).unwrap()
                })
                .collect();
            for (t, plain) in tokens.iter().zip(&plain) {
                let started = Instant::now();
                rt.block_on(async {
                    match series {
                        0 => _ = black_box(tw.exchange(t, &ask).await.unwrap()),
                        1 => _ = black_box(tw.exchange(t, &bound).await.unwrap()),
                        2 => _ = black_box(validator.validate(t).await.unwrap()),
                        _ => _ = black_box(tw.issue(&principal, plain).await.unwrap()),
                    }
                });
                out[series].push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    rt.block_on(tw.shutdown()).unwrap();
    out
}

fn routes() -> RouteTable {
    RouteTable::new().route(Some(Method::GET), "/objects/{*path}", "s3:bucket/prod-logs/{path}:read").unwrap()
}

/// A deployment with summarized verification audit (the layer's recommended mode), and its
/// tokens: bearer, bound to `es`, bound to `ed`.
async fn deployment(dir: &Path, es: &DpopKey, ed: &DpopKey) -> (Tokenward, [String; 3]) {
    let tw = Tokenward::embedded(dir.join("layer.db"))
        .passphrase(SecretString::from("bench passphrase"))
        .policy(
            Policy::builder()
                .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(2)).unwrap())
                .build()
                .unwrap(),
        )
        .audit_file(dir.join("layer-audit.jsonl"), FailureMode::FailClosed)
        .verify_audit(VerifyAuditMode::Summarized { interval: Duration::from_secs(1) })
        .open()
        .await
        .unwrap();
    let who = Principal::parse("bench", ["reader"]).unwrap();
    let read = |p: &str| IssueRequest::parse(p, "s3:bucket/prod-logs/**:read", TimeDelta::hours(1)).unwrap();
    let bearer = tw.issue(&who, &read("bearer")).await.unwrap();
    let bind = |k: &DpopKey| Thumbprint::parse(&k.thumbprint()).unwrap();
    let es_token = tw.issue(&who, &read("es256").bound_to(bind(es))).await.unwrap();
    let ed_token = tw.issue(&who, &read("eddsa").bound_to(bind(ed))).await.unwrap();
    let tokens =
        [bearer.expose_secret(), es_token.expose_secret(), ed_token.expose_secret()].map(str::to_owned);
    (tw, tokens)
}

/// The headers of one request: the authorization, and the proof when there is one.
type Headers = (String, Option<String>);

/// `n` requests' headers for a token: bearer (no key), or DPoP with a fresh proof each.
fn headers(token: &str, key: Option<&DpopKey>, htu: &str, n: usize) -> Vec<Headers> {
    (0..n)
        .map(|_| match key {
            None => (format!("Bearer {token}"), None),
            Some(k) => (format!("DPoP {token}"), Some(k.proof_now("GET", htu, Some(token)))),
        })
        .collect()
}

fn request(uri: &str, (auth, proof): &Headers) -> Request<Body> {
    let mut b = Request::get(uri).header(header::AUTHORIZATION, auth);
    if let Some(p) = proof {
        b = b.header("dpop", p);
    }
    b.body(Body::empty()).unwrap()
}

/// The requests of `all` over `CONNECTIONS` keep-alive connections; requests/s. Every answer
/// must be 200.
async fn load(client: &Client<HttpConnector, Body>, url: &str, all: Vec<Headers>) -> f64 {
    let n = all.len();
    let per = n.div_ceil(CONNECTIONS);
    let mut chunks: Vec<Vec<Headers>> = Vec::new();
    let mut all = all.into_iter();
    for _ in 0..CONNECTIONS {
        chunks.push(all.by_ref().take(per).collect());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            for h in &chunk {
                let r = client.request(request(&url, h)).await.unwrap();
                assert_eq!(r.status(), StatusCode::OK, "{:?}", r.headers().get("www-authenticate"));
                let _ = http_body_util::BodyExt::collect(r.into_body()).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // ---- the exchange ----
    let [ex, ex_bound, validate, issue] = exchange(&rt, dir.path());

    // ---- the DPoP layer, in process ----
    let es = DpopKey::from_seed([0x11; 32]);
    let ed = DpopKey::ed25519_from_seed([0x22; 32]);
    let (tw, tokens) = rt.block_on(deployment(dir.path(), &es, &ed));
    let keys: [Option<&DpopKey>; 3] = [None, Some(&es), Some(&ed)];
    let names = ["bearer", "dpop_es256", "dpop_eddsa"];
    // One replay cache for every proof of the run (each `jti` is fresh).
    let dpop =
        || DpopVerifier::builder().replay_cache(Arc::new(ReplayCache::new(2_000_000))).build().unwrap();
    let origin = "https://api.example.com";
    let htu = format!("{origin}{PATH}");
    let mut layered = ServiceBuilder::new()
        .layer(TokenAuthLayer::new(tw.verifier(), routes()).dpop(dpop(), origin))
        .service_fn(|_req: Request<Body>| async {
            Ok::<_, std::convert::Infallible>(axum::http::Response::new(Body::from("ok")))
        });
    let mut g = c.benchmark_group(GROUP);
    g.throughput(Throughput::Elements(1));
    g.sample_size(20).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    for ((token, key), name) in tokens.iter().zip(keys).zip(names) {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                // At most 5,000 proofs at a time: each is fresh for 70 s.
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let n = left.min(5_000);
                    let batch = headers(token, key, &htu, n);
                    let started = Instant::now();
                    rt.block_on(async {
                        for h in &batch {
                            let r = layered.ready().await.unwrap().call(request(PATH, h)).await.unwrap();
                            assert_eq!(r.status(), StatusCode::OK);
                            black_box(r);
                        }
                    });
                    total += started.elapsed();
                    left -= n;
                }
                total
            })
        });
    }
    // The floor of a DPoP request: the proof's verification alone (signature, claims, `ath`,
    // the `jti` recorded).
    let floor = dpop();
    for (key, name) in [(&es, "proof_es256"), (&ed, "proof_eddsa")] {
        let token = &tokens[if name == "proof_es256" { 1 } else { 2 }];
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    let n = left.min(5_000);
                    let proofs: Vec<String> =
                        (0..n).map(|_| key.proof_now("GET", &htu, Some(token))).collect();
                    let request = DpopRequest::new("GET", &htu).access_token(token);
                    let started = Instant::now();
                    for p in &proofs {
                        black_box(floor.verify(p, &request).unwrap());
                    }
                    total += started.elapsed();
                    left -= n;
                }
                total
            })
        });
    }
    g.finish();
    tw.audit_writer().unwrap().flush_blocking().unwrap();

    // ---- the DPoP layer, over loopback ----
    let rates = rt.block_on(async {
        let app = |origin: String| {
            Router::new()
                .route("/objects/{*path}", axum::routing::get(|| async { "ok" }))
                .layer(TokenAuthLayer::new(tw.verifier(), routes()).dpop(dpop(), origin))
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let origin = format!("http://{addr}");
        let router = app(origin.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let url = format!("{origin}{PATH}");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(CONNECTIONS).build(connector);
        for (token, key) in tokens.iter().zip(keys) {
            load(&client, &url, headers(token, key, &url, 1_000)).await;
        }
        let mut rates: [Vec<f64>; 3] = Default::default();
        for round in 0..ROUNDS {
            for k in 0..3 {
                let v = (k + round) % 3;
                let batch = headers(&tokens[v], keys[v], &url, PER_ROUND);
                rates[v].push(load(&client, &url, batch).await);
            }
            tw.audit_writer().unwrap().flush().await.unwrap();
        }
        rates
    });

    // ---- the figures ----
    println!("\n==== federation: this run ====");
    let (m, p) = spread(ex);
    let (bm, bp) = spread(ex_bound);
    let (vm, vp) = spread(validate);
    let (im, ip) = spread(issue);
    println!(
        "exchange, warm pinned key, audited ({} calls each, {BATCHES} interleaved batches): \
         median {m:.0} µs, p99 {bp_:.0} µs (target ≤ 1,000 µs); bound to a key: median {bm:.0} µs, p99 {bp:.0} µs",
        BATCH * BATCHES,
        bp_ = p
    );
    println!(
        "  floors, same run: the subject token's validation alone median {vm:.0} µs, p99 {vp:.0} µs; \
         a plain issue median {im:.0} µs, p99 {ip:.0} µs; validation + issue = {:.0} µs, the exchange = {:.2}× that",
        vm + im,
        m / (vm + im)
    );
    let ns = |id: &str| support::median_ns(GROUP, id);
    if let (Some(bearer), Some(es_ns), Some(ed_ns)) = (ns("bearer"), ns("dpop_es256"), ns("dpop_eddsa")) {
        println!(
            "in process (oneshot): bearer {:.2} µs; DPoP ES256 {:.1} µs ({:.1}% of the bearer rate), \
             DPoP EdDSA {:.1} µs ({:.1}%)",
            bearer / 1e3,
            es_ns / 1e3,
            100.0 * bearer / es_ns,
            ed_ns / 1e3,
            100.0 * bearer / ed_ns
        );
        if let (Some(pe), Some(pd)) = (ns("proof_es256"), ns("proof_eddsa")) {
            println!(
                "  floor: the proof's verification alone, ES256 {:.1} µs (the DPoP request is {:.2}× it), \
                 EdDSA {:.1} µs ({:.2}×)",
                pe / 1e3,
                es_ns / pe,
                pd / 1e3,
                ed_ns / pd
            );
        }
    }
    let [b, e, d] = rates;
    let ratio = |x: &[f64]| median(&mut x.iter().zip(&b).map(|(a, r)| a / r).collect::<Vec<_>>());
    println!(
        "over loopback ({CONNECTIONS} keep-alive connections, {ROUNDS} alternated rounds of {PER_ROUND}; \
         medians): bearer {:.0} req/s; DPoP ES256 {:.0} req/s = {:.1}% of bearer; DPoP EdDSA {:.0} req/s = {:.1}% \
         (medians of the rounds' ratios; target ≥ 50%)",
        median(&mut b.clone()),
        median(&mut e.clone()),
        100.0 * ratio(&e),
        median(&mut d.clone()),
        100.0 * ratio(&d)
    );
    rt.block_on(tw.shutdown()).unwrap();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
