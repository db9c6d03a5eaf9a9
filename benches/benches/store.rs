//! token-store's hot paths beside their floors, in one run:
//! - get+decrypt of a secret on the embedded store vs the raw backend read (no crypto) and a raw
//!   AES-256-GCM open of the same bytes;
//! - put of a new version vs the raw backend insert of the same sealed bytes;
//! - verify through the verifier cache (1,000,000 tokens) vs the token-core floor (one
//!   HMAC-SHA256 + one std HashMap lookup in 1,000,000);
//! - issue (a durable write) on the embedded store, per second;
//! - the cache's bytes per token at 1,000,000 tokens, and the time to open a store of
//!   1,000,000 tokens (load the cache).
//!
//! `cargo bench --bench store` (`TOKENWARD_BENCH_TOKENS` sets the token count).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use criterion::{Criterion, criterion_group};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use support::median_ns;
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::clocks::CachedClock;
use tokenward::core::limits::{CHECKSUM_LEN, SECRET_LEN};
use tokenward::core::lookup::ParsedToken;
use tokenward::core::*;
use tokenward::store::secrecy::SecretBox;
use tokenward::store::*;

fn tokens_n() -> usize {
    std::env::var("TOKENWARD_BENCH_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn kek() -> Arc<dyn KeyProvider> {
    Arc::new(LocalKek::from_key("bench", SecretBox::new(Box::new([7u8; 32]))).unwrap())
}

fn policy() -> Policy {
    Policy::builder().role(Role::parse("r", "svc:data/**:read", TimeDelta::days(2)).unwrap()).build().unwrap()
}

fn rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<usize>().ok()))
        .map_or(0, |pages| pages * 4096)
}

fn bench(c: &mut Criterion) {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();

    // --- secrets: get+decrypt and put on the embedded store ---
    let backend = Arc::new(SqliteBackend::open(&dir.path().join("secrets.db")).unwrap());
    let store = rt.block_on(SecretStore::open(backend.clone(), kek())).unwrap();
    let name = SecretName::new("svc/cloud-key").unwrap();
    let payload = vec![0x5a; 64];
    let v = rt.block_on(store.put(&name, &payload)).unwrap();
    let sealed = rt.block_on(backend.version(&name, v)).unwrap().unwrap();
    let mut g = c.benchmark_group("secret");
    g.sample_size(100).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    g.bench_function("get_decrypt_embedded", |b| {
        b.iter(|| rt.block_on(store.get(&name, black_box(v))).unwrap())
    });
    g.bench_function("floor_raw_backend_read", |b| {
        b.iter(|| rt.block_on(backend.version(&name, black_box(v))).unwrap())
    });
    let key = aes_gcm::Key::<aes_gcm::Aes256Gcm>::from([9u8; 32]);
    let cipher = aes_gcm::Aes256Gcm::new(&key);
    let nonce = aes_gcm::Nonce::from([1u8; 12]);
    let ct = cipher.encrypt(&nonce, Payload { msg: &payload, aad: b"aad" }).unwrap();
    g.bench_function("floor_raw_aes_gcm_open_64B", |b| {
        b.iter(|| cipher.decrypt(&nonce, Payload { msg: black_box(&ct), aad: b"aad" }).unwrap())
    });
    g.bench_function("put_embedded", |b| {
        b.iter(|| rt.block_on(store.put(&name, black_box(&payload))).unwrap())
    });
    let raw_name = SecretName::new("svc/raw").unwrap();
    let mut next = 0u64;
    g.bench_function("floor_raw_backend_insert", |b| {
        b.iter(|| {
            next += 1;
            let mut s = sealed.clone();
            s.name = raw_name.clone();
            s.version = next;
            rt.block_on(backend.insert_version(&s)).unwrap()
        })
    });
    g.finish();

    // --- tokens: a store of N tokens, opened fresh; the cache; verify; issue ---
    let n = tokens_n();
    let path = dir.path().join("tokens.db");
    let principal = Principal::parse("svc", ["r"]).unwrap();
    let sample: Vec<String> = {
        let b = Arc::new(SqliteBackend::open(&path).unwrap()) as Arc<dyn Backend>;
        let secrets = rt.block_on(SecretStore::open(Arc::clone(&b), kek())).unwrap();
        let tokens = rt
            .block_on(TokenService::open(
                b.clone(),
                &secrets,
                TokenFormat::new(TokenPrefix::new("tw").unwrap()),
                policy(),
                n + 50_000,
            ))
            .unwrap();
        // Bulk-load through the issuer and the backend (one transaction per token would take
        // minutes at fsync speed; the issue rate is measured separately below).
        let now = Utc::now();
        let req = IssueRequest::parse("p", "svc:data/*:read", TimeDelta::days(1)).unwrap();
        let mut sample = Vec::new();
        let mut records = Vec::with_capacity(n);
        for i in 0..n {
            let (t, r) = tokens.issuer().issue_at(&principal, &req, &[], now).unwrap();
            if i % (n / 4096).max(1) == 0 && sample.len() < 4096 {
                sample.push(t.expose_secret().to_owned());
            }
            records.push(r);
        }
        let sqlite = SqliteBackend::open(&path).unwrap();
        sqlite.bulk_insert_tokens(&records, secrets.record_key().unwrap()).unwrap();
        sample
    };
    let rss_before = rss_bytes();
    let open_start = Instant::now();
    let b = Arc::new(SqliteBackend::open(&path).unwrap()) as Arc<dyn Backend>;
    let secrets = rt.block_on(SecretStore::open(Arc::clone(&b), kek())).unwrap();
    let tokens = rt
        .block_on(TokenService::open(
            b,
            &secrets,
            TokenFormat::new(TokenPrefix::new("tw").unwrap()),
            policy(),
            n + 50_000,
        ))
        .unwrap();
    let open_time = open_start.elapsed();
    let rss_cache = rss_bytes().saturating_sub(rss_before);
    let structural = tokens.cache().memory_bytes();
    println!(
        "opened a store of {} tokens in {:.3} s; cache: {:.0} bytes/token by its own accounting, RSS grew {:.0} bytes/token",
        tokens.cache().len(),
        open_time.as_secs_f64(),
        structural as f64 / tokens.cache().len() as f64,
        rss_cache as f64 / tokens.cache().len() as f64
    );

    // The floor of an authenticated load, same file, same run: scan every row's encoded record
    // and tag, HMAC-SHA256 each record, and index its id in a std HashMap — no decoding, no views.
    let floor_open = {
        let start = Instant::now();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[42u8; 32]).unwrap();
        let mut index: HashMap<u128, [u8; 32]> = HashMap::with_capacity(n);
        let mut stmt = conn.prepare("SELECT body, mac FROM tokens").unwrap();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let body = r.get_ref(0).unwrap().as_blob().unwrap();
            let tag: [u8; 32] = mac.clone().chain_update(body).finalize().into_bytes().into();
            let id = u128::from_be_bytes(body[1..17].try_into().unwrap());
            index.insert(id, tag);
        }
        assert_eq!(index.len(), n);
        start.elapsed()
    };
    println!(
        "open: {:.3} s; floor (scan rows + HMAC each + HashMap index) {:.3} s: {:.2}× (target ≤ 1 s)",
        open_time.as_secs_f64(),
        floor_open.as_secs_f64(),
        open_time.as_secs_f64() / floor_open.as_secs_f64()
    );

    let clock = Arc::new(CachedClock::start().unwrap());
    let verifier = tokens.verifier().with_clock(clock);
    let request = Request::parse("svc:data/x:read").unwrap();
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&[42u8; 32]).unwrap();
    let mut floor_map: HashMap<u128, [u8; 32]> = HashMap::with_capacity(n);
    let mut floor_sample = Vec::new();
    for t in &sample {
        let p = ParsedToken::parse(t).unwrap();
        let secret = t.as_bytes()[t.len() - CHECKSUM_LEN - SECRET_LEN..t.len() - CHECKSUM_LEN].to_vec();
        floor_map.insert(p.id().to_u128(), mac.clone().chain_update(&secret).finalize().into_bytes().into());
        floor_sample.push((p.id().to_u128(), secret));
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u128;
    while floor_map.len() < n {
        x = x.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(1);
        floor_map.insert(x >> 27, [0; 32]);
    }
    let mut g = c.benchmark_group("tokens");
    g.sample_size(200).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    let mut i = 0;
    g.bench_function("verify_through_cache", |b| {
        b.iter(|| {
            i = (i + 1) % sample.len();
            assert!(verifier.verify(black_box(&sample[i]), &request).is_allowed());
        })
    });
    g.bench_function("floor_hmac_plus_hashmap", |b| {
        b.iter(|| {
            i = (i + 1) % floor_sample.len();
            let (id, secret) = &floor_sample[i];
            let d: [u8; 32] = mac.clone().chain_update(black_box(secret)).finalize().into_bytes().into();
            assert_eq!(floor_map.get(black_box(id)).map(|s| s[0] == d[0]), Some(true));
        })
    });
    g.finish();

    // The same two, interleaved, for a ratio both sides measured under the same conditions.
    let (mut ia, mut ib) = (0usize, 0usize);
    let (ours_ns, floor_ns, ratio) = support::paired_ratio(
        400,
        2000,
        || {
            ia = (ia + 1) % sample.len();
            assert!(verifier.verify(black_box(&sample[ia]), &request).is_allowed());
        },
        || {
            ib = (ib + 1) % floor_sample.len();
            let (id, secret) = &floor_sample[ib];
            let d: [u8; 32] = mac.clone().chain_update(black_box(secret)).finalize().into_bytes().into();
            assert_eq!(floor_map.get(black_box(id)).map(|s| s[0] == d[0]), Some(true));
        },
    );
    println!(
        "verify through the cache, paired with the floor: {ours_ns:.1} ns vs {floor_ns:.1} ns, median paired ratio {ratio:.2}× (target ≤ 1.5×)"
    );

    // Issue rate: durable issues one after another on the embedded store.
    let issue_n = 20_000;
    let now = Utc::now();
    let start = Instant::now();
    for k in 0..issue_n {
        let req = IssueRequest::parse(&format!("rate-{k}"), "svc:data/x:read", TimeDelta::hours(1)).unwrap();
        rt.block_on(tokens.issue_at(&principal, &req, now)).unwrap();
    }
    let rate = f64::from(issue_n) / start.elapsed().as_secs_f64();
    println!("issue on the embedded store: {rate:.0}/s single-threaded (target ≥ 20,000/s)");
    let _ = std::fs::write(
        std::env::temp_dir().join("tokenward-store-bench.txt"),
        format!(
            "open_s {:.3}\nopen_floor_s {:.3}\nbytes_per_token {:.0}\nrss_per_token {:.0}\nissue_per_s {rate:.0}\n",
            open_time.as_secs_f64(),
            floor_open.as_secs_f64(),
            structural as f64 / tokens.cache().len() as f64,
            rss_cache as f64 / tokens.cache().len() as f64
        ),
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    println!("\nstore summary (criterion medians, this run)");
    let pairs = [
        (
            "secret",
            "get_decrypt_embedded",
            "floor_raw_backend_read",
            "encryption overhead on a cached embedded read",
            1.2,
        ),
        ("secret", "put_embedded", "floor_raw_backend_insert", "put vs raw insert", 0.0),
        (
            "tokens",
            "verify_through_cache",
            "floor_hmac_plus_hashmap",
            "verify through the cache vs floor",
            1.5,
        ),
    ];
    for (group, ours, floor, what, target) in pairs {
        if let (Some(a), Some(b)) = (median_ns(group, ours), median_ns(group, floor)) {
            let verdict = if target > 0.0 {
                format!("target ≤ {target}×: {}", if a / b <= target { "met" } else { "MISSED" })
            } else {
                String::new()
            };
            println!(
                "  {ours:<24} {a:>10.0} ns  {floor:<28} {b:>10.0} ns  {:>6.2}×  {what}  {verdict}",
                a / b
            );
        }
    }
    if let Some(open) = median_ns("secret", "floor_raw_aes_gcm_open_64B") {
        println!("  raw AES-256-GCM open of 64 B: {open:.0} ns");
    }
}
