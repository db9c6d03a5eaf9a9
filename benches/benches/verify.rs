//! Verify a valid token against 1,000,000 stored tokens, beside the floor (one HMAC-SHA256 of the
//! same secret bytes + one lookup in a std `HashMap` of 1,000,000 entries) and three peers
//! (jsonwebtoken HS256 with exp validation, pasetors v4.local, biscuit-auth with one check), all
//! cycling through the same 4,096 pre-made tokens. Prints the median ratios at the end.
//!
//! `cargo bench --bench verify` (set `TOKENWARD_BENCH_TOKENS` to store fewer tokens).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

mod support;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::clocks::Clock;
use tokenward::core::clocks::{CachedClock, SystemClock};
use tokenward::core::digest::{DigestKey, DigestKeyring};
use tokenward::core::limits::{CHECKSUM_LEN, SECRET_LEN};
use tokenward::core::lookup::TokenLookup;
use tokenward::core::lookup::{InMemoryLookup, ParsedToken, ct_eq_32};
use tokenward::core::secrecy::SecretBox;
use tokenward::core::*;

const SAMPLE_MAX: usize = 4096;

fn sample_size() -> usize {
    std::env::var("TOKENWARD_BENCH_SAMPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SAMPLE_MAX)
        .clamp(1, SAMPLE_MAX)
}

fn stored_tokens() -> usize {
    std::env::var("TOKENWARD_BENCH_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

struct Ours {
    verifier: Verifier<Arc<InMemoryLookup>>,
    sample: Vec<String>,
    request: Request,
}

fn ours(key_bytes: [u8; 32]) -> Ours {
    let policy = Policy::builder()
        .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let format = TokenFormat::new(TokenPrefix::new("acme_prod").unwrap());
    let keys = DigestKeyring::new(DigestKey::from_bytes(1, &SecretBox::new(Box::new(key_bytes))));
    let issuer = Issuer::new(format.clone(), keys.clone(), policy);
    let principal = Principal::parse("svc", ["reader"]).unwrap();
    let request = IssueRequest::parse("p", "s3:bucket/prod-logs/*:read", TimeDelta::hours(12)).unwrap();
    let tokens = Arc::new(InMemoryLookup::new());
    let now = Utc::now();
    let n = stored_tokens();
    let mut sample = Vec::with_capacity(SAMPLE_MAX);
    let stride = (n / SAMPLE_MAX).max(1);
    for i in 0..n {
        let (token, record) = issuer.issue_at(&principal, &request, &[], now).unwrap();
        if i % stride == 0 && sample.len() < SAMPLE_MAX {
            sample.push(token.expose_secret().to_owned());
        }
        tokens.insert(record);
    }
    let clock = Arc::new(CachedClock::start().unwrap());
    let verifier = Verifier::new(format, keys, tokens).with_clock(clock);
    Ours { verifier, sample, request: Request::parse("s3:bucket/prod-logs/app.log:read").unwrap() }
}

fn bench(c: &mut Criterion) {
    let key = [42u8; 32];
    let sample = sample_size();
    let setup = std::time::Instant::now();
    let o = ours(key);
    println!("stored {} tokens in {:.1?}", o.verifier.lookup().len(), setup.elapsed());

    // Floor: the same secret bytes through a pre-keyed HMAC, and the same ids in a plain HashMap
    // holding 1M digests.
    let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    let n = stored_tokens();
    let mut floor_map: HashMap<u128, [u8; 32]> = HashMap::with_capacity(n);
    let mut floor_sample = Vec::with_capacity(SAMPLE_MAX);
    for t in &o.sample {
        let p = ParsedToken::parse(t).unwrap();
        let secret = t.as_bytes()[t.len() - CHECKSUM_LEN - SECRET_LEN..t.len() - CHECKSUM_LEN].to_vec();
        let d: [u8; 32] = mac.clone().chain_update(&secret).finalize().into_bytes().into();
        floor_map.insert(p.id().to_u128(), d);
        floor_sample.push((p.id().to_u128(), secret));
    }
    let mut x = 0x9E37_79B9_7F4A_7C15u128;
    while floor_map.len() < n {
        x = x.wrapping_mul(0x2545_F491_4F6C_DD1D).wrapping_add(1);
        floor_map.insert(x >> 27, [0; 32]);
    }

    // Peers, with equivalent claims: subject, expiry, one scope.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Claims {
        sub: String,
        exp: u64,
        scope: String,
    }
    let exp = (Utc::now() + TimeDelta::hours(12)).timestamp() as u64;
    let jwt_enc = jsonwebtoken::EncodingKey::from_secret(&key).unwrap();
    let jwt_dec = jsonwebtoken::DecodingKey::from_secret(&key).unwrap();
    let jwt_validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let jwts: Vec<String> = (0..SAMPLE_MAX)
        .map(|i| {
            let claims = Claims { sub: format!("svc-{i}"), exp, scope: "s3:bucket/prod-logs/*:read".into() };
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &claims,
                &jwt_enc,
            )
            .unwrap()
        })
        .collect();

    use pasetors::claims::{Claims as PClaims, ClaimsValidationRules};
    use pasetors::keys::SymmetricKey;
    use pasetors::token::UntrustedToken;
    use pasetors::version4::V4;
    use pasetors::{Local, local};
    let pk = SymmetricKey::<V4>::from(&key).unwrap();
    let pasetos: Vec<String> = (0..SAMPLE_MAX)
        .map(|i| {
            let mut claims = PClaims::new_expires_in(&Duration::from_secs(12 * 3600)).unwrap();
            claims.subject(&format!("svc-{i}")).unwrap();
            claims.add_additional("scope", "s3:bucket/prod-logs/*:read").unwrap();
            local::encrypt(&pk, &claims, None, None).unwrap()
        })
        .collect();
    let paseto_rules = ClaimsValidationRules::new();

    let root = biscuit_auth::KeyPair::new();
    let biscuits: Vec<Vec<u8>> = (0..256)
        .map(|i| {
            biscuit_auth::Biscuit::builder()
                .code(format!(r#"right("svc-{i}", "bucket/prod-logs/app.log", "read");"#))
                .unwrap()
                .build(&root)
                .unwrap()
                .to_vec()
                .unwrap()
        })
        .collect();
    let limits = biscuit_auth::AuthorizerLimits {
        max_facts: 1000,
        max_iterations: 100,
        max_time: Duration::from_secs(1),
    };

    let mut g = c.benchmark_group("verify");
    g.sample_size(200).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    let mut i = 0usize;
    g.bench_function("tokenward_verify_1M", |b| {
        b.iter(|| {
            i = (i + 1) % sample;
            let d = o.verifier.verify(black_box(&o.sample[i]), &o.request);
            assert!(d.is_allowed());
        })
    });
    g.bench_function("floor_hmac_plus_hashmap_1M", |b| {
        b.iter(|| {
            i = (i + 1) % sample;
            let (id, secret) = &floor_sample[i];
            let d: [u8; 32] = mac.clone().chain_update(black_box(secret)).finalize().into_bytes().into();
            let stored = floor_map.get(black_box(id)).unwrap();
            assert!(bool::from(ct_eq_32(&d, stored)));
        })
    });
    g.bench_function("jsonwebtoken_hs256", |b| {
        b.iter(|| {
            i = (i + 1) % sample;
            let t = jsonwebtoken::decode::<Claims>(black_box(&jwts[i]), &jwt_dec, &jwt_validation).unwrap();
            assert!(t.claims.scope.starts_with("s3:"));
        })
    });
    g.bench_function("pasetors_v4_local", |b| {
        b.iter(|| {
            i = (i + 1) % sample;
            let u = UntrustedToken::<Local, V4>::try_from(black_box(&pasetos[i])).unwrap();
            let t = local::decrypt(&pk, &u, &paseto_rules, None, None).unwrap();
            assert!(t.payload_claims().is_some());
        })
    });
    let mut j = 0usize;
    g.bench_function("biscuit_one_check", |b| {
        b.iter(|| {
            j = (j + 1) % biscuits.len();
            let t = biscuit_auth::Biscuit::from(black_box(&biscuits[j]), root.public()).unwrap();
            let mut a = biscuit_auth::builder::AuthorizerBuilder::new()
                .code(format!(
                    r#"check if right("svc-{j}", "bucket/prod-logs/app.log", "read"); allow if true;"#
                ))
                .unwrap()
                .set_limits(limits.clone())
                .build(&t)
                .unwrap();
            a.authorize().unwrap();
        })
    });
    g.finish();

    // Ours and the floor interleaved, for a ratio both measured under the same conditions.
    let (mut ia, mut ib) = (0usize, 0usize);
    let (ours_ns, floor_ns, ratio) = support::paired_ratio(
        400,
        2000,
        || {
            ia = (ia + 1) % sample;
            assert!(o.verifier.verify(black_box(&o.sample[ia]), &o.request).is_allowed());
        },
        || {
            ib = (ib + 1) % sample;
            let (id, secret) = &floor_sample[ib];
            let d: [u8; 32] = mac.clone().chain_update(black_box(secret)).finalize().into_bytes().into();
            assert!(bool::from(ct_eq_32(&d, floor_map.get(black_box(id)).unwrap())));
        },
    );
    println!(
        "verify paired with the floor: {ours_ns:.1} ns vs {floor_ns:.1} ns, median paired ratio {ratio:.2}× (target ≤ 1.5×)"
    );

    // Where the time goes: the parts of a verification, one by one.
    let mut g = c.benchmark_group("verify_parts");
    g.sample_size(100).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    g.bench_function("parse", |b| {
        b.iter(|| {
            i = (i + 1) % sample;
            black_box(ParsedToken::parse(black_box(&o.sample[i])).unwrap().id())
        })
    });
    g.bench_function("system_clock_now", |b| b.iter(|| black_box(SystemClock.now())));
    let cached = CachedClock::start().unwrap();
    g.bench_function("cached_clock_now", |b| b.iter(|| black_box(cached.now())));
    let system_verifier = Verifier::new(
        TokenFormat::new(TokenPrefix::new("acme_prod").unwrap()),
        DigestKeyring::new(DigestKey::from_bytes(1, &SecretBox::new(Box::new(key)))),
        Arc::clone(o.verifier.lookup()),
    );
    g.bench_function("verify_system_clock", |b| {
        b.iter(|| {
            i = (i + 1) % sample;
            assert!(system_verifier.verify(black_box(&o.sample[i]), &o.request).is_allowed());
        })
    });
    let ids: Vec<TokenId> = o.sample.iter().map(|t| ParsedToken::parse(t).unwrap().id()).collect();
    g.bench_function("lookup", |b| {
        b.iter(|| {
            i = (i + 1) % sample;
            assert!(o.verifier.lookup().with_token(black_box(ids[i]), &mut |v| {
                black_box(v.digest());
            }));
        })
    });
    let now = Utc::now();
    g.bench_function("verify_at_fixed_now", |b| {
        b.iter(|| {
            i = (i + 1) % sample;
            assert!(o.verifier.verify_at(black_box(&o.sample[i]), &o.request, now).is_allowed());
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    let ours = "tokenward_verify_1M";
    let rows = [
        ("floor_hmac_plus_hashmap_1M", "verify / floor", 1.5, false),
        ("jsonwebtoken_hs256", "jsonwebtoken HS256 / verify", 4.0, true),
        ("pasetors_v4_local", "pasetors v4.local / verify", 0.0, true),
        ("biscuit_one_check", "biscuit / verify", 100.0, true),
    ];
    let Some(ours_ns) = support::median_ns("verify", ours) else {
        return;
    };
    println!("\nverify summary (criterion medians, this run)");
    println!("  {:<32} {:>10.1} ns", ours, ours_ns);
    for (id, label, target, peer) in rows {
        if let Some(ns) = support::median_ns("verify", id) {
            let ratio = if peer { ns / ours_ns } else { ours_ns / ns };
            let verdict = match (target > 0.0, peer) {
                (false, _) => String::new(),
                (true, true) => {
                    format!("target ≥ {target}×: {}", if ratio >= target { "met" } else { "MISSED" })
                }
                (true, false) => {
                    format!("target ≤ {target}×: {}", if ratio <= target { "met" } else { "MISSED" })
                }
            };
            println!("  {:<32} {:>10.1} ns   {:<30} {:>7.2}×  {}", id, ns, label, ratio, verdict);
        }
    }
}
