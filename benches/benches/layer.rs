//! The tower layer's cost, beside the same service without it, in the same run:
//!
//! - in process (`tower::ServiceExt::oneshot`): a request through `TokenAuthLayer` (bearer
//!   header, route → scope, audited verification, grant into the extensions) vs the bare service;
//! - over loopback: an axum server with the layer vs without, driven by a bounded load generator
//!   (keep-alive HTTP/1.1, 8 connections, a fixed number of requests per round, rounds
//!   alternated); requests/s and the ratio (target ≥ 90% of the unauthenticated rate).
//!
//! Audit: every decision, fail-closed, into a group-committed file (the default), and the
//! summarized mode. `cargo bench -p tokenward-bench --bench layer`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

#[allow(dead_code)]
mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode, header};
use criterion::{Criterion, Throughput, criterion_group};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokenward::core::chrono::TimeDelta;
use tokenward::core::{IssueRequest, Policy, Principal, Role};
use tokenward::secrecy::SecretString;
use tokenward::{FailureMode, Tokenward, VerifyAuditMode};
use tokenward_tower::{RouteTable, TokenAuthLayer};
use tower::{Service, ServiceBuilder, ServiceExt};

const CONNECTIONS: usize = 8;
const PER_ROUND: usize = 20_000;
const ROUNDS: usize = 15;

fn routes() -> RouteTable {
    RouteTable::new().route(Some(Method::GET), "/objects/{*path}", "s3:bucket/prod-logs/{path}:read").unwrap()
}

async fn deployment(dir: &std::path::Path, mode: VerifyAuditMode) -> (Tokenward, String) {
    let tw = Tokenward::embedded(dir.join("tw.db"))
        .passphrase(SecretString::from("bench passphrase"))
        .policy(
            Policy::builder()
                .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(2)).unwrap())
                .build()
                .unwrap(),
        )
        .audit_file(dir.join("audit.jsonl"), FailureMode::FailClosed)
        .verify_audit(mode)
        .open()
        .await
        .unwrap();
    let token = tw
        .issue(
            &Principal::parse("bench", ["reader"]).unwrap(),
            &IssueRequest::parse("bench", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1)).unwrap(),
        )
        .await
        .unwrap();
    (tw, token.expose_secret().to_owned())
}

async fn hello(_req: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::from("ok")))
}

fn request(bearer: &str) -> Request<Body> {
    Request::get("/objects/2026/app.log").header(header::AUTHORIZATION, bearer).body(Body::empty()).unwrap()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// `n` GETs over `CONNECTIONS` keep-alive connections; requests/s. Every answer must be 200.
async fn load(client: &Client<HttpConnector, Body>, url: &str, bearer: &str, n: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, url, bearer) = (client.clone(), url.to_owned(), bearer.to_owned());
        tasks.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            for _ in 0..n / CONNECTIONS {
                if Instant::now() > deadline {
                    break;
                }
                let req =
                    Request::get(&url).header(header::AUTHORIZATION, &bearer).body(Body::empty()).unwrap();
                let r = client.request(req).await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
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
    let (tw, token) =
        rt.block_on(deployment(&dir.path().join("every").tap_mkdir(), VerifyAuditMode::EveryDecision));
    let (tw_sum, token_sum) = rt.block_on(deployment(
        &dir.path().join("summarized").tap_mkdir(),
        VerifyAuditMode::Summarized { interval: Duration::from_secs(1) },
    ));
    let bearer = format!("Bearer {token}");
    let bearer_sum = format!("Bearer {token_sum}");

    // ---- in process ----
    let mut bare = ServiceBuilder::new().service_fn(hello);
    let mut layered =
        ServiceBuilder::new().layer(TokenAuthLayer::new(tw.verifier(), routes())).service_fn(hello);
    let mut layered_sum =
        ServiceBuilder::new().layer(TokenAuthLayer::new(tw_sum.verifier(), routes())).service_fn(hello);
    let mut g = c.benchmark_group("layer_in_process");
    g.throughput(Throughput::Elements(1));
    g.sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    g.bench_function("bare_service", |b| {
        b.iter(|| {
            rt.block_on(async {
                black_box(bare.ready().await.unwrap().call(request(&bearer)).await.unwrap())
            })
        })
    });
    g.bench_function("through_layer_audited", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = layered.ready().await.unwrap().call(request(&bearer)).await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                black_box(r)
            })
        })
    });
    // The writer's backlog is written before the next variant runs (it would compete for the CPU).
    tw.audit_writer().unwrap().flush_blocking().unwrap();
    g.bench_function("through_layer_summarized", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = layered_sum.ready().await.unwrap().call(request(&bearer_sum)).await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                black_box(r)
            })
        })
    });
    g.finish();
    tw_sum.audit_writer().unwrap().flush_blocking().unwrap();

    // ---- over loopback ----
    let (plain_rate, layer_rate, sum_rate, layer_ratio, sum_ratio) = rt.block_on(async {
        let plain =
            serve(Router::new().route("/objects/{*path}", axum::routing::get(|| async { "ok" }))).await;
        let with = serve(
            Router::new()
                .route("/objects/{*path}", axum::routing::get(|| async { "ok" }))
                .layer(TokenAuthLayer::new(tw.verifier(), routes())),
        )
        .await;
        let with_sum = serve(
            Router::new()
                .route("/objects/{*path}", axum::routing::get(|| async { "ok" }))
                .layer(TokenAuthLayer::new(tw_sum.verifier(), routes())),
        )
        .await;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(CONNECTIONS).build(connector);
        let url = |a: SocketAddr| format!("http://{a}/objects/2026/app.log");
        // Warm the pools.
        load(&client, &url(plain), &bearer, 2_000).await;
        load(&client, &url(with), &bearer, 2_000).await;
        load(&client, &url(with_sum), &bearer_sum, 2_000).await;
        let (mut p, mut l, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            // Alternate the order, so no variant always follows another.
            if round % 2 == 0 {
                p.push(load(&client, &url(plain), &bearer, PER_ROUND).await);
                l.push(load(&client, &url(with), &bearer, PER_ROUND).await);
                // Its audit backlog is written before the next variant runs.
                tw.audit_writer().unwrap().flush().await.unwrap();
                s.push(load(&client, &url(with_sum), &bearer_sum, PER_ROUND).await);
            } else {
                s.push(load(&client, &url(with_sum), &bearer_sum, PER_ROUND).await);
                l.push(load(&client, &url(with), &bearer, PER_ROUND).await);
                // Its audit backlog is written before the next variant runs.
                tw.audit_writer().unwrap().flush().await.unwrap();
                p.push(load(&client, &url(plain), &bearer, PER_ROUND).await);
            }
        }
        let median = |mut v: Vec<f64>| tokenward_test_support::stats::median(&mut v);
        // Each round's variants ran back to back: the median of the rounds' ratios is steadier
        // on a shared machine than the ratio of the medians.
        let ratio = |x: &[f64]| median(x.iter().zip(&p).map(|(a, b)| a / b).collect());
        (median(p.clone()), median(l.clone()), median(s.clone()), ratio(&l), ratio(&s))
    });

    println!("\n==== layer: medians of this run ====");
    let m = |id: &str| support::median_ns("layer_in_process", id);
    if let (Some(bare), Some(layer), Some(sum)) =
        (m("bare_service"), m("through_layer_audited"), m("through_layer_summarized"))
    {
        println!(
            "in process (oneshot): bare service {bare:.0} ns; through the layer, every decision audited {layer:.0} ns \
             ({:.0}% of the bare rate), summarized {sum:.0} ns ({:.0}%)",
            100.0 * bare / layer,
            100.0 * bare / sum
        );
    }
    println!(
        "over loopback ({CONNECTIONS} keep-alive connections, {ROUNDS} alternated rounds of {PER_ROUND}): \
         no layer {plain_rate:.0} req/s; with the layer, every decision audited {layer_rate:.0} req/s = {:.1}%; \
         summarized {sum_rate:.0} req/s = {:.1}%; medians of the rounds' ratios: every decision {:.1}%, \
         summarized {:.1}% (target ≥ 90%)",
        100.0 * layer_rate / plain_rate,
        100.0 * sum_rate / plain_rate,
        100.0 * layer_ratio,
        100.0 * sum_ratio
    );
    rt.block_on(async {
        tw.shutdown().await.unwrap();
        tw_sum.shutdown().await.unwrap();
    });
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
