//! The bounded cache on PostgreSQL: a Zipf workload over more tokens than the cache holds.
//!
//! `TOKENWARD_PG_URL=… cargo bench -p tokenward-bench --bench bounded` (defaults: 10,000,000
//! tokens, a cache of 1,000,000, Zipf exponent 1.0; `TOKENWARD_BENCH_TOKENS`,
//! `TOKENWARD_BENCH_CACHE`, `TOKENWARD_BENCH_ZIPF`, `TOKENWARD_BENCH_REQUESTS` change them).
//!
//! Reported, from one run: hit rate; miss latency (a read of PostgreSQL by id) p50/p99; verify
//! throughput (Zipf, cold misses included) beside the all-hit rate of the same cache (the floor:
//! what a full cache gives); and under a flood of made-up, well-formed tokens, the database's
//! transactions a second (from `pg_stat_database`, not our own counters) and the hot tokens'
//! verification rate meanwhile.
//!
//! The tokens are written straight into the table in batches (records made by the deployment's
//! issuer, encoded and tagged with its record key: exactly what an issue stores, without ten
//! million one-row transactions).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::{IssueRequest, Policy, Principal, Request, Role};
use tokenward::secrecy::SecretBox;
use tokenward::store::{LocalKek, cache::BoundedCache};
use tokenward::{TokenVerifier, Tokenward};
use tokenward_bench::fanout;
use tokenward_test_support::stats::percentile;

const SCOPE: &str = "zipf:api/orders:call";

fn env(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Zipf(s) over ranks 0..n by inverse CDF (a table of n cumulative weights).
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for k in 1..=n {
            acc += 1.0 / (k as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Self { cdf }
    }

    fn sample(&self, u: f64) -> usize {
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

async fn commits(client: &tokio_postgres::Client) -> i64 {
    client
        .query_one("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Runs `tasks` concurrent verifiers for `count` presentations drawn by `pick`; returns the wall
/// time and the latencies of presentations that had to be read.
async fn drive(
    verifier: &TokenVerifier,
    tokens: &Arc<Vec<String>>,
    tasks: usize,
    count: usize,
    pick: Arc<dyn Fn(&mut Rng) -> usize + Send + Sync>,
) -> (Duration, Vec<f64>, u64) {
    // Each call draws a stream of its own: with the same seeds every call, the warm-up's rounds
    // replayed one round's presentations (≈ 86k distinct tokens of 10M under Zipf 1.0) and never
    // filled the cache — what an earlier run reported as a slow warm-up.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let start = Instant::now();
    let denied = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (verifier, tokens, pick, denied) =
            (verifier.clone(), tokens.clone(), pick.clone(), denied.clone());
        handles.push(tokio::spawn(async move {
            let request = Request::parse(SCOPE).unwrap();
            let mut rng =
                Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5678_9abc_def1) ^ (call << 40));
            let mut misses = Vec::new();
            for _ in 0..count / tasks {
                let token = &tokens[pick(&mut rng)];
                if verifier.needs_fetch(token) {
                    let s = Instant::now();
                    let d = verifier.verify_async(token, &request).await;
                    misses.push(s.elapsed().as_secs_f64() * 1e6);
                    if !d.is_allowed() {
                        denied.fetch_add(1, Ordering::Relaxed);
                    }
                } else if !verifier.verify_async(token, &request).await.is_allowed() {
                    denied.fetch_add(1, Ordering::Relaxed);
                }
            }
            misses
        }));
    }
    let mut misses = Vec::new();
    for h in handles {
        misses.extend(h.await.unwrap());
    }
    misses.sort_by(f64::total_cmp);
    (start.elapsed(), misses, denied.load(Ordering::Relaxed))
}

/// The bench's deployment on `url` (one key, one policy, one prefix for all of its handles).
fn deployment(url: &str) -> tokenward::TokenwardBuilder {
    let kek = LocalKek::from_key("bench", SecretBox::new(Box::new([5u8; 32]))).unwrap();
    let policy = Policy::builder()
        .role(Role::parse("caller", "zipf:api/**:call", TimeDelta::days(2)).unwrap())
        .build()
        .unwrap();
    Tokenward::postgres(url).key_provider(Arc::new(kek)).policy(policy).prefix("zf")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

async fn run() {
    let Some(_) = tokenward_test_support::postgres_url() else {
        eprintln!("TOKENWARD_PG_URL is not set: start a server (scripts/services.sh start_postgres)");
        return;
    };
    let n = env("TOKENWARD_BENCH_TOKENS", 10_000_000.0) as usize;
    let cache = env("TOKENWARD_BENCH_CACHE", 1_000_000.0) as usize;
    let s = env("TOKENWARD_BENCH_ZIPF", 1.0);
    let requests = env("TOKENWARD_BENCH_REQUESTS", 4_000_000.0) as usize;
    let schema = tokenward_test_support::FreshSchema::create("bounded").unwrap();
    let tw = deployment(schema.url())
        .bounded_cache(BoundedCache::new(cache).max_lookups_per_sec(1_000_000))
        .open()
        .await
        .unwrap();

    // The tokens: made by the issuer, written in batches.
    let (client, conn) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls).await.unwrap();
    let driver = tokio::spawn(conn);
    let issuer = tw.tokens().issuer();
    let principal = Principal::parse("svc", ["caller"]).unwrap();
    let now = Utc::now();
    let load = Instant::now();
    let tokens: Vec<String> = fanout::bulk_load(&tw, schema.url(), &principal, SCOPE, n, |_| true)
        .await
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    println!("loaded {n} tokens in {:.1} s", load.elapsed().as_secs_f64());
    let tokens = Arc::new(tokens);
    let verifier = tw.verifier();
    let zipf = Arc::new(Zipf::new(n, s));
    // Rank → token: a fixed shuffle, so the hot tokens are spread over the table.
    let mut order: Vec<usize> = (0..n).collect();
    let mut r = Rng(42);
    for i in (1..n).rev() {
        order.swap(i, (r.next() % (i as u64 + 1)) as usize);
    }
    let order = Arc::new(order);
    let pick: Arc<dyn Fn(&mut Rng) -> usize + Send + Sync> = {
        let (zipf, order) = (zipf.clone(), order.clone());
        Arc::new(move |rng: &mut Rng| order[zipf.sample(rng.unit())])
    };

    // Warm: until the cache has filled.
    let warm = Instant::now();
    while tw.tokens().cache().len() < cache.min(n) && warm.elapsed() < Duration::from_secs(900) {
        let _ = drive(&verifier, &tokens, 32, 200_000, pick.clone()).await;
    }
    println!("warmed to {} cached in {:.1} s", tw.tokens().cache().len(), warm.elapsed().as_secs_f64());

    // Measure: Zipf.
    let before = tw.tokens().cache().stats();
    let (wall, misses, denied) = drive(&verifier, &tokens, 32, requests, pick.clone()).await;
    let after = tw.tokens().cache().stats();
    let hits = after.hits - before.hits;
    let missed = after.misses - before.misses;
    println!(
        "zipf s={s} over {n} tokens, cache {cache}: {requests} presentations, hit rate {:.1}%, {} denied",
        100.0 * hits as f64 / (hits + missed) as f64,
        denied
    );
    println!(
        "  miss (PostgreSQL read by id) p50 {:.0} µs, p99 {:.0} µs, over {} misses; throughput {:.0}k verifications/s",
        percentile(&misses, 0.5),
        percentile(&misses, 0.99),
        misses.len(),
        requests as f64 / wall.as_secs_f64() / 1e3
    );
    // One miss at a time: the read's own latency, without queueing behind other misses.
    let request = Request::parse(SCOPE).unwrap();
    let mut alone = Vec::new();
    for i in (0..n).rev() {
        if alone.len() == 2_000 {
            break;
        }
        let t = &tokens[order[i]];
        if verifier.needs_fetch(t) {
            let s = Instant::now();
            assert!(verifier.verify_async(t, &request).await.is_allowed());
            alone.push(s.elapsed().as_secs_f64() * 1e6);
        }
    }
    alone.sort_by(f64::total_cmp);
    println!(
        "  one miss at a time: p50 {:.0} µs, p99 {:.0} µs (read by id + verify)",
        percentile(&alone, 0.5),
        percentile(&alone, 0.99)
    );
    // The floor: the same cache, every presentation a hit (what a full cache gives).
    let held: Arc<Vec<usize>> = Arc::new(
        (0..n).filter(|i| tw.tokens().cache().contains(id_of(&tw, &tokens[*i]))).take(100_000).collect(),
    );
    let hot_pick: Arc<dyn Fn(&mut Rng) -> usize + Send + Sync> = {
        let held = held.clone();
        Arc::new(move |rng: &mut Rng| held[(rng.next() % held.len() as u64) as usize])
    };
    let (hot_wall, _, _) = drive(&verifier, &tokens, 32, requests, hot_pick.clone()).await;
    let hot_rate = requests as f64 / hot_wall.as_secs_f64();
    println!(
        "  all hits (the floor, a full cache's rate): {:.0}k/s; zipf is {:.0}% of it",
        hot_rate / 1e3,
        100.0 * (requests as f64 / wall.as_secs_f64()) / hot_rate
    );

    // Flood: made-up, well-formed tokens (issued, never stored) beside hot traffic, at the
    // default lookup budget.
    let strangers: Arc<Vec<String>> = Arc::new(
        (0..200_000)
            .map(|i| {
                let req = IssueRequest::parse(&format!("x{i}"), SCOPE, TimeDelta::hours(1)).unwrap();
                issuer.issue_at(&principal, &req, &[], now).unwrap().0.expose_secret().to_owned()
            })
            .collect(),
    );
    let tw2 = deployment(schema.url()).bounded_cache(BoundedCache::new(cache)).open().await.unwrap();
    let v2 = tw2.verifier();
    // Warm its cache with the hot set.
    let _ = drive(&v2, &tokens, 32, held.len() * 2, hot_pick.clone()).await;
    let (idle_wall, _, _) = drive(&v2, &tokens, 32, 1_000_000, hot_pick.clone()).await;
    let idle_rate = 1_000_000.0 / idle_wall.as_secs_f64();
    let c0 = commits(&client).await;
    let t0 = Instant::now();
    let flooded = Arc::new(AtomicU64::new(0));
    let mut flood = Vec::new();
    for f in 0..16 {
        let (v2, strangers, flooded) = (v2.clone(), strangers.clone(), flooded.clone());
        flood.push(tokio::spawn(async move {
            let request = Request::parse(SCOPE).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut i = f * 12_345;
            while Instant::now() < deadline {
                let _ = v2.verify_async(&strangers[i % strangers.len()], &request).await;
                flooded.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let before_flood = tw2.tokens().cache().stats();
    let (flood_wall, _, _) = drive(&v2, &tokens, 16, 1_000_000, hot_pick.clone()).await;
    for f in flood {
        f.await.unwrap();
    }
    let presented = flooded.load(Ordering::Relaxed);
    let secs = t0.elapsed().as_secs_f64();
    let c1 = commits(&client).await;
    let st = tw2.tokens().cache().stats();
    println!(
        "flood of {presented} made-up tokens from 16 tasks in {secs:.1} s: {:.0} database transactions/s (pg_stat_database), {} reads, {} refused for the budget ({} a second)",
        (c1 - c0) as f64 / secs,
        st.lookups - before_flood.lookups,
        st.unavailable - before_flood.unavailable,
        BoundedCache::new(1).max_lookups_per_sec
    );
    println!(
        "  hot tokens meanwhile: {:.0}k/s vs {:.0}k/s before the flood ({:.0}%)",
        1_000_000.0 / flood_wall.as_secs_f64() / 1e3,
        idle_rate / 1e3,
        100.0 * (1_000_000.0 / flood_wall.as_secs_f64()) / idle_rate
    );
    println!(
        "cache memory: {} bytes for {} tokens ({} B/token)",
        tw.tokens().cache().memory_bytes(),
        tw.tokens().cache().len(),
        tw.tokens().cache().memory_bytes() / tw.tokens().cache().len().max(1)
    );
    tw2.shutdown().await.unwrap();
    tw.shutdown().await.unwrap();
    driver.abort();
    drop(schema);
    write_rates().await;
}

/// What PostgreSQL takes of each write, durably (synchronous commit on, 8 concurrent writers):
/// issues, revocations, and audit entries appended in batches.
async fn write_rates() {
    use tokenward::audit::{Action, Actor, AuditEvent, LogStorage, PostgresLog};
    let schema = tokenward_test_support::FreshSchema::create("writes").unwrap();
    let tw = deployment(schema.url()).open().await.unwrap();
    let (tasks, each) = (8, 500);
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let tokens = Arc::clone(tw.tokens());
        handles.push(tokio::spawn(async move {
            let principal = Principal::parse(&format!("w{t}"), ["caller"]).unwrap();
            let mut ids = Vec::new();
            for i in 0..each {
                let req = IssueRequest::parse(&format!("p{i}"), SCOPE, TimeDelta::hours(1)).unwrap();
                ids.push(tokens.issue_at(&principal, &req, Utc::now()).await.unwrap().id());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.extend(h.await.unwrap());
    }
    let issue_rate = ids.len() as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut handles = Vec::new();
    for chunk in ids.chunks(ids.len() / tasks) {
        let (tokens, chunk) = (Arc::clone(tw.tokens()), chunk.to_vec());
        handles.push(tokio::spawn(async move {
            for id in chunk {
                tokens.revoke_at(id, Utc::now()).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let revoke_rate = ids.len() as f64 / start.elapsed().as_secs_f64();
    tw.shutdown().await.unwrap();
    let log = PostgresLog::connect(schema.url(), 4).await.unwrap();
    let batch: Vec<AuditEvent> = (0..1000)
        .map(|i| {
            AuditEvent::new(Utc::now(), Actor::System, Action::VerifyAllowed)
                .attr("request", SCOPE)
                .attr("count", i.to_string())
        })
        .collect();
    let start = Instant::now();
    for _ in 0..50 {
        log.append(&batch).await.unwrap();
    }
    let audit_rate = 50_000.0 / start.elapsed().as_secs_f64();
    println!(
        "PostgreSQL writes (durable): {issue_rate:.0} issues/s and {revoke_rate:.0} revocations/s (8 writers), {audit_rate:.0} audit entries/s (batches of 1,000)"
    );
}

fn id_of(tw: &Tokenward, token: &str) -> tokenward::core::TokenId {
    tw.tokens().issuer().format().parse(token).unwrap().id()
}
